package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/keyhold/keyhold"
)

// Tenants' legacy BYOK keys (keyhold.BYOKTx). The store keeps the sealed
// private key and the record's seal (mac) as opaque bytes; it never sees
// the key, and the platform checks the seal.

const byokColumns = `tenant_id, id, state, source, size, thumbprint, created_by, created_at, activated_at, sealed, mac, generation`

func scanBYOKKey(sc scanner) (*keyhold.BYOKKey, error) {
	k := &keyhold.BYOKKey{}
	err := sc.Scan(&k.TenantID, &k.ID, &k.State, &k.Source, &k.Size, &k.Thumbprint, &k.CreatedBy,
		timeCol{&k.CreatedAt}, timeCol{&k.ActivatedAt}, &k.Sealed, &k.MAC, &k.Generation)
	return k, err
}

// PutBYOKKey inserts a tenant's BYOK key: CodeConflict if the tenant holds
// one of that id or thumbprint, CodeNotFound if the tenant is unknown.
func (t *tx) PutBYOKKey(ctx context.Context, k *keyhold.BYOKKey) error {
	if err := checkTimes(k.CreatedAt, k.ActivatedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO byok_keys (`+byokColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.TenantID, k.ID, string(k.State), string(k.Source), k.Size, k.Thumbprint, k.CreatedBy,
		nanos(k.CreatedAt), nanos(k.ActivatedAt), k.Sealed, k.MAC, k.Generation)
	switch {
	case err == nil:
		return nil
	case t.class(err) == ErrUnique:
		return keyhold.Errorf(keyhold.CodeConflict, "tenant %s already holds this BYOK key (thumbprint %s)", k.TenantID, k.Thumbprint).WithCause(err)
	case t.class(err) == ErrForeignKey:
		return keyhold.Errorf(keyhold.CodeNotFound, "tenant %q not found", k.TenantID).WithCause(err)
	}
	return t.fail("put BYOK key", err)
}

// UpdateBYOKKey writes a key's state, last activation, generation and
// seal.
func (t *tx) UpdateBYOKKey(ctx context.Context, k *keyhold.BYOKKey) error {
	if err := checkTimes(k.ActivatedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE byok_keys SET state = ?, activated_at = ?, mac = ?, generation = ? WHERE tenant_id = ? AND id = ?`,
		string(k.State), nanos(k.ActivatedAt), k.MAC, k.Generation, k.TenantID, k.ID)
	if err != nil {
		return t.fail("update BYOK key", err)
	}
	if n == 0 {
		return errBYOKKeyNotFound(k.TenantID, k.ID)
	}
	return nil
}

// BYOKKey returns one of a tenant's BYOK keys, or CodeNotFound.
func (t *tx) BYOKKey(ctx context.Context, tenantID, id string) (*keyhold.BYOKKey, error) {
	k, err := get(t, ctx, "get BYOK key", scanBYOKKey,
		`SELECT `+byokColumns+` FROM byok_keys WHERE tenant_id = ? AND id = ?`, tenantID, id)
	return k, notFound(err, errBYOKKeyNotFound(tenantID, id))
}

// BYOKKeys lists a tenant's BYOK keys, oldest first.
func (t *tx) BYOKKeys(ctx context.Context, tenantID string) ([]*keyhold.BYOKKey, error) {
	return list(t, ctx, "list BYOK keys", scanBYOKKey,
		`SELECT `+byokColumns+` FROM byok_keys WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
}

func errBYOKKeyNotFound(tenantID, id string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeNotFound, "tenant %s holds no BYOK key %q: list the tenant's BYOK keys to find its id", tenantID, keyhold.Clip(id))
}

// BYOKTenant returns a tenant's BYOK state; a tenant never locked has a
// zero one.
func (t *tx) BYOKTenant(ctx context.Context, tenantID string) (*keyhold.BYOKTenant, error) {
	s, err := get(t, ctx, "get BYOK tenant", func(sc scanner) (*keyhold.BYOKTenant, error) {
		return scanBYOKTenant(sc)
	}, `SELECT `+byokTenantColumns+` FROM byok_tenants WHERE tenant_id = ?`, tenantID)
	if err == sql.ErrNoRows {
		return &keyhold.BYOKTenant{TenantID: tenantID}, nil
	}
	return s, err
}

// PutBYOKTenant writes a tenant's BYOK state.
func (t *tx) PutBYOKTenant(ctx context.Context, s *keyhold.BYOKTenant) error {
	if err := checkTimes(s.LockedAt, s.RemovalRequestedAt, s.ShredAfter, s.ShreddedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO byok_tenants (`+byokTenantColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET locked_at = excluded.locked_at, locked_by = excluded.locked_by,
		removal_requested_at = excluded.removal_requested_at, shred_after = excluded.shred_after, shredded_at = excluded.shredded_at,
		mac = excluded.mac, generation = excluded.generation`,
		s.TenantID, nanos(s.LockedAt), s.LockedBy, nanos(s.RemovalRequestedAt), nanos(s.ShredAfter), nanos(s.ShreddedAt), s.MAC, s.Generation)
	if err != nil && t.class(err) == ErrForeignKey {
		return keyhold.Errorf(keyhold.CodeNotFound, "tenant %q not found", s.TenantID).WithCause(err)
	}
	if err != nil {
		return t.fail("put BYOK tenant", err)
	}
	return nil
}

// PutBYOKMigration records an environment's migration off the BYOK key;
// a second record of one environment keeps the first.
func (t *tx) PutBYOKMigration(ctx context.Context, m *keyhold.BYOKMigration) error {
	if err := checkTimes(m.MigratedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO byok_migrations (env_id, tenant_id, key_id, migrated_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		m.EnvID, m.TenantID, m.KeyID, nanos(m.MigratedAt))
	if err != nil {
		return t.fail("put BYOK migration", err)
	}
	return nil
}

// BYOKMigration returns an environment's migration record, or nil if it
// never migrated off a BYOK key.
func (t *tx) BYOKMigration(ctx context.Context, envID string) (*keyhold.BYOKMigration, error) {
	m, err := get(t, ctx, "get BYOK migration", func(sc scanner) (*keyhold.BYOKMigration, error) {
		m := &keyhold.BYOKMigration{}
		err := sc.Scan(&m.EnvID, &m.TenantID, &m.KeyID, timeCol{&m.MigratedAt})
		return m, err
	}, `SELECT env_id, tenant_id, key_id, migrated_at FROM byok_migrations WHERE env_id = ?`, envID)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	return m, err
}

const byokTenantColumns = `tenant_id, locked_at, locked_by, removal_requested_at, shred_after, shredded_at, mac, generation`

func scanBYOKTenant(sc scanner) (*keyhold.BYOKTenant, error) {
	s := &keyhold.BYOKTenant{}
	err := sc.Scan(&s.TenantID, timeCol{&s.LockedAt}, &s.LockedBy, timeCol{&s.RemovalRequestedAt}, timeCol{&s.ShredAfter}, timeCol{&s.ShreddedAt}, &s.MAC, &s.Generation)
	return s, err
}

// BYOKTenantsToShred lists the tenants whose BYOK removal was requested,
// whose keys are not shredded yet, and whose shred time is not after now.
func (t *tx) BYOKTenantsToShred(ctx context.Context, now time.Time) ([]*keyhold.BYOKTenant, error) {
	return list(t, ctx, "list BYOK tenants to shred", scanBYOKTenant,
		`SELECT `+byokTenantColumns+` FROM byok_tenants WHERE removal_requested_at <> ? AND shredded_at = ? AND shred_after <= ? ORDER BY tenant_id`,
		nanos(time.Time{}), nanos(time.Time{}), nanos(now))
}

// DeleteBYOKKeys deletes every BYOK key of a tenant (their sealed private
// keys with them) and says how many there were.
func (t *tx) DeleteBYOKKeys(ctx context.Context, tenantID string) (int, error) {
	n, err := t.execN(ctx, `DELETE FROM byok_keys WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return 0, t.fail("delete BYOK keys", err)
	}
	return int(n), nil
}

// LastBYOKMigration returns the time of a tenant's last migration off its
// BYOK key (zero if none) and how many environments migrated.
func (t *tx) LastBYOKMigration(ctx context.Context, tenantID string) (time.Time, int, error) {
	var last time.Time
	var n int
	err := t.queryRow(ctx, `SELECT COALESCE(MAX(migrated_at), 0), COUNT(*) FROM byok_migrations WHERE tenant_id = ?`, tenantID).Scan(timeCol{&last}, &n)
	if err != nil {
		return time.Time{}, 0, t.fail("last BYOK migration", err)
	}
	return last, n, nil
}

// BYOKSealMarker returns the one-time "sealing done" marker, or nil.
func (t *tx) BYOKSealMarker(ctx context.Context) (*keyhold.BYOKSealMarker, error) {
	m, err := get(t, ctx, "get BYOK seal marker", func(sc scanner) (*keyhold.BYOKSealMarker, error) {
		m := &keyhold.BYOKSealMarker{}
		err := sc.Scan(timeCol{&m.SealedAt}, &m.MAC)
		return m, err
	}, `SELECT sealed_at, mac FROM byok_seal_marker WHERE id = 1`)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	return m, err
}

// PutBYOKSealMarker writes the marker, once: CodeConflict if there is one.
func (t *tx) PutBYOKSealMarker(ctx context.Context, m *keyhold.BYOKSealMarker) error {
	if err := checkTimes(m.SealedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO byok_seal_marker (id, sealed_at, mac) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING`, nanos(m.SealedAt), m.MAC)
	if err != nil {
		return t.fail("put BYOK seal marker", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "the BYOK \"sealing done\" marker is written already")
	}
	return nil
}
