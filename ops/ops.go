// Package ops runs Keyhold's durable operations: link, unlink, swap, re-key,
// rotation pickup and the other long-running work that issue 4 keeps in the
// store (keyhold.Operation) so that it survives a crash.
//
// A Kind is a list of named steps and a rollback. A Runner stores operations
// (Submit), and its worker loop (Run) claims them one at a time with a lease
// (keyhold.OperationTx.ClaimOperation), runs their steps in order, and
// records each step's end in the store before it starts the next. Any number
// of Runners, in one process or in replicas sharing a PostgreSQL database,
// can work on one store: while their leases are healthy, no two of them run
// the same operation at once.
//
// # Steps are idempotent
//
// A step's effects and the record that it ended are written in different
// transactions, and the process may die between them (kill -9, power loss).
// The next Runner to claim the operation then runs the step again, so every
// step, and the rollback, must be idempotent: running it twice, or after a
// partial run, must leave the same state as running it once. Steps that
// work in batches keep their cursor in the operation (Progress, Done,
// Total) and return StepResult{Again: true}; a crash then repeats at most one
// batch.
//
// # Failures
//
// A step that returns a transient error (see IsPermanent) is retried with
// exponential backoff, up to Config.MaxAttempts times. A permanent error, or
// the last transient one, fails the operation: the Runner records the error
// (ErrorCode and ErrorMsg) and the phase RollingBack, still in state
// Running (that is how a Runner that picks the operation up knows to roll
// back), runs the Kind's Rollback until
// it succeeds, and then marks the operation Failed. ErrorMsg is the error's
// client-facing message (keyhold.ErrorMessage); the cause goes to the log.
//
// # Pausing
//
// A step that can't go on until something outside the operation changes
// (its environment is Locked until an administrator re-enables it) returns
// Paused: the operation neither fails nor uses up its attempts; it stays
// Running at that step in phase Paused (IsPaused), with a PhaseReason that
// says why (stored once; Get shows it as the ErrorMsg, after "Paused: "),
// and it is run again after the pause's wait, until the step goes on (see
// pause.go).
//
// # Crash testing
//
// Fault kills the process with SIGKILL at a named point when the
// KEYHOLD_FAULT environment variable names it. The Runner calls it before
// and after every step and after the step is recorded (FaultPoints lists the
// names), so that tests (see package opstest) can kill a server at every
// step boundary and check that a restart finishes or rolls back the work.
// Fault, FaultPoints and the environment variables exist only in builds
// with the keyhold_faults tag (go test -tags keyhold_faults; scripts/test.sh
// passes it): a production build has no fault point that can kill it.
package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/keyhold/keyhold"
)

// RollbackStep is the name fault points use for a Kind's rollback. No step
// may have this name.
const RollbackStep = "rollback"

// Kind is a kind of operation: its steps, run in order, and how to undo it.
type Kind struct {
	// Steps are run in order, each until it returns a StepResult that
	// isn't Again. A kind has at least one step; names are unique and
	// not RollbackStep.
	Steps []Step
	// Rollback undoes what the steps did, after a step failed for good.
	// It must be idempotent and cope with any step having partly run
	// (op.Step names the step that failed; op.Progress is as that step
	// last recorded it). It is retried, like a step, while it returns
	// transient errors. Nil: nothing to undo.
	Rollback func(ctx context.Context, op *keyhold.Operation) error
}

// Step is one idempotent step of a Kind.
type Step struct {
	// Name names the step in the operation (op.Step), the log, metrics
	// and fault points. Keep it short and stable: a stored operation
	// names the step it is at, so renaming a step breaks operations that
	// are running across an upgrade.
	Name string
	// Run does the step's work. It may change op's Progress, Done and
	// Total, which the Runner records (with the operation's new step) only
	// if Run returns a nil error; other changes to op are ignored. Run
	// must stop when ctx is done: the Runner is stopping, or lost the
	// operation's lease to another Runner.
	Run func(ctx context.Context, op *keyhold.Operation) (StepResult, error)
}

// StepResult says where an operation goes after a step ran without error.
// The zero value moves on to the next step (or finishes the operation
// after the last one).
type StepResult struct {
	// Again runs the same step again, after recording op: for a step
	// that works in batches and has more to do.
	Again bool
	// Next, if set and Again is not, names the step to run next instead
	// of the following one (a later or an earlier one).
	Next string
}

// validate checks a Kind for Register.
func (k Kind) validate(name string) error {
	if name == "" {
		return errors.New("ops: a kind needs a name")
	}
	if len(k.Steps) == 0 {
		return fmt.Errorf("ops: kind %q has no steps", name)
	}
	seen := map[string]bool{}
	for i, s := range k.Steps {
		switch {
		case s.Name == "":
			return fmt.Errorf("ops: kind %q: step %d has no name", name, i)
		case s.Name == RollbackStep:
			return fmt.Errorf("ops: kind %q: step %q: the name is reserved for the rollback", name, s.Name)
		case seen[s.Name]:
			return fmt.Errorf("ops: kind %q: two steps are named %q", name, s.Name)
		case s.Run == nil:
			return fmt.Errorf("ops: kind %q: step %q has no Run function", name, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// index returns the position of the named step, or -1.
func (k *Kind) index(step string) int {
	return slices.IndexFunc(k.Steps, func(s Step) bool { return s.Name == step })
}

// classified marks an error permanent or transient whatever its code.
type classified struct {
	err       error
	permanent bool
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// Permanent marks err as permanent: a step that returns it fails the
// operation at once, whatever err's code. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, permanent: true}
}

// Transient marks err as transient: a step that returns it is retried,
// whatever err's code (for example a CodeConflict that the step knows a
// fresh read will resolve). Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, permanent: false}
}

// IsPermanent reports whether err should fail an operation rather than be
// retried. The outermost Permanent or Transient mark in err's chain
// decides; without one, the code does (keyhold.ErrorCode): the server-side
// codes CodeInternal (which includes every error that isn't a
// *keyhold.Error, such as a database's), CodeServiceUnavailable and
// CodeKeyVaultUnavailable are transient, and every other code, the
// client's kind (bad request, forbidden, not found, conflict, …), is
// permanent.
func IsPermanent(err error) bool {
	var c *classified
	if errors.As(err, &c) {
		return c.permanent
	}
	switch keyhold.ErrorCode(err) {
	case "", keyhold.CodeInternal, keyhold.CodeServiceUnavailable, keyhold.CodeKeyVaultUnavailable:
		return false
	}
	return true
}
