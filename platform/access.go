package platform

import (
	"context"

	"github.com/keyhold/keyhold"
)

// requireAdmin checks, inside tx, that the caller holds a directory role
// that may administer environments in its tenant.
func requireAdmin(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity) error {
	roles, err := tx.DirectoryRoles(ctx, id.TenantID, id.PrincipalID)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if r.IsPlatformAdmin() {
			return nil
		}
	}
	return keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not administer environments: it needs the %s, %s or %s directory role",
		id.PrincipalID, keyhold.RolePowerPlatformAdministrator, keyhold.RoleDynamics365Administrator, keyhold.RoleGlobalAdministrator)
}

// environmentFor loads an environment the caller may see: one of its own
// tenant. Another tenant's environment is reported as not found, so that
// ids can't be probed across tenants.
func environmentFor(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID string) (*keyhold.Environment, error) {
	env, err := tx.Environment(ctx, envID)
	if err == nil && env.TenantID != id.TenantID {
		err = nil
		env = nil
	}
	if env == nil && (err == nil || keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound) {
		return nil, keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found in tenant %s: list environments to find its id", envID, id.TenantID)
	}
	return env, err
}

// adminEnvironment checks, inside tx, that the caller may administer
// environments (requireAdmin) and loads one of its tenant's
// (environmentFor): the start of every administrator's operation on an
// environment.
func adminEnvironment(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID string) (*keyhold.Environment, error) {
	if err := requireAdmin(ctx, tx, id); err != nil {
		return nil, err
	}
	return environmentFor(ctx, tx, id, envID)
}

// dataAccess loads an environment for a data-plane request and checks that
// the caller may use its data and that it is serving. Its members may, and
// so may the tenant's platform administrators (who may also make themselves
// members).
func dataAccess(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID string) (*keyhold.Environment, error) {
	env, err := environmentFor(ctx, tx, id, envID)
	if err != nil {
		return nil, err
	}
	member, err := tx.IsEnvironmentMember(ctx, env.ID, id.PrincipalID)
	if err != nil {
		return nil, err
	}
	if !member {
		if err := requireAdmin(ctx, tx, id); keyhold.ErrorCode(err) == keyhold.CodeForbidden {
			return nil, keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not use the data of environment %s: it must be a member of the environment (an administrator adds it with PUT %s/members/%s) or hold the %s, %s or %s directory role",
				id.PrincipalID, env.ID, envTarget(env.ID), id.PrincipalID, keyhold.RolePowerPlatformAdministrator, keyhold.RoleDynamics365Administrator, keyhold.RoleGlobalAdministrator)
		} else if err != nil {
			return nil, err
		}
	}
	if env.State == keyhold.StateLocked { // no bypass, for anyone
		return nil, lockedError(ctx, tx, env)
	}
	if err := byokServing(ctx, tx, env); err != nil { // a BYOK tenant's lock (byok_env.go)
		return nil, err
	}
	if env.State != keyhold.StateEnabled {
		return nil, keyhold.Errorf(keyhold.CodeEnvironmentDisabled, "environment %s is %s and serves no data: an administrator must enable it first", env.ID, env.State)
	}
	return env, nil
}

// writeAccess is dataAccess for a write of the environment's data (a row
// put or delete, a file put), run inside the writing transaction. It first
// holds the environment's row (EnvironmentForWrite): a restore, copy or
// reset changes that row when it starts (startDBOp), so a write either
// commits before the start or sees the operation, never slips in between
// to be overwritten. It then refuses while such an operation runs
// (refuseWhileRestoring).
func writeAccess(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID string) (*keyhold.Environment, error) {
	if _, err := tx.EnvironmentForWrite(ctx, envID); err != nil && keyhold.ErrorCode(err) != keyhold.CodeEnvironmentNotFound {
		return nil, err
	}
	env, err := dataAccess(ctx, tx, id, envID)
	if err != nil {
		return nil, err
	}
	if err := refuseWhileRestoring(ctx, tx, env); err != nil {
		return nil, err
	}
	return env, nil
}

// overwritingOp returns the running restore, copy or reset of env (nil if
// none): the operation that will replace the environment's data, running
// or paused (a paused operation is still Running), until it ends.
func overwritingOp(ctx context.Context, tx keyhold.Tx, envID string) (*keyhold.Operation, error) {
	// At most one operation runs on an environment (runningOp).
	running, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: envID, State: keyhold.OperationRunning, Limit: 1})
	if err != nil || len(running) == 0 {
		return nil, err
	}
	switch op := running[0]; op.Kind {
	case keyhold.OpRestore, keyhold.OpCopy, keyhold.OpReset:
		return op, nil
	}
	return nil, nil
}

// refuseWhileRestoring refuses a write to env's data (CodeConflict, 409)
// while a restore, copy or reset runs on it: the operation replaces the
// data when it commits, so a write acknowledged meanwhile would be lost.
// Reads go on, and see the data as it was until the operation commits.
func refuseWhileRestoring(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	op, err := overwritingOp(ctx, tx, env.ID)
	if err != nil || op == nil {
		return err
	}
	what := "restored from a backup"
	switch op.Kind {
	case keyhold.OpCopy:
		what = "overwritten with a copy of another environment"
	case keyhold.OpReset:
		what = "reset"
	}
	return keyhold.Errorf(keyhold.CodeConflict,
		"environment %s is being %s by operation %s (%s): writes are refused until it ends, since it replaces the environment's data; reads go on. Retry after the operation has ended (GET its operation)",
		env.ID, what, op.ID, op.Kind)
}
