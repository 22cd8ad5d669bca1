package keyhold

import (
	"context"
	"sync"
)

// Broadcaster carries short messages to every replica that shares a Store,
// the sender included. The platform uses it to tell every replica to zero
// the cached keys of an environment whose custody or state changed
// ("keys.drop <envID>"), so that a lock takes the keys out of every
// replica's memory, not only the one that noticed the revocation.
//
// Delivery is at most once, and only to subscriptions that exist when the
// message arrives: a replica that starts later does not see older
// messages, and a connection that breaks loses what was sent meanwhile.
// A Broadcaster never loses messages silently, though: wherever messages
// may have been lost (a reconnect, a subscriber too slow to keep up), it
// delivers BroadcastMissed instead, and a subscriber must then act as if it
// had missed every message — for the platform, zero every cached key. So a
// subscriber that handles BroadcastMissed conservatively is never left
// holding state that some message would have removed.
//
// Messages from one sender arrive in the order it sent them; nothing is
// promised across senders. Implementations: LocalBroadcaster (one process,
// as on SQLite) and postgres.Broadcaster (LISTEN/NOTIFY, for replicas on
// one PostgreSQL database).
type Broadcaster interface {
	// Publish sends msg (see ValidBroadcast) to every subscription of
	// every replica. A nil error means the message left this process, not
	// that anyone received it.
	Publish(ctx context.Context, msg string) error
	// PublishAll sends msgs, in order, as Publish would each, but in one
	// go: on PostgreSQL one statement, so a batch of messages (the key
	// drops of a thousand environments locked together) costs one round
	// trip, not one per message. It sends none if any is not valid. Give
	// distinct messages: PostgreSQL delivers identical notifications of
	// one transaction once.
	PublishAll(ctx context.Context, msgs []string) error
	// Subscribe returns a channel of the messages published from now on,
	// and BroadcastMissed wherever some may have been lost. The channel is
	// closed when ctx ends or the Broadcaster closes; a subscriber that
	// wants to keep listening subscribes again, and must treat the gap as
	// BroadcastMissed.
	Subscribe(ctx context.Context) (<-chan string, error)
}

// BroadcastMissed is delivered in place of messages that may have been
// lost. It can't be published: it is not a valid message.
const BroadcastMissed = "\x00missed"

// MaxBroadcastSize is the longest message, in bytes. PostgreSQL's NOTIFY
// takes under 8000; messages are meant to be an instruction and an id.
const MaxBroadcastSize = 1000

// ValidBroadcast checks a message: 1 to MaxBroadcastSize printable ASCII
// characters (space to '~'), so that every transport carries it unchanged
// and a log shows it as it is.
func ValidBroadcast(msg string) error {
	if len(msg) == 0 || len(msg) > MaxBroadcastSize {
		return Errorf(CodeBadRequest, "a broadcast message must be 1 to %d characters long, not %d", MaxBroadcastSize, len(msg))
	}
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < ' ' || c > '~' {
			return Errorf(CodeBadRequest, "a broadcast message must be printable ASCII: byte %d is %#x in %q", i, c, msg)
		}
	}
	return nil
}

// maxQueued is how many messages wait for one slow subscriber before they
// are replaced by a single BroadcastMissed.
const maxQueued = 1024

// LocalBroadcaster is the Broadcaster of one process: Publish hands the
// message to every subscription of this LocalBroadcaster and nowhere else.
// It is all a single SQLite server needs, and the local end of a shared
// Broadcaster (postgres.Broadcaster delivers what it receives through one).
//
// A subscriber that falls more than 1024 messages behind gets
// BroadcastMissed in their place, so Publish never blocks on a slow reader.
// Safe for concurrent use; the zero value is not usable: use
// NewLocalBroadcaster.
type LocalBroadcaster struct {
	mu     sync.Mutex
	subs   map[*localSub]struct{}
	closed bool
}

// NewLocalBroadcaster returns a LocalBroadcaster without subscriptions.
func NewLocalBroadcaster() *LocalBroadcaster {
	return &LocalBroadcaster{subs: make(map[*localSub]struct{})}
}

// localSub is one subscription: a queue that Publish appends to without
// blocking, and a goroutine that feeds it to the subscriber's channel.
type localSub struct {
	mu    sync.Mutex
	queue []string
	wake  chan struct{} // capacity 1: "the queue is not empty"
	done  chan struct{} // closed by Close
}

func (s *localSub) push(msg string) {
	s.mu.Lock()
	if len(s.queue) >= maxQueued {
		s.queue = append(s.queue[:0], BroadcastMissed)
	} else {
		s.queue = append(s.queue, msg)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *localSub) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// Publish checks msg (ValidBroadcast) and queues it for every current
// subscription. It does not block on subscribers.
func (b *LocalBroadcaster) Publish(_ context.Context, msg string) error {
	if err := ValidBroadcast(msg); err != nil {
		return err
	}
	return b.deliver(msg)
}

// PublishAll checks every message, then queues each as Publish does.
func (b *LocalBroadcaster) PublishAll(_ context.Context, msgs []string) error {
	for _, m := range msgs {
		if err := ValidBroadcast(m); err != nil {
			return err
		}
	}
	for _, m := range msgs {
		if err := b.deliver(m); err != nil {
			return err
		}
	}
	return nil
}

// Missed delivers BroadcastMissed to every current subscription: the
// owner of this LocalBroadcaster may have lost messages (a shared
// Broadcaster calls it when its connection breaks and when it is back).
func (b *LocalBroadcaster) Missed() { b.deliver(BroadcastMissed) }

func (b *LocalBroadcaster) deliver(msg string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errBroadcasterClosed
	}
	for s := range b.subs {
		s.push(msg)
	}
	return nil
}

var errBroadcasterClosed = Errorf(CodeServiceUnavailable, "the broadcaster is closed: the server is shutting down")

// Subscribe returns a channel of the messages published from now on. It is
// closed when ctx ends or the LocalBroadcaster closes.
func (b *LocalBroadcaster) Subscribe(ctx context.Context) (<-chan string, error) {
	s := &localSub{wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errBroadcasterClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()

	out := make(chan string)
	go func() {
		defer close(out)
		defer func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				return
			case <-s.wake:
			}
			for _, msg := range s.take() {
				select {
				case out <- msg:
				case <-ctx.Done():
					return
				case <-s.done:
					return
				}
			}
		}
	}()
	return out, nil
}

// Close ends every subscription (their channels close) and refuses
// Publish and Subscribe from then on. It is idempotent.
func (b *LocalBroadcaster) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		for s := range b.subs {
			close(s.done)
		}
	}
	return nil
}

var _ Broadcaster = (*LocalBroadcaster)(nil)
