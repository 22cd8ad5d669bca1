package vault

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// The data plane's cryptographic operations: wrapKey and unwrapKey, with
// the checks a key version must pass to serve them.

// KeyOps is the data plane's cryptographic operations, wrapKey and
// unwrapKey, with the checks a key version must pass to serve them. Part
// of Service; safe for concurrent use.
type KeyOps struct{ *core }

// usable checks that kv may serve op at now: it must be enabled, and for
// wrapKey within its nbf and exp (unwrapKey ignores them, as Key Vault
// does, so that wrapped data is never locked out by a date), and list op
// in its key_ops.
func usable(kv *keyhold.KeyVersion, op *operation, now time.Time) error {
	refuse := func(inner, format string, args ...any) error {
		return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: inner, Message: fmt.Sprintf(format, args...)}
	}
	if !kv.Enabled {
		return refuse(keyhold.InnerKeyDisabled, "Operation %s is not allowed on a disabled key. Enable version %s of key %s to use it.", op.Name, kv.Version, kv.Name)
	}
	if op == opWrapKey {
		if !kv.NotBefore.IsZero() && now.Before(kv.NotBefore) {
			return refuse(keyhold.InnerKeyDisabled, "Operation %s is not allowed on a key that is not yet valid: version %s of key %s is valid from %s.",
				op.Name, kv.Version, kv.Name, kv.NotBefore.Format(time.RFC3339))
		}
		if !kv.Expires.IsZero() && !now.Before(kv.Expires) {
			return refuse(keyhold.InnerKeyDisabled, "Operation %s is not allowed on an expired key: version %s of key %s expired at %s. Rotate the key or update its exp.",
				op.Name, kv.Version, kv.Name, kv.Expires.Format(time.RFC3339))
		}
	}
	if !slices.Contains(kv.KeyOps, op.Name) {
		return refuse(InnerKeyOperationForbidden, "Operation %s is not permitted on this key: version %s of key %s allows %s.",
			op.Name, kv.Version, kv.Name, strings.Join(kv.KeyOps, ", "))
	}
	return nil
}

// cryptoKey loads, for wrapKey or unwrapKey, the version to use after
// authorizing the caller, and checks it may serve op and alg.
func (s *KeyOps) cryptoKey(ctx context.Context, c *call, op *operation, vault, name, version, alg string) (*keyhold.KeyVersion, error) {
	var kv *keyhold.KeyVersion
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		_, _, kv, err = s.authorizedKey(ctx, tx, c, op, vault, name, version, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.target = s.KeyID(kv.VaultName, kv.Name, kv.Version)
	c.detail = "alg=" + alg
	if err := usable(kv, op, s.now()); err != nil {
		return nil, err
	}
	if _, err := crypt.OAEPHash(alg); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeBadParameter, "algorithm %q is not supported for %s: use %s or %s", alg, op.Name, crypt.AlgRSAOAEP, crypt.AlgRSAOAEP256)
	}
	return kv, nil
}

func publicKey(kv *keyhold.KeyVersion) *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(kv.N), E: kv.E}
}

// WrapKey encrypts value with RSA-OAEP ("RSA-OAEP") or RSA-OAEP-256 under
// a key version ("" = current) and returns the versioned kid used. A value
// longer than the key and algorithm allow (k - 2·hLen - 2 bytes) is
// CodeBadParameter; a disabled version, or one outside its nbf and exp,
// is refused (Forbidden, KeyDisabled).
func (s *KeyOps) WrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (kid string, result []byte, err error) {
	err = s.keyOp(ctx, opWrapKey, vault, name, func(c *call) error {
		kv, err := s.cryptoKey(ctx, c, opWrapKey, vault, name, version, alg)
		if err != nil {
			return err
		}
		if max, _ := crypt.OAEPMaxPlaintext(kv.Size, alg); len(value) > max {
			return keyhold.Errorf(keyhold.CodeBadParameter, "the value is %d bytes long: %s under a %d-bit key wraps at most %d bytes", len(value), alg, kv.Size, max)
		}
		result, err = crypt.WrapOAEP(publicKey(kv), alg, value)
		if err != nil {
			return err
		}
		kid = c.target
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return kid, result, nil
}

// UnwrapKey decrypts what WrapKey produced, with exactly the version named
// ("" = current). A disabled version refuses (Forbidden, KeyDisabled); a
// value that does not decrypt under it with alg is CodeBadParameter.
func (s *KeyOps) UnwrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (kid string, result []byte, err error) {
	err = s.keyOp(ctx, opUnwrapKey, vault, name, func(c *call) error {
		kv, err := s.cryptoKey(ctx, c, opUnwrapKey, vault, name, version, alg)
		if err != nil {
			return err
		}
		result, err = s.decrypt(kv, alg, value)
		var ke *keyhold.Error
		if errors.Is(err, crypt.ErrDecrypt) && !errors.As(err, &ke) {
			return keyhold.Errorf(keyhold.CodeBadParameter,
				"the value does not decrypt under version %s of key %s with %s: unwrap with the kid and algorithm that wrapped it", kv.Version, kv.Name, alg)
		}
		if err != nil {
			return err
		}
		kid = c.target
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return kid, result, nil
}

// decrypt runs the private-key operation of kv: in the token for RSA-HSM,
// else with the key opened from its sealed material (or the cache of
// opened keys). A ciphertext that
// does not decrypt returns an error wrapping crypt.ErrDecrypt.
func (s *KeyOps) decrypt(kv *keyhold.KeyVersion, alg string, ct []byte) ([]byte, error) {
	if kv.Type == keyhold.KeyTypeRSAHSM {
		if s.hsm == nil {
			return nil, keyhold.Errorf(keyhold.CodeServiceUnavailable,
				"key %s is an RSA-HSM key and this server has no PKCS#11 token: start the server with its PKCS#11 token configured", kv.Name)
		}
		return s.hsm.Unwrap(kv.Material, alg, kv.N, ct)
	}
	priv, ok := s.keys.get(kv)
	if !ok {
		var err error
		priv, err = crypt.OpenRSAKey(s.master, crypt.RSAKeyPurpose(kv.VaultName, kv.Name, kv.Version), kv.Material)
		if err != nil {
			// The stored key doesn't open: a wrong master key or a
			// damaged row, never the caller's fault.
			return nil, keyhold.Errorf(keyhold.CodeInternal, "the private key of version %s of key %s can't be opened", kv.Version, kv.Name).WithCause(err)
		}
		// The public key that wraps is the one the private key has: a
		// record whose n or e were changed would wrap values this key
		// can't unwrap (and someone else's key can).
		if priv.E != kv.E || priv.N.Cmp(new(big.Int).SetBytes(kv.N)) != 0 {
			return nil, keyhold.Errorf(keyhold.CodeRecordIntegrity,
				"the public key stored for version %s of key %s in vault %s is not that of its private key: it was changed outside Keyhold, so Keyhold will not use it; restore the record from a backup of the database",
				kv.Version, kv.Name, kv.VaultName)
		}
		s.keys.put(kv, priv)
	}
	return crypt.UnwrapOAEP(priv, alg, ct)
}
