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
	if env.State != keyhold.StateEnabled {
		return nil, keyhold.Errorf(keyhold.CodeEnvironmentDisabled, "environment %s is %s and serves no data: an administrator must enable it first", env.ID, env.State)
	}
	return env, nil
}
