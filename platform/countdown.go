package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Deletion countdown of Locked environments. An environment that stays
// Locked (its customer-managed key inaccessible) is deleted when its grace
// period, counted from Environment.LockedAt, runs out. The spec (001)
// deletes Locked Production environments after 28 days and says nothing of
// the other types, so by default a Production environment is deleted after
// 28 days and every other type is kept Locked until an administrator acts;
// the operator may set either period (Config.LockGraceProduction,
// Config.LockGraceOther). Audited warnings come 3 days and 1 day before the
// deadline. The deletion is a crypto-shred
// in two transactions: first every wrapped copy of the environment's keys
// is deleted (from then on its data can be read by no one), then the
// environment and its data. A crash between the two is finished by the next
// run. Re-enabling the environment (EnableEnvironment) clears LockedAt and
// stops the countdown; while the linked policy is Healthy again (access
// restored, waiting for an administrator to re-enable) the countdown holds:
// no warning and no deletion.

// Audit actions of the countdown.
const (
	auditEnvDeletionWarning = "environment.deletion.warning"
	auditEnvCryptoShred     = "environment.cryptoshred"
	auditEnvDelete          = "environment.delete"
)

// DefaultLockGraceProduction is how long a Production environment may stay
// Locked before it is deleted unless the operator sets another period: the
// spec's 28 days.
const DefaultLockGraceProduction = 28 * 24 * time.Hour

// KeepLocked, as a grace period (Config.LockGraceProduction,
// Config.LockGraceOther), keeps Locked environments of that type until an
// administrator re-enables or deletes them: the countdown never deletes
// them.
const KeepLocked time.Duration = -1

// LockCountdownInterval is how often the server runs RunLockCountdown.
const LockCountdownInterval = time.Hour

// lockWarnings are how long before the deadline a warning is written,
// latest last.
var lockWarnings = []time.Duration{3 * 24 * time.Hour, 24 * time.Hour}

// LockGrace is how long an environment of the given type may stay Locked
// before it is deleted, or KeepLocked if it is never deleted. Production
// gets Config.LockGraceProduction (28 days, the spec's, by default); every
// other type (Sandbox, Developer, Trial, Teams, SupportInvestigation) gets
// Config.LockGraceOther, KeepLocked by default since the spec names no
// period for them.
func (p *Health) LockGrace(sku keyhold.EnvironmentSKU) time.Duration {
	if sku == keyhold.SKUProduction {
		return p.graceProd
	}
	return p.graceOther
}

// LockDeadline is when a Locked environment is deleted; zero if it is not
// Locked, its lock time is unknown, or its type is kept Locked until an
// administrator acts.
func (p *Health) LockDeadline(env *keyhold.Environment) time.Time {
	g := p.LockGrace(env.SKU)
	if env.State != keyhold.StateLocked || env.LockedAt.IsZero() || g <= 0 {
		return time.Time{}
	}
	return env.LockedAt.Add(g)
}

// warningLabel names a warning's stage in its audit detail; the detail
// starts with it, which is how a stage already written is recognised.
func warningLabel(before time.Duration) string {
	if d := before / (24 * time.Hour); d*24*time.Hour == before {
		if d == 1 {
			return "1 day before deletion"
		}
		return fmt.Sprintf("%d days before deletion", d)
	}
	return before.String() + " before deletion"
}

// RunLockCountdown advances the deletion countdown of every Locked
// environment: it records a missing lock time (an environment locked before
// lock times were kept counts from now), writes the warning that is due,
// and crypto-shreds and deletes each environment past its deadline. It
// returns how many environments it deleted; it goes on past an environment
// that fails and returns every error, joined. It runs as the platform.
func (p *Health) RunLockCountdown(ctx context.Context) (deleted int, err error) {
	var locked []*keyhold.Environment
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		locked = nil
		envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{})
		if err != nil {
			return err
		}
		for _, env := range envs {
			if env.State == keyhold.StateLocked {
				locked = append(locked, env)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, env := range locked {
		gone, err := p.countdownEnv(ctx, env.ID)
		if err != nil {
			if ctx.Err() != nil {
				return deleted, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("environment %s: %w", env.ID, err))
		}
		if gone {
			deleted++
		}
	}
	return deleted, errors.Join(errs...)
}

// countdownEnv advances one environment's countdown and says whether it
// deleted it.
func (p *Health) countdownEnv(ctx context.Context, envID string) (bool, error) {
	due := false
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		due = false
		env, err := tx.Environment(ctx, envID)
		if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
			return nil // deleted meanwhile
		} else if err != nil {
			return err
		}
		if env.State != keyhold.StateLocked {
			return nil
		}
		now := p.clock.Now().UTC()
		if env.LockedAt.IsZero() {
			env.LockedAt = now
			if err := tx.UpdateEnvironment(ctx, env); err != nil {
				return err
			}
			p.log.WarnContext(ctx, "locked environment had no lock time: its deletion countdown starts now", "environment", env.ID)
		}
		if held, err := p.accessRestored(ctx, tx, env); err != nil || held {
			return err
		}
		deadline := p.LockDeadline(env)
		if deadline.IsZero() {
			return nil // kept until an administrator acts
		}
		if !now.Before(deadline) {
			due = true
			return nil
		}
		stage := time.Duration(0)
		for _, w := range lockWarnings {
			if w > p.LockGrace(env.SKU) {
				continue // an operator's period shorter than the warning: it would come at the lock, naming the wrong time
			}
			if !now.Before(deadline.Add(-w)) {
				stage = w
			}
		}
		if stage == 0 {
			return nil
		}
		label := warningLabel(stage)
		if done, err := p.warned(ctx, tx, env, label); err != nil || done {
			return err
		}
		system := &keyhold.Identity{TenantID: env.TenantID, PrincipalID: systemActorID}
		p.log.WarnContext(ctx, "locked environment will be deleted", "environment", env.ID, "deadline", deadline)
		return p.audit(ctx, tx, system, auditEnvDeletionWarning, envTarget(env.ID), env.ID, fmt.Sprintf(
			"%s: %s environment %s has been Locked since %s and will be deleted, its keys destroyed, at %s unless access to its customer-managed key is restored and it is re-enabled",
			label, env.SKU, env.DisplayName, env.LockedAt.Format(time.RFC3339), deadline.Format(time.RFC3339)))
	})
	if err != nil || !due {
		return false, err
	}
	return p.cryptoShred(ctx, envID)
}

