package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/sqlstore/storetest"
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
	w.fl = startFlows(t, f)
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
	return runFlow(t, w.fl, w.ctx, w.env.ID, id, text)
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

// TestPreMigrationRuns: at a link, the finished runs of a flow that moves
// leave the run history for the link's pre-migration partition (a kept
// flow's runs stay, and a run still waiting moves to the new epoch and
// stays a run). A platform administrator reads them with their content,
// each read audited with who read which runs; anyone else is refused. On
// day 29 they read (the flows' 28-day retention, which deletes old runs,
// doesn't touch them); on day 30 the read is refused, and the sweeper
// deletes the partition's key, then its runs: nothing of them is left in
// the store, and the old ciphertext opens under no key the platform has.
func TestPreMigrationRuns(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		w := newMigWorld(t, f)
		w.put(t, "mover", migDef("Button", ""), "")
		w.put(t, "v1", migDef("PowerApp", ""), "")
		moved := w.run(t, "mover", "premig-marker")
		kept := w.run(t, "v1", "kept")
		// A run still waiting (its lease held far ahead, so no engine
		// claims it).
		pt := []byte(`{"status":"Running","actions":{}}`)
		ct, epoch, err := f.p.Sealer.Seal(ctx, w.env.ID, keyhold.StoreRuns, keyhold.FlowRunItemID("mover", "waiting"), 1, pt)
		if err != nil {
			t.Fatal(err)
		}
		now := f.clock.Now().UTC()
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			return tx.PutFlowRun(ctx, &keyhold.FlowRunRecord{EnvID: w.env.ID, FlowID: "mover", ID: "waiting", Status: keyhold.RunWaiting, TriggerName: "manual",
				StartedAt: now, LeaseOwner: "elsewhere", LeaseUntil: now.Add(365 * 24 * time.Hour), Epoch: epoch, Version: 1, StateVersion: 1, Sealed: ct, UpdatedAt: now})
		}); err != nil {
			t.Fatal(err)
		}

		op := f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
		e := f.env(t, w.env.ID)
		var sealed []byte
		_ = f.store.View(ctx, func(tx keyhold.Tx) error {
			if _, err := tx.FlowRun(ctx, w.env.ID, "mover", moved); keyhold.ErrorCode(err) != keyhold.CodeFlowRunNotFound {
				t.Errorf("the moved flow's finished run is still a run: %v", err)
			}
			if r, err := tx.FlowRun(ctx, w.env.ID, "mover", "waiting"); err != nil || r.Epoch != e.Epoch {
				t.Errorf("the waiting run: %+v, %v; want it on epoch %d", r, err, e.Epoch)
			}
			if r, err := tx.FlowRun(ctx, w.env.ID, "v1", kept); err != nil || r.Epoch != 0 {
				t.Errorf("the kept flow's run: %+v, %v; want it on epoch 0", r, err)
			}
			rs, err := tx.PreMigrationRuns(ctx, w.env.ID, op.ID)
			if err != nil || len(rs) != 1 || rs[0].ID != moved {
				t.Fatalf("pre-migration partition %s: %+v, %v", op.ID, rs, err)
			}
			sealed = rs[0].Sealed
			return nil
		})
		if rs, err := w.fl.ListRuns(w.ctx, w.env.ID, "mover"); err != nil || len(rs) != 1 || rs[0].ID != "waiting" {
			t.Fatalf("mover's runs after the link: %+v, %v; want only the waiting one", rs, err)
		}

		preCoverage := func() keyhold.CoverageStore {
			t.Helper()
			cov, err := f.p.EncryptionCoverage(w.admin, w.env.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range cov.Stores {
				if s.Store == keyhold.CoveragePreMigrationRuns {
					return s
				}
			}
			t.Fatal("no pre-migration row in the coverage report")
			return keyhold.CoverageStore{}
		}
		if c := preCoverage(); c.Items != 1 || len(c.Roots) != 1 || c.Roots[0].Root != keyhold.CoverageRootPlatform || c.Roots[0].ExpiresAt == nil ||
			!c.Roots[0].ExpiresAt.Equal(now.Add(keyhold.PreMigrationRetention)) {
			t.Errorf("coverage of the pre-migration runs after the link: %+v", c)
		}
		read := func() ([]*keyhold.PreMigrationRun, error) {
			return f.p.PreMigration.PreMigrationRuns(w.admin, w.env.ID)
		}
		got, err := read()
		if err != nil || len(got) != 1 || got[0].ID != moved || got[0].FlowID != "mover" || got[0].Migration != op.ID ||
			!strings.Contains(string(got[0].Content), "in premig-marker") || got[0].ExpiresAt.Sub(now) != keyhold.PreMigrationRetention {
			t.Fatalf("pre-migration read: %+v, %v", got, err)
		}
		adminID := keyhold.IdentityFrom(w.admin).PrincipalID
		entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: w.env.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		audited := false
		for _, a := range entries {
			if a.Action == auditPreMigrationRead && a.ActorID == adminID && strings.Contains(a.Detail, "mover/"+moved) {
				audited = true
			}
		}
		if !audited {
			t.Fatalf("no audit entry names %s reading mover/%s", adminID, moved)
		}
		member, _ := f.platformAdmin(t, "")
		if _, err := f.p.PreMigration.PreMigrationRuns(member, w.env.ID); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("a principal without the administrator role read them: %v", err)
		}

		f.clock.Advance(29 * 24 * time.Hour)
		w.fl.Tick(ctx) // retention: the kept flow's 29-day-old run goes, the partition's doesn't
		if got, err := read(); err != nil || len(got) != 1 {
			t.Fatalf("day 29: %+v, %v", got, err)
		}
		if n, err := f.p.PreMigration.Shred(ctx); err != nil || n != 0 {
			t.Fatalf("day 29: shredded %d, %v", n, err)
		}
		f.clock.Advance(24 * time.Hour)
		if _, err := read(); keyhold.ErrorCode(err) != keyhold.CodePreMigrationRunsExpired || !strings.Contains(keyhold.ErrorMessage(err), "30 days") {
			t.Fatalf("day 30: %v, want %s", err, keyhold.CodePreMigrationRunsExpired)
		}
		if n, err := f.p.PreMigration.Shred(ctx); err != nil || n != 1 {
			t.Fatalf("day 30: shredded %d, %v", n, err)
		}
		_ = f.store.View(ctx, func(tx keyhold.Tx) error {
			if _, err := tx.PreMigrationKey(ctx, w.env.ID, op.ID); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
				t.Errorf("the partition's key after the shred: %v", err)
			}
			if rs, err := tx.PreMigrationRuns(ctx, w.env.ID, op.ID); err != nil || len(rs) != 0 {
				t.Errorf("the partition's runs after the shred: %d, %v", len(rs), err)
			}
			return nil
		})
		item := keyhold.FlowRunItemID("mover", moved)
		for _, ep := range []uint32{e.Epoch} {
			if _, err := f.p.Sealer.Open(ctx, w.env.ID, keyhold.StoreRuns, item, 1, ep, sealed); err == nil {
				t.Errorf("the environment key of epoch %d opened the shredded run", ep)
			}
		}
		if _, err := f.p.Sealer.OpenPlatform(ctx, w.env.ID, keyhold.StoreRuns, item, 1, sealed); err == nil {
			t.Error("the platform partition opened the shredded run")
		}
		if got, err := read(); err != nil || len(got) != 0 {
			t.Fatalf("after the shred: %+v, %v", got, err)
		}
		if c := preCoverage(); c.Items != 0 || len(c.Roots) != 1 || c.Roots[0].Root != keyhold.CoverageRootNone {
			t.Errorf("coverage of the pre-migration runs after the shred: %+v", c)
		}
	})
}

