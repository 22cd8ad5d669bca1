package sqlstore

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
)

// Vault, key and version names compare case-insensitively, as Azure Key
// Vault's do; see key.

// CreateVault stores a new vault. A zero v.Version is stored, and set, as 1.
// A name already taken (in any case), by a live or a soft-deleted vault, is
// a CodeConflict.
func (t *tx) CreateVault(ctx context.Context, v *keyhold.Vault) error {
	if err := checkTimes(v.CreatedAt, v.UpdatedAt, v.DeletedAt, v.ScheduledPurgeAt); err != nil {
		return err
	}
	policies, acls, err := vaultJSON(v)
	if err != nil {
		return err
	}
	version := v.Version
	if version == 0 {
		version = 1
	}
	n, err := t.execN(ctx, `INSERT INTO vaults (name_key, name, sub_key, rg_key, subscription_id, resource_group, location, tenant_id, sku,
		soft_delete_retention_days, enable_purge_protection, enable_rbac_authorization, access_policies, network_acls, public_network_access, uri,
		created_at, updated_at, deleted_at, scheduled_purge_at, version, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key(v.Name), v.Name, key(v.SubscriptionID), key(v.ResourceGroup), v.SubscriptionID, v.ResourceGroup, v.Location, v.TenantID, v.SKU,
		int64(v.SoftDeleteRetentionDays), v.EnablePurgeProtection, v.EnableRbacAuthorization, policies, acls, v.PublicNetworkAccess, v.URI,
		nanos(v.CreatedAt), nanos(v.UpdatedAt), nanos(v.DeletedAt), nanos(v.ScheduledPurgeAt), version, v.MAC)
	if err != nil {
		return t.fail("create vault", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "the vault name %q is already in use", v.Name)
	}
	v.Version = version
	return nil
}

func vaultJSON(v *keyhold.Vault) (policies, acls string, err error) {
	if policies, err = jsonArg(v.AccessPolicies); err != nil {
		return "", "", err
	}
	acls, err = jsonArg(v.NetworkACLs)
	return policies, acls, err
}

const vaultCols = `name, subscription_id, resource_group, location, tenant_id, sku, soft_delete_retention_days, enable_purge_protection,
	enable_rbac_authorization, access_policies, network_acls, public_network_access, uri, created_at, updated_at, deleted_at, scheduled_purge_at, version, mac`

func scanVault(sc scanner) (*keyhold.Vault, error) {
	v := &keyhold.Vault{}
	var days int64
	err := sc.Scan(&v.Name, &v.SubscriptionID, &v.ResourceGroup, &v.Location, &v.TenantID, &v.SKU, &days, boolCol{&v.EnablePurgeProtection},
		boolCol{&v.EnableRbacAuthorization}, jsonCol{&v.AccessPolicies}, jsonCol{&v.NetworkACLs}, &v.PublicNetworkAccess, &v.URI,
		timeCol{&v.CreatedAt}, timeCol{&v.UpdatedAt}, timeCol{&v.DeletedAt}, timeCol{&v.ScheduledPurgeAt}, &v.Version, &v.MAC)
	v.SoftDeleteRetentionDays = int(days)
	return v, err
}

func vaultNotFound(name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeNotFound, "vault %q not found", name)
}

// Vault returns a vault, live or soft-deleted, or CodeNotFound.
func (t *tx) Vault(ctx context.Context, name string) (*keyhold.Vault, error) {
	v, err := get(t, ctx, "get vault", scanVault, `SELECT `+vaultCols+` FROM vaults WHERE name_key = ?`, key(name))
	if err != nil {
		return nil, notFound(err, vaultNotFound(name))
	}
	return v, nil
}

// UpdateVault writes v if the stored version is v.Version, and then
// increments v.Version. The name and creation time never change. A stale
// version is CodeConflict; a missing vault, CodeNotFound.
func (t *tx) UpdateVault(ctx context.Context, v *keyhold.Vault) error {
	if err := checkTimes(v.UpdatedAt, v.DeletedAt, v.ScheduledPurgeAt); err != nil {
		return err
	}
	policies, acls, err := vaultJSON(v)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE vaults SET sub_key = ?, rg_key = ?, subscription_id = ?, resource_group = ?, location = ?, tenant_id = ?, sku = ?,
		soft_delete_retention_days = ?, enable_purge_protection = ?, enable_rbac_authorization = ?, access_policies = ?, network_acls = ?,
		public_network_access = ?, uri = ?, updated_at = ?, deleted_at = ?, scheduled_purge_at = ?, mac = ?, version = version + 1
		WHERE name_key = ? AND version = ?`,
		key(v.SubscriptionID), key(v.ResourceGroup), v.SubscriptionID, v.ResourceGroup, v.Location, v.TenantID, v.SKU,
		int64(v.SoftDeleteRetentionDays), v.EnablePurgeProtection, v.EnableRbacAuthorization, policies, acls,
		v.PublicNetworkAccess, v.URI, nanos(v.UpdatedAt), nanos(v.DeletedAt), nanos(v.ScheduledPurgeAt), v.MAC,
		key(v.Name), v.Version)
	if err != nil {
		return t.fail("update vault", err)
	}
	if n == 0 {
		found, err := t.exists(ctx, `SELECT 1 FROM vaults WHERE name_key = ?`, key(v.Name))
		if err != nil {
			return t.fail("update vault", err)
		}
		if !found {
			return vaultNotFound(v.Name)
		}
		return keyhold.Errorf(keyhold.CodeConflict,
			"vault %q was changed by another request since version %d was read: read it again and retry", v.Name, v.Version)
	}
	v.Version++
	return nil
}

