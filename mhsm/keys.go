package mhsm

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Keys is the HSM's key data plane. Every key is RSA-HSM: generated in the
// PKCS#11 token, sensitive and not extractable; the store holds its public
// part and a reference to the token object. Wrap runs on the public key;
// unwrap runs in the token.
type Keys struct{ *core }

var keyNameRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`)

// Key operations.
const (
	opWrapKey   = "wrapKey"
	opUnwrapKey = "unwrapKey"
)

var allKeyOps = []string{"encrypt", "decrypt", "sign", "verify", opWrapKey, opUnwrapKey}

func (s *core) kid(hsm, name, version string) string {
	return s.addr.KeyID(hsm, name, version).String()
}

func (s *core) bundle(k *keyhold.Key, v *keyhold.KeyVersion) *keyhold.KeyBundle {
	b := &keyhold.KeyBundle{Key: k, Version: v, KID: s.kid(k.VaultName, k.Name, v.Version)}
	if k.Deleted() {
		b.RecoveryID = s.addr.VaultURI(k.VaultName) + "/deletedkeys/" + k.Name
	}
	return b
}

func keyNotFound(hsm, name string) error {
	return keyhold.Errorf(keyhold.CodeKeyNotFound, "A key with (name/id) %s was not found in Managed HSM %s", keyhold.Clip(name), keyhold.Clip(hsm))
}

// key loads a key: live (deleted false) or soft-deleted.
func key(ctx context.Context, tx keyhold.Tx, hsm, name string, deleted bool) (*keyhold.Key, error) {
	k, err := tx.HSMKey(ctx, hsm, name)
	if codeIs(err, keyhold.CodeKeyNotFound) || err == nil && k.Deleted() != deleted {
		return nil, keyNotFound(hsm, name)
	}
	return k, err
}

// version loads version ("" current) of k.
func version(ctx context.Context, tx keyhold.Tx, k *keyhold.Key, version string) (*keyhold.KeyVersion, error) {
	if version == "" {
		version = k.CurrentVersion
	}
	v, err := tx.HSMKeyVersion(ctx, k.VaultName, k.Name, version)
	if codeIs(err, keyhold.CodeKeyNotFound) {
		return nil, keyhold.Errorf(keyhold.CodeKeyNotFound, "A key with (name/id) %s/%s was not found in Managed HSM %s", k.Name, keyhold.Clip(version), k.VaultName)
	}
	return v, err
}

// authorized opens hsm (active), authorizes action on the key's scope and
// loads the key (and version unless "-" ).
func (s *Keys) authorized(ctx context.Context, tx keyhold.Tx, hsm, name, ver, action string, deleted bool) (*keyhold.ManagedHSM, *keyhold.Key, *keyhold.KeyVersion, error) {
	h, err := activeHSM(ctx, tx, hsm, false)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := authorize(ctx, tx, h, "/keys/"+name, action); err != nil {
		return nil, nil, nil, err
	}
	k, err := key(ctx, tx, h.Name, name, deleted)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := version(ctx, tx, k, ver)
	if err != nil {
		return nil, nil, nil, err
	}
	return h, k, v, nil
}

func normKeyOps(ops []string) ([]string, error) {
	if ops == nil {
		return slices.Clone(allKeyOps), nil
	}
	out := []string{}
	for _, op := range ops {
		i := slices.IndexFunc(allKeyOps, func(o string) bool { return strings.EqualFold(o, op) })
		if i < 0 {
			return nil, keyhold.Errorf(keyhold.CodeBadParameter, "key operation %q is not supported: use any of %s", keyhold.Clip(op), strings.Join(allKeyOps, ", "))
		}
		if !slices.Contains(out, allKeyOps[i]) {
			out = append(out, allKeyOps[i])
		}
	}
	return out, nil
}

func applyAttributes(v *keyhold.KeyVersion, a keyhold.KeyAttributes) {
	if a.Enabled != nil {
		v.Enabled = *a.Enabled
	}
	if a.NotBefore != nil {
		v.NotBefore = a.NotBefore.UTC()
	}
	if a.Expires != nil {
		v.Expires = a.Expires.UTC()
	}
}

// newVersion generates a key pair in the token and returns its version.
func (s *Keys) generate(hsm, name string, size int, ops []string) (*keyhold.KeyVersion, error) {
	ver := newVersion()
	material, pub, err := s.tok.Generate(size, "mhsm/"+hsm+"/"+name+"/"+ver)
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeServiceUnavailable, "the HSM could not generate the key: retry").WithCause(err)
	}
	now := s.now()
	return &keyhold.KeyVersion{VaultName: hsm, Name: name, Version: ver, Type: keyhold.KeyTypeRSAHSM, Size: size,
		N: pub.N.Bytes(), E: pub.E, KeyOps: ops, Enabled: true, Material: material, CreatedAt: now, UpdatedAt: now}, nil
}

// CreateKey creates a key, or a new version of a live one. Only RSA-HSM
// (2048, 3072 or 4096 bits) is offered: a Managed HSM holds no software
// keys.
func (s *Keys) CreateKey(ctx context.Context, hsm, name string, p keyhold.CreateKeyParams) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	var tenant string
	err := func() error {
		if !keyNameRE.MatchString(name) {
			return keyhold.Errorf(keyhold.CodeBadParameter, "key name %q is invalid: use 1 to 127 letters, digits and hyphens", keyhold.Clip(name))
		}
		if p.Type != keyhold.KeyTypeRSAHSM {
			return keyhold.Errorf(keyhold.CodeBadParameter, "key type %q is not supported by a Managed HSM: use \"kty\": \"RSA-HSM\"", keyhold.Clip(p.Type))
		}
		size := p.Size
		if size == 0 {
			size = 2048
		}
		if size != 2048 && size != 3072 && size != 4096 {
			return keyhold.Errorf(keyhold.CodeBadParameter, "key size %d is not supported: use 2048, 3072 or 4096", size)
		}
		ops, err := normKeyOps(p.KeyOps)
		if err != nil {
			return err
		}
		// Check before generating: a refused caller costs no token work.
		if err := s.store.View(ctx, func(tx keyhold.Tx) error {
			h, err := activeHSM(ctx, tx, hsm, false)
			if err != nil {
				return err
			}
			tenant = h.TenantID
			return authorize(ctx, tx, h, "/keys/"+name, actKeyWrite)
		}); err != nil {
			return err
		}
		v, err := s.generate(hsm, name, size, ops)
		if err != nil {
			return err
		}
		applyAttributes(v, p.Attributes)
		err = s.store.Update(ctx, func(tx keyhold.Tx) error {
			h, err := activeHSM(ctx, tx, hsm, false)
			if err != nil {
				return err
			}
			if err := authorize(ctx, tx, h, "/keys/"+name, actKeyWrite); err != nil {
				return err
			}
			v.VaultName = h.Name
			k, err := tx.HSMKey(ctx, h.Name, name)
			switch {
			case codeIs(err, keyhold.CodeKeyNotFound):
				k = &keyhold.Key{VaultName: h.Name, Name: name, CreatedAt: v.CreatedAt}
			case err != nil:
				return err
			case k.Deleted():
				return keyhold.Errorf(keyhold.CodeConflict, "Key %s is currently in a deleted but recoverable state, and its name cannot be reused; recover or purge it first.", name)
			}
			k.Type, k.Size, k.CurrentVersion, k.UpdatedAt = v.Type, v.Size, v.Version, v.CreatedAt
			if p.Tags != nil {
				k.Tags = p.Tags
			}
			if err := tx.PutHSMKey(ctx, k); err != nil {
				return err
			}
			if err := tx.PutHSMKeyVersion(ctx, v); err != nil {
				return err
			}
			out = s.bundle(k, v)
			return nil
		})
		if err != nil {
			s.destroy([][]byte{v.Material})
		}
		return err
	}()
	return out, s.audit(ctx, tenant, "managedhsm.key.create", s.kid(hsm, name, ""), err)
}

// ImportKey is not offered: a Managed HSM's keys are generated in it.
func (s *Keys) ImportKey(ctx context.Context, hsm, name string, _ keyhold.JSONWebKey, _ bool, _ keyhold.KeyAttributes, _ map[string]string) (*keyhold.KeyBundle, error) {
	return nil, keyhold.Errorf(keyhold.CodeNotSupported, "importing a key into a Managed HSM is not supported by Keyhold: create the key in the HSM (POST /keys/%s/create)", keyhold.Clip(name))
}

// GetRotationPolicy is not offered for Managed HSM keys: rotate them on demand.
func (s *Keys) GetRotationPolicy(ctx context.Context, hsm, name string) (*keyhold.RotationPolicy, error) {
	return nil, keyhold.Errorf(keyhold.CodeNotSupported, "rotation policies are not supported for Managed HSM keys by Keyhold: rotate with POST /keys/%s/rotate", keyhold.Clip(name))
}

// SetRotationPolicy is not offered for Managed HSM keys.
func (s *Keys) SetRotationPolicy(ctx context.Context, hsm, name string, _ *keyhold.RotationPolicy) (*keyhold.RotationPolicy, error) {
	return s.GetRotationPolicy(ctx, hsm, name)
}

// GetKey returns a version ("" current) of a live key.
func (s *Keys) GetKey(ctx context.Context, hsm, name, ver string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		_, k, v, err := s.authorized(ctx, tx, hsm, name, ver, actKeyRead, false)
		if err != nil {
			return err
		}
		out = s.bundle(k, v)
		return nil
	})
	return out, err
}

func (s *Keys) list(ctx context.Context, hsm string, deleted bool) ([]*keyhold.KeyBundle, error) {
	out := []*keyhold.KeyBundle{}
	action := actKeyRead
	if deleted {
		action = actDeletedRead
	}
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		h, err := activeHSM(ctx, tx, hsm, false)
		if err != nil {
			return err
		}
		if err := authorize(ctx, tx, h, "/keys", action); err != nil {
			return err
		}
		ks, err := tx.ListHSMKeys(ctx, h.Name, deleted)
		if err != nil {
			return err
		}
		for _, k := range ks {
			v, err := version(ctx, tx, k, "")
			if err != nil {
				return err
			}
			out = append(out, s.bundle(k, v))
		}
		return nil
	})
	return out, err
}

// ListKeys lists the live keys (the caller needs keys/read at /keys or /).
func (s *Keys) ListKeys(ctx context.Context, hsm string) ([]*keyhold.KeyBundle, error) {
	return s.list(ctx, hsm, false)
}

// ListDeletedKeys lists the soft-deleted keys.
func (s *Keys) ListDeletedKeys(ctx context.Context, hsm string) ([]*keyhold.KeyBundle, error) {
	return s.list(ctx, hsm, true)
}

// ListKeyVersions lists a live key's versions, oldest first.
func (s *Keys) ListKeyVersions(ctx context.Context, hsm, name string) ([]*keyhold.KeyBundle, error) {
	out := []*keyhold.KeyBundle{}
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		_, k, _, err := s.authorized(ctx, tx, hsm, name, "", actKeyRead, false)
		if err != nil {
			return err
		}
		vs, err := tx.ListHSMKeyVersions(ctx, k.VaultName, k.Name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			out = append(out, s.bundle(k, v))
		}
		return nil
	})
	return out, err
}

// UpdateKey changes a version's attributes (enable, disable, dates), key
// operations and the key's tags.
func (s *Keys) UpdateKey(ctx context.Context, hsm, name, ver string, attrs keyhold.KeyAttributes, keyOps []string, tags map[string]string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		h, k, v, err := s.authorized(ctx, tx, hsm, name, ver, actKeyWrite, false)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if keyOps != nil {
			if v.KeyOps, err = normKeyOps(keyOps); err != nil {
				return err
			}
		}
		applyAttributes(v, attrs)
		v.UpdatedAt = s.now()
		if tags != nil {
			k.Tags, k.UpdatedAt = tags, v.UpdatedAt
			if err := tx.PutHSMKey(ctx, k); err != nil {
				return err
			}
		}
		if err := tx.PutHSMKeyVersion(ctx, v); err != nil {
			return err
		}
		out = s.bundle(k, v)
		return nil
	})
	return out, s.audit(ctx, tenant, "managedhsm.key.update", s.kid(hsm, name, ver), err)
}

// RotateKey makes a new current version with the current one's size and
// operations.
func (s *Keys) RotateKey(ctx context.Context, hsm, name string) (*keyhold.KeyBundle, error) {
	var cur *keyhold.KeyVersion
	var tenant string
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		var h *keyhold.ManagedHSM
		h, _, cur, err = s.authorized(ctx, tx, hsm, name, "", actKeyRotate, false)
		if h != nil {
			tenant = h.TenantID
		}
		return err
	})
	if err != nil {
		return nil, s.audit(ctx, tenant, "managedhsm.key.rotate", s.kid(hsm, name, ""), err)
	}
	return s.CreateKey(ctx, hsm, name, keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM, Size: cur.Size, KeyOps: cur.KeyOps})
}

// usable checks that v may serve op now.
func usable(v *keyhold.KeyVersion, op string, now time.Time) error {
	refuse := func(inner, format string, args ...any) error {
		return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: inner, Message: fmt.Sprintf(format, args...)}
	}
	if !v.Enabled {
		return refuse(keyhold.InnerKeyDisabled, "Operation %s is not allowed on a disabled key. Enable version %s of key %s to use it.", op, v.Version, v.Name)
	}
	if op == opWrapKey && (!v.NotBefore.IsZero() && now.Before(v.NotBefore) || !v.Expires.IsZero() && !now.Before(v.Expires)) {
		return refuse(keyhold.InnerKeyDisabled, "Operation %s is not allowed outside the key's validity: version %s of key %s.", op, v.Version, v.Name)
	}
	if !slices.Contains(v.KeyOps, op) {
		return refuse("KeyOperationForbidden", "Operation %s is not permitted on this key: version %s of key %s allows %s.", op, v.Version, v.Name, strings.Join(v.KeyOps, ", "))
	}
	return nil
}

func (s *Keys) cryptoKey(ctx context.Context, hsm, name, ver, alg, op, action string) (*keyhold.ManagedHSM, *keyhold.KeyVersion, error) {
	var h *keyhold.ManagedHSM
	var v *keyhold.KeyVersion
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		h, _, v, err = s.authorized(ctx, tx, hsm, name, ver, action, false)
		return err
	})
	if err != nil {
		return h, nil, err
	}
	if err := usable(v, op, s.now()); err != nil {
		return h, nil, err
	}
	if _, err := crypt.OAEPHash(alg); err != nil {
		return h, nil, keyhold.Errorf(keyhold.CodeBadParameter, "algorithm %q is not supported for %s: use %s or %s", keyhold.Clip(alg), op, crypt.AlgRSAOAEP, crypt.AlgRSAOAEP256)
	}
	return h, v, nil
}

func tenantOf(h *keyhold.ManagedHSM) string {
	if h == nil {
		return ""
	}
	return h.TenantID
}

// WrapKey encrypts value with RSA-OAEP or RSA-OAEP-256 under a version
// ("" current) and returns the versioned kid.
func (s *Keys) WrapKey(ctx context.Context, hsm, name, ver, alg string, value []byte) (kid string, result []byte, err error) {
	h, v, err := s.cryptoKey(ctx, hsm, name, ver, alg, opWrapKey, actKeyWrap)
	if err == nil {
		if max, _ := crypt.OAEPMaxPlaintext(v.Size, alg); len(value) > max {
			err = keyhold.Errorf(keyhold.CodeBadParameter, "the value is %d bytes long: %s under a %d-bit key wraps at most %d bytes", len(value), alg, v.Size, max)
		} else {
			result, err = crypt.WrapOAEP(&rsa.PublicKey{N: new(big.Int).SetBytes(v.N), E: v.E}, alg, value)
			kid = s.kid(v.VaultName, v.Name, v.Version)
		}
	}
	if err = s.audit(ctx, tenantOf(h), "managedhsm.key.wrap", s.kid(hsm, name, ver), err); err != nil {
		return "", nil, err
	}
	return kid, result, nil
}

// UnwrapKey decrypts, in the token, what WrapKey produced, with exactly
// the version named ("" current).
func (s *Keys) UnwrapKey(ctx context.Context, hsm, name, ver, alg string, value []byte) (kid string, result []byte, err error) {
	h, v, err := s.cryptoKey(ctx, hsm, name, ver, alg, opUnwrapKey, actKeyUnwrap)
	if err == nil {
		result, err = s.tok.Unwrap(v.Material, alg, v.N, value)
		if errors.Is(err, crypt.ErrDecrypt) {
			err = keyhold.Errorf(keyhold.CodeBadParameter,
				"the value does not decrypt under version %s of key %s with %s: unwrap with the kid and algorithm that wrapped it", v.Version, v.Name, alg)
		} else if err != nil {
			err = keyhold.Errorf(keyhold.CodeServiceUnavailable, "the HSM could not unwrap: retry").WithCause(err)
		}
		kid = s.kid(v.VaultName, v.Name, v.Version)
	}
	if err = s.audit(ctx, tenantOf(h), "managedhsm.key.unwrap", s.kid(hsm, name, ver), err); err != nil {
		return "", nil, err
	}
	return kid, result, nil
}

// DeleteKey soft-deletes a key with all its versions.
func (s *Keys) DeleteKey(ctx context.Context, hsm, name string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		h, k, v, err := s.authorized(ctx, tx, hsm, name, "", actKeyDelete, false)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		now := s.now()
		k.DeletedAt, k.ScheduledPurgeAt, k.UpdatedAt = now, now.AddDate(0, 0, h.SoftDeleteRetentionDays), now
		if err := tx.PutHSMKey(ctx, k); err != nil {
			return err
		}
		out = s.bundle(k, v)
		return nil
	})
	return out, s.audit(ctx, tenant, "managedhsm.key.delete", s.kid(hsm, name, ""), err)
}

// GetDeletedKey returns a soft-deleted key.
func (s *Keys) GetDeletedKey(ctx context.Context, hsm, name string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		_, k, v, err := s.authorized(ctx, tx, hsm, name, "", actDeletedRead, true)
		if err != nil {
			return err
		}
		out = s.bundle(k, v)
		return nil
	})
	return out, err
}

// RecoverDeletedKey undoes a soft delete (a Crypto Officer's call).
func (s *Keys) RecoverDeletedKey(ctx context.Context, hsm, name string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		h, k, v, err := s.authorized(ctx, tx, hsm, name, "", actKeyRecover, true)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		k.DeletedAt, k.ScheduledPurgeAt, k.UpdatedAt = time.Time{}, time.Time{}, s.now()
		if err := tx.PutHSMKey(ctx, k); err != nil {
			return err
		}
		out = s.bundle(k, v)
		return nil
	})
	return out, s.audit(ctx, tenant, "managedhsm.key.recover", s.kid(hsm, name, ""), err)
}

// PurgeDeletedKey removes a soft-deleted key for good, its token objects
// destroyed (a Crypto Officer's call). Under purge protection it is
// refused until the key's scheduled purge date.
func (s *Keys) PurgeDeletedKey(ctx context.Context, hsm, name string) error {
	var objs [][]byte
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		objs = nil
		h, k, _, err := s.authorized(ctx, tx, hsm, name, "", actKeyPurge, true)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if h.EnablePurgeProtection && s.now().Before(k.ScheduledPurgeAt) {
			return keyhold.Errorf(keyhold.CodeForbidden,
				"Operation \"purge\" is not allowed because purge protection is enabled for this Managed HSM: key %s can be purged after %s.", k.Name, k.ScheduledPurgeAt.Format(time.RFC3339))
		}
		vs, err := tx.ListHSMKeyVersions(ctx, k.VaultName, k.Name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			objs = append(objs, v.Material)
		}
		return tx.PurgeHSMKey(ctx, k.VaultName, k.Name)
	})
	if err == nil {
		s.destroy(objs)
	}
	return s.audit(ctx, tenant, "managedhsm.key.purge", s.kid(hsm, name, ""), err)
}