// TestPreMigrationNoPlaintext: a marker in the input of a run that goes
// to the pre-migration partition at a link is in no database file, while
// the administrator's read really returns it.
func TestPreMigrationNoPlaintext(t *testing.T) {
	store, path := storetest.OpenSQLiteAt(t)
	f := newCMKFixture(t, store, true)
	w := newMigWorld(t, f)
	marker := "pm" + fmt.Sprint(time.Now().UnixNano())
	w.put(t, "mover", migDef("Button", ""), "")
	w.run(t, "mover", marker+"-input")
	f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
	got, err := f.p.PreMigration.PreMigrationRuns(w.admin, w.env.ID)
	if err != nil || len(got) != 1 || !strings.Contains(string(got[0].Content), marker+"-input") {
		t.Fatalf("the read doesn't carry the marker (the scan would prove nothing): %+v, %v", got, err)
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds the marker in plaintext", filepath.Base(name))
		}
	}
}

// TestFlowWritesRefusedWhileMigrating: while a link's operation runs
// (here: started, its runner stopped), creating a flow, updating one and
// starting or stopping one are refused with 409 FlowsMigrationInProgress
// saying the flows are being migrated to the customer-managed key, and
// nothing changes; the existing flow still runs. Without the check, the
// writes go through.
func TestFlowWritesRefusedWhileMigrating(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		w := newMigWorld(t, f)
		w.put(t, "existing", migDef("Button", ""), "")
		before, err := w.fl.GetFlow(w.ctx, w.env.ID, "existing")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID); err != nil {
			t.Fatal(err)
		}
		if e := f.env(t, w.env.ID); e.EncryptionStatus != keyhold.EncryptionRunning {
			t.Fatalf("the link is not running: %s", e.EncryptionStatus)
		}
		name := "new"
		refused := func(what string, err error) {
			t.Helper()
			if keyhold.ErrorCode(err) != keyhold.CodeFlowsMigrating || !strings.Contains(keyhold.ErrorMessage(err), "being migrated to its customer-managed key") ||
				!strings.Contains(keyhold.ErrorMessage(err), "try again") {
				t.Fatalf("%s during the link: %v, want %s", what, err, keyhold.CodeFlowsMigrating)
			}
		}
		_, err = w.fl.PutFlow(w.ctx, w.env.ID, "new", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(migDef("Button", ""))})
		refused("create", err)
		renamed := "renamed"
		_, err = w.fl.PatchFlow(w.ctx, w.env.ID, "existing", &keyhold.FlowInput{DisplayName: &renamed, Definition: json.RawMessage(migDef("Http", ""))})
		refused("update", err)
		_, err = w.fl.SetFlowState(w.ctx, w.env.ID, "existing", keyhold.FlowStopped)
		refused("stop", err)
		_ = f.store.View(ctx, func(tx keyhold.Tx) error {
			if _, err := tx.Flow(ctx, w.env.ID, "new"); keyhold.ErrorCode(err) != keyhold.CodeFlowNotFound {
				t.Errorf("the refused create wrote a flow: %v", err)
			}
			return nil
		})
		after, err := w.fl.GetFlow(w.ctx, w.env.ID, "existing")
		if err != nil || after.DisplayName != before.DisplayName || after.State != keyhold.FlowStarted || after.TriggerKind != "Button" || !after.LastModifiedTime.Equal(before.LastModifiedTime) {
			t.Fatalf("the refused update changed the flow: %+v, %v", after, err)
		}
		// Running flows keep running.
		w.run(t, "existing", "during")
	})
}

