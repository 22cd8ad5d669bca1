package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// testFlowRunCounts: the report's counts are of one tenant's runs that
// started in [from, to), by environment, flow and status, in that order;
// another tenant's runs and runs outside the window are not counted.
func testFlowRunCounts(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	seedEnv(t, s, "t2", "e3")
	run := func(env, flow, id, status string, start time.Duration) *keyhold.FlowRunRecord {
		r := runRec(env, flow, id, 1)
		r.Status, r.StartedAt = status, at(start)
		return r
	}
	update(t, s, func(tx keyhold.Tx) error {
		for _, f := range []*keyhold.FlowRecord{flowRec("e1", "fa", 1), flowRec("e1", "fb", 1), flowRec("e2", "fa", 1), flowRec("e3", "fa", 1)} {
			if err := tx.PutFlow(ctx, f); err != nil {
				return err
			}
		}
		for _, r := range []*keyhold.FlowRunRecord{
			run("e1", "fa", "r1", keyhold.RunFailed, time.Hour), // at from: counted
			run("e1", "fa", "r2", keyhold.RunFailed, 90*time.Minute),
			run("e1", "fa", "r3", keyhold.RunSucceeded, 90*time.Minute),
			run("e1", "fb", "r4", keyhold.RunWaiting, 2*time.Hour),
			run("e2", "fa", "r5", keyhold.RunSucceeded, 3*time.Hour-time.Nanosecond),
			run("e2", "fa", "r6", keyhold.RunSucceeded, 3*time.Hour), // at to: not counted
			run("e1", "fa", "r7", keyhold.RunFailed, 59*time.Minute), // before from
			run("e3", "fa", "r8", keyhold.RunFailed, 2*time.Hour),    // another tenant
		} {
			if err := tx.PutFlowRun(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.FlowRunCounts(ctx, "t1", at(time.Hour), at(3*time.Hour))
		if err != nil {
			return err
		}
		equal(t, "FlowRunCounts", got, []keyhold.FlowRunCount{
			{EnvID: "e1", FlowID: "fa", Status: keyhold.RunFailed, Count: 2},
			{EnvID: "e1", FlowID: "fa", Status: keyhold.RunSucceeded, Count: 1},
			{EnvID: "e1", FlowID: "fb", Status: keyhold.RunWaiting, Count: 1},
			{EnvID: "e2", FlowID: "fa", Status: keyhold.RunSucceeded, Count: 1},
		})
		none, err := tx.FlowRunCounts(ctx, "nobody", at(0), at(24*time.Hour))
		if err != nil {
			return err
		}
		equal(t, "FlowRunCounts(no such tenant)", len(none), 0)
		return nil
	})
}
