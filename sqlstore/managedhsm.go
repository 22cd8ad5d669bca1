package sqlstore

// Managed HSMs (issue 18): each record is a JSON document (doc) with the
// columns its lookups and constraints need.

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

func hsmNotFound(name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeNotFound, "Managed HSM %q was not found", keyhold.Clip(name))
}

func scanHSM(s scanner) (*keyhold.ManagedHSM, error) {
	h := new(keyhold.ManagedHSM)
	var version int64
	if err := s.Scan(&version, jsonCol{h}); err != nil {
		return nil, err
	}
	h.Version = version
	return h, nil
}

// CreateManagedHSM stores a new HSM; a taken name (deleted HSMs included)
// is CodeConflict.
func (t *tx) CreateManagedHSM(ctx context.Context, h *keyhold.ManagedHSM) error {
	if err := checkTimes(h.CreatedAt, h.UpdatedAt, h.DeletedAt, h.ScheduledPurgeAt, h.ActivatedAt); err != nil {
		return err
	}
	doc, err := jsonArg(h)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO managed_hsms (name_key, sub_key, rg_key, deleted_at, version, doc) VALUES (?, ?, ?, ?, 1, ?)
		ON CONFLICT DO NOTHING`, key(h.Name), key(h.SubscriptionID), key(h.ResourceGroup), nanos(h.DeletedAt), doc)
	if err != nil {
		return t.fail("create managed HSM", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "the Managed HSM name %q is already in use", h.Name)
	}
	h.Version = 1
	return nil
}

// ManagedHSM returns an HSM by name, deleted or not.
func (t *tx) ManagedHSM(ctx context.Context, name string) (*keyhold.ManagedHSM, error) {
	h, err := get(t, ctx, "get managed HSM", scanHSM, `SELECT version, doc FROM managed_hsms WHERE name_key = ?`, key(name))
	if err != nil {
		return nil, notFound(err, hsmNotFound(name))
	}
	return h, nil
}

// UpdateManagedHSM writes h if the stored version is h.Version, then
// increments h.Version.
func (t *tx) UpdateManagedHSM(ctx context.Context, h *keyhold.ManagedHSM) error {
	if err := checkTimes(h.CreatedAt, h.UpdatedAt, h.DeletedAt, h.ScheduledPurgeAt, h.ActivatedAt); err != nil {
		return err
	}
	doc, err := jsonArg(h)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE managed_hsms SET sub_key = ?, rg_key = ?, deleted_at = ?, doc = ?, version = version + 1
		WHERE name_key = ? AND version = ?`, key(h.SubscriptionID), key(h.ResourceGroup), nanos(h.DeletedAt), doc, key(h.Name), h.Version)
	if err != nil {
		return t.fail("update managed HSM", err)
	}
	if n == 0 {
		found, err := t.exists(ctx, `SELECT 1 FROM managed_hsms WHERE name_key = ?`, key(h.Name))
		if err != nil {
			return t.fail("update managed HSM", err)
		}
		if !found {
			return hsmNotFound(h.Name)
		}
		return keyhold.Errorf(keyhold.CodeConflict,
			"Managed HSM %q was changed by another request since version %d was read: read it again and retry", h.Name, h.Version)
	}
	h.Version++
	return nil
}

// ListManagedHSMs lists live (or, with f.Deleted, soft-deleted) HSMs by name.
func (t *tx) ListManagedHSMs(ctx context.Context, f keyhold.VaultFilter) ([]*keyhold.ManagedHSM, error) {
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
	return list(t, ctx, "list managed HSMs", scanHSM, `SELECT version, doc FROM managed_hsms`+where(conds)+` ORDER BY name_key`, args...)
}