// TestFixesMoveFlows: after a link, the two fixes of spec 004 move a kept
// flow under the customer key when it is saved: switching a v1 Power Apps
// trigger to v2, and adding a v1 flow to a solution. The moved flow's
// callback key moves with it (its URL is unchanged), its run from before
// stays readable on the platform partition, and its next run is sealed
// under the customer key. A save that leaves a flow in its category
// (renaming the Http flow) keeps it where it is; the parent of the fixed
// flow moves with it (fix_cascade.go) and still saves. Without the
// re-classification, every saved flow stays on epoch 0.
func TestFixesMoveFlows(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newMigWorld(t, f)
		w.put(t, "v1", migDef("PowerApp", ""), "")
		w.put(t, "v1b", migDef("PowerApp", ""), "")
		w.put(t, "hook", migDef("Http", ""), "")
		w.put(t, "parent", migDef("Button", "v1"), "")
		old := w.run(t, "v1", "before")
		cb, err := w.fl.CallbackURL(w.ctx, w.env.ID, "v1", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
		e := f.env(t, w.env.ID)
		if flowsAt, keysAt, _ := w.epochs(t); flowsAt["v1"] != 0 || flowsAt["v1b"] != 0 || flowsAt["hook"] != 0 || flowsAt["parent"] != 0 || keysAt["v1"] != 0 {
			t.Fatalf("after link: flows %v, keys %v", flowsAt, keysAt)
		}

		// Fix 1: v1 → v2.
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "v1", &keyhold.FlowInput{Definition: json.RawMessage(migDef("PowerAppV2", ""))}); err != nil {
			t.Fatal(err)
		}
		// Fix 2: into a solution.
		sol := "sol-1"
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "v1b", &keyhold.FlowInput{SolutionID: &sol}); err != nil {
			t.Fatal(err)
		}
		// Still in its category.
		renamed := "still a webhook"
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "hook", &keyhold.FlowInput{DisplayName: &renamed}); err != nil {
			t.Fatal(err)
		}
		flowsAt, keysAt, runsAt := w.epochs(t)
		for id, want := range map[string]uint32{"v1": e.Epoch, "v1b": e.Epoch, "hook": 0, "parent": e.Epoch} {
			if flowsAt[id] != want {
				t.Errorf("after the fixes: flow %s on epoch %d, want %d", id, flowsAt[id], want)
			}
		}
		if keysAt["v1"] != e.Epoch || runsAt["v1/"+old] != 0 {
			t.Errorf("after the fix: v1's key on %d (want %d), its old run on %d (want 0)", keysAt["v1"], e.Epoch, runsAt["v1/"+old])
		}
		if cb2, err := w.fl.CallbackURL(w.ctx, w.env.ID, "v1", "manual", false); err != nil || cb2.Value != cb.Value {
			t.Fatalf("v1's callback URL after the fix: %v", err)
		}
		if acts, err := w.fl.RunActions(w.ctx, w.env.ID, "v1", old); err != nil || len(acts) != 1 {
			t.Fatalf("v1's run from before the fix: %+v, %v", acts, err)
		}
		next := w.run(t, "v1", "after")
		if _, _, runsAt = w.epochs(t); runsAt["v1/"+next] != e.Epoch {
			t.Errorf("v1's run after the fix is on epoch %d, want %d", runsAt["v1/"+next], e.Epoch)
		}
		// The parent moved with its child and saves where it is.
		again := "parent again"
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "parent", &keyhold.FlowInput{DisplayName: &again}); err != nil {
			t.Fatal(err)
		}
		if flowsAt, _, _ = w.epochs(t); flowsAt["parent"] != e.Epoch {
			t.Errorf("the parent after its save is on epoch %d, want %d", flowsAt["parent"], e.Epoch)
		}
		if got, err := w.fl.GetFlow(w.ctx, w.env.ID, "parent"); err != nil || got.DisplayName != again {
			t.Fatalf("parent: %+v, %v", got, err)
		}
	})
}

