package ops

import (
	"context"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
)

// Pausing. Some steps can't go on for a while for a reason outside the
// operation that is neither a failure nor a fault to retry a bounded
// number of times: the environment they work on is Locked because its
// customer-managed key was revoked, and only an administrator's re-enable,
// days later perhaps, lets them continue. Failing (and rolling back) would
// undo work the customer wants done; retrying as after a transient error
// would fail the operation after Config.MaxAttempts. Such a step returns
// Paused instead:
//
//   - the operation stays Running at the same step, with nothing of the
//     step's run recorded (as after any error: its changes to op's
//     Progress, Done and Total are dropped, so the step must not have
//     changed data it can't find again when it runs later — which every
//     idempotent step can);
//   - its Phase is keyhold.OperationPaused (IsPaused) and its PhaseReason
//     says why; its ErrorCode stays empty, and its ErrorMsg, as Get
//     gives it, shows the reason prefixed "Paused: " (PausedPrefix), as
//     the API always has (the reason is stored once, as PhaseReason:
//     keyhold.Operation.ShowPause);
//   - Attempts does not grow, so a pause never fails the operation;
//   - the Runner stops working on it (no goroutine, no heartbeat) and
//     leaves it reserved until the pause's wait ends; then any Runner may
//     claim it and run the step again, which either pauses again or goes
//     on. The next step that ends without error clears the message.
//
// A rollback that returns Paused is retried as after a transient error:
// pausing is for steps.

// PausedPrefix begins the ErrorMsg of a paused operation, for display
// only: IsPaused reads the phase.
const PausedPrefix = keyhold.PausedPrefix

// ErrPaused matches, with errors.Is, every error that Paused returns.
var ErrPaused = errors.New("ops: the operation is paused")

// pausedError is what Paused returns.
type pausedError struct {
	reason string
	after  time.Duration
}

func (e *pausedError) Error() string        { return "ops: paused: " + e.reason }
func (e *pausedError) Is(target error) bool { return target == ErrPaused }

// Paused returns the error a step returns to pause its operation (see
// above) rather than fail it: reason is the client-facing explanation
// (the operation's PhaseReason, and its ErrorMsg after PausedPrefix: say what is
// waited for and what ends the wait), and after is how long to wait before
// the step runs again (Config.MinBackoff if not positive). A Paused error
// anywhere in a step's error chain pauses, whatever Permanent or Transient
// marks wrap it.
func Paused(reason string, after time.Duration) error {
	return &pausedError{reason: reason, after: after}
}

// IsPaused reports whether op is paused: Running, in phase Paused.
func IsPaused(op *keyhold.Operation) bool {
	return op.State == keyhold.OperationRunning && op.Phase == keyhold.OperationPaused
}

// Resume makes the paused operations on target claimable at once, rather
// than when their pause's wait ends, and wakes this Runner (the others
// find them at their next poll): the caller has just removed what they
// waited for (a re-enabled environment). It returns how many it released.
// A step that still can't go on simply pauses again. An operation that is
// being written meanwhile (CodeConflict) is left to its wait.
func (r *Runner) Resume(ctx context.Context, target string) (int, error) {
	n := 0
	err := r.store.Update(ctx, func(tx keyhold.Tx) error {
		n = 0
		running, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: target, State: keyhold.OperationRunning})
		if err != nil {
			return err
		}
		for _, op := range running {
			if !IsPaused(op) {
				continue
			}
			op.LeaseOwner, op.LeaseUntil = "", time.Time{}
			if err := tx.UpdateOperation(ctx, op); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		r.Kick()
	}
	return n, nil
}
