package platform

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Environments is the service of environments and their data: creating,
// finding, updating and deleting environments (keyhold.EnvironmentService),
// their rows (rows.go) and files (files.go) under the environment's key
// (keyhold.DataService), and the audit log (audit.go). Who may act is in
// access.go.
type Environments struct {
	*core
	// roles caches administrators' roles for the data plane's checks
	// (rolecache.go).
	roles roleCache
	// tamper bounds the audit of the data plane's integrity refusals
	// (datatamper.go).
	tamper dataTamperLimit
}

// firstEpoch is the EK epoch of a new environment.
const firstEpoch = 1

// audit appends an entry in tx on behalf of the caller; an entry whose
// action is an event (eventKinds) also appends its event (events.go).
func (p *core) audit(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, action, target, envID, detail string) error {
	e, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{
		At: p.clock.Now(), TenantID: id.TenantID, ActorID: id.PrincipalID,
		Action: action, Target: target, EnvID: envID, Detail: detail,
	})
	if err != nil {
		return err
	}
	if kind, ok := eventKinds[action]; ok {
		return p.appendEvent(ctx, tx, e, kind)
	}
	return nil
}

func envTarget(envID string) string {
	return "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + envID
}

// CreateEnvironment validates e and creates it, Enabled, with a fresh EK
// wrapped by the MMK, in one transaction; in a tenant whose BYOK key is
// Active, wrapped by that key instead (byok_create.go).
func (p *Environments) CreateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	e.DisplayName = strings.TrimSpace(e.DisplayName)
	if err := e.Validate(); err != nil {
		return err
	}
	now := p.clock.Now().UTC()
	e.ID = uuid.NewString()
	e.TenantID = id.TenantID
	e.State = keyhold.StateEnabled
	e.KeyManagedBy = keyhold.KeyManagedByMicrosoft
	e.Epoch = firstEpoch
	e.CreatedBy = id.PrincipalID
	e.CreatedAt, e.UpdatedAt = now, now
	e.Version = 1

	var byok *keyhold.BYOKKey
	if err := p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		byok, err = byokForCreation(ctx, tx, p.rec, id.TenantID)
		return err
	}); err != nil {
		if isTamper(err) {
			p.auditTamper(ctx, id.TenantID, byokTarget(id.TenantID, ""), "creating an environment under the BYOK key by "+id.PrincipalID, err)
		}
		return err
	}
	var ek *crypt.Key
	var wk *keyhold.WrappedKey
	detail := ""
	if byok == nil {
		ek, wk, err = p.newEnvKey(ctx, e.ID, e.Epoch)
	} else {
		e.KeyManagedBy = keyhold.KeyManagedByCustomerViaMicrosoft
		ek, wk, err = newBYOKEnvKey(ctx, p.core, byok, e.ID, e.Epoch)
		detail = fmt.Sprintf(", its key wrapped under the tenant's BYOK key %s (thumbprint %s)", byok.ID, byok.Thumbprint)
	}
	if err != nil {
		return err
	}
	defer ek.Destroy()
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		// The tenant's BYOK key must still be the one wrapped under (an
		// activation, a lock or a removal since refuses: retry).
		now, err := byokForCreation(ctx, tx, p.rec, id.TenantID)
		if err != nil {
			return err
		}
		if (now == nil) != (byok == nil) || (now != nil && now.ID != byok.ID) {
			return keyhold.Errorf(keyhold.CodeConflict, "the tenant's Active BYOK key changed while environment %q was being created: nothing was created; retry", e.DisplayName)
		}
		if err := tx.CreateEnvironment(ctx, e); err != nil {
			return err
		}
		if err := tx.PutWrappedKey(ctx, wk); err != nil {
			return err
		}
		return p.audit(ctx, tx, id, "environment.create", envTarget(e.ID), e.ID,
			"created "+string(e.SKU)+" environment "+e.DisplayName+" in "+e.Location+finOpsDetail(e)+detail)
	})
	if isTamper(err) {
		p.auditTamper(ctx, id.TenantID, byokTarget(id.TenantID, ""), "creating an environment under the BYOK key by "+id.PrincipalID, err)
	}
	if err != nil {
		return err
	}
	p.cache.Put(cacheID(e.ID, e.Epoch), ek)
	p.log.InfoContext(ctx, "environment created", "environment", e.ID, "sku", e.SKU, "location", e.Location, "by", id.PrincipalID)
	return nil
}

// finOpsDetail says, for the audit, that an environment has finance and
// operations apps, and whether with Power Platform integration.
func finOpsDetail(e *keyhold.Environment) string {
	switch {
	case e.FinOps && e.PowerPlatformIntegration:
		return " with finance and operations apps and Power Platform integration"
	case e.FinOps:
		return " with finance and operations apps, without Power Platform integration"
	}
	return ""
}

// FindEnvironment returns one of the caller's tenant's environments.
func (p *Environments) FindEnvironment(ctx context.Context, envID string) (*keyhold.Environment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var env *keyhold.Environment
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if env, err = adminEnvironment(ctx, tx, id, envID); err != nil {
			return err
		}
		if err := showFlowWarning(ctx, tx, env); err != nil {
			return err
		}
		return showRestore(ctx, tx, env)
	})
	return env, err
}

// showRestore fills in env's RestoreOperationID.
func showRestore(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	op, err := overwritingOp(ctx, tx, env.ID)
	if err == nil && op != nil {
		env.RestoreOperationID = op.ID
	}
	return err
}

