package vault

import (
	"context"
	"crypto/rsa"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// The data plane: Azure Key Vault's key management (keyops.go holds the
// cryptographic operations, purge.go soft delete, recovery and purge).

// Keys is the data plane's key management: create, import, get, list,
// update, rotate and rotation policies (rotation.go), soft delete, recover
// and purge (purge.go), authorized by RBAC data actions or access
// policies. Part of Service; safe for concurrent use.
type Keys struct{ *core }

// DefaultKeySize is the size of an RSA key created without one.
const DefaultKeySize = 2048

// Key operations (JSON Web Key "key_ops"), as Key Vault spells them.
const (
	KeyOpEncrypt   = "encrypt"
	KeyOpDecrypt   = "decrypt"
	KeyOpSign      = "sign"
	KeyOpVerify    = "verify"
	KeyOpWrapKey   = "wrapKey"
	KeyOpUnwrapKey = "unwrapKey"
	KeyOpImport    = "import"
	KeyOpExport    = "export"
)

// DefaultKeyOps are the operations of an RSA key created or imported
// without key_ops, as Key Vault gives them.
var DefaultKeyOps = []string{KeyOpEncrypt, KeyOpDecrypt, KeyOpSign, KeyOpVerify, KeyOpWrapKey, KeyOpUnwrapKey}

var allKeyOps = []string{KeyOpEncrypt, KeyOpDecrypt, KeyOpSign, KeyOpVerify, KeyOpWrapKey, KeyOpUnwrapKey, KeyOpImport, KeyOpExport}

// errNoHSM answers a request for an RSA-HSM key on a server without a
// token.
var errNoHSM = keyhold.Errorf(keyhold.CodeNotSupported,
	"RSA-HSM keys live in a PKCS#11 token and this server has none: start the server with a PKCS#11 token configured (module, token label and PIN), or use key type RSA")

// keyOp runs a data-plane operation on a key as an audited call whose
// target is the key's id (the version's once fn knows it).
func (s *core) keyOp(ctx context.Context, op *operation, vaultName, name string, fn func(c *call) error) error {
	return s.do(ctx, op.Audit, s.KeyID(vaultName, name, ""), func(c *call) error {
		if err := validKeyName(name); err != nil {
			return err
		}
		return fn(c)
	})
}

func keyNotFound(name, version string) *keyhold.Error {
	if version != "" {
		name += "/" + version
	}
	return keyhold.Errorf(keyhold.CodeKeyNotFound,
		"A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.", name)
}

// liveKey loads a key that is not deleted, or returns CodeKeyNotFound. The
// key's record, current version included, must pass its integrity check
// (CodeRecordIntegrity).
func (s *core) liveKey(ctx context.Context, tx keyhold.Tx, vaultName, name string) (*keyhold.Key, error) {
	return s.findKey(ctx, tx, vaultName, name, false, true)
}

// deletedKey loads a soft-deleted key, or returns CodeKeyNotFound; checked
// as liveKey's.
func (s *core) deletedKey(ctx context.Context, tx keyhold.Tx, vaultName, name string) (*keyhold.Key, error) {
	return s.findKey(ctx, tx, vaultName, name, true, true)
}

// findKey loads a live (or, with deleted, a soft-deleted) key and checks
// its record's integrity: its state always, its current version only with
// current (an operation on a named version doesn't depend on it).
func (s *core) findKey(ctx context.Context, tx keyhold.Tx, vaultName, name string, deleted, current bool) (*keyhold.Key, error) {
	k, err := tx.Key(ctx, vaultName, name)
	switch {
	case err == nil && k.Deleted() && !deleted:
		err = keyhold.Errorf(keyhold.CodeNotFound, "deleted")
	case err == nil && !k.Deleted() && deleted:
		err = keyhold.Errorf(keyhold.CodeNotFound, "not deleted")
	}
	switch {
	case codeIs(err, keyhold.CodeNotFound) && deleted:
		return nil, keyhold.Errorf(keyhold.CodeKeyNotFound, "Deleted Key not found: there is no deleted key named %s in this key vault.", name)
	case codeIs(err, keyhold.CodeNotFound):
		return nil, keyNotFound(name, "")
	case err != nil:
		return nil, err
	}
	check := s.rec.CheckKeyState
	if current {
		check = s.rec.CheckKey
	}
	if err := check(k); err != nil {
		return nil, err
	}
	return k, nil
}

// keyVersion loads a version of k ("" = the current one), or returns
// CodeKeyNotFound. The version's record must pass its integrity check
// (CodeRecordIntegrity): its public key, attributes and material are what
// every wrap and unwrap acts on.
func (s *core) keyVersion(ctx context.Context, tx keyhold.Tx, k *keyhold.Key, version string) (*keyhold.KeyVersion, error) {
	if version == "" {
		version = k.CurrentVersion
	}
	kv, err := tx.KeyVersion(ctx, k.VaultName, k.Name, version)
	if codeIs(err, keyhold.CodeNotFound) {
		return nil, keyNotFound(k.Name, version)
	} else if err != nil {
		return nil, err
	}
	if err := s.rec.CheckKeyVersion(kv); err != nil {
		return nil, err
	}
	return kv, nil
}

// authorizedKey authorizes c for op on key name of vault and loads the key
// (a live one, or with deleted a soft-deleted one) at version ("": its
// current version), with its vault, each checked for integrity. A get,
// wrap or unwrap of a named version leaves the key's current-version
// pointer unchecked, so that a changed pointer stops what follows the
// current version (a rotation) but not the use of the versions that
// environments are wrapped under; every other operation checks it, as it
// may write the key back.
func (s *core) authorizedKey(ctx context.Context, tx keyhold.Tx, c *call, op *operation, vault, name, version string, deleted bool) (*keyhold.Vault, *keyhold.Key, *keyhold.KeyVersion, error) {
	v, err := s.authorize(ctx, tx, c, op, vault, name)
	if err != nil {
		return nil, nil, nil, err
	}
	current := version == "" || (op != opGetKey && op != opWrapKey && op != opUnwrapKey)
	k, err := s.findKey(ctx, tx, v.Name, name, deleted, current)
	if err != nil {
		return nil, nil, nil, err
	}
	kv, err := s.keyVersion(ctx, tx, k, version)
	if err != nil {
		return nil, nil, nil, err
	}
	return v, k, kv, nil
}

// refuseDeleted refuses to reuse the name of a soft-deleted key.
func refuseDeleted(ctx context.Context, tx keyhold.Tx, vaultName, name string) error {
	k, err := tx.Key(ctx, vaultName, name)
	if codeIs(err, keyhold.CodeNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if k.Deleted() {
		return keyhold.Errorf(keyhold.CodeConflict,
			"Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.", k.Name)
	}
	return nil
}

// bundle answers a version of k, without its material.
func (s *core) bundle(k *keyhold.Key, kv *keyhold.KeyVersion) *keyhold.KeyBundle {
	v := *kv
	v.Material = nil
	v.KeyOps = slices.Clone(kv.KeyOps)
	b := &keyhold.KeyBundle{Key: k, Version: &v, KID: s.KeyID(k.VaultName, k.Name, kv.Version)}
	if k.Deleted() {
		b.RecoveryID = s.VaultURI(k.VaultName) + "/deletedkeys/" + k.Name
	}
	return b
}

// keyType checks a key type and says whether it lives in the token.
func keyType(kty string) (string, error) {
	switch {
	case strings.EqualFold(kty, keyhold.KeyTypeRSA), kty == "":
		return keyhold.KeyTypeRSA, nil
	case strings.EqualFold(kty, keyhold.KeyTypeRSAHSM):
		return keyhold.KeyTypeRSAHSM, nil
	}
	return "", keyhold.Errorf(keyhold.CodeBadParameter, "key type (kty) %q is not supported: use RSA or RSA-HSM", kty)
}

// normKeyOps checks key operations and spells them as Key Vault does;
// none gives DefaultKeyOps.
func normKeyOps(ops []string) ([]string, error) {
	if len(ops) == 0 {
		return slices.Clone(DefaultKeyOps), nil
	}
	out := []string{}
	for _, op := range ops {
		i := slices.IndexFunc(allKeyOps, func(o string) bool { return strings.EqualFold(o, op) })
		if i < 0 {
			return nil, keyhold.Errorf(keyhold.CodeBadParameter, "key operation %q is not valid: use any of %s", op, strings.Join(allKeyOps, ", "))
		}
		if !slices.Contains(out, allKeyOps[i]) {
			out = append(out, allKeyOps[i])
		}
	}
	return out, nil
}

// applyAttributes sets the attributes a gives on kv and checks that nbf
// comes before exp.
func applyAttributes(kv *keyhold.KeyVersion, a keyhold.KeyAttributes) error {
	if a.Enabled != nil {
		kv.Enabled = *a.Enabled
	}
	if a.NotBefore != nil {
		kv.NotBefore = utcOrZero(*a.NotBefore)
	}
	if a.Expires != nil {
		kv.Expires = utcOrZero(*a.Expires)
	}
	if !kv.NotBefore.IsZero() && !kv.Expires.IsZero() && !kv.NotBefore.Before(kv.Expires) {
		return keyhold.Errorf(keyhold.CodeBadParameter, "the key's nbf (%s) must come before its exp (%s)",
			kv.NotBefore.Format(time.RFC3339), kv.Expires.Format(time.RFC3339))
	}
	return nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// tokenLabel is the CKA_LABEL of a version's token object.
func tokenLabel(vault, name, version string) string {
	return "keyhold/" + strings.ToLower(vault) + "/" + strings.ToLower(name) + "/" + version
}

// generateRSAKey makes software RSA keys. It is a variable only so that
// tests can hand out pregenerated keys instead of waiting for new ones.
var generateRSAKey = crypt.GenerateRSAKey

// newMaterial makes a version's key: in the token for RSA-HSM, else in
// process, sealed under the master key for the version.
func (s *Keys) newMaterial(kty string, size int, vault, name, version string) ([]byte, *rsa.PublicKey, error) {
	if kty == keyhold.KeyTypeRSAHSM {
		if s.hsm == nil {
			return nil, nil, errNoHSM
		}
		return s.hsm.Generate(size, tokenLabel(vault, name, version))
	}
	k, err := generateRSAKey(size)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := crypt.SealRSAKey(s.master, crypt.RSAKeyPurpose(vault, name, version), k)
	if err != nil {
		return nil, nil, err
	}
	return sealed, &k.PublicKey, nil
}

// destroyTokenObjects removes token objects whose records are gone. A
// failure leaves an orphan object in the token, which is logged: the data
// is already unreachable through the vault.
func (s *core) destroyTokenObjects(objs [][]byte) {
	for _, m := range objs {
		if s.hsm == nil {
			s.log.Warn("vault: an RSA-HSM key was purged but this server has no PKCS#11 token to remove it from", "object", string(m))
			continue
		}
		if err := s.hsm.Destroy(m); err != nil {
			s.log.Error("vault: removing a purged key from the PKCS#11 token failed", "object", string(m), "err", err)
		}
	}
}

// keyTokenObjects returns the token objects of k's RSA-HSM versions. Each
// version must pass its integrity check, so that a changed reference
// never makes a purge destroy another key's object.
func (s *core) keyTokenObjects(ctx context.Context, tx keyhold.Tx, k *keyhold.Key) ([][]byte, error) {
	vs, err := tx.ListKeyVersions(ctx, k.VaultName, k.Name)
	if err != nil {
		return nil, err
	}
	var objs [][]byte
	for _, v := range vs {
		if err := s.rec.CheckKeyVersion(v); err != nil {
			return nil, err
		}
		if v.Type == keyhold.KeyTypeRSAHSM {
			objs = append(objs, v.Material)
		}
	}
	return objs, nil
}

// addVersion stores a new current version of the key named name in vault
// v (creating the key), in tx. The caller has checked the name is free
// of a deleted key.
func (s *Keys) addVersion(ctx context.Context, tx keyhold.Tx, v *keyhold.Vault, name string, kv *keyhold.KeyVersion, tags map[string]string) (*keyhold.Key, error) {
	k, err := tx.Key(ctx, v.Name, name)
	switch {
	case codeIs(err, keyhold.CodeNotFound):
		k = &keyhold.Key{VaultName: v.Name, Name: name, CreatedAt: kv.CreatedAt}
	case err != nil:
		return nil, err
	case k.Deleted():
		return nil, refuseDeleted(ctx, tx, v.Name, name)
	default:
		// The new version replaces the current one, whose pointer needs
		// no check; the rest of the key is written back and must be as
		// sealed.
		if err := s.rec.CheckKeyState(k); err != nil {
			return nil, err
		}
	}
	k.Type, k.Size, k.CurrentVersion, k.UpdatedAt = kv.Type, kv.Size, kv.Version, kv.CreatedAt
	if tags != nil {
		k.Tags = tags
	}
	kv.VaultName, kv.Name = k.VaultName, k.Name
	if err := s.putKey(ctx, tx, k); err != nil {
		return nil, err
	}
	if err := s.putKeyVersion(ctx, tx, kv); err != nil {
		return nil, err
	}
	return k, nil
}

// CreateKey creates a key, or a new version of an existing one. Type is
// RSA or RSA-HSM (which needs the server's PKCS#11 token: CodeNotSupported
// without one), Size 2048, 3072 or 4096. A name held by a deleted key is
// CodeConflict.
func (s *Keys) CreateKey(ctx context.Context, vault, name string, p keyhold.CreateKeyParams) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opCreateKey, vault, name, func(c *call) error {
		kty, err := keyType(p.Type)
		if err != nil {
			return err
		}
		size := p.Size
		if size == 0 {
			size = DefaultKeySize
		}
		if !crypt.ValidRSASize(size) {
			return keyhold.Errorf(keyhold.CodeBadParameter, "key size %d is not supported: use 2048, 3072 or 4096", size)
		}
		ops, err := normKeyOps(p.KeyOps)
		if err != nil {
			return err
		}
		if err := checkKEKOps(kty, ops); err != nil {
			return err
		}
		kv := &keyhold.KeyVersion{Type: kty, Size: size, KeyOps: ops, Enabled: true}
		if err := applyAttributes(kv, p.Attributes); err != nil {
			return err
		}
		if kty == keyhold.KeyTypeRSAHSM && s.hsm == nil {
			return errNoHSM
		}
		// Authorize before the slow key generation, and again in the
		// transaction that stores the key.
		if err := s.store.View(ctx, func(tx keyhold.Tx) error {
			v, err := s.authorize(ctx, tx, c, opCreateKey, vault, name)
			if err != nil {
				return err
			}
			return refuseDeleted(ctx, tx, v.Name, name)
		}); err != nil {
			return err
		}
		kv.Version = newVersion()
		material, pub, err := s.newMaterial(kty, size, vault, name, kv.Version)
		if err != nil {
			return err
		}
		kv.N, kv.E, kv.Material = pub.N.Bytes(), pub.E, material
		return s.storeNewKey(ctx, c, opCreateKey, vault, name, kv, p.Tags, &out)
	})
	return out, err
}

// storeNewKey stores kv as the new current version of a key, audited in
// the same transaction; if that fails, a token object made for it is
// removed again.
func (s *Keys) storeNewKey(ctx context.Context, c *call, op *operation, vault, name string, kv *keyhold.KeyVersion, tags map[string]string, out **keyhold.KeyBundle) error {
	if err := checkKeyTags(tags); err != nil {
		return err
	}
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		v, err := s.authorize(ctx, tx, c, op, vault, name)
		if err != nil {
			return err
		}
		now := s.now()
		kv.CreatedAt, kv.UpdatedAt = now, now
		k, err := s.addVersion(ctx, tx, v, name, kv, tags)
		if err != nil {
			return err
		}
		*out = s.bundle(k, kv)
		c.target = (*out).KID
		return c.record(ctx, tx, now)
	})
	if err != nil && kv.Type == keyhold.KeyTypeRSAHSM {
		s.destroyTokenObjects([][]byte{kv.Material})
	}
	return err
}