// accessRestored says whether the policy env is linked to is Healthy again:
// its key is accessible and the environment waits for an administrator to
// re-enable it, so the countdown holds. An environment whose wrapped keys
// are gone (shredded) can't be re-enabled and never holds.
func (p *Health) accessRestored(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) (bool, error) {
	if env.PolicyID == "" {
		return false, nil
	}
	wks, err := tx.WrappedKeys(ctx, env.ID)
	if err != nil || len(wks) == 0 {
		return false, err
	}
	pol, err := policyByID(ctx, tx, env.PolicyID)
	if keyhold.IsNotFound(err) || keyhold.ErrorCode(err) == keyhold.CodeBadRequest {
		return false, nil // no policy: nothing can restore access
	} else if err != nil {
		return false, err
	}
	if !strings.EqualFold(pol.SystemID, env.PolicySystemID) && checkRecreated(env, pol, wks) != nil {
		return false, nil // a recreated policy that can't unlock it: its own health says nothing of this key
	}
	return pol.HealthStatus == keyhold.HealthHealthy, nil
}

// warned says whether a warning with the given label was written since
// env was locked.
func (p *Health) warned(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment, label string) (bool, error) {
	f := keyhold.AuditFilter{TenantID: env.TenantID, EnvID: env.ID, Limit: 200}
	for {
		es, err := tx.ListAudit(ctx, f)
		if err != nil {
			return false, err
		}
		for _, e := range es {
			if e.At.Before(env.LockedAt) {
				return false, nil // newest first: older entries belong to an earlier lock
			}
			if e.Action == auditEnvDeletionWarning && len(e.Detail) >= len(label) && e.Detail[:len(label)] == label {
				return true, nil
			}
		}
		if len(es) < f.Limit || len(es) == 0 {
			return false, nil
		}
		f.BeforeID = es[len(es)-1].ID
	}
}

// cryptoShred deletes a Locked environment past its deadline: its wrapped
// keys in one transaction, then the environment and its data in another.
// An environment whose keys are already gone (a crash after the first) is
// just deleted.
func (p *Health) cryptoShred(ctx context.Context, envID string) (bool, error) {
	// still re-checks, inside a transaction, that env is due for deletion.
	still := func(tx keyhold.Tx) (*keyhold.Environment, error) {
		env, err := tx.Environment(ctx, envID)
		if err != nil {
			return nil, err
		}
		d := p.LockDeadline(env)
		if d.IsZero() || p.clock.Now().Before(d) {
			return nil, nil
		}
		if held, err := p.accessRestored(ctx, tx, env); err != nil || held {
			return nil, err
		}
		return env, nil
	}
	var shredded bool
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		shredded = false
		env, err := still(tx)
		if err != nil || env == nil {
			return err
		}
		wks, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil || len(wks) == 0 {
			return err
		}
		for _, wk := range wks {
			if err := tx.DeleteWrappedKey(ctx, wk.EnvID, wk.Epoch, wk.Root); err != nil {
				return err
			}
		}
		shredded = true
		system := &keyhold.Identity{TenantID: env.TenantID, PrincipalID: systemActorID}
		return p.audit(ctx, tx, system, auditEnvCryptoShred, envTarget(env.ID), env.ID, fmt.Sprintf(
			"destroyed %d wrapped copies of the keys of environment %s, Locked since %s past its deadline %s: its data is unreadable by anyone",
			len(wks), env.DisplayName, env.LockedAt.Format(time.RFC3339), p.LockDeadline(env).Format(time.RFC3339)))
	})
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	p.DropKeys(envID)
	if shredded {
		p.log.WarnContext(ctx, "locked environment crypto-shredded: its keys are destroyed", "environment", envID)
	}
	var gone bool
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		gone = false
		env, err := still(tx)
		if err != nil || env == nil {
			return err
		}
		if err := tx.DeleteEnvironment(ctx, env.ID); err != nil {
			return err
		}
		gone = true
		system := &keyhold.Identity{TenantID: env.TenantID, PrincipalID: systemActorID}
		return p.audit(ctx, tx, system, auditEnvDelete, envTarget(env.ID), env.ID, fmt.Sprintf(
			"deleted %s environment %s and its data: Locked since %s, access to the customer-managed key of enterprise policy %q was not restored within %s",
			env.SKU, env.DisplayName, env.LockedAt.Format(time.RFC3339), env.PolicyID, p.LockGrace(env.SKU)))
	})
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if gone {
		p.DropKeys(envID)
		p.log.WarnContext(ctx, "locked environment deleted: its deletion countdown ran out", "environment", envID)
	}
	return gone, nil
}
