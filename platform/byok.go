package platform

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// BYOK keeps tenants' legacy BYOK keys (keyhold.BYOKService, issue 14):
// RSA keys a tenant's administrator uploads (a JWK, or a PFX with its
// password) or has Keyhold generate, kept in the platform's own key store
// (the byok_keys table), each sealed under the master key for a purpose
// naming its tenant and id (crypt.BYOKKeyPurpose). The private key is
// opened only in memory, to wrap and unwrap environment keys, and is never
// returned, logged or stored in clear.
//
// It is safe for concurrent use.
type BYOK struct {
	*core
	// master seals and opens the keys. The platform keeps its own copy of
	// the master key for this, as the built-in vault does for its keys.
	master *crypt.Key
	// token holds KEKs and the keys uploaded as transfer blobs (nil: no
	// PKCS#11 token): byok_transfer.go.
	token keyhold.BYOKToken
	// anchor keeps the tenants' BYOK generations in the token
	// (byok_anchor.go); without a token it checks nothing.
	anchor byokAnchor
}

// Audit actions of BYOK keys.
const (
	auditBYOKUpload   = "byok.key.upload"
	auditBYOKGenerate = "byok.key.generate"
	auditBYOKActivate = "byok.key.activate"
)

// byokTarget names a tenant's BYOK key in audit entries.
func byokTarget(tenantID, id string) string {
	t := "/providers/Microsoft.BusinessAppPlatform/scopes/admin/tenants/" + tenantID + "/byokKeys"
	if id != "" {
		t += "/" + id
	}
	return t
}

// ListBYOKKeys lists the caller's tenant's BYOK keys, oldest first.
func (b *BYOK) ListBYOKKeys(ctx context.Context) ([]*keyhold.BYOKKey, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var ks []*keyhold.BYOKKey
	err = b.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		ks, err = tx.BYOKKeys(ctx, id.TenantID)
		return err
	})
	for _, k := range ks {
		k.Sealed, k.MAC = nil, nil
	}
	return ks, err
}

// UploadBYOKKey stores an uploaded key as Installing (keyhold.BYOKService).
func (b *BYOK) UploadBYOKKey(ctx context.Context, up keyhold.BYOKUpload) (*keyhold.BYOKKey, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	// Check the caller before parsing, so that only an administrator
	// learns whether a key or password is right.
	if err := b.store.View(ctx, func(tx keyhold.Tx) error { return requireAdmin(ctx, tx, id) }); err != nil {
		return nil, err
	}
	if up.Transfer != nil {
		return b.uploadTransfer(ctx, id, up) // byok_transfer.go
	}
	priv, src, err := parseUpload(up)
	if err != nil {
		return nil, err
	}
	return b.install(ctx, id, priv, src, auditBYOKUpload)
}

// GenerateBYOKKey generates a key and stores it as Installing.
func (b *BYOK) GenerateBYOKKey(ctx context.Context, size int) (*keyhold.BYOKKey, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		size = keyhold.BYOKDefaultKeySize
	}
	if !crypt.ValidRSASize(size) {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "key size %d is not supported: use 2048, 3072 or 4096 (the default is %d)", size, keyhold.BYOKDefaultKeySize)
	}
	if err := b.store.View(ctx, func(tx keyhold.Tx) error { return requireAdmin(ctx, tx, id) }); err != nil {
		return nil, err
	}
	priv, err := crypt.GenerateRSAKey(size)
	if err != nil {
		return nil, err
	}
	return b.install(ctx, id, priv, keyhold.BYOKSourceGenerated, auditBYOKGenerate)
}