// ImportKey imports an RSA private key as a new version (into the token
// when hsm is true, or jwk.Kty is RSA-HSM), or, when jwk.HSM holds a
// key-transfer blob, the key it wraps to a KEK (transfer.go). The key must be 2048, 3072 or
// 4096 bits and carry n, e, d, p and q; anything else is CodeBadParameter.
func (s *Keys) ImportKey(ctx context.Context, vault, name string, jwk keyhold.JSONWebKey, hsm bool, attrs keyhold.KeyAttributes, tags map[string]string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opImportKey, vault, name, func(c *call) error {
		if len(jwk.HSM) > 0 {
			return s.importTransfer(ctx, c, vault, name, jwk, attrs, tags, &out)
		}
		kty, err := keyType(jwk.Kty)
		if err != nil {
			return err
		}
		if hsm {
			kty = keyhold.KeyTypeRSAHSM
		}
		priv, err := crypt.RSAKeyFromComponents(jwk.N, jwk.E, jwk.D, jwk.P, jwk.Q, jwk.DP, jwk.DQ, jwk.QI)
		if err != nil {
			return keyhold.Errorf(keyhold.CodeBadParameter, "the JSON web key can't be imported: %s", strings.TrimPrefix(err.Error(), "crypt: "))
		}
		ops, err := normKeyOps(jwk.KeyOps)
		if err != nil {
			return err
		}
		if err := checkKEKOps(kty, ops); err != nil {
			return err
		}
		kv := &keyhold.KeyVersion{Type: kty, Size: priv.N.BitLen(), KeyOps: ops, Enabled: true, N: priv.N.Bytes(), E: priv.E}
		if err := applyAttributes(kv, attrs); err != nil {
			return err
		}
		if kty == keyhold.KeyTypeRSAHSM && s.hsm == nil {
			return errNoHSM
		}
		if err := s.store.View(ctx, func(tx keyhold.Tx) error {
			v, err := s.authorize(ctx, tx, c, opImportKey, vault, name)
			if err != nil {
				return err
			}
			return refuseDeleted(ctx, tx, v.Name, name)
		}); err != nil {
			return err
		}
		kv.Version = newVersion()
		if kty == keyhold.KeyTypeRSAHSM {
			kv.Material, err = s.hsm.ImportKey(priv, tokenLabel(vault, name, kv.Version))
		} else {
			kv.Material, err = crypt.SealRSAKey(s.master, crypt.RSAKeyPurpose(vault, name, kv.Version), priv)
		}
		if err != nil {
			return err
		}
		return s.storeNewKey(ctx, c, opImportKey, vault, name, kv, tags, &out)
	})
	return out, err
}

