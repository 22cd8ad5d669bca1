package platform

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// BYOK keys in the HSM key-transfer format (keyhold.BYOKToken, issue 14).
// The tenant's key-exchange key (KEK) and every key uploaded as a
// transfer blob live in the PKCS#11 token; the key's row holds, in its
// sealed column, a reference to the token object instead of the sealed
// private key: the reference is sealed under the master key for the same
// purpose (tenant and key id) as a sealed key, behind a version prefix, so
// a row moved to another tenant or key, or edited, opens nothing. Wrap
// uses the key's public part (read from the token and checked against the
// row's thumbprint); unwrap runs in the token. Unlocking the tenant with a
// blob unwraps it in the token only to compare its public key, and
// destroys that object again. The crypto-shred destroys the objects and
// the KEK (C_DestroyObject) before deleting the rows.

// byokRefV1 starts the sealed plaintext of a token-held key: the format's
// version, then the token's reference.
const byokRefV1 = "keyhold-byok-token-ref/v1:"

// Audit action of a KEK's creation.
const auditBYOKKEK = "byok.kek.create"

// byokTokenLabel is the CKA_LABEL of a tenant's BYOK key in the token.
func byokTokenLabel(tenantID, id string) string { return "keyhold-byok/" + tenantID + "/" + id }

// needToken refuses what needs the PKCS#11 token when there is none.
func (b *BYOK) needToken() error {
	if b.token == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server has no PKCS#11 token, which BYOK key-exchange keys and transfer blobs need: the operator starts it with --pkcs11-module (docs/operations.md); or upload the key as a JWK or PFX")
	}
	return nil
}

// CreateBYOKKEK creates the caller's tenant's KEK, or returns the one it
// has (keyhold.BYOKKEKService).
func (b *BYOK) CreateBYOKKEK(ctx context.Context, size int) (*keyhold.BYOKKEK, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		size = keyhold.BYOKKEKDefaultSize
	}
	if size != 3072 && size != 4096 {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "KEK size %d is not supported: a key-exchange key is RSA-HSM 3072 or 4096 (the default is %d)", size, keyhold.BYOKKEKDefaultSize)
	}
	if err := b.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		return byokRemovedIn(ctx, tx, b.rec, id.TenantID)
	}); err != nil {
		return nil, err
	}
	if err := b.needToken(); err != nil {
		return nil, err
	}
	if k, err := b.token.TenantKEK(ctx, id.TenantID); err != nil || k != nil {
		return k, err
	}
	k, err := b.token.CreateTenantKEK(ctx, id.TenantID, size)
	if err != nil {
		return nil, err
	}
	err = b.store.Update(ctx, func(tx keyhold.Tx) error {
		return b.audit(ctx, tx, id, auditBYOKKEK, byokTarget(id.TenantID, "")+"/kek", "", fmt.Sprintf("RSA-HSM %d key-exchange key %s", k.Size, k.KID))
	})
	return k, err
}

// BYOKKEK returns the caller's tenant's KEK (keyhold.BYOKKEKService).
func (b *BYOK) BYOKKEK(ctx context.Context) (*keyhold.BYOKKEK, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.store.View(ctx, func(tx keyhold.Tx) error { return requireAdmin(ctx, tx, id) }); err != nil {
		return nil, err
	}
	if err := b.needToken(); err != nil {
		return nil, err
	}
	k, err := b.token.TenantKEK(ctx, id.TenantID)
	if err == nil && k == nil {
		err = keyhold.Errorf(keyhold.CodeNotFound, "tenant %s has no BYOK key-exchange key (KEK): create one with keyhold byok kek create", id.TenantID)
	}
	return k, err
}

// refuseMixedTransfer refuses an upload with a transfer blob and another
// key.
func refuseMixedTransfer(up keyhold.BYOKUpload) error {
	if up.JWK != nil || up.PFX != nil || up.Password != "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the upload carries a key transfer blob and a JWK, PFX or password: send the transfer blob alone")
	}
	return nil
}

// uploadTransfer stores the key of a transfer blob, unwrapped in the
// token, as one of the caller's tenant's keys, Installing. A refusal
// leaves neither a row nor a token object.
func (b *BYOK) uploadTransfer(ctx context.Context, id *keyhold.Identity, up keyhold.BYOKUpload) (*keyhold.BYOKKey, error) {
	if err := refuseMixedTransfer(up); err != nil {
		return nil, err
	}
	if err := b.needToken(); err != nil {
		return nil, err
	}
	if err := b.store.View(ctx, func(tx keyhold.Tx) error { return byokRemovedIn(ctx, tx, b.rec, id.TenantID) }); err != nil {
		return nil, err
	}
	k := &keyhold.BYOKKey{
		TenantID: id.TenantID, ID: uuid.NewString(), State: keyhold.BYOKInstalling, Source: keyhold.BYOKSourceTransfer,
		CreatedBy: id.PrincipalID, CreatedAt: b.clock.Now().UTC(),
	}
	ref, n, e, err := b.token.ImportTransfer(ctx, id.TenantID, up.Transfer, byokTokenLabel(k.TenantID, k.ID))
	if err != nil {
		return nil, err
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: e}
	k.Size, k.Thumbprint = pub.N.BitLen(), crypt.RSAThumbprint(pub)
	if k.Sealed, err = crypt.Seal(b.master, crypt.BYOKKeyPurpose(k.TenantID, k.ID), append([]byte(byokRefV1), ref...)); err == nil {
		err = b.addKey(ctx, id, k, auditBYOKUpload, fmt.Sprintf("Transfer RSA key of %d bits, thumbprint %s, held in the PKCS#11 token", k.Size, k.Thumbprint)) // byok.go
	}
	if err != nil {
		if derr := b.token.Destroy(context.WithoutCancel(ctx), ref); derr != nil {
			b.log.Error("a refused BYOK transfer key stays in the PKCS#11 token", "tenant", k.TenantID, "label", byokTokenLabel(k.TenantID, k.ID), "err", derr)
		}
		return nil, err
	}
	k.Sealed = nil
	return k, nil
}

