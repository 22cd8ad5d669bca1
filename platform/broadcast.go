package platform

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/prometheus/client_golang/prometheus"
)

// Key drops across replicas.
//
// Every replica keeps the EKs it unwrapped in its own memory (p.cache).
// When an environment's keys must leave memory (lock, re-enable, deletion,
// crypto-shred; an epoch retired by re-key), DropKeys zeroes them here
// and publishes a message on Config.Broadcaster; every replica, this one
// included, receives it and zeroes its own copies. The data plane does not
// depend on this — it reads the environment's state from the store on every
// request, so a Locked environment is refused on every replica as soon as
// the lock commits — but without it the other replicas would hold the keys
// of a locked environment in memory until their TTL.
//
// The messages:
//
//	keys.drop <envID>           zero every cached key of the environment
//	keys.drop <envID> <epoch>   zero the key of one epoch
//	keys.purge                  zero every cached key
//
// keyhold.BroadcastMissed (a reconnect, a subscriber that fell behind) and
// the end of a subscription count as keys.purge: a missed drop must not
// leave a key in memory, and unwrapping again is only a cost.
const (
	msgKeysPrefix = "keys."
	msgDrop       = "keys.drop"
	msgPurge      = "keys.purge"
)

// publishTimeout bounds how long DropKeys waits for the broadcaster.
const publishTimeout = 5 * time.Second

// Resubscribe backoff, doubling from the first to the last.
const (
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
)

// broadcast is the platform's end of the key-drop messages.
type broadcast struct {
	bc     keyhold.Broadcaster // nil: this replica drops only its own keys
	cancel context.CancelFunc
	done   chan struct{}
	// messages counts key-drop messages by direction (sent, received) and
	// result (ok, error, purge, ignored).
	messages *prometheus.CounterVec
}

// startBroadcast subscribes to bc (if not nil) and receives key drops until
// Close. It subscribes before it returns, so a platform that serves hears
// every drop published from then on.
func (p *Platform) startBroadcast(bc keyhold.Broadcaster, reg prometheus.Registerer) error {
	p.bcast.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_key_drop_messages_total",
		Help: "Messages that tell every replica to zero cached environment keys, by direction (sent, received) and result.",
	}, []string{"direction", "result"})
	if reg != nil {
		if err := reg.Register(p.bcast.messages); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	if bc == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := bc.Subscribe(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("platform: subscribing to the other replicas' key drops: %w", err)
	}
	p.bcast.bc, p.bcast.cancel, p.bcast.done = bc, cancel, make(chan struct{})
	go p.receiveDrops(ctx, ch)
	return nil
}

// stopBroadcast ends the subscription and waits for its goroutine.
func (p *Platform) stopBroadcast() {
	if p.bcast.cancel != nil {
		p.bcast.cancel()
		<-p.bcast.done
	}
}

// receiveDrops applies the messages of ch, subscribing again (with backoff)
// whenever the subscription ends before ctx does.
func (p *Platform) receiveDrops(ctx context.Context, ch <-chan string) {
	defer close(p.bcast.done)
	for {
		for msg := range ch {
			p.receiveDrop(msg)
		}
		// Until we listen again, drops go unheard: hold no key meanwhile
		// that one of them might have named.
		p.cache.Purge()
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("the subscription to other replicas' key drops ended: subscribing again")
		var err error
		for wait := resubscribeMin; ; wait = min(2*wait, resubscribeMax) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			if ch, err = p.bcast.bc.Subscribe(ctx); err == nil {
				break
			}
			p.log.Warn("subscribing to other replicas' key drops", "err", err)
		}
		p.cache.Purge() // what was cached between the two purges
	}
}

// receiveDrop applies one message. Messages that are not about keys
// belong to other users of the broadcaster and are ignored.
func (p *Platform) receiveDrop(msg string) {
	result := "ok"
	defer func() { p.bcast.messages.WithLabelValues("received", result).Inc() }()
	switch {
	case msg == keyhold.BroadcastMissed:
		p.cache.Purge()
		result = "purge"
		return
	case msg == msgPurge:
		p.cache.Purge()
		return
	case !strings.HasPrefix(msg, msgKeysPrefix):
		result = "ignored"
		return
	}
	f := strings.Fields(msg)
	if f[0] == msgDrop && len(f) == 2 {
		p.dropLocal(f[1])
		return
	}
	if f[0] == msgDrop && len(f) == 3 {
		if epoch, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			p.cache.Drop(cacheID(f[1], uint32(epoch)))
			return
		}
	}
	// From a newer replica, or not from a replica at all: dropping too
	// little would be the mistake, so drop everything.
	p.cache.Purge()
	result = "purge"
	p.log.Warn("received a key-drop message this replica does not understand: dropped every cached key", "message", msg)
}

// dropLocal zeroes every cached key of an environment on this replica
// ("" drops all).
func (p *Platform) dropLocal(envID string) {
	if envID == "" {
		p.cache.Purge()
		return
	}
	p.cache.Drop(envID + "/")
}

// dropEpochKeys zeroes the cached key of one epoch of an environment on
// every replica, for a custody change that retires one epoch (re-key's
// destroy step). The cache drops by prefix, so epochs that extend the
// number (e1 → e10…e19) go too: harmless, they are unwrapped again.
func (p *Platform) dropEpochKeys(envID string, epoch uint32) {
	p.cache.Drop(cacheID(envID, epoch))
	p.publishDrop(msgDrop + " " + envID + " " + strconv.FormatUint(uint64(epoch), 10))
}

// publishDrop tells the other replicas to drop what msg names. A failure
// is logged, not returned: the drop has happened here, the data plane
// refuses by the stored state on every replica anyway, and the other
// replicas' keys still expire with their TTL; a broken connection also
// makes their subscriptions purge when it comes back.
func (p *Platform) publishDrop(msg string) {
	if p.bcast.bc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := p.bcast.bc.Publish(ctx, msg); err != nil {
		p.bcast.messages.WithLabelValues("sent", "error").Inc()
		p.log.Warn("could not tell the other replicas to drop cached keys: they keep them until their TTL", "message", msg, "err", err)
		return
	}
	p.bcast.messages.WithLabelValues("sent", "ok").Inc()
}
