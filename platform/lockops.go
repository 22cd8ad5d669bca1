package platform

import (
	"context"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
)

// Operations on Locked environments. The customer's revocation must stop
// everything that reads or rewrites an environment's data, not only the
// data plane:
//
//   - Starting an operation on a Locked environment is refused with
//     CodeEnvironmentLocked (lockedError: it names the policy and what was
//     revoked) and changes nothing: link, swap, re-key and unlink call
//     requireServing in the transaction that starts them. Rotation pickup
//     leaves out the wrapped keys of Locked environments, and a running
//     rotation skips them, so the policy's other environments still move to
//     the new key version; the pickup after the re-enable moves the rest.
//   - An operation running when its environment locks pauses (ops.Paused)
//     rather than fail or roll back: every step of link, unlink and re-key
//     checks the environment before it starts (pausable), and again inside
//     each transaction that changes keys or data (changeEnv, the re-key's
//     reseals), so that nothing is written after the lock commits; a step
//     that fails while the environment is Locked (its cached keys were
//     dropped and the customer's key refuses the unwrap) pauses too. The
//     operation shows "Paused: environment … is locked: …" and looks again
//     every lockedRecheck; after EnableEnvironment its step runs again,
//     from the cursor it last recorded, and the operation finishes.
//
// The rollback of a failed operation is not paused: it changes only the
// environment's record (its encryption status), never keys or data.

// lockedRecheck is how long an operation paused on a Locked environment
// waits before its step looks again: at most this long passes between
// the re-enable and the operation going on. A variable so that tests can
// shorten it.
var lockedRecheck = 5 * time.Second

// requireServing refuses, inside tx, to start work on env unless it is
// Enabled: a Locked environment answers CodeEnvironmentLocked, naming the
// policy and the revocation (lockedError), and any other state
// CodeEnvironmentDisabled. what completes "only an Enabled environment can
// be …" in the refusal ("linked to an enterprise policy").
//
// It is the guard of every operation that reads or rewrites an
// environment's data outside the data plane (which has its own check, Environments.access): link,
// swap, re-key and unlink call it, and backup, restore and copy, when they
// come, must call it too, in the transaction that starts them, and wrap
// their steps with pausable so that a lock while they run pauses them.
func requireServing(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment, what string) error {
	switch env.State {
	case keyhold.StateEnabled:
		return nil
	case keyhold.StateLocked:
		return lockedError(ctx, tx, env)
	}
	return keyhold.Errorf(keyhold.CodeEnvironmentDisabled,
		"environment %s is %s: only an Enabled environment can be %s; enable it first", env.ID, env.State, what)
}

// lockPause is the pause (ops.Paused) of an operation whose environment,
// read in tx, is Locked: its message is the data plane's refusal, and
// says that the operation goes on after the re-enable.
func lockPause(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	return ops.Paused(keyhold.ErrorMessage(lockedError(ctx, tx, env))+"; the operation then resumes where it paused", lockedRecheck)
}

// pauseIfLocked returns lockPause if environment envID is Locked, inside
// tx: the check that makes a write of an operation's step atomic with a
// lock. A missing environment is not Locked (the step reports it).
func pauseIfLocked(ctx context.Context, tx keyhold.Tx, envID string) error {
	env, err := tx.Environment(ctx, envID)
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound:
		return nil
	case err != nil:
		return err
	case env.State == keyhold.StateLocked:
		return lockPause(ctx, tx, env)
	}
	return nil
}

// checkLocked is pauseIfLocked in a transaction of its own.
func (p *Health) checkLocked(ctx context.Context, envID string) error {
	return p.store.View(ctx, func(tx keyhold.Tx) error { return pauseIfLocked(ctx, tx, envID) })
}

// envLocked reports whether environment envID is Locked, inside tx. A
// missing environment is not.
func envLocked(ctx context.Context, tx keyhold.Tx, envID string) (bool, error) {
	env, err := tx.Environment(ctx, envID)
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return env.State == keyhold.StateLocked, nil
}

// pausable wraps a step of an operation on an environment (op.Target) so
// that a Locked environment pauses the operation: the step doesn't run if
// the environment is Locked when it would start, and an error of a step
// that ran while the environment locked (an unwrap refused because the key
// was revoked, say) becomes the pause, so that the operation is neither
// failed nor rolled back. The step itself checks again inside the
// transactions that write (changeEnv, pauseIfLocked), which the lock can't
// slip past.
func (p *Health) pausable(run func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error)) func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	return func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		if err := p.checkLocked(ctx, op.Target); err != nil {
			return ops.StepResult{}, err
		}
		res, err := run(ctx, op)
		if err == nil || errors.Is(err, ops.ErrPaused) || ctx.Err() != nil {
			return res, err
		}
		if perr := p.checkLocked(ctx, op.Target); errors.Is(perr, ops.ErrPaused) {
			p.log.InfoContext(ctx, "operation step failed on a locked environment: pausing it", "op", op.ID, "environment", op.Target, "step", op.Step, "err", err)
			return ops.StepResult{}, perr
		}
		if classifyKeyError(err) == keyhold.HealthUnhealthy {
			p.kickEnvPolicy(ctx, op.Target) // a live path met a revocation: check now (feed.go)
		}
		return res, err
	}
}

// kickEnvPolicy asks the health monitor to check the policy an
// environment is linked to, if any.
func (p *Health) kickEnvPolicy(ctx context.Context, envID string) {
	var policyID string
	if err := p.store.View(ctx, func(tx keyhold.Tx) error {
		env, err := tx.Environment(ctx, envID)
		if err == nil {
			policyID = env.PolicyID
		}
		return err
	}); err == nil {
		p.kickHealth(policyID)
	}
}