// PurgeManagedHSM deletes an HSM with its keys, versions and role
// assignments.
func (t *tx) PurgeManagedHSM(ctx context.Context, name string) error {
	for _, table := range []string{"hsm_key_versions", "hsm_keys", "hsm_role_assignments"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE hsm_key = ?`, key(name)); err != nil {
			return t.fail("purge managed HSM", err)
		}
	}
	n, err := t.execN(ctx, `DELETE FROM managed_hsms WHERE name_key = ?`, key(name))
	if err != nil {
		return t.fail("purge managed HSM", err)
	}
	if n == 0 {
		return hsmNotFound(name)
	}
	return nil
}

func scanHSMKey(s scanner) (*keyhold.Key, error) {
	k := new(keyhold.Key)
	if err := s.Scan(jsonCol{k}); err != nil {
		return nil, err
	}
	return k, nil
}

// PutHSMKey inserts or replaces a key of an existing HSM (else
// CodeNotFound).
func (t *tx) PutHSMKey(ctx context.Context, k *keyhold.Key) error {
	if err := checkTimes(k.CreatedAt, k.UpdatedAt, k.DeletedAt, k.ScheduledPurgeAt); err != nil {
		return err
	}
	doc, err := jsonArg(k)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO hsm_keys (hsm_key, name_key, deleted_at, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (hsm_key, name_key) DO UPDATE SET deleted_at = excluded.deleted_at, doc = excluded.doc`,
		key(k.VaultName), key(k.Name), nanos(k.DeletedAt), doc)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return hsmNotFound(k.VaultName).WithCause(err)
		}
		return t.fail("put HSM key", err)
	}
	return nil
}

// HSMKey returns a key of an HSM, deleted or not.
func (t *tx) HSMKey(ctx context.Context, hsm, name string) (*keyhold.Key, error) {
	k, err := get(t, ctx, "get HSM key", scanHSMKey, `SELECT doc FROM hsm_keys WHERE hsm_key = ? AND name_key = ?`, key(hsm), key(name))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeKeyNotFound, "key %q was not found in Managed HSM %q", keyhold.Clip(name), keyhold.Clip(hsm)))
	}
	return k, nil
}

// ListHSMKeys lists an HSM's live (or deleted) keys by name.
func (t *tx) ListHSMKeys(ctx context.Context, hsm string, deleted bool) ([]*keyhold.Key, error) {
	cond := "deleted_at = ?"
	if deleted {
		cond = "deleted_at <> ?"
	}
	return list(t, ctx, "list HSM keys", scanHSMKey, `SELECT doc FROM hsm_keys WHERE hsm_key = ? AND `+cond+` ORDER BY name_key`,
		key(hsm), int64(zeroNanos))
}

// PurgeHSMKey deletes a key and its versions.
func (t *tx) PurgeHSMKey(ctx context.Context, hsm, name string) error {
	if _, err := t.exec(ctx, `DELETE FROM hsm_key_versions WHERE hsm_key = ? AND name_key = ?`, key(hsm), key(name)); err != nil {
		return t.fail("purge HSM key", err)
	}
	n, err := t.execN(ctx, `DELETE FROM hsm_keys WHERE hsm_key = ? AND name_key = ?`, key(hsm), key(name))
	if err != nil {
		return t.fail("purge HSM key", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeKeyNotFound, "key %q was not found in Managed HSM %q", keyhold.Clip(name), keyhold.Clip(hsm))
	}
	return nil
}

func scanHSMKeyVersion(s scanner) (*keyhold.KeyVersion, error) {
	v := new(keyhold.KeyVersion)
	var material []byte
	if err := s.Scan(jsonCol{v}, &material); err != nil {
		return nil, err
	}
	v.Material = material
	return v, nil
}

