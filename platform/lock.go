package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Locked environments. A policy found Unhealthy locks its environments
// (health.go); dataAccess refuses a Locked environment to everyone, the
// platform's own administrators included, with CodeEnvironmentLocked; and
// only EnableEnvironment, which proves access by unwrapping the
// environment's key with the customer's key, serves it again.

// lockReason says why an environment of policyID is locked; why is the
// key vault's answer ("Code (Inner): message"), if known.
func lockReason(policyID, why string) string {
	s := "the customer-managed key of enterprise policy " + policyID + " is not accessible"
	if why != "" {
		s += " (" + why + ")"
	}
	return s
}

// lockedError is the refusal of a Locked environment's data: it names the
// policy and the cause recorded when the environment was locked.
func lockedError(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	reason := lockReason(env.PolicyID, "")
	if entries, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: env.TenantID, EnvID: env.ID, Limit: 50}); err == nil {
		for _, e := range entries {
			if e.Action == auditEnvLock {
				if _, r, ok := strings.Cut(e.Detail, ": "); ok {
					reason = r
				}
				break
			}
		}
	}
	return keyhold.Errorf(keyhold.CodeEnvironmentLocked,
		"environment %s is locked: %s; a key vault admin must restore access, then an administrator re-enables the environment",
		env.ID, reason)
}

// EnableEnvironment serves a Locked environment again, once its key is
// accessible. The caller must be a platform administrator (CodeForbidden)
// with Reader on the linked policy (CodeForbidden); the environment must be
// Locked (CodeConflict). It proves access by unwrapping each epoch's
// wrapped key with the customer-managed key as the policy's identity:
// only the original key material does, a new key or version of the same
// name does not. A failed unwrap keeps its code (Forbidden, KeyNotFound,
// VaultNotFound: still revoked; KeyVaultUnavailable: retry) and changes
// nothing. On success the environment is Enabled and the policy Healthy,
// both audited.
func (p *Platform) EnableEnvironment(ctx context.Context, envID string) error {
	id, err := caller(ctx)
	if err != nil {
		return err
	}
	if p.cmk == nil {
		return errCMKOff
	}
	var env *keyhold.Environment
	var pol *keyhold.EnterprisePolicy
	var wks []*keyhold.WrappedKey
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		var err error
		if env, err = environmentFor(ctx, tx, id, envID); err != nil {
			return err
		}
		if env.State != keyhold.StateLocked {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s is %s, not Locked: only a locked environment is re-enabled this way", env.ID, env.State)
		}
		if env.PolicyID == "" {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s is Locked but linked to no enterprise policy: unlock it through support", env.ID)
		}
		pol, err = policyByID(ctx, tx, env.PolicyID)
		if c := keyhold.ErrorCode(err); c == keyhold.CodeResourceNotFound || c == keyhold.CodeNotFound {
			return keyhold.Errorf(keyhold.CodeNotFound, "enterprise policy %s, which environment %s is linked to, was not found", env.PolicyID, env.ID)
		} else if err != nil {
			return err
		}
		if err := requireReader(ctx, tx, id, pol); err != nil {
			return err
		}
		wks, err = tx.WrappedKeys(ctx, env.ID)
		return err
	})
	if err != nil {
		return err
	}
	var current bool
	for _, g := range groupByEpoch(wks) {
		wk := g.source()
		current = current || wk.Epoch == env.Epoch
		ek, err := p.unwrapWrapped(ctx, wk, env.TenantID)
		if err != nil {
			var ke *keyhold.Error
			if errors.As(err, &ke) {
				return &keyhold.Error{Code: ke.Code, Inner: ke.Inner, Err: err, Message: fmt.Sprintf(
					"environment %s stays locked: its key (epoch %d) could not be unwrapped with the customer-managed key of enterprise policy %s: %s",
					env.ID, wk.Epoch, pol.ID(), ke.Message)}
			}
			return fmt.Errorf("environment %s stays locked: %w", env.ID, err)
		}
		ek.Destroy()
	}
	if !current {
		return fmt.Errorf("environment %s has no wrapped key for its epoch %d", env.ID, env.Epoch)
	}
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, env.ID)
		if err != nil {
			return err
		}
		if e.State != keyhold.StateLocked {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s became %s meanwhile: nothing to re-enable", e.ID, e.State)
		}
		if e.Epoch != env.Epoch || e.PolicyID != env.PolicyID {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s changed while its key was checked: retry", e.ID)
		}
		now := p.clock.Now().UTC()
		e.State, e.UpdatedAt, e.LockedAt = keyhold.StateEnabled, now, time.Time{} // stops the deletion countdown
		if err := tx.UpdateEnvironment(ctx, e); err != nil {
			return err
		}
		if err := p.audit(ctx, tx, id, auditEnvEnable, envTarget(e.ID), e.ID,
			fmt.Sprintf("Locked -> Enabled: its key unwrapped with the customer-managed key of enterprise policy %s", pol.ID())); err != nil {
			return err
		}
		cur, err := policyByID(ctx, tx, pol.ID())
		if err != nil {
			return err
		}
		if cur.HealthStatus != keyhold.HealthHealthy {
			detail := fmt.Sprintf("health %s -> %s: key access confirmed by unwrapping the key of environment %s", cur.HealthStatus, keyhold.HealthHealthy, e.ID)
			cur.HealthStatus, cur.UpdatedAt = keyhold.HealthHealthy, now
			if err := tx.UpdatePolicy(ctx, cur); err != nil {
				return err
			}
			return p.audit(ctx, tx, id, auditPolicyHealth, cur.ID(), "", detail)
		}
		return nil
	})
	if err == nil {
		p.DropKeys(env.ID)
	}
	return err
}
