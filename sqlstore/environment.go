package sqlstore

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// CreateEnvironment stores a new environment of an existing tenant (else
// CodeNotFound). A zero e.Version is stored, and set, as 1. An existing id
// is a CodeConflict.
func (t *tx) CreateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	if err := checkTimes(e.CreatedAt, e.UpdatedAt, e.LockedAt); err != nil {
		return err
	}
	version := e.Version
	if version == 0 {
		version = 1
	}
	n, err := t.execN(ctx, `INSERT INTO environments (id, tenant_id, display_name, location, sku, managed, fin_ops, state, key_managed_by, epoch, version, created_by, created_at, updated_at,
		policy_id, policy_key, policy_system_id, link_status, encryption_status, last_operation_id, locked_at, power_platform_integration, create_flows_in_solutions)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		e.ID, e.TenantID, e.DisplayName, e.Location, string(e.SKU), e.Managed, e.FinOps, string(e.State), string(e.KeyManagedBy),
		int64(e.Epoch), version, e.CreatedBy, nanos(e.CreatedAt), nanos(e.UpdatedAt),
		e.PolicyID, strings.ToLower(e.PolicyID), e.PolicySystemID, e.LinkStatus, string(e.EncryptionStatus), e.LastOperationID, nanos(e.LockedAt), e.PowerPlatformIntegration, flowsInSolutionsCol(e.CreateFlowsInSolutions))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeNotFound, "tenant %q not found", e.TenantID).WithCause(err)
		}
		return t.fail("create environment", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "environment %q already exists", e.ID)
	}
	e.Version = version
	return nil
}

const environmentCols = `id, tenant_id, display_name, location, sku, managed, fin_ops, state, key_managed_by, epoch, version, created_by, created_at, updated_at,
	policy_id, policy_system_id, link_status, encryption_status, last_operation_id, locked_at, power_platform_integration, create_flows_in_solutions`

func scanEnvironment(sc scanner) (*keyhold.Environment, error) {
	e := &keyhold.Environment{}
	var sku, state, kmb, encStatus, inSolutions string
	err := sc.Scan(&e.ID, &e.TenantID, &e.DisplayName, &e.Location, &sku, boolCol{&e.Managed}, boolCol{&e.FinOps},
		&state, &kmb, u32Col{&e.Epoch}, &e.Version, &e.CreatedBy, timeCol{&e.CreatedAt}, timeCol{&e.UpdatedAt},
		&e.PolicyID, &e.PolicySystemID, &e.LinkStatus, &encStatus, &e.LastOperationID, timeCol{&e.LockedAt}, boolCol{&e.PowerPlatformIntegration}, &inSolutions)
	switch inSolutions {
	case "on", "off":
		on := inSolutions == "on"
		e.CreateFlowsInSolutions = &on
	}
	e.SKU, e.State, e.KeyManagedBy = keyhold.EnvironmentSKU(sku), keyhold.RuntimeState(state), keyhold.KeyManagedBy(kmb)
	e.EncryptionStatus = keyhold.EncryptionStatus(encStatus)
	return e, err
}

// flowsInSolutionsCol is how create_flows_in_solutions stores the
// setting: ” never set, else 'on' or 'off'.
func flowsInSolutionsCol(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "on"
	}
	return "off"
}

func envNotFound(id string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q not found", id)
}

// Environment returns an environment, or CodeEnvironmentNotFound.
func (t *tx) Environment(ctx context.Context, id string) (*keyhold.Environment, error) {
	e, err := get(t, ctx, "get environment", scanEnvironment, `SELECT `+environmentCols+` FROM environments WHERE id = ?`, id)
	if err != nil {
		return nil, notFound(err, envNotFound(id))
	}
	return e, nil
}

// EnvironmentGate returns the columns that decide whether an environment
// serves (keyhold.EnvironmentGate), or CodeEnvironmentNotFound.
func (t *tx) EnvironmentGate(ctx context.Context, id string) (keyhold.EnvironmentGate, error) {
	g, err := get(t, ctx, "get environment gate", scanGate, `SELECT id, tenant_id, state, key_managed_by, epoch FROM environments WHERE id = ?`, id)
	if err != nil {
		return keyhold.EnvironmentGate{}, notFound(err, envNotFound(id))
	}
	return g, nil
}

func scanGate(sc scanner) (keyhold.EnvironmentGate, error) {
	var g keyhold.EnvironmentGate
	var state, kmb string
	err := sc.Scan(&g.ID, &g.TenantID, &state, &kmb, u32Col{&g.Epoch})
	g.State, g.KeyManagedBy = keyhold.RuntimeState(state), keyhold.KeyManagedBy(kmb)
	return g, err
}

// EnvironmentForWrite returns an environment, or CodeEnvironmentNotFound,
// and holds its row until the transaction ends (keyhold.Tx). On SQLite,
// whose write transactions take turns, reading it is enough.
func (t *tx) EnvironmentForWrite(ctx context.Context, id string) (*keyhold.Environment, error) {
	e, err := get(t, ctx, "get environment for write", scanEnvironment, `SELECT `+environmentCols+` FROM environments WHERE id = ?`+t.s.d.ForShare, id)
	if err != nil {
		return nil, notFound(err, envNotFound(id))
	}
	return e, nil
}

// ListEnvironments returns the environments that match f (all of them for
// a zero filter), oldest first.
func (t *tx) ListEnvironments(ctx context.Context, f keyhold.EnvironmentFilter) ([]*keyhold.Environment, error) {
	var conds []string
	var args []any
	if f.TenantID != "" {
		conds, args = append(conds, "tenant_id = ?"), append(args, f.TenantID)
	}
	if f.ID != "" {
		conds, args = append(conds, "id = ?"), append(args, f.ID)
	}
	if f.PolicyID != "" {
		conds, args = append(conds, "policy_key = ?"), append(args, strings.ToLower(f.PolicyID))
	}
	return list(t, ctx, "list environments", scanEnvironment,
		`SELECT `+environmentCols+` FROM environments`+where(conds)+` ORDER BY created_at, id`, args...)
}

// UpdateEnvironment writes e if the stored version is e.Version, and then
// increments e.Version. The id, tenant, creator and creation time never
// change. A stale version is CodeConflict; a missing environment is
// CodeEnvironmentNotFound.
func (t *tx) UpdateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	if err := checkTimes(e.UpdatedAt, e.LockedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE environments SET display_name = ?, location = ?, sku = ?, managed = ?, fin_ops = ?, state = ?,
		key_managed_by = ?, epoch = ?, version = version + 1, updated_at = ?,
		policy_id = ?, policy_key = ?, policy_system_id = ?, link_status = ?, encryption_status = ?, last_operation_id = ?, locked_at = ?, power_platform_integration = ?, create_flows_in_solutions = ? WHERE id = ? AND version = ?`,
		e.DisplayName, e.Location, string(e.SKU), e.Managed, e.FinOps, string(e.State), string(e.KeyManagedBy),
		int64(e.Epoch), nanos(e.UpdatedAt), e.PolicyID, strings.ToLower(e.PolicyID), e.PolicySystemID, e.LinkStatus, string(e.EncryptionStatus), e.LastOperationID, nanos(e.LockedAt), e.PowerPlatformIntegration, flowsInSolutionsCol(e.CreateFlowsInSolutions),
		e.ID, e.Version)
	if err != nil {
		return t.fail("update environment", err)
	}
	if n == 0 {
		found, err := t.exists(ctx, `SELECT 1 FROM environments WHERE id = ?`, e.ID)
		if err != nil {
			return t.fail("update environment", err)
		}
		if !found {
			return envNotFound(e.ID)
		}
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %q was changed by another request since version %d was read: read it again and retry", e.ID, e.Version)
	}
	e.Version++
	return nil
}

