package platform

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// Re-enabling a Locked environment. An environment is locked when the key
// of the enterprise policy it is linked to became inaccessible (health.go)
// or the policy was deleted with its resource group (lock_policy.go). It
// serves again only once access to the ORIGINAL key material is proven:
// each epoch's wrapped key is unwrapped with the very key version it was
// wrapped under. A new key, or a new version, of the same name proves
// nothing and unlocks nothing.
//
// # A recreated policy
//
// A policy deleted with its resource group takes its managed identity with
// it. The customer restores access by redeploying a policy with the same
// resource id, naming the same vault and key: it has a new systemId and a
// new managed identity, which the vault administrator grants the key. The
// environment still names the policy's resource id (PolicyID) but the old
// systemId (PolicySystemID), and its wrapped keys name the old identity;
// so, when the systemIds differ, the key is unwrapped as the current
// policy's identity, and on success the same transaction that re-enables
// the environment moves it to the recreated policy: the wrapped keys name
// the new identity and PolicySystemID the new systemId (audited as
// environment.policy.recreated). A recreated policy that names another key
// (or region, or tenant) is refused with CodeConflict, changing nothing:
// adopting it would silently swap the environment's key.

// OpEnable is the kind of the operation that records a re-enabled Locked
// environment (EnableEnvironmentOp).
const OpEnable = "enable"

// auditEnvPolicyRecreated is the audit action of an environment moved, on
// its re-enable, to the recreated policy of the same resource id.
const auditEnvPolicyRecreated = "environment.policy.recreated"

// EnableEnvironment serves a Locked environment again, once its key is
// accessible. The caller must be a platform administrator (CodeForbidden)
// with Reader on the linked policy (CodeForbidden); the environment must be
// Locked (CodeConflict). The rest is enableLocked's, audited as the caller:
// it proves access by unwrapping each epoch's wrapped key with the
// customer-managed key (only the original key material does); a failed
// unwrap keeps its code (Forbidden, KeyNotFound, VaultNotFound: still
// revoked; KeyVaultUnavailable: retry) and changes nothing; on success the
// environment is Enabled and the policy Healthy, both audited.
func (p *Health) EnableEnvironment(ctx context.Context, envID string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	if p.cmk == nil {
		return errCMKOff
	}
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		pol, err := lockedPolicy(ctx, tx, env)
		if err != nil {
			return err
		}
		return requireReader(ctx, tx, id, pol)
	})
	if err != nil {
		return err
	}
	return p.enableLocked(ctx, id, envID)
}

// lockedPolicy checks that env is Locked and linked to a policy that
// exists, and returns the policy (CodeConflict, CodeNotFound otherwise).
func lockedPolicy(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) (*keyhold.EnterprisePolicy, error) {
	if env.State != keyhold.StateLocked {
		return nil, keyhold.Errorf(keyhold.CodeConflict, "environment %s is %s, not Locked: only a locked environment is re-enabled this way", env.ID, env.State)
	}
	if env.PolicyID == "" {
		return nil, keyhold.Errorf(keyhold.CodeConflict, "environment %s is Locked but linked to no enterprise policy: unlock it through support", env.ID)
	}
	pol, err := policyByID(ctx, tx, env.PolicyID)
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorf(keyhold.CodeNotFound,
			"enterprise policy %s, which environment %s is linked to, was not found: redeploy it (same subscription, resource group and name) naming the same key vault and key, "+
				"grant its new managed identity access to the key, then re-enable the environment", env.PolicyID, env.ID)
	}
	return pol, err
}

