package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keyhold/keyhold"
)

// Channel is the PostgreSQL notification channel that Broadcaster uses.
// Channels are per database, so only replicas of one Keyhold database hear
// each other.
const Channel = "keyhold_broadcast"

// ListenerApplicationName is the application_name of the listening
// connection, so that an operator (or a test) can find it in
// pg_stat_activity.
const ListenerApplicationName = "keyhold-listener"

// Timings of the listener.
const (
	// Reconnect backoff: doubling from the first to the last.
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// listenIdle is how long the listener waits for a notification before it
// pings the server, so that a connection that died without a word (a
// dropped network path) is noticed within about this time. A variable for
// the tests; a Broadcaster reads it once, when it is made.
var listenIdle = 30 * time.Second

// Broadcaster is the keyhold.Broadcaster of replicas sharing one
// PostgreSQL database: Publish runs pg_notify on Channel, and one
// dedicated connection per replica LISTENs on it and hands every
// notification to this replica's subscriptions. PostgreSQL delivers a
// notification to every session listening when it commits, the sender's
// included, in commit order.
//
// A notification sent while the listening connection is down is lost, so
// when the connection breaks the Broadcaster delivers
// keyhold.BroadcastMissed at once, reconnects with backoff (100 ms
// doubling to 5 s), and delivers BroadcastMissed again once it listens
// again: whatever a subscriber learned to keep in the gap, it drops.
//
// Open one per replica with NewBroadcaster, and Close it when done.
type Broadcaster struct {
	cfg    *pgx.ConnConfig // of the listener
	pub    *sql.DB         // publishes
	local  *keyhold.LocalBroadcaster
	log    *slog.Logger
	idle   time.Duration // listenIdle
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce  sync.Once
	reconnects atomic.Uint64
	pid        atomic.Uint32 // the listener's server process
}

// NewBroadcaster connects to the database that dsn names and starts
// listening on Channel before it returns, so a replica that starts serving
// hears every notification sent from then on. log may be nil. The
// listener runs until Close.
func NewBroadcaster(ctx context.Context, dsn string, log *slog.Logger) (*Broadcaster, error) {
	cfg, err := pgxConfig(dsn)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lcfg := cfg.Copy()
	lcfg.RuntimeParams["application_name"] = ListenerApplicationName
	conn, err := listen(ctx, lcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: listen for other replicas on %s: %w", redact(cfg), err)
	}
	// Publishing needs one connection at a time; a second lets a publish
	// proceed while another waits on a broken one.
	pub := stdlib.OpenDB(*cfg)
	pub.SetMaxOpenConns(2)
	pub.SetMaxIdleConns(1)
	pub.SetConnMaxIdleTime(5 * time.Minute)

	runCtx, cancel := context.WithCancel(context.Background())
	b := &Broadcaster{cfg: lcfg, pub: pub, local: keyhold.NewLocalBroadcaster(), log: log, idle: listenIdle, cancel: cancel, done: make(chan struct{})}
	b.pid.Store(conn.PgConn().PID())
	go b.run(runCtx, conn)
	return b, nil
}

// listen opens a connection and LISTENs on Channel.
func listen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// Publish sends msg to every replica listening on the database, this one
// included. It refuses a message that keyhold.ValidBroadcast refuses.
func (b *Broadcaster) Publish(ctx context.Context, msg string) error {
	if err := keyhold.ValidBroadcast(msg); err != nil {
		return err
	}
	if _, err := b.pub.ExecContext(ctx, `SELECT pg_notify($1, $2)`, Channel, msg); err != nil {
		return fmt.Errorf("postgres: notify the other replicas: %w", err)
	}
	return nil
}

// PublishAll sends msgs with one statement: pg_notify over the array's
// elements, in order, in one transaction, so every message is sent or
// none. It refuses them all if keyhold.ValidBroadcast refuses one.
func (b *Broadcaster) PublishAll(ctx context.Context, msgs []string) error {
	for _, m := range msgs {
		if err := keyhold.ValidBroadcast(m); err != nil {
			return err
		}
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		return b.Publish(ctx, msgs[0])
	}
	if _, err := b.pub.ExecContext(ctx, `SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m`, Channel, msgs); err != nil {
		return fmt.Errorf("postgres: notify the other replicas: %w", err)
	}
	return nil
}

// Subscribe returns a channel of the messages that any replica publishes
// from now on, and keyhold.BroadcastMissed wherever some may have been
// lost. It is closed when ctx ends or the Broadcaster closes.
func (b *Broadcaster) Subscribe(ctx context.Context) (<-chan string, error) {
	return b.local.Subscribe(ctx)
}

// Reconnects returns how many times the listener has connected again
// after its connection broke, for tests and operators.
func (b *Broadcaster) Reconnects() uint64 { return b.reconnects.Load() }

// ListenerPID returns the server process id of the listening connection
// (pg_stat_activity.pid), for tests and operators.
func (b *Broadcaster) ListenerPID() uint32 { return b.pid.Load() }

// Close stops listening, ends every subscription and closes the
// connections. It is idempotent.
func (b *Broadcaster) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		<-b.done
		b.local.Close()
		b.pub.Close()
	})
	return nil
}

// run receives on conn until it breaks, then reconnects, until ctx ends.
func (b *Broadcaster) run(ctx context.Context, conn *pgx.Conn) {
	defer close(b.done)
	for {
		err := b.receive(ctx, conn)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		// Notifications sent from now until we listen again are lost.
		b.local.Missed()
		b.log.Warn("lost the PostgreSQL connection that listens for other replicas' messages: reconnecting, and dropping what they may have invalidated", "err", err)
		if conn = b.reconnect(ctx); conn == nil {
			return
		}
		b.pid.Store(conn.PgConn().PID())
		b.reconnects.Add(1)
		b.local.Missed()
		b.log.Info("listening for other replicas' messages again")
	}
}

// receive hands every notification on conn to the local subscriptions,
// until conn fails or ctx ends. After b.idle without a notification
// it pings, so a dead connection does not go unnoticed.
func (b *Broadcaster) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, b.idle)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			if n.Channel != Channel {
				continue
			}
			if err := b.local.Publish(ctx, n.Payload); err != nil {
				// Someone ran NOTIFY by hand with something we never send.
				b.log.Warn("ignored a notification that is not a valid message", "from", n.PID, "err", err)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case idle:
			pctx, cancel := context.WithTimeout(ctx, b.idle)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("the listening connection did not answer a ping: %w", err)
			}
		default:
			return err
		}
	}
}

// reconnect connects and listens again, with backoff, until it succeeds
// (the connection) or ctx ends (nil).
func (b *Broadcaster) reconnect(ctx context.Context) *pgx.Conn {
	wait := reconnectMin
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		conn, err := listen(cctx, b.cfg)
		cancel()
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		b.log.Warn("reconnecting to PostgreSQL to listen for other replicas' messages", "err", err, "retry in", min(2*wait, reconnectMax))
		wait = min(2*wait, reconnectMax)
	}
}

var _ keyhold.Broadcaster = (*Broadcaster)(nil)