// ListVaults returns the live (or, with f.Deleted, the soft-deleted) vaults
// of a subscription (every subscription's if f.SubscriptionID is ""),
// optionally of one resource group, by name.
func (t *tx) ListVaults(ctx context.Context, f keyhold.VaultFilter) ([]*keyhold.Vault, error) {
	conds := []string{"deleted_at = ?"}
	if f.Deleted {
		conds[0] = "deleted_at <> ?"
	}
	args := []any{int64(zeroNanos)}
	if f.SubscriptionID != "" {
		conds, args = append(conds, "sub_key = ?"), append(args, key(f.SubscriptionID))
	}
	if f.ResourceGroup != "" {
		conds, args = append(conds, "rg_key = ?"), append(args, key(f.ResourceGroup))
	}
	return list(t, ctx, "list vaults", scanVault, `SELECT `+vaultCols+` FROM vaults`+where(conds)+` ORDER BY name_key`, args...)
}

// PurgeVault deletes a vault with its keys and their versions for good, or
// returns CodeNotFound.
func (t *tx) PurgeVault(ctx context.Context, name string) error {
	n, err := t.execN(ctx, `DELETE FROM vaults WHERE name_key = ?`, key(name))
	if err != nil {
		return t.fail("purge vault", err)
	}
	if n == 0 {
		return vaultNotFound(name)
	}
	// The foreign keys cascade; explicit deletes keep the guarantee without
	// them.
	for _, table := range []string{"key_versions", "vault_keys"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE vault_key = ?`, key(name)); err != nil {
			return t.fail("purge vault", err)
		}
	}
	return nil
}

// PutKey inserts or replaces a key of an existing vault (else
// CodeNotFound).
func (t *tx) PutKey(ctx context.Context, k *keyhold.Key) error {
	if err := checkTimes(k.CreatedAt, k.UpdatedAt, k.DeletedAt, k.ScheduledPurgeAt); err != nil {
		return err
	}
	if k.RotationPolicy != nil {
		if err := checkTimes(k.RotationPolicy.CreatedAt, k.RotationPolicy.UpdatedAt); err != nil {
			return err
		}
	}
	tags, err := jsonArg(k.Tags)
	if err != nil {
		return err
	}
	var policy any // NULL: no rotation policy
	if k.RotationPolicy != nil {
		p := *k.RotationPolicy
		// In UTC, so that the times come back as the store's others do.
		p.CreatedAt, p.UpdatedAt = utcOrZero(p.CreatedAt), utcOrZero(p.UpdatedAt)
		if policy, err = jsonArg(&p); err != nil {
			return err
		}
	}
	_, err = t.exec(ctx, `INSERT INTO vault_keys (vault_key, name_key, vault_name, name, type, size, current_version, tags, rotation_policy,
		created_at, updated_at, deleted_at, scheduled_purge_at, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (vault_key, name_key) DO UPDATE SET vault_name = excluded.vault_name, name = excluded.name, type = excluded.type,
		size = excluded.size, current_version = excluded.current_version, tags = excluded.tags, rotation_policy = excluded.rotation_policy,
		created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = excluded.deleted_at, scheduled_purge_at = excluded.scheduled_purge_at,
		mac = excluded.mac`,
		key(k.VaultName), key(k.Name), k.VaultName, k.Name, k.Type, int64(k.Size), k.CurrentVersion, tags, policy,
		nanos(k.CreatedAt), nanos(k.UpdatedAt), nanos(k.DeletedAt), nanos(k.ScheduledPurgeAt), k.MAC)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return vaultNotFound(k.VaultName).WithCause(err)
		}
		return t.fail("put key", err)
	}
	return nil
}

// utcOrZero returns t in UTC, keeping the zero time zero.
func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// policyCol scans a nullable rotation policy.
type policyCol struct{ p **keyhold.RotationPolicy }

func (c policyCol) Scan(v any) error {
	if v == nil {
		*c.p = nil
		return nil
	}
	*c.p = &keyhold.RotationPolicy{}
	return jsonCol{*c.p}.Scan(v)
}

const keyCols = `vault_name, name, type, size, current_version, tags, rotation_policy, created_at, updated_at, deleted_at, scheduled_purge_at, mac`

func scanKey(sc scanner) (*keyhold.Key, error) {
	k := &keyhold.Key{}
	var size int64
	err := sc.Scan(&k.VaultName, &k.Name, &k.Type, &size, &k.CurrentVersion, jsonCol{&k.Tags}, policyCol{&k.RotationPolicy},
		timeCol{&k.CreatedAt}, timeCol{&k.UpdatedAt}, timeCol{&k.DeletedAt}, timeCol{&k.ScheduledPurgeAt}, &k.MAC)
	k.Size = int(size)
	return k, err
}

func keyNotFound(vaultName, name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeNotFound, "key %q not found in vault %q", name, vaultName)
}

// Key returns a key, live or soft-deleted, or CodeNotFound.
func (t *tx) Key(ctx context.Context, vaultName, name string) (*keyhold.Key, error) {
	k, err := get(t, ctx, "get key", scanKey, `SELECT `+keyCols+` FROM vault_keys WHERE vault_key = ? AND name_key = ?`, key(vaultName), key(name))
	if err != nil {
		return nil, notFound(err, keyNotFound(vaultName, name))
	}
	return k, nil
}

// ListKeys returns a vault's live (or, with deleted, soft-deleted) keys by
// name.
func (t *tx) ListKeys(ctx context.Context, vaultName string, deleted bool) ([]*keyhold.Key, error) {
	cond := "deleted_at = ?"
	if deleted {
		cond = "deleted_at <> ?"
	}
	return list(t, ctx, "list keys", scanKey,
		`SELECT `+keyCols+` FROM vault_keys WHERE vault_key = ? AND `+cond+` ORDER BY name_key`, key(vaultName), int64(zeroNanos))
}

// PurgeKey deletes a key and its versions for good, or returns
// CodeNotFound.
func (t *tx) PurgeKey(ctx context.Context, vaultName, name string) error {
	n, err := t.execN(ctx, `DELETE FROM vault_keys WHERE vault_key = ? AND name_key = ?`, key(vaultName), key(name))
	if err != nil {
		return t.fail("purge key", err)
	}
	if n == 0 {
		return keyNotFound(vaultName, name)
	}
	if _, err := t.exec(ctx, `DELETE FROM key_versions WHERE vault_key = ? AND name_key = ?`, key(vaultName), key(name)); err != nil {
		return t.fail("purge key", err)
	}
	return nil
}

// PutKeyVersion inserts or replaces a version of an existing key (else
// CodeNotFound). Its material is stored as the opaque bytes given.
func (t *tx) PutKeyVersion(ctx context.Context, v *keyhold.KeyVersion) error {
	if err := checkTimes(v.NotBefore, v.Expires, v.CreatedAt, v.UpdatedAt); err != nil {
		return err
	}
	ops, err := jsonArg(v.KeyOps)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO key_versions (vault_key, name_key, version_key, vault_name, name, version, type, size, n, e, key_ops, enabled,
		not_before, expires, material, created_at, updated_at, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (vault_key, name_key, version_key) DO UPDATE SET vault_name = excluded.vault_name, name = excluded.name, version = excluded.version,
		type = excluded.type, size = excluded.size, n = excluded.n, e = excluded.e, key_ops = excluded.key_ops, enabled = excluded.enabled,
		not_before = excluded.not_before, expires = excluded.expires, material = excluded.material, created_at = excluded.created_at, updated_at = excluded.updated_at,
		mac = excluded.mac`,
		key(v.VaultName), key(v.Name), key(v.Version), v.VaultName, v.Name, v.Version, v.Type, int64(v.Size), blob(v.N), int64(v.E), ops, v.Enabled,
		nanos(v.NotBefore), nanos(v.Expires), blob(v.Material), nanos(v.CreatedAt), nanos(v.UpdatedAt), v.MAC)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyNotFound(v.VaultName, v.Name).WithCause(err)
		}
		return t.fail("put key version", err)
	}
	return nil
}

