package platform

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// replicas is two platforms over one database, as two servers would be:
// r.p (the fixture's) and r.p2, each with its own key cache, and each
// subscribed to a broadcaster that reaches both.
type replicas struct {
	*fixture
	p2    *Platform
	reg2  *prometheus.Registry
	bc    keyhold.Broadcaster // r.p's
	local *keyhold.LocalBroadcaster
}

// openReplicas opens the pair. On SQLite both share the store and one
// LocalBroadcaster (one process); on PostgreSQL each has its own store and
// postgres.Broadcaster on the same database.
func openReplicas(t *testing.T, backend string) *replicas {
	t.Helper()
	ctx := context.Background()
	var store1, store2 keyhold.Store
	var bc1, bc2 keyhold.Broadcaster
	r := &replicas{reg2: prometheus.NewRegistry()}
	switch backend {
	case "sqlite":
		store1 = storetest.OpenSQLite(t)
		store2 = store1
		r.local = keyhold.NewLocalBroadcaster()
		t.Cleanup(func() { r.local.Close() })
		bc1, bc2 = r.local, r.local
	case "postgres":
		var db storetest.PostgresDB
		store1, db = storetest.OpenPostgresAt(t)
		s2, err := postgres.Open(ctx, db.DSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s2.Close() })
		store2 = s2
		for _, bc := range []*keyhold.Broadcaster{&bc1, &bc2} {
			b, err := postgres.NewBroadcaster(ctx, db.DSN, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			*bc = b
		}
	}
	master := testMasterKey(t)
	t.Cleanup(master.Destroy)
	clock := newFakeClock()
	p1, err := Open(ctx, Config{Store: store1, MasterKey: master, Clock: clock, Issuer: "https://a.keyhold.test", Broadcaster: bc1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p1.Close() })
	creds, _, err := p1.BootstrapCustomer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.p2, err = Open(ctx, Config{Store: store2, MasterKey: master, Clock: clock, Issuer: "https://b.keyhold.test", Broadcaster: bc2, Registerer: r.reg2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.p2.Close() })
	r.fixture = &fixture{p: p1, store: store1, master: master, clock: clock, creds: creds}
	r.ctx = r.login(t, creds.TenantID, creds.ClientID, creds.ClientSecret)
	r.bc = bc1
	return r
}

// holds reports whether p has the key of env's current epoch in memory.
func holds(p *Platform, env *keyhold.Environment) bool {
	return p.cache.Contains(cacheID(env.ID, env.Epoch))
}

// warm reads a row of each environment through p, which caches its key.
func (r *replicas) warm(t *testing.T, p *Platform, envs ...*keyhold.Environment) {
	t.Helper()
	for _, e := range envs {
		row, err := p.GetRow(r.ctx, e.ID, "t", "r")
		if err != nil || string(row.Data) != `{"n":"`+e.DisplayName+`"}` {
			t.Fatalf("GetRow %s = %v, %v", e.DisplayName, row, err)
		}
		if !holds(p, e) {
			t.Fatalf("a read did not cache the key of %s", e.DisplayName)
		}
	}
}

// count reads a counter.
func count(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// gathered reports whether reg serves the metric family name.
func gathered(t *testing.T, reg *prometheus.Registry, name string) bool {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return true
		}
	}
	return false
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
	}
}

// settle publishes a marker that no one acts on and waits until p2 has
// received it: every message published before it has then been applied.
func (r *replicas) settle(t *testing.T) {
	t.Helper()
	before := count(t, r.p2.bcast.messages.WithLabelValues("received", "ignored"))
	if err := r.bc.Publish(context.Background(), "test.marker"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the marker reaches the second replica", func() bool {
		return count(t, r.p2.bcast.messages.WithLabelValues("received", "ignored")) > before
	})
}

