package ops_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestPhaseRecorded: the Runner records each phase in the operation's
// phase, not in its messages: Queued until the first claim (counted as
// started once), Running while steps run, Paused with the reason apart
// from the message the API shows, RollingBack with the failure's message
// while the rollback runs, and none once it ended.
func TestPhaseRecorded(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		cfg := fast(open(t))
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
		r := newRunner(t, cfg)
		const reason = "environment e1 is locked: re-enable it"
		inStep, release := make(chan struct{}), make(chan struct{})
		inRollback, endRollback := make(chan struct{}), make(chan struct{})
		var locked atomic.Bool
		locked.Store(true)
		r.Register("phased", ops.Kind{Steps: []ops.Step{
			{Name: "hold", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				close(inStep)
				<-release
				return ops.StepResult{}, nil
			}},
			{Name: "guarded", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				if locked.Load() {
					return ops.StepResult{}, ops.Paused(reason, 5*time.Millisecond)
				}
				return ops.StepResult{}, keyhold.Errorf(keyhold.CodeBadRequest, "broken for good")
			}},
		}, Rollback: func(ctx context.Context, op *keyhold.Operation) error {
			select {
			case <-inRollback:
			default:
				close(inRollback)
			}
			<-endRollback
			return nil
		}})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		get := func() *keyhold.Operation {
			t.Helper()
			op, err := r.Get(ctx, "phased-1")
			if err != nil {
				t.Fatal(err)
			}
			return op
		}
		await := func(what string, c <-chan struct{}) {
			t.Helper()
			select {
			case <-c:
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
		}
		waitFor := func(what string, ok func(*keyhold.Operation) bool) *keyhold.Operation {
			t.Helper()
			for {
				op := get()
				if ok(op) {
					return op
				}
				if ctx.Err() != nil {
					t.Fatalf("waiting for %s: the operation is %s, phase %q (%q)", what, op.State, op.Phase, op.PhaseReason)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}

		op := newOp("phased", "e1")
		op.ID = "phased-1"
		if err := r.Submit(ctx, op); err != nil {
			t.Fatal(err)
		}
		if got := get(); got.Phase != keyhold.OperationQueued || got.PhaseReason != "" || got.State != keyhold.OperationRunning {
			t.Errorf("submitted: %s, phase %q (%q); want Running, Queued", got.State, got.Phase, got.PhaseReason)
		}
		start(t, r)
		await("the first step", inStep)
		if got := get(); got.Phase != keyhold.OperationInProgress || got.Step != "hold" || got.ErrorMsg != "" {
			t.Errorf("claimed: phase %q at %q, message %q; want Running at hold, no message", got.Phase, got.Step, got.ErrorMsg)
		}
		close(release)
		got := waitFor("the pause", func(op *keyhold.Operation) bool { return op.Phase == keyhold.OperationPaused })
		if got.PhaseReason != reason || got.ErrorMsg != ops.PausedPrefix+reason || got.ErrorCode != "" || !ops.IsPaused(got) {
			t.Errorf("paused: reason %q, message %q, code %q; want %q, %q, none", got.PhaseReason, got.ErrorMsg, got.ErrorCode, reason, ops.PausedPrefix+reason)
		}
		locked.Store(false)
		await("the rollback", inRollback)
		got = get()
		if got.Phase != keyhold.OperationRollingBack || got.PhaseReason != "broken for good" || got.ErrorCode != keyhold.CodeBadRequest ||
			got.ErrorMsg != "broken for good" || got.Step != "guarded" || ops.IsPaused(got) {
			t.Errorf("rolling back: phase %q (%q) at %q, %q %q; want RollingBack (broken for good) at guarded, BadRequest",
				got.Phase, got.PhaseReason, got.Step, got.ErrorCode, got.ErrorMsg)
		}
		close(endRollback)
		got, err := r.Wait(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != keyhold.OperationFailed || got.Phase != "" || got.PhaseReason != "" || got.ErrorMsg != "broken for good" {
			t.Errorf("ended: %s, phase %q (%q), message %q; want Failed, no phase, broken for good", got.State, got.Phase, got.PhaseReason, got.ErrorMsg)
		}
		if v := metric(t, reg, "keyhold_operations_started_total", map[string]string{"kind": "phased"}); v != 1 {
			t.Errorf("started %v times, want 1", v)
		}
	})
}
