//go:build keyhold_faults

package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/ops/opstest"
)

// The flows migration's crash matrix (issue 16): a link or an unlink of
// an environment with flows in every placement is killed at each point
// of the flows' move (the step's boundaries and the fault points after
// each kind of item's write, rekey_flows.go), and a restarted server
// finishes it. Then every flow and every run is in exactly one place, the
// right one, and reads back.

// flowsSeed is what flowsCrashEnv wrote: flows, and runs by flow.
type flowsSeed struct {
	env  *keyhold.Environment
	c    *content
	runs map[string][]string // flow → run ids (the last of mover's is Waiting)
}

// flowsCrashEnv creates an environment with a kept v1 flow, a kept Http
// flow with a callback key, a kept parent and a moving button flow, each
// with three finished runs (mover also one Waiting run held by a lease
// far ahead), written straight into the store.
func flowsCrashEnv(t *testing.T, f *cmkFixture) *flowsSeed {
	ctx := context.Background()
	env, c := crashEnv(t, f, "e")
	fl, err := flows.New(flows.Config{Store: f.store, Sealer: f.p.Sealer, Data: f.p, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]string{"v1": migDef("PowerApp", ""), "hook": migDef("Http", ""), "parent": migDef("Button", "v1"), "mover": migDef("Button", "")}
	s := &flowsSeed{env: env, c: c, runs: map[string][]string{}}
	now := f.clock.Now().UTC()
	for _, id := range []string{"v1", "hook", "parent", "mover"} {
		name := id
		if _, err := fl.PutFlow(f.ctx, env.ID, id, &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(defs[id])}); err != nil {
			t.Fatal(err)
		}
		n := 3
		if id == "mover" {
			n = 4
		}
		for i := range n {
			runID := fmt.Sprintf("run-%d", i)
			status, ended, lease := keyhold.RunSucceeded, now, time.Time{}
			if id == "mover" && i == 3 {
				status, ended, lease = keyhold.RunWaiting, time.Time{}, now.Add(365*24*time.Hour)
			}
			pt := []byte(`{"status":"` + status + `","trigger":{"body":"` + id + "/" + runID + `"},"actions":{}}`)
			ct, epoch, err := f.p.Sealer.Seal(ctx, env.ID, keyhold.StoreRuns, keyhold.FlowRunItemID(id, runID), 1, pt)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
				return tx.PutFlowRun(ctx, &keyhold.FlowRunRecord{EnvID: env.ID, FlowID: id, ID: runID, Status: status, TriggerName: "manual",
					StartedAt: now, EndedAt: ended, LeaseOwner: "elsewhere", LeaseUntil: lease, Epoch: epoch, Version: 1, StateVersion: 1, Sealed: ct, UpdatedAt: now})
			}); err != nil {
				t.Fatal(err)
			}
			s.runs[id] = append(s.runs[id], runID)
		}
	}
	if _, err := fl.CallbackURL(f.ctx, env.ID, "hook", "manual", false); err != nil {
		t.Fatal(err)
	}
	return s
}

