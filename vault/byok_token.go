package vault

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// The PKCS#11 token as the platform's legacy BYOK service uses it
// (keyhold.BYOKToken, issue 14): one key-exchange key (KEK) per tenant,
// and the tenants' BYOK keys imported from transfer blobs. The KEK lives
// only in the token, found by its label; it can unwrap and nothing else
// (not decrypt, not sign). The imported keys are private key objects with
// every RSA-HSM key's template (privateTemplate: sensitive, not
// extractable), made by the same two C_UnwrapKey steps as a vault's
// key_hsm import (transfer.go).

// byokKEKLabel is the CKA_LABEL of tenant's KEK.
func byokKEKLabel(tenantID string) string { return "keyhold-byok-kek/" + tenantID }

// byokToken implements keyhold.BYOKToken over a vault's token.
type byokToken struct {
	t    *token
	base string
	// mu makes one KEK per tenant within this process; the KEK's label
	// is the tenant's, so a second replica's finds it.
	mu sync.Mutex
}

// BYOKToken returns s's PKCS#11 token as the BYOK service uses it, or nil
// when s has no token (then the platform refuses transfer uploads).
func BYOKToken(s *Service) keyhold.BYOKToken {
	if s == nil || s.hsm == nil {
		return nil
	}
	return &byokToken{t: s.hsm, base: s.base}
}

// errBYOKBlob is the refusal of a transfer blob uploaded as a BYOK key.
func errBYOKBlob(format string, args ...any) error {
	return keyhold.Errorf(keyhold.CodeBadRequest, "The key transfer blob can't be uploaded as a BYOK key: "+format, args...)
}

// kek returns the KEK object of tenant (its CKA_ID and public key), or a
// nil id if the tenant has none.
func (b *byokToken) kek(sh pkcs11.SessionHandle, tenantID string) (id []byte, pub *rsa.PublicKey, err error) {
	if err := b.t.ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, byokKEKLabel(tenantID)),
	}); err != nil {
		return nil, nil, fmt.Errorf("vault: searching the PKCS#11 token: %w", err)
	}
	hs, _, err := b.t.ctx.FindObjects(sh, 2)
	if ferr := b.t.ctx.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("vault: searching the PKCS#11 token: %w", err)
	}
	if len(hs) == 0 {
		return nil, nil, nil
	}
	attrs, err := b.t.ctx.GetAttributeValue(sh, hs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vault: reading tenant %s's KEK from the PKCS#11 token: %w", tenantID, err)
	}
	e, err := crypt.RSAExponent(attrs[2].Value)
	if err != nil {
		return nil, nil, err
	}
	return attrs[0].Value, &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[1].Value), E: e}, nil
}

// kekJSON describes a KEK.
func (b *byokToken) kekJSON(tenantID string, id []byte, pub *rsa.PublicKey) (*keyhold.BYOKKEK, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &keyhold.BYOKKEK{
		TenantID: tenantID, KID: b.kid(tenantID, id), Size: pub.N.BitLen(), KeyOps: []string{KeyOpImport},
		PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}, nil
}

// kid is the KEK's key id, which a blob's header.kid names.
func (b *byokToken) kid(tenantID string, id []byte) string {
	return b.base + "/providers/Microsoft.BusinessAppPlatform/scopes/admin/tenants/" + tenantID + "/byokKek/" + hex.EncodeToString(id)
}

// TenantKEK returns tenant's KEK, or nil.
func (b *byokToken) TenantKEK(_ context.Context, tenantID string) (*keyhold.BYOKKEK, error) {
	var id []byte
	var pub *rsa.PublicKey
	err := b.t.with(func(sh pkcs11.SessionHandle) (err error) {
		id, pub, err = b.kek(sh, tenantID)
		return err
	})
	if err != nil || id == nil {
		return nil, err
	}
	return b.kekJSON(tenantID, id, pub)
}

// CreateTenantKEK generates tenant's KEK in the token, unless it has one.
func (b *byokToken) CreateTenantKEK(ctx context.Context, tenantID string, size int) (*keyhold.BYOKKEK, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, err := b.TenantKEK(ctx, tenantID); err != nil || k != nil {
		return k, err
	}
	id := newObjectID()
	var pub *rsa.PublicKey
	err := b.t.with(func(sh pkcs11.SessionHandle) error {
		pubTmpl := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, size),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}
		// A KEK unwraps (imports) and does nothing else.
		privTmpl := privateTemplate(id, byokKEKLabel(tenantID))
		for i, a := range privTmpl {
			if a.Type == pkcs11.CKA_DECRYPT {
				privTmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false)
			}
		}
		ph, _, err := b.t.ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, pubTmpl, privTmpl)
		if err != nil {
			return fmt.Errorf("vault: generating an RSA-%d KEK in the PKCS#11 token: %w", size, err)
		}
		b.t.ctx.DestroyObject(sh, ph)
		_, pub, err = b.kek(sh, tenantID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b.kekJSON(tenantID, id, pub)
}

