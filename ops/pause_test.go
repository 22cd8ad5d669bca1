package ops_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestPausedStepWaits: a step that returns Paused, many more times than
// MaxAttempts, leaves its operation Running at that step with the reason in
// ErrorMsg, no error code, no attempt counted and no rollback; the step is
// run again only after the pause's wait; once it can go on, the operation
// finishes and the message is gone.
func TestPausedStepWaits(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		cfg := fast(open(t))
		cfg.MaxAttempts = 2
		r := newRunner(t, cfg)
		const reason = "environment e1 is locked: re-enable it"
		const wait = 50 * time.Millisecond
		var locked atomic.Bool
		locked.Store(true)
		var c counter
		var rollbacks atomic.Int32
		r.Register("guarded", ops.Kind{Steps: []ops.Step{
			{Name: "work", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				n := c.add(op, "work")
				if !locked.Load() {
					return ops.StepResult{}, nil
				}
				op.Done = 99 // dropped: a paused run records nothing
				if n%2 == 0 {
					// Marks don't matter: a Paused error in the chain pauses.
					return ops.StepResult{}, ops.Permanent(fmt.Errorf("wrapped: %w", ops.Paused(reason, wait)))
				}
				return ops.StepResult{}, ops.Paused(reason, wait)
			}},
			{Name: "finish", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				c.add(op, "finish")
				return ops.StepResult{}, nil
			}},
		}, Rollback: func(ctx context.Context, op *keyhold.Operation) error {
			rollbacks.Add(1)
			return nil
		}})
		start(t, r)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		op := newOp("guarded", "e1")
		if err := r.Submit(ctx, op); err != nil {
			t.Fatal(err)
		}
		for c.get(op.ID, "work") < 2*cfg.MaxAttempts+1 {
			if ctx.Err() != nil {
				t.Fatalf("the paused step ran %d times in 30 s", c.get(op.ID, "work"))
			}
			time.Sleep(5 * time.Millisecond)
		}
		// The pause is recorded by the run that paused: wait for the
		// stored operation to say so.
		var got *keyhold.Operation
		for {
			var err error
			if got, err = r.Get(ctx, op.ID); err != nil {
				t.Fatal(err)
			}
			if ops.IsPaused(got) || ctx.Err() != nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got.State != keyhold.OperationRunning || got.Step != "work" || got.ErrorCode != "" || got.ErrorMsg != ops.PausedPrefix+reason ||
			got.Attempts != 0 || got.Done != 0 || !ops.IsPaused(got) {
			t.Fatalf("paused operation: %s at %q, code %q, message %q, attempts %d, done %d; want Running at work, no code, %q, no attempts, nothing done",
				got.State, got.Step, got.ErrorCode, got.ErrorMsg, got.Attempts, got.Done, ops.PausedPrefix+reason)
		}
		if got.LeaseOwner != r.Owner() || !got.LeaseUntil.After(got.UpdatedAt) {
			t.Errorf("paused operation's lease %q until %v (updated %v): want it reserved by the runner that paused it", got.LeaseOwner, got.LeaseUntil, got.UpdatedAt)
		}
		// The step waits between runs: at most one run per pause wait
		// (and the first at once).
		before := c.get(op.ID, "work")
		const window = 500 * time.Millisecond
		time.Sleep(window)
		if runs := c.get(op.ID, "work") - before; runs < 1 || runs > int(window/wait)+1 {
			t.Errorf("the paused step ran %d times in %v, want between 1 and %d (once per %v)", runs, window, int(window/wait)+1, wait)
		}
		if n := rollbacks.Load(); n != 0 {
			t.Fatalf("%d rollbacks while paused, want none", n)
		}
		locked.Store(false)
		got, err := r.Wait(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != keyhold.OperationSucceeded || got.ErrorCode != "" || got.ErrorMsg != "" || ops.IsPaused(got) || got.Attempts != 0 {
			t.Errorf("resumed operation: %s %q %q attempts %d; want Succeeded with no message", got.State, got.ErrorCode, got.ErrorMsg, got.Attempts)
		}
		if n := c.get(op.ID, "finish"); n != 1 {
			t.Errorf("the step after the pause ran %d times, want 1", n)
		}
		if n := rollbacks.Load(); n != 0 {
			t.Errorf("%d rollbacks, want none", n)
		}
	})
}