// TestBroadcastKeyDrops: DropKeys on one replica zeroes the environment's
// cached key on the other, and only that environment's; one epoch, every
// key, a message the replica does not understand (drops all) and one that
// is not about keys (drops nothing) behave as documented; the data reads
// back afterwards, unwrapped again.
func TestBroadcastKeyDrops(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			r := openReplicas(t, backend)
			e1, e2 := r.createEnv(t, "one"), r.createEnv(t, "two")
			for _, e := range []*keyhold.Environment{e1, e2} {
				if _, err := r.p.PutRow(r.ctx, e.ID, "t", "r", json.RawMessage(`{"n":"`+e.DisplayName+`"}`)); err != nil {
					t.Fatal(err)
				}
			}
			r.warm(t, r.p, e1, e2)
			r.warm(t, r.p2, e1, e2)

			r.p.DropKeys(e1.ID)
			if holds(r.p, e1) {
				t.Fatal("DropKeys left the key in the sender's cache")
			}
			eventually(t, "the other replica drops the key", func() bool { return !holds(r.p2, e1) })
			r.settle(t)
			if !holds(r.p2, e2) || !holds(r.p, e2) {
				t.Fatal("dropping one environment's keys dropped another's")
			}
			unwraps := r.p2.Unwraps()
			r.warm(t, r.p2, e1) // nothing lost: unwrapped again
			if r.p2.Unwraps() != unwraps+1 {
				t.Fatalf("reading after the drop cost %d unwraps, want 1", r.p2.Unwraps()-unwraps)
			}

			r.p.dropEpochKeys(e2.ID, e2.Epoch)
			eventually(t, "one epoch's key is dropped", func() bool { return !holds(r.p2, e2) })
			r.settle(t)
			if !holds(r.p2, e1) {
				t.Fatal("dropping one epoch of two dropped the other environment's key")
			}

			r.warm(t, r.p2, e2)
			r.p.DropKeys("")
			eventually(t, "every key is dropped", func() bool { return r.p2.cache.Len() == 0 })

			// Not about keys: ignored, nothing dropped.
			r.warm(t, r.p2, e1, e2)
			r.settle(t)
			if !holds(r.p2, e1) || !holds(r.p2, e2) {
				t.Fatal("a message that is not about keys dropped keys")
			}
			// About keys, but not understood: everything goes.
			if err := r.bc.Publish(context.Background(), "keys.rotate-everything "+e1.ID); err != nil {
				t.Fatal(err)
			}
			eventually(t, "an unknown key message drops every key", func() bool { return r.p2.cache.Len() == 0 })

			if got := count(t, r.p.bcast.messages.WithLabelValues("sent", "ok")); got != 3 {
				t.Errorf("keyhold_key_drop_messages_total{sent,ok} = %v, want 3", got)
			}
			if !gathered(t, r.reg2, "keyhold_key_drop_messages_total") {
				t.Error("the second replica's registry lacks keyhold_key_drop_messages_total")
			}
			r.warm(t, r.p2, e1, e2)
		})
	}
}

// TestBroadcastSkipsOwnEcho: the sender of a drop hears its own message
// later and skips it (it dropped at once): a key it loaded again in the
// meantime stays cached, while the other replica applies the drop.
func TestBroadcastSkipsOwnEcho(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			r := openReplicas(t, backend)
			e := r.createEnv(t, "one")
			if _, err := r.p.PutRow(r.ctx, e.ID, "t", "r", json.RawMessage(`{"n":"one"}`)); err != nil {
				t.Fatal(err)
			}
			r.warm(t, r.p2, e)
			r.p.DropKeys(e.ID)
			r.warm(t, r.p, e) // loaded again before (or after) its echo comes back
			eventually(t, "the other replica drops the key", func() bool { return !holds(r.p2, e) })
			eventually(t, "the sender hears its own echo", func() bool {
				return count(t, r.p.bcast.messages.WithLabelValues("received", "own")) == 1
			})
			if !holds(r.p, e) {
				t.Error("the echo of the sender's own drop zeroed the key it had loaded since")
			}
		})
	}
}

// TestBroadcastMissedAndEnded: BroadcastMissed (messages may have been
// lost) zeroes every key; so does the end of the subscription, after which
// the replica keeps trying to subscribe again until it closes; Close
// stops it.
func TestBroadcastMissedAndEnded(t *testing.T) {
	r := openReplicas(t, "sqlite")
	e := r.createEnv(t, "one")
	if _, err := r.p.PutRow(r.ctx, e.ID, "t", "r", json.RawMessage(`{"n":"one"}`)); err != nil {
		t.Fatal(err)
	}
	r.warm(t, r.p2, e)
	r.local.Missed()
	eventually(t, "BroadcastMissed drops every key", func() bool { return r.p2.cache.Len() == 0 })

	r.warm(t, r.p, e)
	r.warm(t, r.p2, e)
	r.local.Close() // both replicas' subscriptions end
	eventually(t, "the end of the subscription drops every key", func() bool { return r.p.cache.Len() == 0 && r.p2.cache.Len() == 0 })
	// DropKeys still drops here, though it can't tell anyone.
	r.warm(t, r.p2, e)
	r.p2.DropKeys(e.ID)
	if holds(r.p2, e) {
		t.Fatal("DropKeys without a working broadcaster left the key")
	}
	if got := count(t, r.p2.bcast.messages.WithLabelValues("sent", "error")); got != 1 {
		t.Errorf("failed sends counted %v, want 1", got)
	}
	done := make(chan struct{})
	go func() { r.p2.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the subscription goroutine")
	}
}

