package platform

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// firstEpoch is the EK epoch of a new environment.
const firstEpoch = 1

// audit appends an entry in tx on behalf of the caller; an entry whose
// action is an event (eventKinds) also appends its event (events.go).
func (p *Platform) audit(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, action, target, envID, detail string) error {
	e := &keyhold.AuditEntry{
		At: p.clock.Now().UTC(), TenantID: id.TenantID, ActorID: id.PrincipalID,
		Action: action, Target: target, EnvID: envID, Result: "Succeeded", Detail: detail,
	}
	if err := tx.AppendAudit(ctx, e); err != nil {
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
// wrapped by the MMK, in one transaction.
func (p *Platform) CreateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	id, err := caller(ctx)
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

	ek, wk, err := p.newEnvKey(ctx, e.ID, e.Epoch)
	if err != nil {
		return err
	}
	defer ek.Destroy()
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		if err := tx.CreateEnvironment(ctx, e); err != nil {
			return err
		}
		if err := tx.PutWrappedKey(ctx, wk); err != nil {
			return err
		}
		return p.audit(ctx, tx, id, "environment.create", envTarget(e.ID), e.ID,
			"created "+string(e.SKU)+" environment "+e.DisplayName+" in "+e.Location)
	})
	if err != nil {
		return err
	}
	p.cache.Put(cacheID(e.ID, e.Epoch), ek)
	p.log.InfoContext(ctx, "environment created", "environment", e.ID, "sku", e.SKU, "location", e.Location, "by", id.PrincipalID)
	return nil
}

// FindEnvironment returns one of the caller's tenant's environments.
func (p *Platform) FindEnvironment(ctx context.Context, envID string) (*keyhold.Environment, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var env *keyhold.Environment
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if env, err = adminEnvironment(ctx, tx, id, envID); err != nil {
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
func (p *Platform) ListEnvironments(ctx context.Context) ([]*keyhold.Environment, error) {
	id, err := caller(ctx)
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
		}
		return nil
	})
	return envs, err
}

// UpdateEnvironment changes an environment's display name or Managed
// Environment setting.
func (p *Platform) UpdateEnvironment(ctx context.Context, envID string, upd keyhold.EnvironmentUpdate) (*keyhold.Environment, error) {
	id, err := caller(ctx)
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
		if upd.Managed != nil && *upd.Managed != env.Managed {
			env.Managed = *upd.Managed
			changes = append(changes, "managed="+map[bool]string{true: "Standard", false: "Basic"}[env.Managed])
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

// DeleteEnvironment deletes an environment. Its wrapped keys go in the same
// transaction as its data, so no copy of the data outlives its key; the
// cached EK is zeroed afterwards.
func (p *Platform) DeleteEnvironment(ctx context.Context, envID string) error {
	id, err := caller(ctx)
	if err != nil {
		return err
	}
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
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