// ListEnvironments lists the caller's tenant's environments.
func (p *Environments) ListEnvironments(ctx context.Context) ([]*keyhold.Environment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var envs []*keyhold.Environment
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		if envs, err = tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: id.TenantID}); err != nil {
			return err
		}
		for _, env := range envs {
			if err := showRestore(ctx, tx, env); err != nil {
				return err
			}
			if err := showFlowWarning(ctx, tx, env); err != nil {
				return err
			}
		}
		return nil
	})
	return envs, err
}

// UpdateEnvironment changes an environment's display name or Managed
// Environment setting, or turns on Power Platform integration of a
// finance and operations environment (CodeBadRequest for another
// environment, or to turn it off). Turning Managed Environment off while the
// environment is linked to an enterprise policy is CodeConflict
// (managedRequired); a display name is checked by Environment.Validate.
// A refusal changes nothing.
func (p *Environments) UpdateEnvironment(ctx context.Context, envID string, upd keyhold.EnvironmentUpdate) (*keyhold.Environment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var env *keyhold.Environment
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if env, err = adminEnvironment(ctx, tx, id, envID); err != nil {
			return err
		}
		var changes []string
		if upd.DisplayName != nil {
			env.DisplayName = strings.TrimSpace(*upd.DisplayName)
			if err := env.Validate(); err != nil {
				return err
			}
			changes = append(changes, "displayName")
		}
		if upd.PowerPlatformIntegration != nil && *upd.PowerPlatformIntegration != env.PowerPlatformIntegration {
			switch {
			case !env.FinOps:
				return keyhold.Errorf(keyhold.CodeBadRequest,
					"environment %s has no finance and operations apps: Power Platform integration is an option of finance and operations environments only", env.ID)
			case !*upd.PowerPlatformIntegration:
				return keyhold.Errorf(keyhold.CodeBadRequest,
					"Power Platform integration of environment %s can't be turned off once it is on: leave properties.financeAndOperations.powerPlatformIntegration out, or true", env.ID)
			}
			env.PowerPlatformIntegration = true
			changes = append(changes, "powerPlatformIntegration=on")
		}
		if upd.Managed != nil && *upd.Managed != env.Managed {
			if err := managedRequired(env, *upd.Managed); err != nil {
				return err
			}
			env.Managed = *upd.Managed
			changes = append(changes, "managed="+map[bool]string{true: "Standard", false: "Basic"}[env.Managed])
		}
		if upd.CreateFlowsInSolutions != nil && (env.CreateFlowsInSolutions == nil || *env.CreateFlowsInSolutions != *upd.CreateFlowsInSolutions) {
			on := *upd.CreateFlowsInSolutions
			env.CreateFlowsInSolutions = &on
			changes = append(changes, "createFlowsInSolutions="+map[bool]string{true: "on", false: "off"}[on])
		}
		if len(changes) == 0 {
			return nil
		}
		env.UpdatedAt = p.clock.Now().UTC()
		if err := tx.UpdateEnvironment(ctx, env); err != nil {
			return err
		}
		return p.audit(ctx, tx, id, "environment.update", envTarget(env.ID), env.ID, strings.Join(changes, ", "))
	})
	if err != nil {
		return nil, err
	}
	return env, nil
}

// managedRequired refuses to turn Managed Environment off (protectionLevel
// Basic) on an environment linked to an enterprise policy, or with an
// encryption operation running: a customer-managed key requires a Managed
// Environment (the link refuses one without), and turning it off under the
// key would leave a linked environment the spec does not allow.
func managedRequired(env *keyhold.Environment, managed bool) error {
	switch {
	case managed:
		return nil
	case env.PolicyID != "":
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %s is linked to enterprise policy %s, and a customer-managed key requires a Managed Environment: protectionLevel can't be Basic while it is linked; unlink it first (keyhold env unlink %s), then turn Managed Environment off",
			env.ID, env.PolicyID, env.ID)
	case env.EncryptionStatus == keyhold.EncryptionRunning:
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %s has encryption operation %s running, which may link it to an enterprise policy: protectionLevel can't be Basic now; wait for the operation to end (keyhold operation wait %s), then retry",
			env.ID, env.LastOperationID, env.LastOperationID)
	}
	return nil
}

// DeleteEnvironment deletes an environment. Its wrapped keys go in the same
// transaction as its data, so no copy of the data outlives its key; the
// cached EK is zeroed afterwards. An environment linked to an enterprise
// policy holds data in the customer's custody: deleting it needs Reader on
// that policy too, as an unlink or a reset does (CodeForbidden:
// requireCustodyReader); the lock countdown's deletion of a Locked
// environment is the platform's own and asks nobody.
func (p *Environments) DeleteEnvironment(ctx context.Context, envID string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		if err := requireCustodyReader(ctx, tx, id, env, "delete environment "+env.ID); err != nil {
			return err
		}
		wks, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil {
			return err
		}
		for _, wk := range wks {
			if err := tx.DeleteWrappedKey(ctx, wk.EnvID, wk.Epoch, wk.Root); err != nil {
				return err
			}
		}
		if err := tx.DeleteEnvironment(ctx, env.ID); err != nil {
			return err
		}
		return p.audit(ctx, tx, id, "environment.delete", envTarget(env.ID), env.ID, "deleted environment "+env.DisplayName+" and destroyed its keys")
	})
	if err != nil {
		return err
	}
	p.DropKeys(envID)
	p.log.InfoContext(ctx, "environment deleted", "environment", envID, "by", id.PrincipalID)
	return nil
}