// GetKey returns a key version ("" = current) with its public part.
func (s *Keys) GetKey(ctx context.Context, vault, name, version string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opGetKey, vault, name, func(c *call) error {
		return s.store.View(ctx, func(tx keyhold.Tx) error {
			_, k, kv, err := s.authorizedKey(ctx, tx, c, opGetKey, vault, name, version, false)
			if err != nil {
				return err
			}
			out = s.bundle(k, kv)
			c.target = out.KID
			return nil
		})
	})
	return out, err
}

// ListKeys lists the live keys of a vault (current versions), by name.
func (s *Keys) ListKeys(ctx context.Context, vault string) ([]*keyhold.KeyBundle, error) {
	return s.listKeys(ctx, opListKeys, vault, false)
}

// ListDeletedKeys lists a vault's soft-deleted keys, by name.
func (s *Keys) ListDeletedKeys(ctx context.Context, vault string) ([]*keyhold.KeyBundle, error) {
	return s.listKeys(ctx, opListDeletedKeys, vault, true)
}

func (s *Keys) listKeys(ctx context.Context, op *operation, vault string, deleted bool) ([]*keyhold.KeyBundle, error) {
	out := []*keyhold.KeyBundle{}
	err := s.do(ctx, op.Audit, s.VaultURI(vault), func(c *call) error {
		return s.store.View(ctx, func(tx keyhold.Tx) error {
			v, err := s.authorize(ctx, tx, c, op, vault, "")
			if err != nil {
				return err
			}
			ks, err := tx.ListKeys(ctx, v.Name, deleted)
			if err != nil {
				return err
			}
			for _, k := range ks {
				kv, err := s.keyVersion(ctx, tx, k, "")
				if err != nil {
					return err
				}
				out = append(out, s.bundle(k, kv))
			}
			return nil
		})
	})
	return out, err
}

