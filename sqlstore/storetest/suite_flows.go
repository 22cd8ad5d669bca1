package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// flowStoreTests are the conformance tests of keyhold.FlowTx; Run runs
// them with the rest.
var flowStoreTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"Flows", testFlows},
	{"FlowRuns", testFlowRuns},
	{"FlowSchedules", testFlowSchedules},
	{"FlowKeysAndConnections", testFlowKeysAndConnections},
	{"FlowRunCounts", testFlowRunCounts},
	{"BackupFlowItems", testBackupFlowItems},
}

func flowRec(envID, id string, version uint64) *keyhold.FlowRecord {
	return &keyhold.FlowRecord{EnvID: envID, ID: id, DisplayName: "Flow " + id, State: keyhold.FlowStarted,
		TriggerName: "manual", TriggerType: "Request", TriggerKind: "Button", CreatedBy: "p1",
		Epoch: 1, Version: version, Sealed: []byte("sealed-definition-" + id), CreatedAt: at(0), UpdatedAt: at(time.Duration(version) * time.Second)}
}

// testFlows: flows are versioned as rows (a stale or repeated version is
// a conflict that changes nothing), listed by id, and deleting one removes
// its runs, schedule and key; an unknown environment is not found.
func testFlows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		for _, id := range []string{"f2", "f1"} {
			if err := tx.PutFlow(ctx, flowRec("e1", id, 1)); err != nil {
				return err
			}
		}
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutFlow(ctx, flowRec("e1", "f1", 1)) })
	wantCode(t, "PutFlow(version 1 again)", err, keyhold.CodeConflict, "f1")
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutFlow(ctx, flowRec("nope", "f1", 1)) })
	wantCode(t, "PutFlow(unknown environment)", err, keyhold.CodeEnvironmentNotFound)

	v2 := flowRec("e1", "f1", 2)
	v2.State, v2.DisplayName, v2.Sealed, v2.Epoch = keyhold.FlowStopped, "Renamed", []byte("v2"), 3
	update(t, s, func(tx keyhold.Tx) error { return tx.PutFlow(ctx, v2) })
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutFlow(ctx, flowRec("e1", "f1", 2)) })
	wantCode(t, "PutFlow(stale version)", err, keyhold.CodeConflict, "f1")
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Flow(ctx, "e1", "f1")
		if err != nil {
			return err
		}
		equal(t, "Flow", got, v2)
		all, err := tx.ListFlows(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "ListFlows ids", []string{all[0].ID, all[1].ID}, []string{"f1", "f2"})
		return nil
	})
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutFlowRun(ctx, runRec("e1", "f1", "r1", 1)); err != nil {
			return err
		}
		if err := tx.PutFlowSchedule(ctx, &keyhold.FlowSchedule{EnvID: "e1", FlowID: "f1", NextSlot: at(time.Hour)}); err != nil {
			return err
		}
		return tx.PutFlowKey(ctx, &keyhold.FlowKeyRecord{EnvID: "e1", FlowID: "f1", Epoch: 1, Version: 1, Sealed: []byte("k"), CreatedAt: at(0)})
	})
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteFlow(ctx, "e1", "f1") })
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Flow(ctx, "e1", "f1")
		wantCode(t, "Flow(deleted)", err, keyhold.CodeFlowNotFound, "f1")
		_, err = tx.FlowRun(ctx, "e1", "f1", "r1")
		wantCode(t, "FlowRun(of a deleted flow)", err, keyhold.CodeFlowRunNotFound, "r1")
		_, err = tx.FlowKey(ctx, "e1", "f1")
		wantCode(t, "FlowKey(of a deleted flow)", err, keyhold.CodeNotFound)
		due, err := tx.DueFlowSchedules(ctx, at(2*time.Hour), 0)
		equal(t, "schedules of a deleted flow", len(due), 0)
		return err
	})
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeleteFlow(ctx, "e1", "f1") })
	wantCode(t, "DeleteFlow(again)", err, keyhold.CodeFlowNotFound, "f1")

	// Deleting the environment deletes its flows.
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteEnvironment(ctx, "e1") })
	seedEnv(t, s, "t1", "e1")
	view(t, s, func(tx keyhold.Tx) error {
		all, err := tx.ListFlows(ctx, "e1")
		equal(t, "flows of a recreated environment", len(all), 0)
		return err
	})
}

func runRec(envID, flowID, id string, version uint64) *keyhold.FlowRunRecord {
	return &keyhold.FlowRunRecord{EnvID: envID, FlowID: flowID, ID: id, Status: keyhold.RunWaiting, TriggerName: "manual",
		StartedAt: at(time.Duration(len(id)) * time.Minute), Epoch: 1, Version: version, StateVersion: 1, Sealed: []byte("sealed-state-" + id), UpdatedAt: at(0)}
}