// ImportTransfer unwraps a transfer blob wrapped to tenant's KEK into a
// private key object of the token (keyhold.BYOKToken).
func (b *byokToken) ImportTransfer(_ context.Context, tenantID string, raw []byte, label string) (ref, n []byte, e int, err error) {
	blob, err := crypt.ParseTransferBlob(raw)
	if err != nil {
		return nil, nil, 0, errBYOKBlob("%s", err)
	}
	var kekID []byte
	var kekPub *rsa.PublicKey
	if err := b.t.with(func(sh pkcs11.SessionHandle) (err error) {
		kekID, kekPub, err = b.kek(sh, tenantID)
		return err
	}); err != nil {
		return nil, nil, 0, err
	}
	if kekID == nil {
		return nil, nil, 0, errBYOKBlob("tenant %s has no key exchange key (KEK): create one (keyhold byok kek create), wrap the key to its public key, and upload the blob", tenantID)
	}
	if kid := b.kid(tenantID, kekID); !strings.EqualFold(blob.KID, kid) {
		return nil, nil, 0, errBYOKBlob("its header.kid %q is not the tenant's KEK %s: wrap the key to the KEK that `keyhold byok kek download` gives", keyhold.Clip(blob.KID), kid)
	}
	wrappedAES, wrappedKey, err := blob.Split(kekPub.Size())
	if err != nil {
		return nil, nil, 0, errBYOKBlob("%s", err)
	}
	material, pub, err := b.t.unwrapTransfer(materialFor(kekID), kekPub.N.Bytes(), wrappedAES, wrappedKey, label)
	switch {
	case errors.Is(err, errTransferRSA):
		return nil, nil, 0, errBYOKBlob("it does not decrypt under the tenant's KEK: the blob was made for another KEK (wrap the key to this KEK's public key) or was altered")
	case errors.Is(err, errTransferKey):
		return nil, nil, 0, errBYOKBlob("its wrapped key fails AES key wrap's integrity check or is not an RSA private key in PKCS#8: the blob was altered, or its target key is not RSA")
	case err != nil:
		return nil, nil, 0, err
	}
	if size := pub.N.BitLen(); !crypt.ValidRSASize(size) {
		b.t.destroy(material)
		return nil, nil, 0, errBYOKBlob("its target key is RSA-%d: a BYOK key is an RSA key of 2048, 3072 or 4096 bits", size)
	}
	return material, pub.N.Bytes(), pub.E, nil
}

// PublicKey reads the public key of the private key object ref names.
func (b *byokToken) PublicKey(_ context.Context, ref []byte) (n []byte, e int, err error) {
	id, err := objectID(ref)
	if err != nil {
		return nil, 0, err
	}
	err = b.t.with(func(sh pkcs11.SessionHandle) error {
		h, err := b.t.find(sh, id)
		if err != nil {
			return err
		}
		attrs, err := b.t.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return fmt.Errorf("vault: reading a BYOK key's public part from the PKCS#11 token: %w", err)
		}
		n = attrs[0].Value
		e, err = crypt.RSAExponent(attrs[1].Value)
		return err
	})
	return n, e, err
}

// DecryptOAEP256 decrypts with the private key object ref names.
func (b *byokToken) DecryptOAEP256(ctx context.Context, ref, ciphertext []byte) ([]byte, error) {
	n, _, err := b.PublicKey(ctx, ref)
	if err != nil {
		return nil, err
	}
	return b.t.unwrap(ref, crypt.AlgRSAOAEP256, n, ciphertext)
}

// Destroy destroys the object ref names.
func (b *byokToken) Destroy(_ context.Context, ref []byte) error { return b.t.destroy(ref) }

// DestroyTenantKEK destroys tenant's KEK, if any.
func (b *byokToken) DestroyTenantKEK(_ context.Context, tenantID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var id []byte
	if err := b.t.with(func(sh pkcs11.SessionHandle) (err error) {
		id, _, err = b.kek(sh, tenantID)
		return err
	}); err != nil || id == nil {
		return err
	}
	return b.t.destroy(materialFor(id))
}