// ListKeyVersions lists a key's versions, oldest first.
func (s *Keys) ListKeyVersions(ctx context.Context, vault, name string) ([]*keyhold.KeyBundle, error) {
	out := []*keyhold.KeyBundle{}
	err := s.keyOp(ctx, opListKeyVersions, vault, name, func(c *call) error {
		return s.store.View(ctx, func(tx keyhold.Tx) error {
			v, err := s.authorize(ctx, tx, c, opListKeyVersions, vault, name)
			if err != nil {
				return err
			}
			k, err := s.liveKey(ctx, tx, v.Name, name)
			if err != nil {
				return err
			}
			vs, err := tx.ListKeyVersions(ctx, k.VaultName, k.Name)
			if err != nil {
				return err
			}
			for _, kv := range vs {
				out = append(out, s.bundle(k, kv))
			}
			return nil
		})
	})
	return out, err
}

// checkKeyTags refuses a key tag whose name or value holds a control or
// bidirectional formatting character (keyhold.CheckText): tags are shown
// back in key lists and the CLI's tables.
func checkKeyTags(tags map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if err := keyhold.CheckText(keyhold.CodeBadParameter, "tag name", k); err != nil {
			return err
		}
		if err := keyhold.CheckText(keyhold.CodeBadParameter, "the value of tag "+strconv.Quote(k), tags[k]); err != nil {
			return err
		}
	}
	return nil
}