// TestBroadcastLock: on two replicas, a revocation noticed by the first
// (its health check locks the environment) zeroes the second's cached key
// too, and the second refuses the data: it reads the lock from the store.
func TestBroadcastLock(t *testing.T) {
	f := newCMKFixture(t, storetest.OpenSQLite(t), true)
	local := keyhold.NewLocalBroadcaster()
	t.Cleanup(func() { local.Close() })
	if err := f.p.startBroadcast(local, nil); err != nil { // f.p was opened without one
		t.Fatal(err)
	}
	runner2, err := ops.New(ops.Config{Store: f.store}) // not run: the first replica's runner does the work
	if err != nil {
		t.Fatal(err)
	}
	p2, kv2, err := openCMK(context.Background(), f.store, f.master, runner2, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p2.Close(); kv2.Close() })
	if err := p2.startBroadcast(local, nil); err != nil {
		t.Fatal(err)
	}
	w := f.lockWorld(t, "bcast")
	// The first replica's drops (the link's, lockWorld's read-back purge)
	// reach the second asynchronously; one arriving during its first
	// unwrap answers 503 "retry", and a client retries.
	for try := 0; ; try++ {
		_, err := p2.GetRow(f.ctx, w.env.ID, "accounts", "r0000")
		if err == nil {
			break
		}
		if keyhold.ErrorCode(err) != keyhold.CodeServiceUnavailable || try == 4 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	env := f.env(t, w.env.ID)
	if !holds(p2, env) {
		t.Fatal("the second replica did not cache the key")
	}

	f.revoke(t, w.grantSc, w.grantNme)
	f.health(t, w.pol, keyhold.HealthUnhealthy)
	eventually(t, "the second replica drops the locked environment's key", func() bool { return !holds(p2, env) })
	_, err = p2.GetRow(f.ctx, w.env.ID, "accounts", "r0000")
	wantCode(t, err, keyhold.CodeEnvironmentLocked)
	if holds(p2, env) {
		t.Fatal("a refused read cached the key again")
	}
}

// TestDropDuringUnwrap: a drop that lands while a read unwraps the
// environment's key (a lock or re-enable on another replica) keeps that
// key out of the cache; the read unwraps again and succeeds, rather than
// failing with 503. Drops that keep landing end in a 503 after a bounded
// number of tries, with nothing cached.
func TestDropDuringUnwrap(t *testing.T) {
	r := openReplicas(t, "sqlite")
	e := r.createEnv(t, "one")
	if _, err := r.p2.PutRow(r.ctx, e.ID, "t", "r", json.RawMessage(`{"n":"one"}`)); err != nil {
		t.Fatal(err)
	}
	r.p2.DropKeys(e.ID)

	drops := 0
	r.p2.unwrapped = func(envID string) {
		if drops < 1 {
			drops++
			r.p2.DropKeys(envID)
		}
	}
	unwraps := r.p2.Unwraps()
	r.warm(t, r.p2, e)
	if got := r.p2.Unwraps() - unwraps; got != 2 {
		t.Errorf("a read whose first unwrap was dropped unwrapped %d times, want 2", got)
	}

	r.p2.DropKeys(e.ID)
	r.p2.unwrapped = func(envID string) { r.p2.DropKeys(envID) }
	_, err := r.p2.GetRow(r.ctx, e.ID, "t", "r")
	if keyhold.ErrorCode(err) != keyhold.CodeServiceUnavailable {
		t.Fatalf("GetRow while every unwrap is dropped: %v, want %s", err, keyhold.CodeServiceUnavailable)
	}
	if holds(r.p2, e) {
		t.Error("a key whose unwrap was dropped was cached")
	}
	r.p2.unwrapped = nil
	r.warm(t, r.p2, e)
}