// testFlowRuns: runs are versioned (two engines claiming one run from the
// same version: one wins); runnable means Waiting or Running with an
// expired lease; active counts held leases; retention deletes terminal
// runs that ended before the cut only.
func testFlowRuns(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutFlow(ctx, flowRec("e1", "f1", 1)); err != nil {
			return err
		}
		if err := tx.PutFlow(ctx, flowRec("e1", "f2", 1)); err != nil {
			return err
		}
		for _, id := range []string{"a", "bb", "ccc"} {
			if err := tx.PutFlowRun(ctx, runRec("e1", "f1", id, 1)); err != nil {
				return err
			}
		}
		return tx.PutFlowRun(ctx, runRec("e1", "f2", "dddd", 1))
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, runRec("e1", "nope", "x", 1)) })
	wantCode(t, "PutFlowRun(unknown flow)", err, keyhold.CodeFlowNotFound, "nope")

	claim := func(owner string) error {
		r := runRec("e1", "f1", "a", 2)
		r.Status, r.LeaseOwner, r.LeaseUntil = keyhold.RunRunning, owner, at(time.Hour)
		return tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, r) })
	}
	if err := claim("engine-1"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "second claim from the same version", claim("engine-2"), keyhold.CodeConflict, "a")

	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.FlowRun(ctx, "e1", "f1", "a")
		if err != nil {
			return err
		}
		want := runRec("e1", "f1", "a", 2)
		want.Status, want.LeaseOwner, want.LeaseUntil = keyhold.RunRunning, "engine-1", at(time.Hour).UTC()
		want.StartedAt, want.UpdatedAt = want.StartedAt.UTC(), want.UpdatedAt.UTC()
		equal(t, "claimed run", got, want)
		runnable, err := tx.RunnableFlowRuns(ctx, at(30*time.Minute), 0)
		if err != nil {
			return err
		}
		ids := []string{}
		for _, r := range runnable {
			ids = append(ids, r.ID)
		}
		equal(t, "runnable while the lease holds", ids, []string{"bb", "ccc", "dddd"})
		runnable, err = tx.RunnableFlowRuns(ctx, at(2*time.Hour), 0)
		equal(t, "runnable after the lease expired", len(runnable), 4)
		if err != nil {
			return err
		}
		off, err := tx.FlowRunsOffEpoch(ctx, "e1", 1, 0)
		equal(t, "runs off their own epoch", len(off), 0)
		if err != nil {
			return err
		}
		off, err = tx.FlowRunsOffEpoch(ctx, "e1", 2, 0)
		equal(t, "runs off epoch 2", len(off), 4)
		if err != nil {
			return err
		}
		n, err := tx.ActiveFlowRuns(ctx, "e1", "f1", at(30*time.Minute))
		equal(t, "active of f1", n, 1)
		if err != nil {
			return err
		}
		n, err = tx.ActiveFlowRuns(ctx, "e1", "f2", at(30*time.Minute))
		equal(t, "active of f2", n, 0)
		if err != nil {
			return err
		}
		n, err = tx.ActiveFlowRuns(ctx, "e1", "", at(2*time.Hour))
		equal(t, "active after expiry", n, 0)
		if err != nil {
			return err
		}
		list, err := tx.ListFlowRuns(ctx, keyhold.FlowRunFilter{EnvID: "e1", FlowID: "f1"})
		ids = ids[:0]
		for _, r := range list {
			ids = append(ids, r.ID)
		}
		equal(t, "runs newest first", ids, []string{"ccc", "bb", "a"})
		return err
	})

	// Retention: only terminal runs that ended before the cut go.
	update(t, s, func(tx keyhold.Tx) error {
		r := runRec("e1", "f1", "bb", 2)
		r.Status, r.EndedAt = keyhold.RunSucceeded, at(time.Hour)
		if err := tx.PutFlowRun(ctx, r); err != nil {
			return err
		}
		r = runRec("e1", "f1", "ccc", 2)
		r.Status, r.EndedAt = keyhold.RunFailed, at(3*time.Hour)
		return tx.PutFlowRun(ctx, r)
	})
	update(t, s, func(tx keyhold.Tx) error {
		n, err := tx.DeleteFlowRunsBefore(ctx, at(2*time.Hour), 0)
		equal(t, "runs deleted by retention", n, 1)
		return err
	})
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.FlowRun(ctx, "e1", "f1", "bb")
		wantCode(t, "FlowRun(expired)", err, keyhold.CodeFlowRunNotFound, "bb")
		for _, id := range []string{"a", "ccc"} {
			if _, err := tx.FlowRun(ctx, "e1", "f1", id); err != nil {
				return err
			}
		}
		return nil
	})
}