// UpdateKey changes a version's ("" = current) attributes, operations or
// tags (nil: unchanged). Tags belong to the key.
func (s *Keys) UpdateKey(ctx context.Context, vault, name, version string, attrs keyhold.KeyAttributes, keyOps []string, tags map[string]string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opUpdateKey, vault, name, func(c *call) error {
		var ops []string
		if keyOps != nil {
			var err error
			if ops, err = normKeyOps(keyOps); err != nil {
				return err
			}
		}
		if err := checkKeyTags(tags); err != nil {
			return err
		}
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			_, k, kv, err := s.authorizedKey(ctx, tx, c, opUpdateKey, vault, name, version, false)
			if err != nil {
				return err
			}
			c.target = s.KeyID(k.VaultName, k.Name, kv.Version)
			if err := applyAttributes(kv, attrs); err != nil {
				return err
			}
			if ops != nil {
				if err := checkKEKOps(kv.Type, ops); err != nil {
					return err
				}
				kv.KeyOps = ops
			}
			now := s.now()
			kv.UpdatedAt, k.UpdatedAt = now, now
			if tags != nil {
				k.Tags = tags
			}
			if err := s.putKeyVersion(ctx, tx, kv); err != nil {
				return err
			}
			if err := s.putKey(ctx, tx, k); err != nil {
				return err
			}
			c.detail = fmt.Sprintf("enabled=%t", kv.Enabled)
			out = s.bundle(k, kv)
			return c.record(ctx, tx, now)
		})
	})
	return out, err
}