// TestPausedThenFault: a paused operation whose step then fails
// transiently is no longer shown paused; one that then fails for good
// rolls back with that failure's code and message.
func TestPausedThenFault(t *testing.T) {
	cfg := fast(storetest.OpenSQLite(t))
	cfg.MaxAttempts = 3
	r := newRunner(t, cfg)
	var c counter
	var seen atomic.Value // the operation as the third run saw it
	r.Register("pause-fault", ops.Kind{Steps: []ops.Step{{Name: "work", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		switch c.add(op, "work") {
		case 1:
			return ops.StepResult{}, ops.Paused("waiting", 0) // MinBackoff
		case 2:
			return ops.StepResult{}, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "vault down")
		case 3:
			seen.Store(*op)
			return ops.StepResult{}, keyhold.Errorf(keyhold.CodeBadRequest, "broken for good")
		}
		return ops.StepResult{}, errors.New("ran too often")
	}}}})
	start(t, r)
	got := submitWait(t, r, newOp("pause-fault", "e2"))
	if third, _ := seen.Load().(keyhold.Operation); third.ErrorMsg != "" || ops.IsPaused(&third) || third.Attempts != 1 {
		t.Errorf("after a pause and a transient failure the operation shows message %q, attempts %d; want no message, 1 attempt", third.ErrorMsg, third.Attempts)
	}
	if got.State != keyhold.OperationFailed || got.ErrorCode != keyhold.CodeBadRequest || got.ErrorMsg != "broken for good" || ops.IsPaused(got) {
		t.Errorf("operation %s %q %q, want Failed BadRequest \"broken for good\"", got.State, got.ErrorCode, got.ErrorMsg)
	}
}

// TestResumeWakesPaused: an operation paused for an hour runs again at once
// when Resume releases it, and finishes; Resume of a target with nothing
// paused releases nothing.
func TestResumeWakesPaused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		r := newRunner(t, fast(open(t)))
		var locked atomic.Bool
		locked.Store(true)
		var c counter
		r.Register("hour", ops.Kind{Steps: []ops.Step{{Name: "work", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			c.add(op, "work")
			if locked.Load() {
				return ops.StepResult{}, ops.Paused("locked for a while", time.Hour)
			}
			return ops.StepResult{}, nil
		}}}})
		start(t, r)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		op := newOp("hour", "e3")
		if err := r.Submit(ctx, op); err != nil {
			t.Fatal(err)
		}
		for {
			got, err := r.Get(ctx, op.ID)
			if err != nil || ctx.Err() != nil {
				t.Fatalf("waiting for the pause: %v, %v", err, ctx.Err())
			}
			if ops.IsPaused(got) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n, err := r.Resume(ctx, "nothing-here"); err != nil || n != 0 {
			t.Fatalf("Resume of another target = %d, %v; want 0", n, err)
		}
		locked.Store(false)
		n, err := r.Resume(ctx, "e3")
		if err != nil || n != 1 {
			t.Fatalf("Resume = %d, %v; want 1", n, err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second) // far less than the hour
		defer wcancel()
		got, err := r.Wait(wctx, op.ID)
		if err != nil || got.State != keyhold.OperationSucceeded || c.get(op.ID, "work") != 2 {
			t.Fatalf("after Resume: %+v, %v, %d runs; want Succeeded after 2 runs", got, err, c.get(op.ID, "work"))
		}
	})
}

// TestPauseReasonStoredOnce: a pause's reason is stored once, as the
// operation's PhaseReason, with no copy in its error message; Get shows
// it as the message a pause has always shown (PausedPrefix + reason), and
// so does a row paused before that rule, which holds both.
func TestPauseReasonStoredOnce(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		s := open(t)
		cfg := fast(s)
		cfg.MinBackoff = time.Hour // one run: the pause then holds
		r := newRunner(t, cfg)
		const reason = "environment e1 is locked: re-enable it"
		r.Register("held", ops.Kind{Steps: []ops.Step{
			{Name: "work", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				return ops.StepResult{}, ops.Paused(reason, time.Hour)
			}},
		}})
		start(t, r)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		op := newOp("held", "e1")
		if err := r.Submit(ctx, op); err != nil {
			t.Fatal(err)
		}
		stored := func() *keyhold.Operation {
			t.Helper()
			var got *keyhold.Operation
			if err := s.View(ctx, func(tx keyhold.Tx) (err error) {
				got, err = tx.Operation(ctx, op.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return got
		}
		for !ops.IsPaused(stored()) {
			if ctx.Err() != nil {
				t.Fatalf("the operation never paused: %+v", stored())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got := stored(); got.PhaseReason != reason || got.ErrorMsg != "" || got.ErrorCode != "" {
			t.Errorf("stored pause: reason %q, message %q, code %q; want %q, no message, no code", got.PhaseReason, got.ErrorMsg, got.ErrorCode, reason)
		}
		want := ops.PausedPrefix + reason
		if got, err := r.Get(ctx, op.ID); err != nil || got.ErrorMsg != want || got.PhaseReason != reason {
			t.Errorf("Get = message %q, reason %q, %v; want %q, %q", got.ErrorMsg, got.PhaseReason, err, want, reason)
		}
		// A row paused before the rule holds the message too: it reads
		// the same.
		storetest.Exec(t, s, `UPDATE operations SET error_msg = ? WHERE id = ?`, want, op.ID)
		if got, err := r.Get(ctx, op.ID); err != nil || got.ErrorMsg != want {
			t.Errorf("Get of an old row = message %q, %v; want %q", got.ErrorMsg, err, want)
		}
	})
}