const keyVersionCols = `vault_name, name, version, type, size, n, e, key_ops, enabled, not_before, expires, material, created_at, updated_at, mac`

func scanKeyVersion(sc scanner) (*keyhold.KeyVersion, error) {
	v := &keyhold.KeyVersion{}
	var size, e int64
	err := sc.Scan(&v.VaultName, &v.Name, &v.Version, &v.Type, &size, &v.N, &e, jsonCol{&v.KeyOps}, boolCol{&v.Enabled},
		timeCol{&v.NotBefore}, timeCol{&v.Expires}, &v.Material, timeCol{&v.CreatedAt}, timeCol{&v.UpdatedAt}, &v.MAC)
	v.Size, v.E = int(size), int(e)
	return v, err
}

// KeyVersion returns one version of a key, or CodeNotFound.
func (t *tx) KeyVersion(ctx context.Context, vaultName, name, version string) (*keyhold.KeyVersion, error) {
	v, err := get(t, ctx, "get key version", scanKeyVersion,
		`SELECT `+keyVersionCols+` FROM key_versions WHERE vault_key = ? AND name_key = ? AND version_key = ?`, key(vaultName), key(name), key(version))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "version %q of key %q not found in vault %q", version, name, vaultName))
	}
	return v, nil
}

// ListKeyVersions returns a key's versions, oldest first.
func (t *tx) ListKeyVersions(ctx context.Context, vaultName, name string) ([]*keyhold.KeyVersion, error) {
	return list(t, ctx, "list key versions", scanKeyVersion,
		`SELECT `+keyVersionCols+` FROM key_versions WHERE vault_key = ? AND name_key = ? ORDER BY created_at, version_key`, key(vaultName), key(name))
}

// KeysWithRotationPolicy returns the live keys, of every vault, that have a
// rotation policy, by vault and name.
func (t *tx) KeysWithRotationPolicy(ctx context.Context) ([]*keyhold.Key, error) {
	return list(t, ctx, "list keys with a rotation policy", scanKey,
		`SELECT `+keyCols+` FROM vault_keys WHERE rotation_policy IS NOT NULL AND deleted_at = ? ORDER BY vault_key, name_key`, int64(zeroNanos))
}