// enableLocked re-enables a Locked environment after proving key access; actor is audited as the one who
// re-enabled it (the caller, or the platform's system identity for an automatic re-enable). It checks no
// caller's rights: EnableEnvironment does that first.
//
// It unwraps each epoch's wrapped key as the identity that wrapped it or,
// if the policy was recreated (its systemId is not the environment's), as
// the recreated policy's identity, after checking that the recreated
// policy names the key the environment is wrapped under (CodeConflict).
// Then, in one transaction, it re-checks that nothing changed meanwhile
// (CodeConflict: retry), moves the environment to a recreated policy (its
// wrapped keys' identity and its PolicySystemID, audited), makes it
// Enabled (clearing LockedAt, which stops the deletion countdown) and the
// policy Healthy, each audited; and then drops its cached keys.
func (p *Health) enableLocked(ctx context.Context, actor *keyhold.Identity, envID string) error {
	if p.cmk == nil {
		return errCMKOff
	}
	var env *keyhold.Environment
	var pol *keyhold.EnterprisePolicy
	var wks []*keyhold.WrappedKey
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if env, err = tx.Environment(ctx, envID); err != nil {
			return err
		}
		if pol, err = lockedPolicy(ctx, tx, env); err != nil {
			return err
		}
		wks, err = tx.WrappedKeys(ctx, env.ID)
		return err
	})
	if err != nil {
		return err
	}
	recreated := !strings.EqualFold(env.PolicySystemID, pol.SystemID)
	if recreated {
		if err := checkRecreated(env, pol, wks); err != nil {
			return err
		}
	}
	var current bool
	var moved []*keyhold.WrappedKey // CMK copies naming another identity than the recreated policy's
	for _, g := range groupByEpoch(wks) {
		wk := g.source()
		current = current || wk.Epoch == env.Epoch
		as := wk
		if recreated && wk.Root == keyhold.RootCMK && wk.PrincipalID != pol.PrincipalID {
			c := *wk
			c.PrincipalID = pol.PrincipalID
			as = &c
		}
		ek, err := p.unwrapWrapped(ctx, as, env.TenantID)
		if err != nil {
			by := ""
			if as != wk {
				by = fmt.Sprintf(" as the managed identity %s of the recreated policy", pol.PrincipalID)
			}
			var ke *keyhold.Error
			if errors.As(err, &ke) {
				return &keyhold.Error{Code: ke.Code, Inner: ke.Inner, Err: err, Message: fmt.Sprintf(
					"environment %s stays locked: its key (epoch %d) could not be unwrapped with the customer-managed key of enterprise policy %s%s: %s",
					env.ID, wk.Epoch, pol.ID(), by, ke.Message)}
			}
			return fmt.Errorf("environment %s stays locked: %w", env.ID, err)
		}
		ek.Destroy()
	}
	if !current {
		return fmt.Errorf("environment %s has no wrapped key for its epoch %d", env.ID, env.Epoch)
	}
	if recreated {
		for _, wk := range wks {
			if wk.Root == keyhold.RootCMK && wk.PrincipalID != pol.PrincipalID {
				moved = append(moved, wk)
			}
		}
	}
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, env.ID)
		if err != nil {
			return err
		}
		if e.State != keyhold.StateLocked {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s became %s meanwhile: nothing to re-enable", e.ID, e.State)
		}
		retry := keyhold.Errorf(keyhold.CodeConflict, "environment %s or its enterprise policy changed while its key was checked: retry", e.ID)
		if e.Epoch != env.Epoch || e.PolicyID != env.PolicyID || e.PolicySystemID != env.PolicySystemID {
			return retry
		}
		cur, err := policyByID(ctx, tx, pol.ID())
		if keyhold.IsNotFound(err) {
			return retry
		} else if err != nil {
			return err
		}
		if cur.SystemID != pol.SystemID || cur.PrincipalID != pol.PrincipalID {
			return retry
		}
		now := p.clock.Now().UTC()
		if recreated {
			if err := p.adoptTx(ctx, tx, actor, e, cur, moved); err != nil {
				return err
			}
		}
		e.State, e.UpdatedAt, e.LockedAt = keyhold.StateEnabled, now, time.Time{} // stops the deletion countdown
		if err := tx.UpdateEnvironment(ctx, e); err != nil {
			return err
		}
		if err := p.audit(ctx, tx, actor, auditEnvEnable, envTarget(e.ID), e.ID,
			fmt.Sprintf("Locked -> Enabled: its key unwrapped with the customer-managed key of enterprise policy %s", pol.ID())); err != nil {
			return err
		}
		if cur.HealthStatus != keyhold.HealthHealthy {
			detail := fmt.Sprintf("health %s -> %s: key access confirmed by unwrapping the key of environment %s", cur.HealthStatus, keyhold.HealthHealthy, e.ID)
			cur.HealthStatus, cur.UpdatedAt = keyhold.HealthHealthy, now
			if err := tx.UpdatePolicy(ctx, cur); err != nil {
				return err
			}
			return p.audit(ctx, tx, actor, auditPolicyHealth, cur.ID(), "", detail)
		}
		return nil
	})
	if err == nil {
		p.DropKeys(env.ID)
		// Operations that paused on the lock go on now, not at their next
		// recheck (lockops.go).
		if _, rerr := p.ops.Resume(ctx, env.ID); rerr != nil {
			p.log.WarnContext(ctx, "could not wake the environment's paused operations: they resume at their next recheck", "environment", env.ID, "err", rerr)
		}
	}
	return err
}

