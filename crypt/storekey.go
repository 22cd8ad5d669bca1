package crypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Labels that keep each derivation and format apart. They are part of the
// formats: changing one makes existing ciphertexts unreadable.
const (
	storeKeyInfoLabel = "keyhold store key v1\x00"
	itemAADLabel      = "keyhold item v1"
	streamAADLabel    = "keyhold stream v1"
)

// headerSize is the size of the header items and streams share:
// version(1) | epoch(4).
const headerSize = 1 + 4

// itemOverhead is what Seal adds to an item's plaintext.
const itemOverhead = headerSize + nonceSize + tagSize

// appendLP appends s with its length as a 4-byte big-endian prefix, so that
// concatenated fields can't be shifted into one another ("ab"+"c" versus
// "a"+"bc").
func appendLP(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// StoreKey seals the items of one store of one environment at one epoch.
// It is derived with HKDF-SHA256 from the EK, with info binding the
// environment id and store name. Safe for concurrent use until Destroy.
//
// Destroy must not run concurrently with other methods; after it they
// return an error.
type StoreKey struct {
	key    *Key
	aead   cipher.AEAD // built once: every Seal and Open would rebuild it
	envID  string
	store  string
	epoch  uint32
	header [headerSize]byte
	// binding is lp(envID) | lp(store), the part of every item's and
	// stream's additional data that is the same for the whole key.
	binding []byte
}

// DeriveStoreKey derives the key for store (keyhold.StoreRows, …) of envID.
//
// The HKDF info is "keyhold store key v1\x00" | lp(envID) | lp(store) with
// 4-byte big-endian length prefixes, and no salt (the EK is uniformly
// random). The epoch is not part of the derivation, since each epoch has its
// own EK; it is written into every ciphertext's header and checked on open.
// It returns an error for a destroyed ek or an empty envID or store.
func DeriveStoreKey(ek *Key, envID string, epoch uint32, store string) (*StoreKey, error) {
	return deriveItemKey(ek, storeKeyInfoLabel, envID, epoch, store)
}

// deriveItemKey derives a StoreKey from root under an HKDF info that
// starts with label: DeriveStoreKey's, or a partition's
// (AESWrapper.DerivePartitionKey).
func deriveItemKey(root *Key, label, envID string, epoch uint32, store string) (*StoreKey, error) {
	kb, err := root.bytes()
	if err != nil {
		return nil, err
	}
	if envID == "" || store == "" {
		return nil, errors.New("crypt: deriving a store key needs an environment id and a store name")
	}
	info := appendLP(appendLP([]byte(label), envID), store)
	dk, err := hkdf.Key(sha256.New, kb, nil, string(info), KeySize)
	if err != nil {
		return nil, fmt.Errorf("crypt: deriving store key: %w", err)
	}
	defer clear(dk)
	aead, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	key, err := KeyFromBytes(dk)
	if err != nil {
		return nil, err
	}
	k := &StoreKey{
		key:     key,
		aead:    aead,
		envID:   envID,
		store:   store,
		epoch:   epoch,
		binding: appendLP(appendLP(nil, envID), store),
	}
	k.header[0] = formatV1
	binary.BigEndian.PutUint32(k.header[1:], epoch)
	return k, nil
}

// share returns a copy of k that shares its AES-GCM (built once, never
// changed, safe for concurrent use) and holds its own copy of the key
// bytes: destroying one leaves the other usable (Cache.StoreKey).
func (k *StoreKey) share() *StoreKey {
	c := *k
	c.key = k.key.Clone()
	return &c
}

// EnvID returns the environment the key belongs to.
func (k *StoreKey) EnvID() string { return k.envID }

// Store returns the store the key belongs to.
func (k *StoreKey) Store() string { return k.store }

// Epoch returns the EK epoch the key was derived from; every ciphertext it
// makes carries it.
func (k *StoreKey) Epoch() uint32 { return k.epoch }

// Destroy zeroes the derived key. Destroying a nil StoreKey does nothing,
// so a caller may defer it before the key exists.
func (k *StoreKey) Destroy() {
	if k == nil {
		return
	}
	k.key.Destroy()
	k.aead = nil
}

// aad returns header | label | binding | lp(itemID) | version, the additional
// data of an item or a stream.
func (k *StoreKey) aad(label, itemID string, version uint64) []byte {
	b := make([]byte, 0, headerSize+len(label)+len(k.binding)+4+len(itemID)+8)
	b = append(b, k.header[:]...)
	b = append(b, label...)
	b = append(b, k.binding...)
	b = appendLP(b, itemID)
	return binary.BigEndian.AppendUint64(b, version)
}

// Seal encrypts one item. Format v1: 0x01 | epoch(4) | nonce(12) |
// ciphertext+tag; the additional data binds the header, environment, store,
// item id and item version.
//
// Nonces are random, so one store key should seal at most about 2³² items;
// a re-key (new epoch) starts a fresh key. Seal fails only for a destroyed
// key or a failing random source.
func (k *StoreKey) Seal(itemID string, version uint64, plaintext []byte) ([]byte, error) {
	aead := k.aead
	if aead == nil {
		return nil, errDestroyed
	}
	out := make([]byte, headerSize+nonceSize, itemOverhead+len(plaintext))
	copy(out, k.header[:])
	nonce := out[headerSize:]
	if _, err := io.ReadFull(randReader, nonce); err != nil {
		return nil, fmt.Errorf("crypt: generating nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, k.aad(itemAADLabel, itemID, version)), nil
}

// Open decrypts an item sealed for exactly this environment, store, item id
// and version. Anything else, a flipped bit included, returns ErrDecrypt.
//
// The wrapped error says which check failed: too short, unknown version,
// another epoch (the caller fetched the wrong EK: see Epoch), or failed
// authentication. A destroyed key returns an error that is not ErrDecrypt.
func (k *StoreKey) Open(itemID string, version uint64, ciphertext []byte) ([]byte, error) {
	aead := k.aead
	if aead == nil {
		return nil, errDestroyed
	}
	if err := k.checkHeader("item", ciphertext); err != nil {
		return nil, err
	}
	if len(ciphertext) < itemOverhead {
		return nil, decryptErrorf("item %q is %d bytes; a version 1 item has at least %d", itemID, len(ciphertext), itemOverhead)
	}
	pt, err := aead.Open(nil, ciphertext[headerSize:headerSize+nonceSize], ciphertext[headerSize+nonceSize:], k.aad(itemAADLabel, itemID, version))
	if err != nil {
		return nil, decryptErrorf("item %q version %d of store %q of environment %q failed authentication: modified, or sealed for another item, version or environment",
			itemID, version, k.store, k.envID)
	}
	return pt, nil
}

// checkHeader checks the version and epoch of an item's or a stream's
// header, which must be at least headerSize long.
func (k *StoreKey) checkHeader(kind string, h []byte) error {
	epoch, err := parseHeader(kind, h)
	if err != nil {
		return err
	}
	if epoch != k.epoch {
		return decryptErrorf("%s was sealed at epoch %d; this key of environment %q is for epoch %d", kind, epoch, k.envID, k.epoch)
	}
	return nil
}

// parseHeader returns the epoch of an item's or a stream's header.
func parseHeader(kind string, h []byte) (uint32, error) {
	if len(h) < headerSize {
		return 0, decryptErrorf("%s is %d bytes, shorter than its %d-byte header", kind, len(h), headerSize)
	}
	if h[0] != formatV1 {
		return 0, decryptErrorf("unknown %s format version 0x%02x", kind, h[0])
	}
	return binary.BigEndian.Uint32(h[1:headerSize]), nil
}
