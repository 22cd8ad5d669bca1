package vault

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
)

// The PKCS#11 token as the platform's legacy BYOK service uses it
// (keyhold.BYOKToken, issue 14): one key-exchange key (KEK) per tenant,
// and the tenants' BYOK keys imported from transfer blobs. The KEK lives
// only in the token, found by its label; it can unwrap and nothing else
// (not decrypt, not sign). The imported keys are private key objects with
// every RSA-HSM key's template (hsm.PrivateTemplate: sensitive, not
// extractable), made by the same two C_UnwrapKey steps as a vault's
// key_hsm import (transfer.go).

// byokKEKLabel is the CKA_LABEL of tenant's KEK.
func byokKEKLabel(tenantID string) string { return "keyhold-byok-kek/" + tenantID }

// byokToken implements keyhold.BYOKToken over a vault's token.
type byokToken struct {
	t    *hsm.Token
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

var _ keyhold.BYOKAnchor = (*byokToken)(nil)

// BYOKGenerationLabel is the CKA_LABEL of tenant's BYOK generation
// counter in the token (hsm.Token.RaiseCounter), which `keyhold doctor`
// reads and an operator deletes to accept an older database.
func BYOKGenerationLabel(tenantID string) string { return "keyhold-byok-generation/" + tenantID }

// BYOKGeneration returns tenant's BYOK generation as the token records it
// (keyhold.BYOKAnchor).
func (b *byokToken) BYOKGeneration(_ context.Context, tenantID string) (int64, error) {
	v, err := b.t.Counter(BYOKGenerationLabel(tenantID))
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("vault: the PKCS#11 token's BYOK generation of tenant %s is out of range: the counter was not written by Keyhold", tenantID)
	}
	return int64(v), nil
}

// RaiseBYOKGeneration raises tenant's BYOK generation in the token to gen
// (keyhold.BYOKAnchor).
func (b *byokToken) RaiseBYOKGeneration(_ context.Context, tenantID string, gen int64) error {
	if gen < 0 {
		return fmt.Errorf("vault: BYOK generation %d of tenant %s is negative", gen, tenantID)
	}
	_, err := b.t.RaiseCounter(BYOKGenerationLabel(tenantID), uint64(gen))
	return err
}

// errBYOKBlob is the refusal of a transfer blob uploaded as a BYOK key.
func errBYOKBlob(format string, args ...any) error {
	return keyhold.Errorf(keyhold.CodeBadRequest, "The key transfer blob can't be uploaded as a BYOK key: "+format, args...)
}

// kek returns the KEK object of tenant (its CKA_ID and public key), or a
// nil id if the tenant has none.
func (b *byokToken) kek(tenantID string) (id []byte, pub *rsa.PublicKey, err error) {
	return b.t.FindByLabel(byokKEKLabel(tenantID))
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
	id, pub, err := b.kek(tenantID)
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
	// A KEK unwraps (imports) and does nothing else.
	id, pub, err := b.t.GenerateKEK(size, byokKEKLabel(tenantID))
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
	kekID, kekPub, err := b.kek(tenantID)
	if err != nil {
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
	material, pub, err := b.t.UnwrapTransfer(hsm.MaterialFor(kekID), kekPub.N.Bytes(), wrappedAES, wrappedKey, label)
	switch {
	case errors.Is(err, hsm.ErrTransferRSA):
		return nil, nil, 0, errBYOKBlob("it does not decrypt under the tenant's KEK: the blob was made for another KEK (wrap the key to this KEK's public key) or was altered")
	case errors.Is(err, hsm.ErrTransferKey):
		return nil, nil, 0, errBYOKBlob("its wrapped key fails AES key wrap's integrity check or is not an RSA private key in PKCS#8: the blob was altered, or its target key is not RSA")
	case err != nil:
		return nil, nil, 0, err
	}
	if size := pub.N.BitLen(); !crypt.ValidRSASize(size) {
		b.t.Destroy(material)
		return nil, nil, 0, errBYOKBlob("its target key is RSA-%d: a BYOK key is an RSA key of 2048, 3072 or 4096 bits", size)
	}
	return material, pub.N.Bytes(), pub.E, nil
}

// PublicKey reads the public key of the private key object ref names.
func (b *byokToken) PublicKey(_ context.Context, ref []byte) (n []byte, e int, err error) {
	return b.t.PublicKey(ref)
}

// DecryptOAEP256 decrypts with the private key object ref names.
func (b *byokToken) DecryptOAEP256(ctx context.Context, ref, ciphertext []byte) ([]byte, error) {
	n, _, err := b.PublicKey(ctx, ref)
	if err != nil {
		return nil, err
	}
	return b.t.Unwrap(ref, crypt.AlgRSAOAEP256, n, ciphertext)
}

// Destroy destroys the object ref names.
func (b *byokToken) Destroy(_ context.Context, ref []byte) error { return b.t.Destroy(ref) }

// DestroyTenantKEK destroys tenant's KEK, if any.
func (b *byokToken) DestroyTenantKEK(_ context.Context, tenantID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, _, err := b.kek(tenantID)
	if err != nil || id == nil {
		return err
	}
	return b.t.Destroy(hsm.MaterialFor(id))
}
