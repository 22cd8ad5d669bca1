package platform

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// wrappedReadsStore counts the per-environment and per-policy reads of
// wrapped keys that go through it: how many queries a health check makes.
// Everything else goes to the real store.
type wrappedReadsStore struct {
	sealingStore
	perEnv, perPolicy atomic.Int64
}

func (s *wrappedReadsStore) View(ctx context.Context, fn func(keyhold.Tx) error) error {
	return s.Store.View(ctx, func(tx keyhold.Tx) error { return fn(wrappedReadsTx{tx, s}) })
}

func (s *wrappedReadsStore) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	return s.Store.Update(ctx, func(tx keyhold.Tx) error { return fn(wrappedReadsTx{tx, s}) })
}

type wrappedReadsTx struct {
	keyhold.Tx
	s *wrappedReadsStore
}

func (t wrappedReadsTx) WrappedKeys(ctx context.Context, envID string) ([]*keyhold.WrappedKey, error) {
	t.s.perEnv.Add(1)
	return t.Tx.WrappedKeys(ctx, envID)
}

func (t wrappedReadsTx) PolicyWrappedKeys(ctx context.Context, policyID string) ([]*keyhold.WrappedKey, error) {
	t.s.perPolicy.Add(1)
	return t.Tx.PolicyWrappedKeys(ctx, policyID)
}

// countingBroadcaster counts the publishes and messages that go through
// it to a real LocalBroadcaster.
type countingBroadcaster struct {
	*keyhold.LocalBroadcaster
	publishes, messages atomic.Int64
}

func (b *countingBroadcaster) Publish(ctx context.Context, msg string) error {
	b.publishes.Add(1)
	b.messages.Add(1)
	return b.LocalBroadcaster.Publish(ctx, msg)
}

func (b *countingBroadcaster) PublishAll(ctx context.Context, msgs []string) error {
	b.publishes.Add(1)
	b.messages.Add(int64(len(msgs)))
	return b.LocalBroadcaster.PublishAll(ctx, msgs)
}

// TestLockBatchOneQueryOneNotify: a policy with many linked environments
// (lockBatchEnvs) is checked with one read of their wrapped keys, not one
// per environment, and when its key is revoked, locking all of them sends
// their key drops to the other replicas in one publish of packed
// messages, not one per environment; the other replica still drops the
// key it held, and every environment is Locked.
func TestLockBatchOneQueryOneNotify(t *testing.T) {
	const lockBatchEnvs = 300
	cs := &wrappedReadsStore{sealingStore: sealingStore{storetest.OpenSQLite(t)}}
	f := newCMKFixture(t, cs, true)
	local := keyhold.NewLocalBroadcaster()
	t.Cleanup(func() { local.Close() })
	cb := &countingBroadcaster{LocalBroadcaster: local}
	if err := f.p.startBroadcast(cb, nil); err != nil {
		t.Fatal(err)
	}
	runner2, err := ops.New(ops.Config{Store: f.store})
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

	w := f.lockWorld(t, "batch")
	// The other environments share the first one's policy and wrapped
	// key, written straight to the store: linking each through the
	// vault would only make the test slow.
	first := f.env(t, w.env.ID)
	wks := f.wrapped(t, w.env.ID)
	ids := []string{first.ID}
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		for i := 1; i < lockBatchEnvs; i++ {
			e := *first
			e.ID, e.DisplayName, e.Version = uuid.NewString(), fmt.Sprintf("batch-%d", i), 0
			if err := tx.CreateEnvironment(context.Background(), &e); err != nil {
				return err
			}
			for _, wk := range wks {
				c := *wk
				c.EnvID = e.ID
				if err := tx.PutWrappedKey(context.Background(), &c); err != nil {
					return err
				}
			}
			ids = append(ids, e.ID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for try := 0; ; try++ { // as in TestBroadcastLock: a drop in flight may answer 503 once
		if _, err = p2.GetRow(f.ctx, w.env.ID, "accounts", "r0000"); err == nil {
			break
		}
		if keyhold.ErrorCode(err) != keyhold.CodeServiceUnavailable || try == 4 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !holds(p2, first) {
		t.Fatal("the second replica did not cache the key")
	}

	cs.perEnv.Store(0)
	cs.perPolicy.Store(0)
	f.health(t, w.pol, keyhold.HealthHealthy)
	if n, m := cs.perEnv.Load(), cs.perPolicy.Load(); n != 0 || m != 1 {
		t.Fatalf("a health check of %d environments read wrapped keys %d times per environment and %d per policy; want 0 and 1", lockBatchEnvs, n, m)
	}

	f.revoke(t, w.grantSc, w.grantNme)
	publishes, messages := cb.publishes.Load(), cb.messages.Load()
	f.health(t, w.pol, keyhold.HealthUnhealthy)
	publishes, messages = cb.publishes.Load()-publishes, cb.messages.Load()-messages
	// 36-character ids, as many as fit in a message.
	perMessage := (keyhold.MaxBroadcastSize - len(msgDropEnvs)) / (1 + 36)
	if want := int64((lockBatchEnvs + perMessage - 1) / perMessage); publishes != 1 || messages != want {
		t.Fatalf("locking %d environments published %d times, %d messages; want 1 publish of %d", lockBatchEnvs, publishes, messages, want)
	}
	eventually(t, "the second replica drops the locked environment's key", func() bool { return !holds(p2, first) })
	_, err = p2.GetRow(f.ctx, w.env.ID, "accounts", "r0000")
	wantCode(t, err, keyhold.CodeEnvironmentLocked)

	var locked int
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		envs, err := tx.ListEnvironments(context.Background(), keyhold.EnvironmentFilter{PolicyID: w.pol.ID()})
		for _, e := range envs {
			if e.State == keyhold.StateLocked {
				locked++
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if locked != lockBatchEnvs {
		t.Fatalf("%d of %d environments Locked", locked, lockBatchEnvs)
	}
	if !strings.HasPrefix(msgDropEnvs, msgKeysPrefix) {
		t.Fatal("the batch verb is not a key message: an older replica would ignore it instead of purging")
	}
}