// PutHSMKeyVersion inserts or replaces a version of an existing key.
func (t *tx) PutHSMKeyVersion(ctx context.Context, v *keyhold.KeyVersion) error {
	if err := checkTimes(v.CreatedAt, v.UpdatedAt, v.NotBefore, v.Expires); err != nil {
		return err
	}
	doc, err := jsonArg(v)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO hsm_key_versions (hsm_key, name_key, version_key, created_at, doc, material) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (hsm_key, name_key, version_key) DO UPDATE SET doc = excluded.doc, material = excluded.material`,
		key(v.VaultName), key(v.Name), strings.ToLower(v.Version), nanos(v.CreatedAt), doc, blob(v.Material))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeKeyNotFound, "key %q was not found in Managed HSM %q", keyhold.Clip(v.Name), keyhold.Clip(v.VaultName)).WithCause(err)
		}
		return t.fail("put HSM key version", err)
	}
	return nil
}

// HSMKeyVersion returns one version of a key.
func (t *tx) HSMKeyVersion(ctx context.Context, hsm, name, version string) (*keyhold.KeyVersion, error) {
	v, err := get(t, ctx, "get HSM key version", scanHSMKeyVersion,
		`SELECT doc, material FROM hsm_key_versions WHERE hsm_key = ? AND name_key = ? AND version_key = ?`, key(hsm), key(name), strings.ToLower(version))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeKeyNotFound, "key %q version %q was not found in Managed HSM %q",
			keyhold.Clip(name), keyhold.Clip(version), keyhold.Clip(hsm)))
	}
	return v, nil
}

// ListHSMKeyVersions lists a key's versions, oldest first.
func (t *tx) ListHSMKeyVersions(ctx context.Context, hsm, name string) ([]*keyhold.KeyVersion, error) {
	return list(t, ctx, "list HSM key versions", scanHSMKeyVersion,
		`SELECT doc, material FROM hsm_key_versions WHERE hsm_key = ? AND name_key = ? ORDER BY created_at, version_key`, key(hsm), key(name))
}

// sealedHSMAssignment is an HSM role assignment as read, with its seal.
type sealedHSMAssignment struct {
	a   *keyhold.HSMRoleAssignment
	mac []byte
}

func scanHSMAssignment(s scanner) (sealedHSMAssignment, error) {
	a := new(keyhold.HSMRoleAssignment)
	var mac []byte
	if err := s.Scan(jsonCol{a}, &mac); err != nil {
		return sealedHSMAssignment{}, err
	}
	return sealedHSMAssignment{a, mac}, nil
}

// PutHSMRoleAssignment stores a new role assignment of an existing HSM; a
// taken name is CodeConflict.
func (t *tx) PutHSMRoleAssignment(ctx context.Context, a *keyhold.HSMRoleAssignment) error {
	if err := checkTimes(a.CreatedAt); err != nil {
		return err
	}
	doc, err := jsonArg(a)
	if err != nil {
		return err
	}
	mac := t.sealOrNil(func(rs keyhold.RecordSealer) []byte { return rs.SealHSMRoleAssignment(a) })
	n, err := t.execN(ctx, `INSERT INTO hsm_role_assignments (hsm_key, name_key, created_at, doc, mac) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key(a.HSM), key(a.Name), nanos(a.CreatedAt), doc, mac)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return hsmNotFound(a.HSM).WithCause(err)
		}
		return t.fail("put HSM role assignment", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "role assignment %q already exists in Managed HSM %q", keyhold.Clip(a.Name), keyhold.Clip(a.HSM))
	}
	return nil
}

// ListHSMRoleAssignments lists an HSM's role assignments, oldest first.
// An assignment whose seal fails is left out, as absent, and reported as
// refused (access.go), as the resource manager's role assignments are.
func (t *tx) ListHSMRoleAssignments(ctx context.Context, hsm string) ([]*keyhold.HSMRoleAssignment, error) {
	all, err := list(t, ctx, "list HSM role assignments", scanHSMAssignment,
		`SELECT doc, mac FROM hsm_role_assignments WHERE hsm_key = ? ORDER BY created_at, name_key`, key(hsm))
	if err != nil {
		return nil, err
	}
	rs := t.sealer()
	out := make([]*keyhold.HSMRoleAssignment, 0, len(all))
	for _, s := range all {
		if rs == nil || t.keep("", "managedHSMs/"+s.a.HSM+"/roleAssignments/"+s.a.Name, rs.CheckHSMRoleAssignment(s.a, s.mac)) {
			out = append(out, s.a)
		}
	}
	return out, nil
}

// DeleteHSMRoleAssignment removes a role assignment, or returns
// CodeNotFound.
func (t *tx) DeleteHSMRoleAssignment(ctx context.Context, hsm, name string) error {
	n, err := t.execN(ctx, `DELETE FROM hsm_role_assignments WHERE hsm_key = ? AND name_key = ?`, key(hsm), key(name))
	if err != nil {
		return t.fail("delete HSM role assignment", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "role assignment %q was not found in Managed HSM %q", keyhold.Clip(name), keyhold.Clip(hsm))
	}
	return nil
}