// checkRecreated checks that env, whose policy was deleted and recreated
// as pol, may be moved to pol: pol has a managed identity, is an Encryption
// policy of env's tenant and region, and names the key (vault, name and,
// if pol names one, version) that every customer-wrapped copy of env's
// keys is wrapped under. Otherwise CodeConflict (CodeBadRequest for a
// policy without identity), saying what to redeploy.
func checkRecreated(env *keyhold.Environment, pol *keyhold.EnterprisePolicy, wks []*keyhold.WrappedKey) error {
	redeploy := "redeploy enterprise policy " + pol.ID()
	switch {
	case pol.PrincipalID == "":
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"environment %s stays locked: enterprise policy %s was recreated without a system-assigned managed identity: %s with identity type SystemAssigned and grant that identity access to the key",
			env.ID, pol.ID(), redeploy)
	case !strings.EqualFold(pol.TenantID, env.TenantID) || pol.Kind != keyhold.PolicyKindEncryption:
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %s stays locked: enterprise policy %s was recreated as a %s policy of tenant %s, and the environment belongs to tenant %s: %s as a %s policy of the environment's tenant",
			env.ID, pol.ID(), pol.Kind, pol.TenantID, env.TenantID, redeploy, keyhold.PolicyKindEncryption)
	case keyhold.NormalizeLocation(env.Location) != keyhold.NormalizeLocation(pol.Location):
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %s stays locked: enterprise policy %s was recreated in region %s, and the environment is in %s: %s in region %s",
			env.ID, pol.ID(), pol.Location, env.Location, redeploy, env.Location)
	}
	for _, wk := range wks {
		if wk.Root != keyhold.RootCMK {
			continue
		}
		q := *pol
		q.PrincipalID = wk.PrincipalID // the key is compared, not the identity
		if onPolicy(wk, &q) {
			continue
		}
		k, _ := keyhold.ParseKeyID(wk.KeyID)
		v, n, ver := k.Vault, k.Name, k.Version
		named := fmt.Sprintf("key '%s' of key vault %s", pol.KeyName, vaultNameOf(pol))
		if pol.KeyVersion != "" {
			named = fmt.Sprintf("version %s of %s", pol.KeyVersion, named)
		}
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %s stays locked: enterprise policy %s was recreated naming %s, but the environment's key (epoch %d) is wrapped under version %s of key '%s' of key vault %s, "+
				"and only that key material unwraps it: %s naming key vault %s and key '%s' (and no other version), and grant its managed identity access to that key",
			env.ID, pol.ID(), named, wk.Epoch, ver, n, v, redeploy, v, n)
	}
	return nil
}

// adoptTx moves env, in tx, to pol, the recreated policy of its resource
// id: the customer-wrapped copies of its keys in moved, which enableLocked
// unwrapped as pol's identity, are stored again naming that identity, and
// env.PolicySystemID becomes pol's systemId (the caller stores env). Each
// copy must still be the one that was unwrapped (CodeConflict: retry).
func (p *Health) adoptTx(ctx context.Context, tx keyhold.Tx, actor *keyhold.Identity, env *keyhold.Environment, pol *keyhold.EnterprisePolicy, moved []*keyhold.WrappedKey) error {
	stored, err := tx.WrappedKeys(ctx, env.ID)
	if err != nil {
		return err
	}
	olds := map[string]bool{}
	var epochs []string
	for _, wk := range moved {
		var now *keyhold.WrappedKey
		for _, s := range stored {
			if s.Epoch == wk.Epoch && s.Root == wk.Root {
				now = s
			}
		}
		if !sameKey(now, wk) || now.PrincipalID != wk.PrincipalID {
			return keyhold.Errorf(keyhold.CodeConflict, "the wrapped key of environment %s (epoch %d) changed while it was checked: retry", env.ID, wk.Epoch)
		}
		c := *now
		c.PrincipalID = pol.PrincipalID
		if err := tx.PutWrappedKey(ctx, &c); err != nil {
			return err
		}
		olds[now.PrincipalID] = true
		epochs = append(epochs, fmt.Sprint(wk.Epoch))
	}
	oldSystemID := env.PolicySystemID
	env.PolicySystemID = pol.SystemID
	was := slices.Sorted(maps.Keys(olds))
	detail := fmt.Sprintf("moved to enterprise policy %s, recreated: systemId %s -> %s; the keys of epochs %s, wrapped under the same key, now name its managed identity %s (was %s)",
		pol.ID(), oldSystemID, pol.SystemID, strings.Join(epochs, ", "), pol.PrincipalID, strings.Join(was, ", "))
	if len(moved) == 0 {
		detail = fmt.Sprintf("moved to enterprise policy %s, recreated: systemId %s -> %s", pol.ID(), oldSystemID, pol.SystemID)
	}
	return p.audit(ctx, tx, actor, auditEnvPolicyRecreated, envTarget(env.ID), env.ID, detail)
}

// EnableEnvironmentOp re-enables a Locked environment as EnableEnvironment
// does, and on success records it as a finished operation of kind
// "enable" (Succeeded, targeting the environment), so that the admin API
// can answer it as it answers a link: 202 with an operation to poll. The
// re-enable itself is synchronous; the record is stored after it commits.
// Errors are EnableEnvironment's, unchanged, and record nothing.
func (p *Health) EnableEnvironmentOp(ctx context.Context, envID string) (*keyhold.Operation, error) {
	if err := p.EnableEnvironment(ctx, envID); err != nil {
		return nil, err
	}
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var op *keyhold.Operation
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := environmentFor(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		now := p.clock.Now().UTC()
		op = &keyhold.Operation{
			ID: uuid.NewString(), TenantID: env.TenantID, Kind: OpEnable, Target: env.ID,
			State: keyhold.OperationSucceeded, CreatedBy: id.PrincipalID,
			CreatedAt: now, UpdatedAt: now, FinishedAt: now,
		}
		return tx.CreateOperation(ctx, op)
	})
	if err != nil {
		return nil, err
	}
	return op, nil
}
