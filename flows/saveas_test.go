package flows_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

var _ keyhold.FlowSaveAsService = (*flows.Service)(nil)

// invoke calls a flow's request trigger at the signed URL cb.
func (w *world) invoke(t *testing.T, flowID string, cb *keyhold.FlowCallback, body string) (*keyhold.FlowResponse, error) {
	t.Helper()
	u, err := url.Parse(cb.Value)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sig := keyhold.FlowSignature{APIVersion: q.Get("api-version"), SP: q.Get("sp"), SV: q.Get("sv"), Sig: q.Get("sig")}
	return w.fl.InvokeTrigger(context.Background(), w.env.ID, flowID, "manual", sig, json.RawMessage(body))
}

// records reads the flow records of the world's environment and its
// current epoch straight from the store.
func (w *world) records(t *testing.T) (map[string]*keyhold.FlowRecord, uint32) {
	t.Helper()
	out := map[string]*keyhold.FlowRecord{}
	var epoch uint32
	if err := w.store.View(context.Background(), func(tx keyhold.Tx) error {
		env, err := tx.Environment(context.Background(), w.env.ID)
		if err != nil {
			return err
		}
		epoch = env.Epoch
		fs, err := tx.ListFlows(context.Background(), w.env.ID)
		for _, f := range fs {
			out[f.ID] = f
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out, epoch
}

// TestSaveAs: Save as of an HTTP-trigger flow makes a copy with a new id
// under the environment's current epoch, with its connection references
// and none of the original's runs; the copy's signed URL differs from the
// original's and works, and the original's URL still works.
func TestSaveAs(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv := newCounter(t)
		refs := `{"dv":{"apiName":"shared_commondataserviceforapps","connectionName":"dv-conn"}}`
		w.putFlow(t, w.fl, "hook", strings.Replace(fiveActions(srv.URL, "/two"), `"kind": "Button"`, `"kind": "Http"`, 1), refs)
		cbOrig, err := w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := w.invoke(t, "hook", cbOrig, `{"name":"Al"}`); err != nil || resp.StatusCode != 200 {
			t.Fatalf("original before Save as: %+v, %v", resp, err)
		}
		cp, err := w.fl.SaveFlowAs(w.ctx, w.env.ID, "hook", &keyhold.FlowSaveAs{DisplayName: "Hook (copy)"})
		if err != nil {
			t.Fatal(err)
		}
		if cp.ID == "" || cp.ID == "hook" || cp.DisplayName != "Hook (copy)" || cp.TriggerKind != "Http" || cp.State != keyhold.FlowStarted {
			t.Fatalf("copy %+v", cp)
		}
		got, err := w.fl.GetFlow(w.ctx, w.env.ID, cp.ID)
		if err != nil || !strings.Contains(string(got.ConnectionReferences), "dv-conn") {
			t.Fatalf("copy's connection references: %+v, %v", got, err)
		}
		recs, epoch := w.records(t)
		if recs[cp.ID].Epoch != epoch || epoch == keyhold.PlatformEpoch {
			t.Fatalf("copy sealed under epoch %d, environment's is %d", recs[cp.ID].Epoch, epoch)
		}
		if runs, err := w.fl.ListRuns(w.ctx, w.env.ID, cp.ID); err != nil || len(runs) != 0 {
			t.Fatalf("copy's runs: %v, %v (runs are not copied)", runs, err)
		}
		cbCopy, err := w.fl.CallbackURL(w.ctx, w.env.ID, cp.ID, "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		if cbCopy.Value == cbOrig.Value || cbCopy.Queries["sig"] == cbOrig.Queries["sig"] {
			t.Fatalf("the copy's URL is the original's: %s", cbCopy.Value)
		}
		if resp, err := w.invoke(t, cp.ID, cbCopy, `{"name":"Bo"}`); err != nil || resp.StatusCode != 200 {
			t.Fatalf("copy's URL: %+v, %v", resp, err)
		}
		// The original's signature does not open the copy.
		if _, err := w.invoke(t, cp.ID, cbOrig, `{}`); keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
			t.Fatalf("original's signature on the copy: %v", err)
		}
		if resp, err := w.invoke(t, "hook", cbOrig, `{"name":"Cy"}`); err != nil || resp.StatusCode != 200 {
			t.Fatalf("original after Save as: %+v, %v", resp, err)
		}
		// Deleting the original ends its URL, not the copy's.
		if err := w.fl.DeleteFlow(w.ctx, w.env.ID, "hook"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.invoke(t, "hook", cbOrig, `{}`); keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
			t.Fatalf("deleted original's URL: %v", err)
		}
		if resp, err := w.invoke(t, cp.ID, cbCopy, `{"name":"Di"}`); err != nil || resp.StatusCode != 200 {
			t.Fatalf("copy after the original's deletion: %+v, %v", resp, err)
		}
	})
}