// parseUpload checks an upload and returns its private key. Its errors
// are CodeBadRequest and never quote key material or the password.
func parseUpload(up keyhold.BYOKUpload) (*rsa.PrivateKey, keyhold.BYOKKeySource, error) {
	switch {
	case up.JWK != nil && up.PFX != nil:
		return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "the upload carries both a JWK and a PFX: send one key, either a JWK or a PFX with its password")
	case up.JWK != nil:
		if up.Password != "" {
			return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "a password was sent with a JWK: a password opens a PFX only; leave it out")
		}
		j := up.JWK
		if kty := strings.TrimSuffix(j.Kty, "-HSM"); kty != "RSA" {
			return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "key type %q is not supported: a BYOK key is an RSA private key (kty RSA with n, e, d, p and q)", keyhold.Clip(j.Kty))
		}
		if j.D == nil || j.P == nil || j.Q == nil {
			return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "the JWK is a public key: upload the RSA private key (n, e, d, p and q), which Keyhold needs to unwrap the environments' keys")
		}
		priv, err := crypt.RSAKeyFromComponents(j.N, j.E, j.D, j.P, j.Q, j.DP, j.DQ, j.QI)
		if err != nil {
			return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "the JWK can't be used as a BYOK key: %s", strings.TrimPrefix(err.Error(), "crypt: "))
		}
		return priv, keyhold.BYOKSourceJWK, nil
	case up.PFX != nil:
		priv, err := crypt.ParsePFX(up.PFX, up.Password)
		if errors.Is(err, crypt.ErrPFXPassword) {
			return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "the PFX password is wrong: send the password the file was exported with")
		}
		if err != nil {
			return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "%s", strings.TrimPrefix(err.Error(), "crypt: "))
		}
		return priv, keyhold.BYOKSourcePFX, nil
	}
	return nil, "", keyhold.Errorf(keyhold.CodeBadRequest, "the upload carries no key: send an RSA private key as a JWK, or a PFX file with its password")
}

// install seals priv and stores it as one of the caller's tenant's keys,
// Installing, auditing action.
func (b *BYOK) install(ctx context.Context, id *keyhold.Identity, priv *rsa.PrivateKey, src keyhold.BYOKKeySource, action string) (*keyhold.BYOKKey, error) {
	k := &keyhold.BYOKKey{
		TenantID: id.TenantID, ID: uuid.NewString(), State: keyhold.BYOKInstalling, Source: src,
		Size: priv.N.BitLen(), Thumbprint: crypt.RSAThumbprint(&priv.PublicKey),
		CreatedBy: id.PrincipalID, CreatedAt: b.clock.Now().UTC(),
	}
	sealed, err := crypt.SealRSAKey(b.master, crypt.BYOKKeyPurpose(k.TenantID, k.ID), priv)
	if err != nil {
		return nil, err
	}
	k.Sealed = sealed
	if err := b.addKey(ctx, id, k, action, fmt.Sprintf("%s RSA key of %d bits, thumbprint %s", src, k.Size, k.Thumbprint)); err != nil {
		return nil, err
	}
	k.Sealed = nil
	return k, nil
}

// addKey stores k, Installing, as a new key of the caller's tenant,
// auditing action with detail: refused if BYOK was removed from the
// tenant, if it holds the same key already, or if its BYOK rows fail
// their seals (byok_seal.go, audited). The upload of a JWK or PFX, the
// generation and the upload of a transfer blob (byok_transfer.go) all
// store their key through it.
func (b *BYOK) addKey(ctx context.Context, id *keyhold.Identity, k *keyhold.BYOKKey, action, detail string) error {
	err := b.updateBYOK(ctx, func(tx keyhold.Tx, committed byokCommitted) error {
		s, err := adminBYOKSet(ctx, tx, b.rec, id) // byok_seal.go
		if err != nil {
			return err
		}
		if err := byokRemoved(s.st); err != nil {
			return err
		}
		for _, o := range s.keys {
			if o.Thumbprint == k.Thumbprint {
				return keyhold.Errorf(keyhold.CodeConflict, "tenant %s holds this key already, as BYOK key %s (%s, thumbprint %s): activate that one instead of uploading it again", id.TenantID, o.ID, o.State, o.Thumbprint)
			}
		}
		s.keys = append(s.keys, k)
		if err := s.commit(ctx, tx, b.rec, k, committed); err != nil { // byok_seal.go
			return err
		}
		return b.audit(ctx, tx, id, action, byokTarget(k.TenantID, k.ID), "", detail)
	})
	if isTamper(err) {
		b.auditTamper(ctx, id.TenantID, byokTarget(id.TenantID, ""), "adding a BYOK key by "+id.PrincipalID, err)
	}
	return err
}

