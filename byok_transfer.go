package keyhold

import (
	"context"
	"time"
)

// BYOK keys in the HSM key-transfer format (issue 14, with issue 18's
// import path). The tenant's administrator has Keyhold make a key-exchange
// key (KEK) in its PKCS#11 token, wraps the tenant's RSA key to the KEK's
// public key with Azure's BYOK tool (or `keyhold key transfer-blob`), and
// uploads the blob: the token unwraps it into a private key object that
// is sensitive and not extractable, so the key never exists in plaintext
// outside the token. The key's record holds a reference to that object
// (sealed under the master key like any BYOK key's material), and the
// token does every private-key operation; the crypto-shred destroys the
// object.

// BYOKSourceTransfer marks a BYOK key uploaded as a key-transfer blob and
// held in the PKCS#11 token.
const BYOKSourceTransfer BYOKKeySource = "Transfer"

// BYOK KEK sizes, in bits (Azure's KEK is RSA-HSM 3072 or 4096 too).
const (
	BYOKKEKDefaultSize = 3072
	BYOKKEKMaxSize     = 4096
)

// BYOKKEK is a tenant's key-exchange key: an RSA key in the PKCS#11 token
// whose only use is unwrapping transfer blobs. KID is what a blob's
// header.kid must name; PublicKeyPEM ("PUBLIC KEY", PKIX) is what the
// customer's tool wraps to.
type BYOKKEK struct {
	TenantID     string    `json:"tenantId"`
	KID          string    `json:"kid"`
	Size         int       `json:"keySize"`
	KeyOps       []string  `json:"keyOps"`
	PublicKeyPEM string    `json:"publicKeyPem"`
	CreatedAt    time.Time `json:"createdTime,omitzero"`
}

// BYOKKEKService is the KEK half of BYOKService.
type BYOKKEKService interface {
	// CreateBYOKKEK creates the caller's tenant's KEK of size bits (0:
	// BYOKKEKDefaultSize; 3072 or 4096), or returns the one it has (a
	// tenant has one KEK). CodeNotSupported without a PKCS#11 token.
	CreateBYOKKEK(ctx context.Context, size int) (*BYOKKEK, error)
	// BYOKKEK returns the caller's tenant's KEK, or CodeNotFound.
	BYOKKEK(ctx context.Context) (*BYOKKEK, error)
}

// BYOKAnchor keeps each tenant's BYOK generation (BYOKTenant.Generation)
// outside the database, where whoever writes the database can't roll it
// back with it: a monotonic counter per tenant, in the PKCS#11 token
// (package vault implements it with its BYOKToken). The platform raises
// it after every committed write of the tenant's BYOK state and refuses
// to wrap or unwrap under a BYOK key while the database's generation is
// below it (all of a tenant's BYOK rows, or the whole database, put back
// from an earlier snapshot).
type BYOKAnchor interface {
	// BYOKGeneration returns the largest generation recorded for tenant,
	// 0 if none.
	BYOKGeneration(ctx context.Context, tenantID string) (int64, error)
	// RaiseBYOKGeneration records gen for tenant unless a larger one is
	// recorded: it never lowers the count.
	RaiseBYOKGeneration(ctx context.Context, tenantID string, gen int64) error
}

// BYOKToken is the PKCS#11 token as the platform's BYOK service uses it
// (package vault implements it over its token; the platform never sees
// the token itself). A ref is the token's opaque name of a private key
// object; n and e are an RSA public key's modulus and exponent.
type BYOKToken interface {
	// TenantKEK returns tenant's KEK, or nil if it has none.
	TenantKEK(ctx context.Context, tenantID string) (*BYOKKEK, error)
	// CreateTenantKEK creates tenant's KEK of size bits, unless it has
	// one; it returns the tenant's KEK either way.
	CreateTenantKEK(ctx context.Context, tenantID string, size int) (*BYOKKEK, error)
	// ImportTransfer unwraps blob (the .byok file's JSON), which must be
	// wrapped to tenant's KEK, into a new private key object labelled
	// label. A blob that is malformed, wrapped to another KEK, altered, or
	// holds no RSA key of 2048, 3072 or 4096 bits is CodeBadRequest, and
	// leaves nothing in the token.
	ImportTransfer(ctx context.Context, tenantID string, blob []byte, label string) (ref, n []byte, e int, err error)
	// PublicKey returns the public key of the object ref names.
	PublicKey(ctx context.Context, ref []byte) (n []byte, e int, err error)
	// DecryptOAEP256 decrypts an RSA-OAEP-256 ciphertext in the token with
	// the object ref names; a ciphertext that does not decrypt wraps
	// crypt.ErrDecrypt.
	DecryptOAEP256(ctx context.Context, ref, ciphertext []byte) ([]byte, error)
	// Destroy destroys the object ref names (C_DestroyObject); one that is
	// gone already is no error.
	Destroy(ctx context.Context, ref []byte) error
	// DestroyTenantKEK destroys tenant's KEK, if it has one.
	DestroyTenantKEK(ctx context.Context, tenantID string) error
}
