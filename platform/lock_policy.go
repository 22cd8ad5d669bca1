package platform

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
)

// Locks that do not come from a probe. Deleting the resource group that
// holds an enterprise policy deletes the policy and its managed identity:
// the only identity the customer's key was granted to is gone, so every
// environment linked to the policy is locked by the deleting transaction
// itself (the policy service calls LockLinkedTx through its
// policy.Config.LockLinked hook), not by the next health probe. The
// environments keep their PolicyID: a policy redeployed under the same
// resource id, naming the same key, is the one EnableEnvironment unlocks
// them with (enable.go).

// LockLinkedTx locks, in tx, every environment linked to pol because pol is
// being deleted by actor; why says how ("deleted with its resource group
// rg"). It is the policy service's policy.Config.LockLinked hook and runs
// inside the policy's deleting transaction, so the policy never disappears
// while an environment still serves under it: an error aborts the deletion.
//
// Each environment not yet Locked becomes Locked with LockedAt now (its
// deletion countdown starts, countdown.go); one already Locked keeps its
// LockedAt, so deleting the policy again does not postpone the countdown.
// Either way it gets an environment.lock audit entry as actor, naming the
// policy, what happened to it and who did it, which is the cause its
// refused requests then show. after drops the environments' cached keys;
// the caller runs it once tx has committed.
func (p *Health) LockLinkedTx(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, actor *keyhold.Identity, why string) (after func(), err error) {
	if actor == nil || actor.PrincipalID == "" {
		return nil, keyhold.Errorf(keyhold.CodeUnauthorized, "locking the environments of enterprise policy %s needs the identity that deletes it", pol.ID())
	}
	who := "principal " + actor.PrincipalID
	if pr, err := tx.Principal(ctx, actor.PrincipalID); err == nil && pr.DisplayName != "" {
		who += " (" + pr.DisplayName + ")"
	}
	reason := fmt.Sprintf("enterprise policy %s was %s by %s, and with it its managed identity %s, the identity its customer-managed key was granted to; "+
		"redeploy the policy with the same key vault and key, and grant its new managed identity access to the key",
		pol.ID(), why, who, pol.PrincipalID)
	ids, err := p.lockEnvsTx(ctx, tx, pol.ID(), actor, reason, true)
	if err != nil {
		return nil, err
	}
	policyID := pol.ID()
	return func() { p.dropLocked(context.WithoutCancel(ctx), policyID, reason, ids) }, nil
}

// lockEnvsTx locks, in tx, the environments linked to policyID, as actor,
// for reason (lockedError shows it to their callers). Each one not yet
// Locked becomes Locked, with LockedAt now (starting its deletion
// countdown), and an environment.lock audit entry "{from} -> Locked:
// {reason}". With again, an environment already Locked gets an entry
// "still Locked: {reason}", its LockedAt kept, so that its refusals name the
// latest cause; without it, it is left alone. It returns the ids of the
// environments it audited; the caller calls dropLocked with them once tx
// has committed.
func (p *Health) lockEnvsTx(ctx context.Context, tx keyhold.Tx, policyID string, actor *keyhold.Identity, reason string, again bool) ([]string, error) {
	envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{PolicyID: policyID})
	if err != nil {
		return nil, err
	}
	now := p.clock.Now().UTC()
	var ids []string
	found := false // the vault changes behind the lock, for every event (events.go)
	for _, env := range envs {
		if !found && (env.State != keyhold.StateLocked || again) {
			if ctx, err = p.withLockChanges(ctx, tx, env.TenantID, policyID); err != nil {
				return nil, err
			}
			found = true
		}
		detail := fmt.Sprintf("%s -> %s: %s", env.State, keyhold.StateLocked, reason)
		if env.State == keyhold.StateLocked {
			if !again {
				continue
			}
			detail = fmt.Sprintf("still %s: %s", keyhold.StateLocked, reason)
		} else {
			env.State, env.UpdatedAt, env.LockedAt = keyhold.StateLocked, now, now // starts the deletion countdown (countdown.go)
			if err := tx.UpdateEnvironment(ctx, env); err != nil {
				return nil, err
			}
		}
		if err := p.audit(ctx, tx, actor, auditEnvLock, envTarget(env.ID), env.ID, detail); err != nil {
			return nil, err
		}
		ids = append(ids, env.ID)
	}
	return ids, nil
}

// dropLocked zeroes the cached keys of environments that lockEnvsTx locked,
// once its transaction has committed, and logs each lock.
// The drops of the batch go to the other replicas together (dropKeysOf):
// one publish for the policy's environments, not one each.
func (p *Health) dropLocked(ctx context.Context, policyID, reason string, ids []string) {
	p.dropKeysOf(ids)
	for _, id := range ids {
		p.log.WarnContext(ctx, "environment locked", "environment", id, "policy", policyID, "reason", reason)
	}
}