// RotateKey creates a new version with the same type, size and operations,
// expiring after the rotation policy's expiryTime if it sets one.
func (s *Keys) RotateKey(ctx context.Context, vault, name string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opRotateKey, vault, name, func(c *call) error {
		var cur *keyhold.KeyVersion
		var k *keyhold.Key
		if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
			_, k, cur, err = s.authorizedKey(ctx, tx, c, opRotateKey, vault, name, "", false)
			return err
		}); err != nil {
			return err
		}
		kv, err := s.rotated(k, cur)
		if err != nil {
			return err
		}
		return s.storeNewKey(ctx, c, opRotateKey, vault, name, kv, nil, &out)
	})
	return out, err
}

// rotated makes the next version of k after cur: same type, size and
// operations, enabled, expiring per k's rotation policy.
func (s *Keys) rotated(k *keyhold.Key, cur *keyhold.KeyVersion) (*keyhold.KeyVersion, error) {
	kv := &keyhold.KeyVersion{Type: cur.Type, Size: cur.Size, KeyOps: slices.Clone(cur.KeyOps), Enabled: true, Version: newVersion()}
	if p := k.RotationPolicy; p != nil && p.ExpiryTime != "" {
		d, err := ParseDuration(p.ExpiryTime)
		if err != nil {
			return nil, err
		}
		kv.Expires = d.AddTo(s.now())
	}
	material, pub, err := s.newMaterial(cur.Type, cur.Size, k.VaultName, k.Name, kv.Version)
	if err != nil {
		return nil, err
	}
	kv.N, kv.E, kv.Material = pub.N.Bytes(), pub.E, material
	return kv, nil
}
