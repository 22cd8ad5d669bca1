package keyprovider

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/mhsm"
)

// ManagedHSM reaches keys of Keyhold's own Managed HSMs (issue 18), in
// process, as one identity: authorized by the HSM's local role
// assignments and audited exactly as that identity's calls over HTTPS.
// Safe for concurrent use.
type ManagedHSM struct {
	h  *mhsm.Service
	as keyhold.Identity
}

var _ Provider = (*ManagedHSM)(nil)

// NewManagedHSM returns a provider that calls h as the identity as.
func NewManagedHSM(h *mhsm.Service, as *keyhold.Identity) *ManagedHSM {
	return &ManagedHSM{h: h, as: *as}
}

func (m *ManagedHSM) ctx(ctx context.Context) context.Context {
	id := m.as
	ctx = keyhold.NewContext(ctx, &id)
	return keyhold.NewOriginContext(ctx, keyhold.Origin{Internal: true})
}

// Wrap encrypts plaintext with RSA-OAEP-256 under keyID (a key id of this
// server's HSMs) and returns the versioned kid used.
func (m *ManagedHSM) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	hsm, name, version, err := m.h.ParseKeyID(keyID)
	if err != nil {
		return "", nil, err
	}
	kid, ct, err := m.h.WrapKey(m.ctx(ctx), hsm, name, version, Algorithm, plaintext)
	if err != nil {
		return "", nil, unavailable(err)
	}
	return kid, ct, nil
}

// Unwrap decrypts ciphertext, in the token, with exactly the version kid
// names.
func (m *ManagedHSM) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	hsm, name, version, err := m.h.ParseKeyID(kid)
	if err != nil {
		return nil, err
	}
	if version == "" {
		return nil, needVersion(kid)
	}
	_, pt, err := m.h.UnwrapKey(m.ctx(ctx), hsm, name, version, Algorithm, ciphertext)
	if err != nil {
		return nil, unavailable(err)
	}
	return pt, nil
}

// Probe checks that the identity may get the key, that its version is
// enabled, and that it wraps and unwraps a random value.
func (m *ManagedHSM) Probe(ctx context.Context, keyID string) error {
	hsm, name, version, err := m.h.ParseKeyID(keyID)
	if err != nil {
		return err
	}
	kb, err := m.h.GetKey(m.ctx(ctx), hsm, name, version)
	if err != nil {
		return unavailable(err)
	}
	if !kb.Version.Enabled {
		return disabled(kb.KID)
	}
	return probeRoundTrip(ctx, m, keyID)
}

// ByVault routes each call by its key id: to the Managed HSM's provider
// for a key of this server's HSMs, to the vault's otherwise.
type ByVault struct {
	Vault Provider
	HSM   *ManagedHSM
}

var _ Provider = ByVault{}

func (b ByVault) pick(kid string) Provider {
	if b.HSM != nil && b.HSM.h.IsHSMKeyID(kid) {
		return b.HSM
	}
	return b.Vault
}

func (b ByVault) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	return b.pick(keyID).Wrap(ctx, keyID, plaintext)
}

func (b ByVault) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	return b.pick(kid).Unwrap(ctx, kid, ciphertext)
}

func (b ByVault) Probe(ctx context.Context, keyID string) error {
	return b.pick(keyID).Probe(ctx, keyID)
}