// testFlowSchedules: a slot is claimed once; a second claim of the same
// slot (another replica) is a conflict that changes nothing.
func testFlowSchedules(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutFlow(ctx, flowRec("e1", "f1", 1)); err != nil {
			return err
		}
		return tx.PutFlowSchedule(ctx, &keyhold.FlowSchedule{EnvID: "e1", FlowID: "f1", NextSlot: at(time.Hour)})
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.PutFlowSchedule(ctx, &keyhold.FlowSchedule{EnvID: "e1", FlowID: "nope", NextSlot: at(time.Hour)})
	})
	wantCode(t, "PutFlowSchedule(unknown flow)", err, keyhold.CodeFlowNotFound, "nope")
	var due []*keyhold.FlowSchedule
	view(t, s, func(tx keyhold.Tx) (err error) {
		none, err := tx.DueFlowSchedules(ctx, at(59*time.Minute), 0)
		equal(t, "due before the slot", len(none), 0)
		if err != nil {
			return err
		}
		due, err = tx.DueFlowSchedules(ctx, at(time.Hour), 0)
		return err
	})
	equal(t, "due at the slot", len(due), 1)
	update(t, s, func(tx keyhold.Tx) error { return tx.ClaimFlowSlot(ctx, due[0], at(2*time.Hour)) })
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.ClaimFlowSlot(ctx, due[0], at(3*time.Hour)) })
	wantCode(t, "ClaimFlowSlot(claimed already)", err, keyhold.CodeConflict, "f1")
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.DueFlowSchedules(ctx, at(5*time.Hour), 0)
		equal(t, "schedule after one claim", got, []*keyhold.FlowSchedule{{EnvID: "e1", FlowID: "f1", NextSlot: at(2 * time.Hour).UTC(), LastSlot: at(time.Hour).UTC()}})
		return err
	})
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteFlowSchedule(ctx, "e1", "f1") })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.DueFlowSchedules(ctx, at(5*time.Hour), 0)
		equal(t, "schedules after delete", len(got), 0)
		return err
	})
}

// testFlowKeysAndConnections: callback keys and connections are versioned;
// connections are listed by api and name, and a missing one is not found.
func testFlowKeysAndConnections(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	k1 := &keyhold.FlowKeyRecord{EnvID: "e1", FlowID: "f1", Epoch: 1, Version: 1, Sealed: []byte("k1"), CreatedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutFlow(ctx, flowRec("e1", "f1", 1)); err != nil {
			return err
		}
		return tx.PutFlowKey(ctx, k1)
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutFlowKey(ctx, k1) })
	wantCode(t, "PutFlowKey(version 1 again)", err, keyhold.CodeConflict, "f1")
	k2 := &keyhold.FlowKeyRecord{EnvID: "e1", FlowID: "f1", Epoch: 2, Version: 2, Sealed: []byte("k2"), CreatedAt: at(time.Hour)}
	update(t, s, func(tx keyhold.Tx) error { return tx.PutFlowKey(ctx, k2) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.FlowKey(ctx, "e1", "f1")
		equal(t, "FlowKey", got, k2)
		return err
	})

	c := func(api, name string, v uint64) *keyhold.ConnectionRecord {
		return &keyhold.ConnectionRecord{EnvID: "e1", API: api, Name: name, DisplayName: name, Kind: keyhold.ConnectionOAuth, PrincipalID: "p1",
			CreatedBy: "p1", Epoch: 1, Version: v, Sealed: []byte("token-" + name), CreatedAt: at(0)}
	}
	update(t, s, func(tx keyhold.Tx) error {
		for _, r := range []*keyhold.ConnectionRecord{c("shared_http", "b", 1), c("shared_cds", "z", 1), c("shared_http", "a", 1)} {
			if err := tx.PutConnection(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutConnection(ctx, c("shared_http", "a", 1)) })
	wantCode(t, "PutConnection(version 1 again)", err, keyhold.CodeConflict, "a")
	a2 := c("shared_http", "a", 2)
	a2.Kind, a2.Epoch, a2.Sealed = keyhold.ConnectionNonOAuth, keyhold.PlatformEpoch, []byte("apikey")
	update(t, s, func(tx keyhold.Tx) error { return tx.PutConnection(ctx, a2) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Connection(ctx, "e1", "shared_http", "a")
		if err != nil {
			return err
		}
		equal(t, "Connection", got, a2)
		all, err := tx.ListConnections(ctx, "e1")
		names := []string{}
		for _, r := range all {
			names = append(names, r.API+"/"+r.Name)
		}
		equal(t, "ListConnections", names, []string{"shared_cds/z", "shared_http/a", "shared_http/b"})
		return err
	})
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteConnection(ctx, "e1", "shared_http", "a") })
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeleteConnection(ctx, "e1", "shared_http", "a") })
	wantCode(t, "DeleteConnection(again)", err, keyhold.CodeConnectionNotFound, "a")
}

