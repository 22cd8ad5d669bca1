package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// The conformance tests of keyhold.PreMigrationTx (issue 16), run with the
// flows' tests.
func init() {
	flowStoreTests = append(flowStoreTests,
		struct {
			name string
			fn   func(t *testing.T, s keyhold.Store)
		}{"PreMigration", testPreMigration},
		struct {
			name string
			fn   func(t *testing.T, s keyhold.Store)
		}{"FlowRunsOfFlowOffEpoch", testFlowRunsOfFlowOffEpoch})
}

// testPreMigration: a partition's key is stored once; a run moves into
// the partition only from the version read (a changed run is a conflict
// that changes nothing) and leaves the runs in the same write; expired
// keys are listed by expiry; deleting a key leaves its runs to the
// shredded-runs sweep, which deletes only those.
func testPreMigration(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	key := func(partition string, expires time.Duration) *keyhold.PreMigrationKey {
		return &keyhold.PreMigrationKey{EnvID: "e1", PartitionID: partition, KeyID: "mmk/1", Wrapped: []byte("wrapped-" + partition), CreatedAt: at(0), ExpiresAt: at(expires)}
	}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutPreMigrationKey(ctx, key("op-1", time.Hour)); err != nil {
			return err
		}
		if err := tx.PutPreMigrationKey(ctx, key("op-2", 2*time.Hour)); err != nil {
			return err
		}
		if err := tx.PutFlow(ctx, flowRec("e1", "f1", 1)); err != nil {
			return err
		}
		for _, id := range []string{"a", "bb"} {
			if err := tx.PutFlowRun(ctx, runRec("e1", "f1", id, 1)); err != nil {
				return err
			}
		}
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutPreMigrationKey(ctx, key("op-1", time.Hour)) })
	wantCode(t, "PutPreMigrationKey(again)", err, keyhold.CodeConflict, "op-1")
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		k := key("op-3", time.Hour)
		k.EnvID = "nope"
		return tx.PutPreMigrationKey(ctx, k)
	})
	wantCode(t, "PutPreMigrationKey(unknown environment)", err, keyhold.CodeEnvironmentNotFound)

	pre := func(partition, id string) *keyhold.PreMigrationRunRecord {
		return &keyhold.PreMigrationRunRecord{EnvID: "e1", PartitionID: partition, FlowID: "f1", ID: id, Status: keyhold.RunSucceeded, TriggerName: "manual",
			StartedAt: at(time.Minute), EndedAt: at(2 * time.Minute), StateVersion: 1, Sealed: []byte("pre-" + id)}
	}
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.MoveRunToPreMigration(ctx, pre("op-1", "a"), 2) })
	wantCode(t, "MoveRunToPreMigration(stale version)", err, keyhold.CodeConflict, "a")
	update(t, s, func(tx keyhold.Tx) error { return tx.MoveRunToPreMigration(ctx, pre("op-1", "a"), 1) })
	update(t, s, func(tx keyhold.Tx) error { return tx.MoveRunToPreMigration(ctx, pre("op-2", "bb"), 1) })
	view(t, s, func(tx keyhold.Tx) error {
		if _, err := tx.FlowRun(ctx, "e1", "f1", "a"); keyhold.ErrorCode(err) != keyhold.CodeFlowRunNotFound {
			t.Errorf("the moved run is still a run: %v", err)
		}
		rs, err := tx.PreMigrationRuns(ctx, "e1", "op-1")
		if err != nil {
			return err
		}
		if len(rs) != 1 {
			t.Fatalf("PreMigrationRuns = %d runs, want 1", len(rs))
		}
		equal(t, "PreMigrationRuns", rs[0], pre("op-1", "a"))
		ks, err := tx.PreMigrationKeys(ctx, "e1")
		if err != nil {
			return err
		}
		if len(ks) != 2 || ks[0].PartitionID != "op-1" {
			t.Fatalf("PreMigrationKeys = %+v", ks)
		}
		equal(t, "PreMigrationKey", ks[0], key("op-1", time.Hour))
		exp, err := tx.ExpiredPreMigrationKeys(ctx, at(time.Hour), 0)
		if err != nil {
			return err
		}
		if len(exp) != 1 || exp[0].PartitionID != "op-1" {
			t.Errorf("ExpiredPreMigrationKeys(1h) = %+v, want op-1", exp)
		}
		return nil
	})
	update(t, s, func(tx keyhold.Tx) error { return tx.DeletePreMigrationKey(ctx, "e1", "op-1") })
	var n int
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.DeleteShreddedPreMigrationRuns(ctx, 0); return err })
	if n != 1 {
		t.Errorf("DeleteShreddedPreMigrationRuns = %d, want 1 (op-1's run)", n)
	}
	view(t, s, func(tx keyhold.Tx) error {
		if _, err := tx.PreMigrationKey(ctx, "e1", "op-1"); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
			t.Errorf("PreMigrationKey(deleted) = %v", err)
		}
		if rs, err := tx.PreMigrationRuns(ctx, "e1", "op-2"); err != nil || len(rs) != 1 {
			t.Errorf("op-2's runs after op-1's shred: %d, %v", len(rs), err)
		}
		return nil
	})
}

// testFlowRunsOfFlowOffEpoch: one flow's runs with sealed state under
// another epoch, by id; a run without state (a skipped slot) is not one.
func testFlowRunsOfFlowOffEpoch(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		for _, f := range []string{"f1", "f2"} {
			if err := tx.PutFlow(ctx, flowRec("e1", f, 1)); err != nil {
				return err
			}
		}
		for _, id := range []string{"c", "a", "b"} {
			r := runRec("e1", "f1", id, 1)
			if id == "b" {
				r.Epoch = 0
			}
			if err := tx.PutFlowRun(ctx, r); err != nil {
				return err
			}
		}
		skipped := runRec("e1", "f1", "skipped", 1)
		skipped.StateVersion, skipped.Epoch, skipped.Sealed = 0, 0, nil
		if err := tx.PutFlowRun(ctx, skipped); err != nil {
			return err
		}
		return tx.PutFlowRun(ctx, runRec("e1", "f2", "d", 1))
	})
	view(t, s, func(tx keyhold.Tx) error {
		rs, err := tx.FlowRunsOfFlowOffEpoch(ctx, "e1", "f1", 0, 0)
		if err != nil {
			return err
		}
		if len(rs) != 2 || rs[0].ID != "a" || rs[1].ID != "c" {
			t.Errorf("off epoch 0: %d runs, want a and c", len(rs))
		}
		if rs, err = tx.FlowRunsOfFlowOffEpoch(ctx, "e1", "f1", 1, 0); err != nil || len(rs) != 1 || rs[0].ID != "b" {
			t.Errorf("off epoch 1: %d runs, %v; want b", len(rs), err)
		}
		return nil
	})
}
