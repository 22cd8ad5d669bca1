package flows_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestResubmitRun: resubmitting a finished run starts a new run of the
// flow with the first run's trigger outputs, which runs every action
// again; a run that doesn't exist, and any run while the environment is
// locked, are refused and start nothing.
func TestResubmitRun(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv := newCounter(t)
		w.putFlow(t, w.fl, "five", fiveActions(srv.URL, "/two"), "")
		first, err := w.fl.RunTrigger(w.ctx, w.env.ID, "five", "manual", json.RawMessage(`{"name":"Ada"}`))
		if err != nil {
			t.Fatal(err)
		}
		if end := w.wait(t, w.fl, "five", first.ID); end.Status != keyhold.RunSucceeded {
			t.Fatalf("first run = %+v", end)
		}

		again, err := w.fl.ResubmitRun(w.ctx, w.env.ID, "five", first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID == first.ID {
			t.Fatalf("the resubmitted run has the first run's id %s", again.ID)
		}
		if end := w.wait(t, w.fl, "five", again.ID); end.Status != keyhold.RunSucceeded {
			t.Fatalf("resubmitted run = %+v", end)
		}
		acts, err := w.fl.RunActions(w.ctx, w.env.ID, "five", again.ID)
		if err != nil {
			t.Fatal(err)
		}
		if out, _ := json.Marshal(acts); !bytes.Contains(out, []byte(`"greeting":"hello Ada"`)) {
			t.Errorf("the resubmitted run did not get the first run's trigger body: %s", out)
		}
		if srv.count("/one?") != 2 || srv.count("/two?") != 2 {
			t.Errorf("calls = %v, want two each (the run and its resubmission)", srv.calls)
		}

		runs := func() int {
			t.Helper()
			rs, err := w.fl.ListRuns(w.ctx, w.env.ID, "five")
			if err != nil {
				t.Fatal(err)
			}
			return len(rs)
		}
		before := runs()
		if _, err := w.fl.ResubmitRun(w.ctx, w.env.ID, "five", "08585000000000000000000000000CU00"); keyhold.ErrorCode(err) != keyhold.CodeFlowRunNotFound {
			t.Fatalf("resubmit of a run that doesn't exist: %v, want %s", err, keyhold.CodeFlowRunNotFound)
		}
		w.setState(t, keyhold.StateLocked)
		if _, err := w.fl.ResubmitRun(w.ctx, w.env.ID, "five", first.ID); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Fatalf("resubmit while locked: %v, want %s", err, keyhold.CodeEnvironmentLocked)
		}
		w.setState(t, keyhold.StateEnabled)
		if n := runs(); n != before {
			t.Errorf("%d runs after the refused resubmissions, want %d", n, before)
		}
		if srv.count("/one?") != 2 {
			t.Errorf("calls = %v after the refused resubmissions, want none more", srv.calls)
		}
	})
}