// testBackupFlowItems: a backup holds flow items (listed by kind and item,
// a repeated one a conflict), their epochs other than 0 count in
// BackupEpochs, and deleting the backup deletes them. EnvFlowSet reads an
// environment's flows, keys, schedules and connections; ReplaceFlows
// replaces them all (runs go) with records kept at their versions.
func testBackupFlowItems(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutFlow(ctx, flowRec("e1", "old", 1)); err != nil {
			return err
		}
		run := &keyhold.FlowRunRecord{EnvID: "e1", FlowID: "old", ID: "r1", Status: keyhold.RunSucceeded, Epoch: 1, Version: 1, StateVersion: 1, Sealed: []byte("s"), StartedAt: at(0), UpdatedAt: at(0)}
		if err := tx.PutFlowRun(ctx, run); err != nil {
			return err
		}
		return tx.StageBackup(ctx, mkBackup("b1", "e1", at(time.Hour), at(2*time.Hour)))
	})
	items := []*keyhold.BackupFlowItem{
		{Kind: keyhold.BackupFlowManifest, Item: "flows", Record: []byte("{}")},
		{Kind: keyhold.BackupFlowRecord, Item: "f1", Epoch: 7, Record: []byte(`{"ID":"f1"}`)},
		{Kind: keyhold.BackupFlowConnection, Item: "shared_http/api", Epoch: keyhold.PlatformEpoch, Record: []byte(`{}`)},
	}
	update(t, s, func(tx keyhold.Tx) error { return tx.PutBackupFlowItems(ctx, "b1", items) })
	if err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutBackupFlowItems(ctx, "b1", items[1:2]) }); keyhold.ErrorCode(err) != keyhold.CodeConflict {
		t.Errorf("a repeated item: %v, want Conflict", err)
	}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.BackupFlowItems(ctx, "b1")
		if err != nil {
			return err
		}
		if len(got) != 3 || got[0].Kind != keyhold.BackupFlowConnection || got[1].Kind != keyhold.BackupFlowRecord || got[1].Epoch != 7 || string(got[1].Record) != `{"ID":"f1"}` {
			t.Errorf("BackupFlowItems = %+v", got)
		}
		epochs, err := tx.BackupEpochs(ctx, "e1")
		if err != nil {
			return err
		}
		if len(epochs) != 1 || epochs[0] != 7 {
			t.Errorf("BackupEpochs = %v, want [7] (the flow item's; 0 is not an epoch)", epochs)
		}
		return nil
	})

	set := &keyhold.FlowSet{
		Flows:       []*keyhold.FlowRecord{flowRec("e1", "f1", 5)},
		Keys:        []*keyhold.FlowKeyRecord{{EnvID: "e1", FlowID: "f1", Epoch: 1, Version: 3, Sealed: []byte("k"), CreatedAt: at(0)}},
		Schedules:   []*keyhold.FlowSchedule{{EnvID: "e1", FlowID: "f1", NextSlot: at(time.Hour), LastSlot: at(0)}},
		Connections: []*keyhold.ConnectionRecord{{EnvID: "e1", API: "shared_http", Name: "api", Kind: keyhold.ConnectionNonOAuth, Version: 2, Sealed: []byte("c"), CreatedAt: at(0)}},
	}
	update(t, s, func(tx keyhold.Tx) error { return tx.ReplaceFlows(ctx, "e1", set) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.EnvFlowSet(ctx, "e1")
		if err != nil {
			return err
		}
		if len(got.Flows) != 1 || got.Flows[0].ID != "f1" || got.Flows[0].Version != 5 || len(got.Keys) != 1 || got.Keys[0].Version != 3 ||
			len(got.Schedules) != 1 || !got.Schedules[0].NextSlot.Equal(at(time.Hour)) || len(got.Connections) != 1 || got.Connections[0].Version != 2 {
			t.Errorf("EnvFlowSet after ReplaceFlows = %+v", got)
		}
		if _, err := tx.FlowRun(ctx, "e1", "old", "r1"); keyhold.ErrorCode(err) != keyhold.CodeFlowRunNotFound {
			t.Errorf("the replaced flow's run: %v, want gone", err)
		}
		return nil
	})
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteBackup(ctx, "b1") })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.BackupFlowItems(ctx, "b1")
		if err != nil || len(got) != 0 {
			t.Errorf("items of a deleted backup: %d, %v", len(got), err)
		}
		return nil
	})
}
