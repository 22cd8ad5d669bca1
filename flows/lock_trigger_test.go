package flows_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// watchedSealer is the platform's sealer, counting what it opened or
// sealed while the test says the environment is locked (nothing should
// be), and calling beforeOpen (once) before the first open of a flow's
// definition: a lock can be committed there, after the trigger's check.
type watchedSealer struct {
	keyhold.EnvironmentSealer
	locked     atomic.Bool
	whileLock  atomic.Int64
	beforeOpen atomic.Pointer[func()]
}

func (w *watchedSealer) note(err error) {
	if err == nil && w.locked.Load() {
		w.whileLock.Add(1)
	}
}

func (w *watchedSealer) Open(ctx context.Context, envID, store, item string, version uint64, epoch uint32, ct []byte) ([]byte, error) {
	pt, err := w.EnvironmentSealer.Open(ctx, envID, store, item, version, epoch, ct)
	w.note(err)
	return pt, err
}

func (w *watchedSealer) OpenPlatform(ctx context.Context, envID, store, item string, version uint64, ct []byte) ([]byte, error) {
	pt, err := w.EnvironmentSealer.OpenPlatform(ctx, envID, store, item, version, ct)
	w.note(err)
	return pt, err
}

func (w *watchedSealer) OpenUnder(ctx context.Context, envID, store, item string, version uint64, epoch uint32, ct []byte) ([]byte, error) {
	if f := w.beforeOpen.Swap(nil); f != nil && store == keyhold.StoreFlows {
		(*f)()
	}
	pt, err := w.EnvironmentSealer.OpenUnder(ctx, envID, store, item, version, epoch, ct)
	w.note(err)
	return pt, err
}

func (w *watchedSealer) SealUnder(ctx context.Context, envID, store, item string, version uint64, epoch uint32, pt []byte) ([]byte, error) {
	ct, err := w.EnvironmentSealer.SealUnder(ctx, envID, store, item, version, epoch, pt)
	w.note(err)
	return ct, err
}

// watchedEngine is a flows engine on the world's store through a
// watchedSealer, one run of a flow at a time, not started (the test
// steps it with Tick), with flowID put on it: five actions calling a
// loopback server.
func (w *world) watchedEngine(t *testing.T, flowID string) (*flows.Service, *watchedSealer, *counter) {
	t.Helper()
	w.fl.Close() // the world's engine stays out of it
	ws := &watchedSealer{EnvironmentSealer: w.p.Sealer}
	pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := flows.New(flows.Config{Store: w.store, Sealer: ws, Data: w.p, Clock: w.clock, Egress: pol, Owner: "engine-watched",
		LeaseTTL: 3 * time.Second, MaxRunsPerFlow: 1, Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Close)
	srv := newCounter(t)
	w.putFlow(t, fl, flowID, fiveActions(srv.URL, "/two"), "")
	return fl, ws, srv
}

// TestLockBetweenTriggerAndClaimStopsRun: a run triggered while the
// environment served, but claimed only after a lock (it waited on the
// flow's concurrency limit), pauses at the claim: the claim's own
// transaction checks the environment, so neither the definition nor the
// state is opened, nothing is sealed or written but the pause's lease,
// and no action runs. After re-enabling it runs, once.
func TestLockBetweenTriggerAndClaimStopsRun(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		fl, ws, srv := w.watchedEngine(t, "gated")
		// A run of the flow holding its one slot on another engine: the
		// trigger's run waits.
		now := w.clock.Now().UTC()
		blocker := &keyhold.FlowRunRecord{EnvID: w.env.ID, FlowID: "gated", ID: "00000000000000000000block", Status: keyhold.RunRunning, TriggerName: "manual",
			LeaseOwner: "elsewhere", LeaseUntil: now.Add(time.Hour), StartedAt: now, Version: 1, UpdatedAt: now}
		if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error { return tx.PutFlowRun(context.Background(), blocker) }); err != nil {
			t.Fatal(err)
		}
		run, err := fl.RunTrigger(w.ctx, w.env.ID, "gated", "manual", json.RawMessage(`{"name":"Ed"}`))
		if err != nil {
			t.Fatal(err)
		}
		before := w.runRecord(t, "gated", run.ID)
		if before.Status != keyhold.RunWaiting {
			t.Fatalf("the triggered run is %s, want %s (held by the limit)", before.Status, keyhold.RunWaiting)
		}
		w.setState(t, keyhold.StateLocked)
		ws.locked.Store(true)
		if _, err := fl.CancelRun(w.ctx, w.env.ID, "gated", blocker.ID); err != nil { // the slot frees
			t.Fatal(err)
		}
		fl.Tick(context.Background())
		after := w.runRecord(t, "gated", run.ID)
		for deadline := time.Now().Add(5 * time.Second); after.Version < before.Version+2 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			after = w.runRecord(t, "gated", run.ID) // the claim, then the pause
		}
		time.Sleep(200 * time.Millisecond) // a save after the pause would show now
		after = w.runRecord(t, "gated", run.ID)
		if after.Version != before.Version+2 || after.LeaseOwner != "engine-watched" {
			t.Fatalf("after the lock: version %d (was %d), lease %q: want claimed and paused", after.Version, before.Version, after.LeaseOwner)
		}
		if after.Terminal() || after.StateVersion != before.StateVersion || string(after.Sealed) != string(before.Sealed) {
			t.Fatalf("after the lock: %s, state version %d (was %d): the locked environment's run went on", after.Status, after.StateVersion, before.StateVersion)
		}
		if n := ws.whileLock.Load(); n != 0 {
			t.Fatalf("%d items opened or sealed while the environment was locked", n)
		}
		if n := srv.count("/one?"); n != 0 {
			t.Fatalf("Call_one ran %d times while locked", n)
		}
		ws.locked.Store(false)
		w.setState(t, keyhold.StateEnabled)
		w.clock.Advance(10 * time.Second) // past the pause
		fl.Tick(context.Background())
		if end := w.wait(t, fl, "gated", run.ID); end.Status != keyhold.RunSucceeded {
			t.Fatalf("run after re-enable: %+v", end)
		}
		if n := srv.count("/one?"); n != 1 {
			t.Fatalf("Call_one ran %d times, want once", n)
		}
	})
}

// TestLockAfterTriggerOpenStoresNoRun: a lock committed after the
// trigger's check passed and the definition opened, but before the run is
// stored, still refuses the trigger (EnvironmentLocked): the run's insert
// checks the environment in its own transaction, so no run is stored and
// nothing runs.
func TestLockAfterTriggerOpenStoresNoRun(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		fl, ws, srv := w.watchedEngine(t, "late")
		lock := func() { w.setState(t, keyhold.StateLocked) }
		ws.beforeOpen.Store(&lock)
		_, err := fl.RunTrigger(w.ctx, w.env.ID, "late", "manual", json.RawMessage(`{"name":"Flo"}`))
		if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Fatalf("trigger with a lock after its check: %v, want %s", err, keyhold.CodeEnvironmentLocked)
		}
		if ws.beforeOpen.Load() != nil {
			t.Fatal("the trigger opened no definition: the lock was not taken where this test means")
		}
		var runs []*keyhold.FlowRunRecord
		if err := w.store.View(context.Background(), func(tx keyhold.Tx) (err error) {
			runs, err = tx.ListFlowRuns(context.Background(), keyhold.FlowRunFilter{EnvID: w.env.ID, FlowID: "late"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(runs) != 0 || srv.count("/one?") != 0 {
			t.Fatalf("%d runs stored, Call_one ran %d times: the locked environment's trigger went on", len(runs), srv.count("/one?"))
		}
	})
}