// TestFixMovesParentChain: with grandparent → parent → child (a v1 Power
// Apps flow) all kept on the platform partition at the link, fixing the
// child moves the parent and the grandparent in the same save, with their
// callback keys; a parent of a flow still in a category (the Http flow)
// stays, as does that flow. Without the cascade, both ancestors stay on
// epoch 0 until their own saves.
func TestFixMovesParentChain(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newMigWorld(t, f)
		w.put(t, "child", migDef("PowerApp", ""), "")
		w.put(t, "parent", migDef("PowerAppV2", "child"), "sol-1")
		w.put(t, "grand", migDef("Http", "parent"), "")
		w.put(t, "hook", migDef("PowerApp", ""), "")
		w.put(t, "hookparent", migDef("Button", "hook"), "")
		w.put(t, "grandpa", migDef("Button", "parent"), "")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
		e := f.env(t, w.env.ID)
		flowsAt, keysBefore, _ := w.epochs(t)
		for _, id := range []string{"child", "parent", "grand", "hook", "hookparent", "grandpa"} {
			if flowsAt[id] != 0 {
				t.Fatalf("after link: flow %s on epoch %d, want 0 (flows %v)", id, flowsAt[id], flowsAt)
			}
		}
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "child", &keyhold.FlowInput{Definition: json.RawMessage(migDef("PowerAppV2", ""))}); err != nil {
			t.Fatal(err)
		}
		flowsAt, keysAt, _ := w.epochs(t)
		// grand has an Http trigger of its own: it stays for that reason.
		for id, want := range map[string]uint32{"child": e.Epoch, "parent": e.Epoch, "grandpa": e.Epoch, "grand": 0, "hook": 0, "hookparent": 0} {
			if flowsAt[id] != want {
				t.Errorf("after fixing the child: flow %s on epoch %d, want %d", id, flowsAt[id], want)
			}
		}
		for _, id := range []string{"parent", "grandpa"} {
			if _, had := keysBefore[id]; had && keysAt[id] != e.Epoch {
				t.Errorf("flow %s moved without its callback key (epoch %d)", id, keysAt[id])
			}
		}
		for _, id := range []string{"parent", "grandpa"} {
			if _, err := w.fl.GetFlow(w.ctx, w.env.ID, id); err != nil {
				t.Errorf("moved flow %s: %v", id, err)
			}
		}
		ps, err := w.fl.PlatformFlows(w.admin, w.env.ID)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, p := range ps {
			listed = append(listed, p.FlowID)
		}
		if strings.Join(listed, ",") != "grand,hook,hookparent" {
			t.Errorf("still listed: %v, want grand, hook, hookparent", listed)
		}
	})
}