// openRef opens the token reference sealed in a token-held key's row.
func (b *BYOK) openRef(k *keyhold.BYOKKey) ([]byte, error) {
	p, err := crypt.Open(b.master, crypt.BYOKKeyPurpose(k.TenantID, k.ID), k.Sealed)
	if err == nil {
		var ok bool
		if p, ok = bytes.CutPrefix(p, []byte(byokRefV1)); !ok {
			err = errors.New("not a token reference of a known version")
		}
	}
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeRecordIntegrity, "BYOK key %s of tenant %s does not open under the master key as its own: its record was changed outside Keyhold; upload the key again", k.ID, k.TenantID).WithCause(err)
	}
	return p, nil
}

// openBYOK opens k for wrapping and unwrapping: a sealed key in memory, a
// token-held one by its reference and checked public key. The caller
// destroys the result.
func (b *BYOK) openBYOK(ctx context.Context, k *keyhold.BYOKKey) (*byokOpened, error) {
	if k.Source != keyhold.BYOKSourceTransfer {
		priv, err := b.openKey(k)
		if err != nil {
			return nil, err
		}
		return &byokOpened{key: k, priv: priv}, nil
	}
	if err := b.needToken(); err != nil {
		return nil, err
	}
	ref, err := b.openRef(k)
	if err != nil {
		return nil, err
	}
	n, e, err := b.token.PublicKey(ctx, ref)
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "BYOK key %s of tenant %s is not usable in the PKCS#11 token: %v", k.ID, k.TenantID, err).WithCause(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: e}
	if crypt.RSAThumbprint(pub) != k.Thumbprint {
		return nil, keyhold.Errorf(keyhold.CodeRecordIntegrity, "BYOK key %s of tenant %s names a token object of another key (thumbprint %s, want %s): its record was changed outside Keyhold", k.ID, k.TenantID, crypt.RSAThumbprint(pub), k.Thumbprint)
	}
	return &byokOpened{key: k, pub: pub, ref: ref, token: b.token}, nil
}

// public is the opened key's public part.
func (o *byokOpened) public() *rsa.PublicKey {
	if o.priv != nil {
		return &o.priv.PublicKey
	}
	return o.pub
}

// unwrap decrypts an RSA-OAEP-256 ciphertext with the opened key.
func (o *byokOpened) unwrap(ctx context.Context, ct []byte) ([]byte, error) {
	if o.priv != nil {
		return crypt.UnwrapOAEP(o.priv, crypt.AlgRSAOAEP256, ct)
	}
	return o.token.DecryptOAEP256(ctx, o.ref, ct)
}

// uploadThumbprint is the thumbprint of the key an unlock supplies: a
// transfer blob is unwrapped in the token to read its public key, and the
// object destroyed at once.
func (b *BYOK) uploadThumbprint(ctx context.Context, tenantID string, up keyhold.BYOKUpload) (string, error) {
	if up.Transfer == nil {
		priv, _, err := parseUpload(up)
		if err != nil {
			return "", err
		}
		defer zeroRSA(priv)
		return crypt.RSAThumbprint(&priv.PublicKey), nil
	}
	if err := refuseMixedTransfer(up); err != nil {
		return "", err
	}
	if err := b.needToken(); err != nil {
		return "", err
	}
	ref, n, e, err := b.token.ImportTransfer(ctx, tenantID, up.Transfer, "keyhold-byok-unlock/"+tenantID+"/"+uuid.NewString())
	if err != nil {
		return "", err
	}
	if err := b.token.Destroy(context.WithoutCancel(ctx), ref); err != nil {
		return "", err
	}
	return crypt.RSAThumbprint(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: e}), nil
}

// shredToken destroys, in the token, tenant's token-held BYOK keys and its
// KEK, before the crypto-shred deletes their rows. Destroying is
// idempotent, so a shred that fails after it runs again whole.
func (b *BYOK) shredToken(ctx context.Context, tx keyhold.Tx, tenantID string) error {
	ks, err := tx.BYOKKeys(ctx, tenantID)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.Source != keyhold.BYOKSourceTransfer {
			continue
		}
		if err := b.needToken(); err != nil {
			return err
		}
		ref, err := b.openRef(k)
		if err != nil {
			return err
		}
		if err := b.token.Destroy(ctx, ref); err != nil {
			return fmt.Errorf("destroying BYOK key %s of tenant %s in the PKCS#11 token: %w", k.ID, tenantID, err)
		}
	}
	if b.token == nil {
		return nil
	}
	return b.token.DestroyTenantKEK(ctx, tenantID)
}
