package keyprovider

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/vault"
)

// Builtin reaches keys in Keyhold's own vault, in process, as one
// identity. Its calls are authorized, firewalled and audited by the vault
// exactly as that identity's calls over HTTPS would be, except that they
// come from inside the platform (keyhold.Origin.Internal): a vault's
// firewall admits them only when it lets trusted services bypass it.
// Safe for concurrent use.
type Builtin struct {
	v  *vault.Service
	as keyhold.Identity
}

var _ Provider = (*Builtin)(nil)

// NewBuiltin returns a provider that calls v as the identity as (an
// enterprise policy's managed identity). It keeps a copy of as.
func NewBuiltin(v *vault.Service, as *keyhold.Identity) *Builtin {
	return &Builtin{v: v, as: *as}
}

// ctx returns ctx carrying the provider's identity and an internal origin.
func (b *Builtin) ctx(ctx context.Context) context.Context {
	id := b.as
	ctx = keyhold.NewContext(ctx, &id)
	return keyhold.NewOriginContext(ctx, keyhold.Origin{Internal: true})
}

// Wrap encrypts plaintext with RSA-OAEP-256 under keyID (a key id of this
// server's vault, versioned or not) and returns the versioned kid used.
func (b *Builtin) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	vaultName, name, version, err := b.v.ParseKeyID(keyID)
	if err != nil {
		return "", nil, err
	}
	kid, ct, err := b.v.WrapKey(b.ctx(ctx), vaultName, name, version, Algorithm, plaintext)
	if err != nil {
		return "", nil, unavailable(err)
	}
	return kid, ct, nil
}

// Unwrap decrypts ciphertext with exactly the key version kid names.
func (b *Builtin) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	vaultName, name, version, err := b.v.ParseKeyID(kid)
	if err != nil {
		return nil, err
	}
	if version == "" {
		return nil, needVersion(kid)
	}
	_, pt, err := b.v.UnwrapKey(b.ctx(ctx), vaultName, name, version, Algorithm, ciphertext)
	if err != nil {
		return nil, unavailable(err)
	}
	return pt, nil
}

// Probe checks that the identity may get the key, that its version is
// enabled, and that it wraps and unwraps a random value.
func (b *Builtin) Probe(ctx context.Context, keyID string) error {
	vaultName, name, version, err := b.v.ParseKeyID(keyID)
	if err != nil {
		return err
	}
	kb, err := b.v.GetKey(b.ctx(ctx), vaultName, name, version)
	if err != nil {
		return unavailable(err)
	}
	if !kb.Version.Enabled {
		return disabled(kb.KID)
	}
	return probeRoundTrip(ctx, b, keyID)
}