// DeleteEnvironment deletes an environment with its wrapped keys, rows,
// files, chunks, upload marks, memberships and flows (ClearEnvFlows), or returns CodeEnvironmentNotFound. Audit
// entries stay: they record the deletion.
func (t *tx) DeleteEnvironment(ctx context.Context, id string) error {
	n, err := t.execN(ctx, `DELETE FROM environments WHERE id = ?`, id)
	if err != nil {
		return t.fail("delete environment", err)
	}
	if n == 0 {
		return envNotFound(id)
	}
	// The foreign keys cascade; deleting explicitly as well keeps the
	// guarantee even on a database opened without foreign-key enforcement.
	for _, table := range []string{"backup_rows", "backup_files"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE backup_id IN (SELECT id FROM backups WHERE env_id = ?)`, id); err != nil {
			return t.fail("delete environment", err)
		}
	}
	if err := t.ClearEnvFlows(ctx, id); err != nil {
		return err
	}
	for _, table := range []string{"backups", "file_chunks", "file_uploads", "data_files", "data_rows", "wrapped_keys", "environment_members"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE env_id = ?`, id); err != nil {
			return t.fail("delete environment", err)
		}
	}
	return nil
}

// PutWrappedKey inserts or replaces the wrapped key of (environment, epoch,
// root kind). An unknown environment is CodeEnvironmentNotFound.
func (t *tx) PutWrappedKey(ctx context.Context, k *keyhold.WrappedKey) error {
	if err := checkTimes(k.CreatedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO wrapped_keys (env_id, epoch, root_kind, key_id, principal_id, ciphertext, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (env_id, epoch, root_kind) DO UPDATE SET key_id = excluded.key_id, principal_id = excluded.principal_id,
		ciphertext = excluded.ciphertext, created_at = excluded.created_at`,
		k.EnvID, int64(k.Epoch), string(k.Root), k.KeyID, k.PrincipalID, blob(k.Ciphertext), nanos(k.CreatedAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return envNotFound(k.EnvID).WithCause(err)
		}
		return t.fail("put wrapped key", err)
	}
	return nil
}

// WrappedKeys returns an environment's wrapped keys by epoch, then root
// kind; none for an unknown environment.
func (t *tx) WrappedKeys(ctx context.Context, envID string) ([]*keyhold.WrappedKey, error) {
	return list(t, ctx, "list wrapped keys", func(sc scanner) (*keyhold.WrappedKey, error) {
		k := &keyhold.WrappedKey{}
		var root string
		err := sc.Scan(&k.EnvID, u32Col{&k.Epoch}, &root, &k.KeyID, &k.PrincipalID, &k.Ciphertext, timeCol{&k.CreatedAt})
		k.Root = keyhold.RootKind(root)
		return k, err
	}, `SELECT env_id, epoch, root_kind, key_id, principal_id, ciphertext, created_at FROM wrapped_keys WHERE env_id = ? ORDER BY epoch, root_kind`, envID)
}

// DeleteWrappedKey deletes one wrapped key, or returns CodeNotFound.
func (t *tx) DeleteWrappedKey(ctx context.Context, envID string, epoch uint32, root keyhold.RootKind) error {
	n, err := t.execN(ctx, `DELETE FROM wrapped_keys WHERE env_id = ? AND epoch = ? AND root_kind = ?`, envID, int64(epoch), string(root))
	if err != nil {
		return t.fail("delete wrapped key", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "environment %q has no %s-wrapped key of epoch %d", envID, root, epoch)
	}
	return nil
}
