package platform

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
)

// migDef is a definition with a Request trigger of kind and, if child is
// set, a Workflow action calling it.
func migDef(kind, child string) string {
	actions := `"Compose": {"type": "Compose", "inputs": "@concat('in ', triggerBody()?['text'])", "runAfter": {}}`
	if child != "" {
		actions = `"Call": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": "` + child + `"}, "body": {}}, "runAfter": {}}`
	}
	return `{"$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "` + kind + `", "inputs": {"schema": {"type": "object"}}}},
  "actions": {` + actions + `}}`
}

// migWorld is a linked-environment fixture with a flows engine.
type migWorld struct {
	*cmkFixture
	admin    context.Context
	env      *keyhold.Environment
	pol      *keyhold.EnterprisePolicy
	pol2     *keyhold.EnterprisePolicy
	fl       *flows.Service
	runsDone func(t *testing.T, flowID, runID string)
}

func newMigWorld(t *testing.T, f *cmkFixture) *migWorld {
	v := f.newVault(t, "kv-mig", true)
	f.newKey(t, v, "k1")
	f.newKey(t, v, "k2")
	w := &migWorld{cmkFixture: f}
	w.pol = f.newPolicy(t, "policy-mig", v, "k1", nil)
	f.grantKey(t, w.pol, v, "k1")
	w.pol2 = f.newPolicy(t, "policy-mig-2", v, "k2", nil)
	f.grantKey(t, w.pol2, v, "k2")
	var adminID string
	w.admin, adminID = f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
	f.grant(t, adminID, keyhold.RoleReader, w.pol.ID())
	f.grant(t, adminID, keyhold.RoleReader, w.pol2.ID())
	w.env = f.managedEnv(t, "flows-mig")
	fl, err := flows.New(flows.Config{Store: f.store, Sealer: f.p.Sealer, Data: f.p, Clock: f.clock, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fl.Start()
	t.Cleanup(fl.Close)
	w.fl = fl
	return w
}

func (w *migWorld) put(t *testing.T, id, def, solution string) {
	t.Helper()
	in := &keyhold.FlowInput{DisplayName: &id, Definition: json.RawMessage(def)}
	if solution != "" {
		in.SolutionID = &solution
	}
	if _, err := w.fl.PutFlow(w.ctx, w.env.ID, id, in); err != nil {
		t.Fatalf("put flow %s: %v", id, err)
	}
}

// run runs a flow's manual trigger and waits for the run to succeed.
func (w *migWorld) run(t *testing.T, id, text string) string {
	t.Helper()
	run, err := w.fl.RunTrigger(w.ctx, w.env.ID, id, "manual", json.RawMessage(`{"text":"`+text+`"}`))
	if err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := w.fl.GetRun(w.ctx, w.env.ID, id, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == keyhold.RunSucceeded {
			return run.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("run of %s: %+v", id, r)
		}
	}
}

// epochs reads the epochs of flows (and their callback keys and given
// runs) from the store.
func (w *migWorld) epochs(t *testing.T) (flowsAt, keysAt map[string]uint32, runsAt map[string]uint32) {
	t.Helper()
	flowsAt, keysAt, runsAt = map[string]uint32{}, map[string]uint32{}, map[string]uint32{}
	ctx := context.Background()
	if err := w.store.View(ctx, func(tx keyhold.Tx) error {
		fs, err := tx.ListFlows(ctx, w.env.ID)
		if err != nil {
			return err
		}
		for _, f := range fs {
			flowsAt[f.ID] = f.Epoch
			if k, err := tx.FlowKey(ctx, w.env.ID, f.ID); err == nil {
				keysAt[f.ID] = k.Epoch
			}
		}
		rs, err := tx.ListFlowRuns(ctx, keyhold.FlowRunFilter{EnvID: w.env.ID, Limit: 1000})
		for _, r := range rs {
			runsAt[r.FlowID+"/"+r.ID] = r.Epoch
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return
}

// counts is FlowEpochCounts by "store/epoch".
func (w *migWorld) counts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	cs, err := w.fl.EpochCounts(w.admin, w.env.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		out[c.Store+"/"+itoa(c.Epoch)] = c.Count
	}
	return out
}

func itoa(n uint32) string { b, _ := json.Marshal(n); return string(b) }

func (w *migWorld) setState(t *testing.T, st keyhold.RuntimeState) {
	t.Helper()
	ctx := context.Background()
	if err := w.store.Update(ctx, func(tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, w.env.ID)
		if err != nil {
			return err
		}
		e.State = st
		if st == keyhold.StateLocked {
			e.LockedAt = w.clock.Now().UTC()
		} else {
			e.LockedAt = time.Time{}
		}
		return tx.UpdateEnvironment(ctx, e)
	}); err != nil {
		t.Fatal(err)
	}
	w.p.DropKeys(w.env.ID)
}

// TestFlowsPlacedAtLink: a link keeps each of spec 004's categories (a v1
// Power Apps flow outside a solution, an Http request trigger, a parent
// of one) on the platform partition with its callback key and runs, and
// moves the others (a button flow, a v1 flow in a solution) to the
// customer key's epoch, as the store counts them. The kept flows keep
// working (definition, old run, a new run, the same callback URL), a lock
// stops them too, a swap leaves them where they are, and the unlink moves
// every one back under the environment's own epoch. Without the
// placement every flow follows the new epoch; without the Serving check
// the locked environment still runs its kept flows.
func TestFlowsPlacedAtLink(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newMigWorld(t, f)
		w.put(t, "v1", migDef("PowerApp", ""), "")
		w.put(t, "hook", migDef("Http", ""), "")
		w.put(t, "parent", migDef("Button", "v1"), "")
		w.put(t, "mover", migDef("Button", ""), "")
		w.put(t, "v1-sol", migDef("PowerApp", ""), "sol-1")
		v1Run := w.run(t, "v1", "before")
		cb, err := w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", false)
		if err != nil {
			t.Fatal(err)
		}

		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
		e := f.env(t, w.env.ID)
		flowsAt, keysAt, runsAt := w.epochs(t)
		for id, want := range map[string]uint32{"v1": 0, "hook": 0, "parent": 0, "mover": e.Epoch, "v1-sol": e.Epoch} {
			if flowsAt[id] != want {
				t.Errorf("after link: flow %s on epoch %d, want %d", id, flowsAt[id], want)
			}
		}
		if keysAt["hook"] != 0 || runsAt["v1/"+v1Run] != 0 {
			t.Errorf("after link: hook's callback key on %d, v1's run on %d; want both on 0", keysAt["hook"], runsAt["v1/"+v1Run])
		}
		if c := w.counts(t); c["flows/0"] != 3 || c["flows/"+itoa(e.Epoch)] != 2 {
			t.Errorf("coverage counts after link: %v", c)
		}
		// The kept flows keep working.
		if got, err := w.fl.GetFlow(w.ctx, w.env.ID, "v1"); err != nil || got.DisplayName != "v1" {
			t.Fatalf("v1 after link: %+v, %v", got, err)
		}
		if acts, err := w.fl.RunActions(w.ctx, w.env.ID, "v1", v1Run); err != nil || len(acts) != 1 {
			t.Fatalf("v1's old run after link: %+v, %v", acts, err)
		}
		if cb2, err := w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", false); err != nil || cb2.Value != cb.Value {
			t.Fatalf("hook's callback URL after link: %v (same: %v)", err, cb2 != nil && cb2.Value == cb.Value)
		}
		after := w.run(t, "v1", "after")
		if _, _, runsAt = w.epochs(t); runsAt["v1/"+after] != 0 {
			t.Errorf("a run of the kept flow after the link is on epoch %d, want 0", runsAt["v1/"+after])
		}
		w.run(t, "mover", "after")

		// A lock stops the platform-partition flows too.
		w.setState(t, keyhold.StateLocked)
		_, _, runsAt = w.epochs(t)
		if _, err := w.fl.RunTrigger(w.ctx, w.env.ID, "v1", "manual", json.RawMessage(`{}`)); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Fatalf("run of a kept flow while locked: %v, want %s", err, keyhold.CodeEnvironmentLocked)
		}
		if _, err := w.fl.GetRun(w.ctx, w.env.ID, "v1", v1Run); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Fatalf("read of a kept flow's run while locked: %v, want %s", err, keyhold.CodeEnvironmentLocked)
		}
		if _, err := w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", false); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Fatalf("callback URL of a kept flow while locked: %v, want %s", err, keyhold.CodeEnvironmentLocked)
		}
		if _, _, runsAt2 := w.epochs(t); len(runsAt2) != len(runsAt) {
			t.Fatalf("the refused run wrote a run: %d runs, had %d", len(runsAt2), len(runsAt))
		}
		w.setState(t, keyhold.StateEnabled)

		// A swap keeps them on the platform partition.
		f.succeed(t, "swap", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol2.SystemID) })
		e2 := f.env(t, w.env.ID)
		flowsAt, _, _ = w.epochs(t)
		for id, want := range map[string]uint32{"v1": 0, "hook": 0, "parent": 0, "mover": e2.Epoch, "v1-sol": e2.Epoch} {
			if flowsAt[id] != want {
				t.Errorf("after swap: flow %s on epoch %d, want %d", id, flowsAt[id], want)
			}
		}

		// The unlink moves them back under the environment's epoch.
		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(w.admin, w.env.ID, w.pol2.SystemID) })
		e3 := f.env(t, w.env.ID)
		flowsAt, keysAt, runsAt = w.epochs(t)
		for id, at := range flowsAt {
			if at != e3.Epoch {
				t.Errorf("after unlink: flow %s on epoch %d, want %d", id, at, e3.Epoch)
			}
		}
		for id, at := range runsAt {
			if at != e3.Epoch {
				t.Errorf("after unlink: run %s on epoch %d, want %d", id, at, e3.Epoch)
			}
		}
		if keysAt["hook"] != e3.Epoch {
			t.Errorf("after unlink: hook's key on epoch %d", keysAt["hook"])
		}
		if c := w.counts(t); c["flows/0"] != 0 || c["runs/0"] != 0 {
			t.Errorf("coverage counts after unlink: %v", c)
		}
		if cb3, err := w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", false); err != nil || cb3.Value != cb.Value {
			t.Fatalf("hook's callback URL after unlink: %v", err)
		}
		if _, err := w.fl.RunActions(w.ctx, w.env.ID, "v1", v1Run); err != nil {
			t.Fatalf("v1's old run after unlink: %v", err)
		}
		w.run(t, "v1", "back")
	})
}