// TestSaveAsFromPlatformPartition: a flow sealed under the platform key's
// partition (epoch 0, where a link leaves the flows it can't move) is
// copied under the environment's epoch.
func TestSaveAsFromPlatformPartition(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.markLinked(t)
		pt, _ := json.Marshal(map[string]json.RawMessage{"definition": json.RawMessage(reqDef("Http", ""))})
		sealed, err := w.p.Sealer.SealPlatform(context.Background(), w.env.ID, keyhold.StoreFlows, keyhold.FlowItemID("legacy"), 1, pt)
		if err != nil {
			t.Fatal(err)
		}
		now := w.clock.Now().UTC()
		rec := &keyhold.FlowRecord{EnvID: w.env.ID, ID: "legacy", DisplayName: "Legacy", State: keyhold.FlowStarted, TriggerName: "manual", TriggerType: "Request", TriggerKind: "Http",
			CreatedBy: "someone", Epoch: keyhold.PlatformEpoch, Version: 1, Sealed: sealed, CreatedAt: now, UpdatedAt: now}
		if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error { return tx.PutFlow(context.Background(), rec) }); err != nil {
			t.Fatal(err)
		}
		cp, err := w.fl.SaveFlowAs(w.ctx, w.env.ID, "legacy", &keyhold.FlowSaveAs{DisplayName: "Legacy under CMK"})
		if err != nil {
			t.Fatal(err)
		}
		recs, epoch := w.records(t)
		if recs[cp.ID].Epoch != epoch || epoch == keyhold.PlatformEpoch || recs["legacy"].Epoch != keyhold.PlatformEpoch || recs["legacy"].Version != 1 {
			t.Fatalf("copy under %d, original under %d v%d; environment's epoch %d", recs[cp.ID].Epoch, recs["legacy"].Epoch, recs["legacy"].Version, epoch)
		}
		cb, err := w.fl.CallbackURL(w.ctx, w.env.ID, cp.ID, "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := w.invoke(t, cp.ID, cb, `{}`); err != nil || resp.StatusCode != 202 {
			t.Fatalf("copy's URL: %+v, %v", resp, err)
		}
	})
}

// TestSaveAsRefusals: a copy without a name, of a missing flow, or that a
// customer-key environment would refuse as a new flow (a non-solution
// Power Apps flow, with "create new flows in solutions" turned off) is
// refused with a clear error and no flow is added; with a solution the
// same copy is made.
func TestSaveAsRefusals(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.putFlow(t, w.fl, "v1", reqDef("PowerApp", ""), "")
		w.markLinked(t)
		w.setFlowsInSolutions(t, false)
		before, _ := w.records(t)
		cases := []struct {
			name, flow string
			in         *keyhold.FlowSaveAs
			code, says string
		}{
			{"no name", "v1", &keyhold.FlowSaveAs{DisplayName: "  "}, keyhold.CodeInvalidRequestContent, "displayName is required"},
			{"long name", "v1", &keyhold.FlowSaveAs{DisplayName: strings.Repeat("n", keyhold.MaxDisplayName+1)}, keyhold.CodeInvalidRequestContent, "at most"},
			{"missing flow", "nope", &keyhold.FlowSaveAs{DisplayName: "x"}, keyhold.CodeFlowNotFound, `"nope"`},
			{"non-solution Power Apps under CMK", "v1", &keyhold.FlowSaveAs{DisplayName: "x"}, keyhold.CodeNotSupported, "solutionId"},
		}
		for _, c := range cases {
			_, err := w.fl.SaveFlowAs(w.ctx, w.env.ID, c.flow, c.in)
			if keyhold.ErrorCode(err) != c.code || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s: %v, want %s saying %q", c.name, err, c.code, c.says)
			}
		}
		after, _ := w.records(t)
		if len(after) != len(before) || after["v1"].Version != before["v1"].Version {
			t.Fatalf("refusals changed the flows: %d → %d", len(before), len(after))
		}
		sol := "sol-1"
		cp, err := w.fl.SaveFlowAs(w.ctx, w.env.ID, "v1", &keyhold.FlowSaveAs{DisplayName: "In a solution", SolutionID: &sol})
		if err != nil || cp.SolutionID != sol {
			t.Fatalf("with a solution: %+v, %v", cp, err)
		}
	})
}