// ActivateBYOKKey makes a key Active and the tenant's Active key
// Available, at most once per keyhold.BYOKActivationInterval.
func (b *BYOK) ActivateBYOKKey(ctx context.Context, keyID string) (*keyhold.BYOKKey, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out *keyhold.BYOKKey
	err = b.updateBYOK(ctx, func(tx keyhold.Tx, committed byokCommitted) error {
		set, err := adminBYOKSet(ctx, tx, b.rec, id) // byok_seal.go
		if err != nil {
			return err
		}
		if err := byokRemoved(set.st); err != nil {
			return err
		}
		ks := set.keys
		var k *keyhold.BYOKKey
		var last time.Time
		for _, o := range ks {
			if o.ID == keyID {
				k = o
			}
			if o.ActivatedAt.After(last) {
				last = o.ActivatedAt
			}
		}
		if k == nil {
			return keyhold.Errorf(keyhold.CodeNotFound, "tenant %s holds no BYOK key %q: list the tenant's BYOK keys to find its id", id.TenantID, keyhold.Clip(keyID))
		}
		if k.State == keyhold.BYOKActive {
			return keyhold.Errorf(keyhold.CodeConflict, "BYOK key %s is Active already: nothing to do", k.ID)
		}
		now := b.clock.Now().UTC()
		if next := last.Add(keyhold.BYOKActivationInterval); !last.IsZero() && now.Before(next) {
			return keyhold.Errorf(keyhold.CodeConflict, "the tenant's BYOK key was last activated at %s, and activations are limited to one per 24 hours: activate key %s after %s",
				last.Format(time.RFC3339), k.ID, next.Format(time.RFC3339))
		}
		if err := b.open(ctx, k); err != nil {
			return err
		}
		for _, o := range ks {
			if o.State == keyhold.BYOKActive {
				o.State = keyhold.BYOKAvailable
			}
		}
		k.State, k.ActivatedAt = keyhold.BYOKActive, now
		if err := set.commit(ctx, tx, b.rec, nil, committed); err != nil {
			return err
		}
		// The tenant's environments under older keys move to this one
		// (byok_rewrap.go).
		op, err := b.startBYOKRewrap(ctx, tx, id, k)
		if err != nil {
			return err
		}
		detail := "thumbprint " + k.Thumbprint
		k.RewrapOperationID = ""
		if op != nil {
			k.RewrapOperationID = op.ID
			detail += fmt.Sprintf("; %d environment keys under older keys move to it in operation %s", op.Total, op.ID)
		}
		out = k
		return b.audit(ctx, tx, id, auditBYOKActivate, byokTarget(k.TenantID, k.ID), "", detail)
	})
	if isTamper(err) {
		b.auditTamper(ctx, id.TenantID, byokTarget(id.TenantID, keyID), "activation of BYOK key "+keyhold.Clip(keyID)+" by "+id.PrincipalID, err)
	}
	if err != nil {
		return nil, err
	}
	if out.RewrapOperationID != "" {
		b.ops.Kick()
	}
	out.Sealed, out.MAC = nil, nil
	return out, nil
}

// open checks that k's sealed private key opens under the master key as
// its own (tenant and id) and matches its thumbprint, and destroys what it
// opened: a key whose row was changed outside Keyhold is refused
// (CodeRecordIntegrity) before anything is wrapped under it.
func (b *BYOK) open(ctx context.Context, k *keyhold.BYOKKey) error {
	o, err := b.openBYOK(ctx, k)
	if err != nil {
		return err
	}
	o.destroy()
	return nil
}

// zeroRSA overwrites the private parts of an opened key (big.Int words
// in place), so that they don't linger in memory after use.
func zeroRSA(k *rsa.PrivateKey) {
	if k == nil {
		return
	}
	for _, n := range append([]*big.Int{k.D, k.Precomputed.Dp, k.Precomputed.Dq, k.Precomputed.Qinv}, k.Primes...) {
		if n != nil {
			clear(n.Bits())
			n.SetInt64(0)
		}
	}
}

// openKey opens k's private key; the caller clears it after use.
func (b *BYOK) openKey(k *keyhold.BYOKKey) (*rsa.PrivateKey, error) {
	priv, err := crypt.OpenRSAKey(b.master, crypt.BYOKKeyPurpose(k.TenantID, k.ID), k.Sealed)
	if err == nil && crypt.RSAThumbprint(&priv.PublicKey) != k.Thumbprint {
		err = errors.New("thumbprint mismatch")
	}
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeRecordIntegrity, "BYOK key %s of tenant %s does not open under the master key as its own: its record was changed outside Keyhold; upload the key again", k.ID, k.TenantID).WithCause(err)
	}
	return priv, nil
}