// wantFlowsPlaced checks every flow and run: flows on the epochs want
// gives, each run once, either a run on its flow's epoch (reading back
// with the flow's name in it) or, if pre is set, a finished run of a
// moving flow in the one pre-migration partition.
func wantFlowsPlaced(t *testing.T, f *cmkFixture, s *flowsSeed, want map[string]uint32, pre bool) {
	t.Helper()
	ctx := context.Background()
	f.p.DropKeys(s.env.ID)
	var keys []*keyhold.PreMigrationKey
	preRuns := map[string]bool{}
	if err := f.store.View(ctx, func(tx keyhold.Tx) error {
		fs, err := tx.ListFlows(ctx, s.env.ID)
		if err != nil {
			return err
		}
		if len(fs) != len(want) {
			t.Errorf("%d flows, want %d", len(fs), len(want))
		}
		for _, fr := range fs {
			if fr.Epoch != want[fr.ID] {
				t.Errorf("flow %s on epoch %d, want %d", fr.ID, fr.Epoch, want[fr.ID])
			}
		}
		if k, err := tx.FlowKey(ctx, s.env.ID, "hook"); err != nil || k.Epoch != want["hook"] {
			t.Errorf("hook's callback key: %+v, %v; want on %d", k, err, want["hook"])
		}
		if keys, err = tx.PreMigrationKeys(ctx, s.env.ID); err != nil {
			return err
		}
		for _, k := range keys {
			rs, err := tx.PreMigrationRuns(ctx, s.env.ID, k.PartitionID)
			if err != nil {
				return err
			}
			for _, r := range rs {
				preRuns[r.FlowID+"/"+r.ID] = true
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if pre != (len(keys) == 1) || len(keys) > 1 {
		t.Errorf("%d pre-migration partitions, want %v", len(keys), pre)
	}
	fl, err := flows.New(flows.Config{Store: f.store, Sealer: f.p.Sealer, Data: f.p, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	for flowID, runs := range s.runs {
		for _, runID := range runs {
			var rec *keyhold.FlowRunRecord
			err := f.store.View(ctx, func(tx keyhold.Tx) (err error) {
				rec, err = tx.FlowRun(ctx, s.env.ID, flowID, runID)
				return err
			})
			isRun := err == nil
			if isRun == preRuns[flowID+"/"+runID] {
				t.Errorf("run %s/%s: a run %v, in the partition %v; want exactly one", flowID, runID, isRun, preRuns[flowID+"/"+runID])
				continue
			}
			if !isRun {
				if !pre || flowID != "mover" {
					t.Errorf("run %s/%s is in the pre-migration partition", flowID, runID)
				}
				continue
			}
			if pre && flowID == "mover" && rec.Terminal() {
				t.Errorf("finished run %s/%s of the moved flow is still a run", flowID, runID)
			}
			if rec.Epoch != want[flowID] {
				t.Errorf("run %s/%s on epoch %d, want %d", flowID, runID, rec.Epoch, want[flowID])
			}
			if _, err := fl.GetRun(f.ctx, s.env.ID, flowID, runID); err != nil {
				t.Errorf("run %s/%s doesn't read back: %v", flowID, runID, err)
			}
		}
	}
	if pre {
		got, err := f.p.PreMigration.PreMigrationRuns(f.ctx, s.env.ID)
		if err != nil || len(got) != 3 {
			t.Fatalf("pre-migration runs: %d, %v; want mover's 3", len(got), err)
		}
		for _, r := range got {
			if !strings.Contains(string(r.Content), "mover/"+r.ID) {
				t.Errorf("pre-migration run %s reads %s", r.ID, r.Content)
			}
		}
	}
}

func flowsCrashScenarios() map[string]crashScenario {
	return map[string]crashScenario{
		"link": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol, _, _ := crashPolicy(t, f, "pol")
			s := flowsCrashEnv(t, f)
			op, err := f.p.LinkPolicy(f.ctx, s.env.ID, pol.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			return op.ID, func(t *testing.T, op *keyhold.Operation) {
				wantLinked(t, f, s.env.ID, pol, 2, "", s.c)
				wantFlowsPlaced(t, f, s, map[string]uint32{"v1": 0, "hook": 0, "parent": 0, "mover": 2}, true)
			}
		}},
		"unlink": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol, _, _ := crashPolicy(t, f, "pol")
			s := flowsCrashEnv(t, f)
			// Only kept flows' runs go back: mover's finished runs are in
			// the partition after the link.
			f.runParent(t, func() {
				f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, s.env.ID, pol.SystemID) })
			})
			op, err := f.p.UnlinkPolicy(f.ctx, s.env.ID, pol.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			return op.ID, func(t *testing.T, op *keyhold.Operation) {
				wantOnMMK(t, f, s.env.ID, 2, keyhold.EncryptionSucceeded, s.c)
				wantFlowsPlaced(t, f, s, map[string]uint32{"v1": 2, "hook": 2, "parent": 2, "mover": 2}, true)
			}
		}},
	}
}

// TestFlowsMigrationCrashSafety kills the server at every point of the
// flows' move in a link and an unlink, on SQLite and PostgreSQL.
func TestFlowsMigrationCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash matrix starts two processes per case")
	}
	kinds := assemble(&core{}).kinds()
	step := func(kind, name string) []string {
		var k ops.Kind
		for _, s := range kinds[kind].Steps {
			if s.Name == name {
				k.Steps = append(k.Steps, s)
			}
		}
		return ops.FaultPoints(kind, k)
	}
	cases := []crashCase{}
	for _, p := range append(step(keyhold.OpLink, stepRekey), faultFlowMoved, faultKeyMoved, faultPartition, faultPreMigrated, faultRunMoved) {
		cases = append(cases, crashCase{"link", p})
	}
	for _, p := range append(step(keyhold.OpUnlink, stepFlows), faultFlowMoved, faultKeyMoved, faultRunMoved) {
		cases = append(cases, crashCase{"unlink", p})
	}
	if len(cases) != 8+6 {
		t.Fatalf("%d crash cases: %v", len(cases), cases)
	}
	modes := []struct {
		name    string
		backend func(t *testing.T) opstest.Backend
	}{
		{"sqlite", func(t *testing.T) opstest.Backend { return opstest.SQLite(t) }},
		{"postgres", func(t *testing.T) opstest.Backend { return opstest.Postgres(t) }},
	}
	scenarios := flowsCrashScenarios()
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, m := range modes {
		for _, tc := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				t.Run(m.name+"/"+tc.scenario+"/"+tc.fault, func(t *testing.T) {
					runCrash(t, m.backend(t), 1, scenarios[tc.scenario], tc.fault)
				})
			}()
		}
	}
	wg.Wait()
}
