package flows

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestSealedRunCostsPlainTransactions: a run sealed under the
// environment's key costs the store transactions the same engine storing
// run history unencrypted (plainSealer) costs, on both databases: every
// check of the environment's state runs inside a transaction the run
// needs anyway (the flow's read at the trigger, the run's insert, the
// claim, each save). Before, the trigger's open of the definition, the
// first state's seal and the engine's opens of the definition and the
// state each read the environment in a transaction of its own: 4 more.
// The figure is the fewest over 3 runs after a warm-up (the key cache),
// so a stray transaction of the platform's own can't fail it.
func TestSealedRunCostsPlainTransactions(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		count := func(mode string) int64 {
			s, ctx, envID, cs := benchService(t, open(t), mode, false)
			fewest := int64(math.MaxInt64)
			for i := range 4 {
				n := countedRun(t, s, ctx, envID, cs)
				if i > 0 {
					fewest = min(fewest, n)
				}
			}
			return fewest
		}
		sealed, plain := count("sealed"), count("plain")
		t.Logf("transactions a run: sealed %d, plain %d", sealed, plain)
		if sealed != plain {
			t.Fatalf("a sealed run costs %d transactions, a plain one %d: a check of the environment runs in a transaction of its own", sealed, plain)
		}
	})
}

// countedRun runs the manual trigger and returns the transactions counted
// until the run is stored Succeeded, waiting on the store underneath the
// count.
func countedRun(t *testing.T, s *Service, ctx context.Context, envID string, cs *countingStore) int64 {
	t.Helper()
	n0 := cs.n.Load()
	run, err := s.RunTrigger(ctx, envID, "bench", "manual", json.RawMessage(`{"name":"count"}`))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var rec *keyhold.FlowRunRecord
		if err := cs.Store.View(ctx, func(tx keyhold.Tx) (err error) {
			rec, err = tx.FlowRun(ctx, envID, "bench", run.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if rec.Terminal() {
			if rec.Status != keyhold.RunSucceeded {
				t.Fatalf("run %s", rec.Status)
			}
			return cs.n.Load() - n0
		}
		if time.Now().After(deadline) {
			t.Fatalf("run still %s", rec.Status)
		}
	}
}