// TestPreMigrationExpiredPartitionSkipped: with a later link's partition
// still within its 30 days, an expired one is not read (nor refused): the
// read answers the live partition's runs only, and the sweeper shreds the
// expired one alone.
func TestPreMigrationExpiredPartitionSkipped(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		w := newMigWorld(t, f)
		w.put(t, "mover", migDef("Button", ""), "")
		w.run(t, "mover", "old")
		op := f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
		f.clock.Advance(10 * 24 * time.Hour)
		later, err := premigrationKey(ctx, f.p.core, w.env.ID, "later-link")
		if err != nil {
			t.Fatal(err)
		}
		later.Destroy()
		f.clock.Advance(20 * 24 * time.Hour)
		got, err := f.p.PreMigration.PreMigrationRuns(w.admin, w.env.ID)
		if err != nil || len(got) != 0 {
			t.Fatalf("day 30 with a live partition: %+v, %v; want no runs, no refusal", got, err)
		}
		if n, err := f.p.PreMigration.Shred(ctx); err != nil || n != 1 {
			t.Fatalf("shredded %d, %v; want 1", n, err)
		}
		_ = f.store.View(ctx, func(tx keyhold.Tx) error {
			ks, err := tx.PreMigrationKeys(ctx, w.env.ID)
			if err != nil || len(ks) != 1 || ks[0].PartitionID != "later-link" {
				t.Errorf("keys after the shred: %+v, %v; want only the later one (not %s)", ks, err, op.ID)
			}
			return nil
		})
	})
}

// TestRekeyAfterFailedLinkPlacesFlows: a link from the platform key whose
// re-key fails before placing the flows (here a definition that no longer
// opens: the placement reads every definition first) is finished by
// linking again, and that re-key places the flows as the link would have:
// the Http flow on the platform partition, the button flow under the
// customer key. Without PlaceFlows the re-key kept epoch 0 as it found it,
// and the Http flow went under the customer key.
func TestRekeyAfterFailedLinkPlacesFlows(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newMigWorld(t, f)
		w.put(t, "hook", migDef("Http", ""), "")
		w.put(t, "mover", migDef("Button", ""), "")
		w.put(t, "broken", migDef("Button", ""), "")
		ctx := context.Background()
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			r, err := tx.Flow(ctx, w.env.ID, "broken")
			if err != nil {
				return err
			}
			r.Sealed[len(r.Sealed)-1] ^= 1
			r.Version++
			return tx.PutFlow(ctx, r)
		}); err != nil {
			t.Fatal(err)
		}
		op, err := f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID)
		if err != nil {
			t.Fatal(err)
		}
		if op = f.wait(t, op); op.State != keyhold.OperationFailed || !strings.Contains(op.ErrorMsg, "broken") {
			t.Fatalf("link with a broken flow: %s %s %q, want Failed naming the flow", op.State, op.ErrorCode, op.ErrorMsg)
		}
		if e := f.env(t, w.env.ID); e.EncryptionStatus != keyhold.EncryptionFailed || e.PolicyID == "" {
			t.Fatalf("after the failed link: %+v", e)
		}
		flowsAt, _, _ := w.epochs(t)
		if flowsAt["hook"] == keyhold.PlatformEpoch {
			t.Fatalf("the failed link placed the Http flow already (%v): the test proves nothing", flowsAt)
		}
		if err := w.fl.DeleteFlow(w.admin, w.env.ID, "broken"); err != nil {
			t.Fatal(err)
		}
		op = f.succeed(t, "re-key", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
		if op.Kind != keyhold.OpRekey {
			t.Fatalf("linking again started %s, want %s", op.Kind, keyhold.OpRekey)
		}
		e := f.env(t, w.env.ID)
		flowsAt, keysAt, _ := w.epochs(t)
		if flowsAt["hook"] != keyhold.PlatformEpoch || flowsAt["mover"] != e.Epoch {
			t.Fatalf("after the re-key: flows at %v (environment epoch %d), want hook on the platform partition and mover on the environment's epoch", flowsAt, e.Epoch)
		}
		if k, ok := keysAt["hook"]; ok && k != keyhold.PlatformEpoch {
			t.Fatalf("the Http flow's callback key is at epoch %d, not with its flow", k)
		}
		w.run(t, "hook", "still works")
	})
}
