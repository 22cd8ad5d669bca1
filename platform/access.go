package platform

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
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

// accessMode names the check a data-plane request needs before it
// touches an environment's data (Environments.access).
type accessMode int

const (
	// readData ("dataAccess"): the environment is the caller's tenant's
	// and serving, and the caller may use its data: its members may, and
	// so may the tenant's platform administrators (who may also make
	// themselves members).
	readData accessMode = iota
	// writeData ("writeAccess"): readData for a write of the
	// environment's data (a row put or delete, a file put), run inside
	// the writing transaction. It holds the environment's row while it
	// reads it (DataAccess with forWrite, as EnvironmentForWrite): a
	// restore, copy or reset changes that row when it starts (startDBOp),
	// so a write either commits before the start or sees the operation,
	// never slips in between to be overwritten. It then refuses while
	// such an operation runs (restoringError).
	writeData
	// uploadData: readData, refusing as writeData does while a restore,
	// copy or reset runs: an upload's early check, before the body is
	// read.
	uploadData
)

// access runs the data plane's check of mode, with its cache of
// administrators' roles (rolecache.go) and, for reads, of granted
// accesses (accesscache.go).
func (p *Environments) access(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID string, mode accessMode) (*keyhold.Environment, error) {
	now := p.clock.Now()
	check := func() (*keyhold.Environment, time.Time, error) {
		return checkData(ctx, tx, id, envID, mode == writeData, mode != readData, &p.roles, now, p.rec)
	}
	if mode == readData {
		return p.readAccess.read(tx, id, envID, now, check)
	}
	env, _, err := check()
	return env, err
}

// checkData is access. The environment, the caller's membership and the
// running operation come from one query (Tx.DataAccess); only a caller
// who is not a member costs a second, for its directory roles, unless
// roles answers from its cache as of now. It returns, with the
// environment, when the roles that granted a non-member were read (the
// zero time for a member): an answer built on them must not outlive
// roleCacheTTL from then.
func checkData(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID string, forWrite, refuseOverwrite bool, roles *roleCache, now time.Time, rec *crypt.RecordKey) (*keyhold.Environment, time.Time, error) {
	var rolesAt time.Time
	a, err := tx.DataAccess(ctx, envID, id.PrincipalID, forWrite)
	if err == nil && a.Env.TenantID != id.TenantID {
		err = keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q is another tenant's", envID)
	}
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
		// As environmentFor: another tenant's environment is not found.
		return nil, rolesAt, keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found in tenant %s: list environments to find its id", envID, id.TenantID)
	} else if err != nil {
		return nil, rolesAt, err
	}
	env := a.Env
	if !a.Member {
		var admin bool
		admin, rolesAt, err = roles.isAdmin(ctx, tx, id, now)
		if err != nil {
			return nil, rolesAt, err
		}
		if !admin {
			return nil, rolesAt, keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not use the data of environment %s: it must be a member of the environment (an administrator adds it with PUT %s/members/%s) or hold the %s, %s or %s directory role",
				id.PrincipalID, env.ID, envTarget(env.ID), id.PrincipalID, keyhold.RolePowerPlatformAdministrator, keyhold.RoleDynamics365Administrator, keyhold.RoleGlobalAdministrator)
		}
	}
	if env.State == keyhold.StateLocked { // no bypass, for anyone
		return nil, rolesAt, lockedError(ctx, tx, env)
	}
	if err := byokServing(ctx, tx, rec, env); err != nil { // a BYOK tenant's lock (byok_env.go)
		return nil, rolesAt, err
	}
	if env.State != keyhold.StateEnabled {
		return nil, rolesAt, keyhold.Errorf(keyhold.CodeEnvironmentDisabled, "environment %s is %s and serves no data: an administrator must enable it first", env.ID, env.State)
	}
	if refuseOverwrite && overwrites(a.RunningOpKind) {
		return nil, rolesAt, restoringError(env, a.RunningOpID, a.RunningOpKind)
	}
	return env, rolesAt, nil
}

// overwrites says whether an operation of this kind replaces its
// environment's data when it commits.
func overwrites(kind string) bool {
	switch kind {
	case keyhold.OpRestore, keyhold.OpCopy, keyhold.OpReset:
		return true
	}
	return false
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
	if op := running[0]; overwrites(op.Kind) {
		return op, nil
	}
	return nil, nil
}

// restoringError refuses a write to env's data (CodeConflict, 409) while
// a restore, copy or reset (operation opID of kind) runs on it: the
// operation replaces the data when it commits, so a write acknowledged
// meanwhile would be lost. Reads go on, and see the data as it was until
// the operation commits.
func restoringError(env *keyhold.Environment, opID, kind string) error {
	what := "restored from a backup"
	switch kind {
	case keyhold.OpCopy:
		what = "overwritten with a copy of another environment"
	case keyhold.OpReset:
		what = "reset"
	}
	return keyhold.Errorf(keyhold.CodeConflict,
		"environment %s is being %s by operation %s (%s): writes are refused until it ends, since it replaces the environment's data; reads go on. Retry after the operation has ended (GET its operation)",
		env.ID, what, opID, kind)
}
