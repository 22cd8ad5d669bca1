package crypt

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
)

// AESWrapper is a keyhold.KeyWrapper over one AES-256 root key (the
// platform's MMK). Its kid is "<id>/<version>".
//
// The wrapped bytes are Seal's format with purpose "wrap\x00" + kid, so a
// ciphertext only unwraps under the kid that wrapped it. Wrap and Unwrap are
// safe for concurrent use; Destroy must not run concurrently with them.
type AESWrapper struct {
	id  string
	kid string
	key *Key
}

// NewAESWrapper returns a wrapper for the root key named id at version. It
// keeps its own copy of key (the caller still destroys key); Destroy zeroes
// that copy.
func NewAESWrapper(id, version string, key *Key) *AESWrapper {
	return &AESWrapper{id: id, kid: id + "/" + version, key: key.Clone()}
}

// KeyID returns the versioned key id (kid) that Wrap returns.
func (w *AESWrapper) KeyID() string { return w.kid }

// Destroy zeroes the wrapper's copy of the root key; Wrap and Unwrap fail
// afterwards.
func (w *AESWrapper) Destroy() { w.key.Destroy() }

func wrapPurpose(kid string) string { return "wrap\x00" + kid }

// Wrap implements keyhold.KeyWrapper. keyID must be the wrapper's id.
//
// It returns an error for another keyID, a done ctx or a destroyed wrapper.
func (w *AESWrapper) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	if keyID != w.id {
		return "", nil, fmt.Errorf("crypt: cannot wrap with key %q: this wrapper holds key %q", keyID, w.id)
	}
	ct, err := Seal(w.key, wrapPurpose(w.kid), plaintext)
	if err != nil {
		return "", nil, err
	}
	return w.kid, ct, nil
}

// Unwrap implements keyhold.KeyWrapper. kid must be the wrapper's kid.
//
// It returns an error for another kid, a done ctx or a destroyed wrapper,
// and an error wrapping ErrDecrypt if the ciphertext doesn't authenticate.
func (w *AESWrapper) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if kid != w.kid {
		return nil, fmt.Errorf("crypt: cannot unwrap with key version %q: this wrapper holds %q", kid, w.kid)
	}
	return Open(w.key, wrapPurpose(w.kid), ciphertext)
}

var _ keyhold.KeyWrapper = (*AESWrapper)(nil)

// partitionInfoLabel starts the HKDF info of a platform key partition; it
// differs from storeKeyInfoLabel so that no partition key can equal a
// store key, whatever the key material.
const partitionInfoLabel = "keyhold platform partition v1\x00"

// DerivePartitionKey derives the key of the root key's partition of
// (envID, store): HKDF-SHA256 of the wrapper's key with info
// "keyhold platform partition v1\x00" | lp(envID) | lp(store). Spec 004
// keeps some data (non-OAuth connections' credentials) under the platform
// key even in an environment whose own key is the customer's: this key
// seals it, in the item format of StoreKey.Seal, with epoch 0 in the
// header (no environment key has epoch 0). The caller destroys the key.
func (w *AESWrapper) DerivePartitionKey(envID, store string) (*StoreKey, error) {
	return deriveItemKey(w.key, partitionInfoLabel, envID, 0, store)
}
