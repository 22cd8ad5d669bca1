package keyhold

import (
	"context"
	"time"
)

// RootKind names what kind of root key wraps an environment key.
type RootKind string

// Root key kinds.
const (
	RootMMK  RootKind = "MMK"  // the platform's own key
	RootCMK  RootKind = "CMK"  // a customer's key, named by an enterprise policy
	RootBYOK RootKind = "BYOK" // a legacy tenant key uploaded into the platform's vault
)

// WrappedKey is one wrapped copy of an environment key. KeyID is the
// versioned key id (kid) that the wrap returned; unwrap uses exactly it.
type WrappedKey struct {
	EnvID string
	Epoch uint32
	Root  RootKind
	KeyID string
	// PrincipalID is the identity that wrapped the key and must unwrap it:
	// for a CMK, the enterprise policy's managed identity ("" for the MMK).
	PrincipalID string
	Ciphertext  []byte
	CreatedAt   time.Time
}

// SealedKey is key material sealed under the server's master key, which
// lives outside the database: the platform's MMK and the token-signing key.
type SealedKey struct {
	ID        string
	Sealed    []byte
	CreatedAt time.Time
}

// KeyWrapper is how the platform reaches a root key. Implementations: the
// platform's MMK (crypt), and later the built-in vault and Azure Key Vault.
//
// Wrap encrypts plaintext under the current version of the key named keyID
// and returns the versioned key id that Unwrap needs. Unwrap decrypts with
// exactly the version kid names. Both are safe for concurrent use.
type KeyWrapper interface {
	Wrap(ctx context.Context, keyID string, plaintext []byte) (kid string, ciphertext []byte, err error)
	Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error)
}

// KeyProber is implemented by key wrappers that can check, without
// wrapping anything, that the caller may still use a key: that it exists,
// is enabled, and that get, wrapKey and unwrapKey are allowed. Its errors
// carry the codes a wrap would return (CodeForbidden with an inner code,
// CodeKeyNotFound, …), so a health monitor can tell revocation from a
// transient fault.
type KeyProber interface {
	Probe(ctx context.Context, keyID string) error
}

// KeyReader is implemented by key wrappers that can read a key's public
// attributes as the caller (a vault's get key). Issue 13: the key of an
// external vault is checked over the network before a link changes
// anything, and the rotation pickup follows its current version. Errors
// carry the codes a wrap would return, as KeyProber's.
type KeyReader interface {
	ReadKey(ctx context.Context, keyID string) (*KeyInfo, error)
}

// KeyInfo is what a vault answers about a key version (KeyReader).
type KeyInfo struct {
	// KID is the versioned key id, as a wrap returns it.
	KID string
	// Type is the JSON web key type: RSA, RSA-HSM, EC, oct-HSM, ...
	Type string
	// Size is the RSA modulus's size in bits; 0 for another type.
	Size int
	// Ops are the operations the key allows (key_ops).
	Ops     []string
	Enabled bool
	// RecoveryLevel is the vault's deletion recovery level: a level
	// without "Purgeable" means purge protection; "" if not answered.
	RecoveryLevel string
}
