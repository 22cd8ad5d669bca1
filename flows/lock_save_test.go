package flows_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestLockBetweenStepsStopsNextSave: a lock committed between a run's
// steps stops the run at its next save, with nothing of its state
// written after the lock. The environment's keys stay cached (the lock is
// only the state, committed directly), so what refuses is the state check
// in the save's own write transaction (writeState, Sealer.ServingIn),
// not a failed unwrap.
func TestLockBetweenStepsStopsNextSave(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv, runID := w.heldRun(t, w.fl, "long") // Call_two started: that save committed
		read := func() *keyhold.FlowRunRecord { return w.runRecord(t, "long", runID) }
		before := read()
		// The lock, as the state alone: the cached keys are not dropped.
		if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error {
			e, err := tx.Environment(context.Background(), w.env.ID)
			if err != nil {
				return err
			}
			e.State = keyhold.StateLocked
			return tx.UpdateEnvironment(context.Background(), e)
		}); err != nil {
			t.Fatal(err)
		}
		close(srv.hold) // Call_two ends: its save must be refused
		after := read()
		for deadline := time.Now().Add(5 * time.Second); after.Version == before.Version && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			after = read() // the pause's write (lease only) ends the wait
		}
		time.Sleep(200 * time.Millisecond) // a save after the pause would show now
		after = read()
		if after.Terminal() || after.StateVersion != before.StateVersion || after.Epoch != before.Epoch || !bytes.Equal(after.Sealed, before.Sealed) {
			t.Fatalf("after the lock: %s, state version %d (was %d), epoch %d (was %d), sealed state changed %v: the locked environment's run saved its state",
				after.Status, after.StateVersion, before.StateVersion, after.Epoch, before.Epoch, !bytes.Equal(after.Sealed, before.Sealed))
		}
		if after.Version == before.Version {
			t.Fatalf("the run neither saved nor paused after Call_two ended (version %d)", after.Version)
		}
		if srv.count("/one?") != 1 {
			t.Fatalf("Call_one ran %d times, want once", srv.count("/one?"))
		}
	})
}
