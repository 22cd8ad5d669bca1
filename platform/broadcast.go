package platform

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/prometheus/client_golang/prometheus"
)

// Key drops across replicas.
//
// Every replica keeps the EKs it unwrapped in its own memory (p.cache).
// When an environment's keys must leave memory (lock, re-enable, deletion,
// crypto-shred; an epoch retired by re-key), DropKeys zeroes them here
// and publishes a message on Config.Broadcaster; every other replica
// receives it and zeroes its own copies. The publisher hears its own
// message too, later: it skips that echo (ownEchoes), having dropped at
// once, because applying it again could land in the middle of a load of
// the same key and turn a read that has just passed its checks into a
// needless 503 "retry". The data plane does not
// depend on this — it reads the environment's state from the store on every
// request, so a Locked environment is refused on every replica as soon as
// the lock commits — but without it the other replicas would hold the keys
// of a locked environment in memory until their TTL.
//
// The messages:
//
//	keys.drop <envID>           zero every cached key of the environment
//	keys.drop <envID> <epoch>   zero the key of one epoch
//	keys.dropenvs <envID>…      zero every cached key of each environment
//	keys.purge                  zero every cached key
//
// keys.dropenvs carries the drops of a batch (a policy's environments
// locked together: dropKeysOf), as many ids as fit in one message, and
// a batch's messages go out in one PublishAll: on PostgreSQL one NOTIFY
// statement for the batch, not one per environment. A replica from
// before it does not know the verb, and drops every key: safe.
//
// keyhold.BroadcastMissed (a reconnect, a subscriber that fell behind) and
// the end of a subscription count as keys.purge: a missed drop must not
// leave a key in memory, and unwrapping again is only a cost.
const (
	msgKeysPrefix = "keys."
	msgDrop       = "keys.drop"
	msgDropEnvs   = "keys.dropenvs"
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
	// result (ok, error, purge, ignored, own).
	messages *prometheus.CounterVec
	// ownEchoes counts, per message, this replica's published messages
	// whose echo has not come back yet. An identical message from
	// another replica that arrives first is taken for the echo: the drop
	// it asks for was made here when this replica published, and the echo
	// that follows is then applied. Cleared whenever messages may have
	// been missed.
	mu        sync.Mutex
	ownEchoes map[string]int
}

// expectEcho records that msg is about to be published by this replica;
// forgetEcho undoes it when the publish failed.
func (b *broadcast) expectEcho(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ownEchoes == nil {
		b.ownEchoes = map[string]int{}
	}
	b.ownEchoes[msg]++
}

func (b *broadcast) forgetEcho(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ownEchoes[msg] > 0 {
		b.ownEchoes[msg]--
	}
}

// isEcho reports whether msg is the echo of this replica's own message,
// and consumes it.
func (b *broadcast) isEcho(msg string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ownEchoes[msg] == 0 {
		return false
	}
	b.ownEchoes[msg]--
	return true
}

// clearEchoes forgets every expected echo: after a gap in the messages
// they may never come.
func (b *broadcast) clearEchoes() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.ownEchoes)
}

// startBroadcast subscribes to bc (if not nil) and receives key drops until
// Close. It subscribes before it returns, so a platform that serves hears
// every drop published from then on.
func (p *core) startBroadcast(bc keyhold.Broadcaster, reg prometheus.Registerer) error {
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
func (p *core) stopBroadcast() {
	if p.bcast.cancel != nil {
		p.bcast.cancel()
		<-p.bcast.done
	}
}

// receiveDrops applies the messages of ch, subscribing again (with backoff)
// whenever the subscription ends before ctx does.
func (p *core) receiveDrops(ctx context.Context, ch <-chan string) {
	defer close(p.bcast.done)
	for {
		for msg := range ch {
			p.receiveDrop(msg)
		}
		// Until we listen again, drops go unheard: hold no key meanwhile
		// that one of them might have named.
		p.cache.Purge()
		p.readAccess.invalidate()
		p.bcast.clearEchoes()
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
		p.readAccess.invalidate()
	}
}

// receiveDrop applies one message. Messages that are not about keys
// belong to other users of the broadcaster and are ignored.
func (p *core) receiveDrop(msg string) {
	// Whatever it says, another replica changed something: the cached
	// read accesses end (a lock there must refuse here).
	p.readAccess.invalidate()
	result := "ok"
	defer func() { p.bcast.messages.WithLabelValues("received", result).Inc() }()
	switch {
	case msg == keyhold.BroadcastMissed:
		p.cache.Purge()
		p.bcast.clearEchoes()
		result = "purge"
		return
	case p.bcast.isEcho(msg):
		result = "own" // dropped here when it was published
		return
	case msg == msgPurge:
		p.cache.Purge()
		return
	case !strings.HasPrefix(msg, msgKeysPrefix):
		result = "ignored"
		return
	}
	f := strings.Fields(msg)
	if f[0] == msgDropEnvs && len(f) >= 2 {
		for _, id := range f[1:] {
			p.dropLocal(id)
		}
		return
	}
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
func (p *core) dropLocal(envID string) {
	p.readAccess.invalidate()
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
func (p *core) dropEpochKeys(envID string, epoch uint32) {
	p.cache.Drop(cacheID(envID, epoch))
	p.publishDrop(msgDrop + " " + envID + " " + strconv.FormatUint(uint64(epoch), 10))
}

// dropKeysOf zeroes the cached keys of the environments ids on this
// replica and then on every other, with the fewest keys.dropenvs messages
// that hold the ids, sent together (publishDrops).
func (p *core) dropKeysOf(ids []string) {
	seen := make(map[string]bool, len(ids))
	var msgs []string
	var b strings.Builder
	for _, id := range ids {
		if id == "" || seen[id] || strings.ContainsAny(id, " \t") {
			continue // "" would be a purge; ids are never blank or spaced
		}
		seen[id] = true
		p.dropLocal(id)
		if b.Len() > 0 && b.Len()+1+len(id) > keyhold.MaxBroadcastSize {
			msgs = append(msgs, b.String())
			b.Reset()
		}
		if b.Len() == 0 {
			b.WriteString(msgDropEnvs)
		}
		b.WriteString(" " + id)
	}
	if b.Len() > 0 {
		msgs = append(msgs, b.String())
	}
	p.publishDrops(msgs)
}

// publishDrop tells the other replicas to drop what msg names.
func (p *core) publishDrop(msg string) { p.publishDrops([]string{msg}) }

// publishDrops tells the other replicas to drop what msgs name, in one
// PublishAll (one round trip). The messages are distinct: PostgreSQL would
// deliver a repeated one once, and its second echo would never come. A
// failure
// is logged, not returned: the drop has happened here, the data plane
// refuses by the stored state on every replica anyway, and the other
// replicas' keys still expire with their TTL; a broken connection also
// makes their subscriptions purge when it comes back.
func (p *core) publishDrops(msgs []string) {
	if p.bcast.bc == nil || len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	for _, m := range msgs {
		p.bcast.expectEcho(m)
	}
	if err := p.bcast.bc.PublishAll(ctx, msgs); err != nil {
		for _, m := range msgs {
			p.bcast.forgetEcho(m)
		}
		p.bcast.messages.WithLabelValues("sent", "error").Add(float64(len(msgs)))
		p.log.Warn("could not tell the other replicas to drop cached keys: they keep them until their TTL", "message", msgs[0], "messages", len(msgs), "err", err)
		return
	}
	p.bcast.messages.WithLabelValues("sent", "ok").Add(float64(len(msgs)))
}
