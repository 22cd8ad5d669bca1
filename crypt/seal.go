package crypt

import (
	"errors"
	"fmt"
	"io"
)

// ErrDecrypt is returned (wrapped) for any authentication failure: a wrong
// key or binding, a modified, truncated or reordered ciphertext, or a format
// version this code doesn't know. Test for it with errors.Is.
var ErrDecrypt = errors.New("crypt: message authentication failed")

// decryptError says which check refused a ciphertext while still matching
// ErrDecrypt, so callers test one sentinel and operators read a precise
// message. Its text never holds key material.
type decryptError struct{ msg string }

func (e *decryptError) Error() string { return "crypt: " + e.msg }
func (e *decryptError) Unwrap() error { return ErrDecrypt }

func decryptErrorf(format string, args ...any) error {
	return &decryptError{msg: fmt.Sprintf(format, args...)}
}

// Sizes shared by the AES-256-GCM formats.
const (
	formatV1  = 0x01
	nonceSize = 12
	tagSize   = 16
)

// sealAADPrefix separates Seal's additional data from every other format's;
// the purpose follows it and ends the additional data, so it needs no
// length prefix.
const sealAADPrefix = "keyhold sealed v1\x00"

// Seal encrypts plaintext under key with AES-256-GCM for the given purpose
// (for example "mmk" or "token-signing-key"); Open with another purpose
// fails. Format v1: 0x01 | nonce(12) | ciphertext+tag.
//
// Nonces are random, so one key may seal at most about 2³² messages; Seal is
// meant for a few pieces of key material under the master key. It fails
// only for a destroyed key or a failing random source.
func Seal(key *Key, purpose string, plaintext []byte) ([]byte, error) {
	kb, err := key.bytes()
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(kb)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = formatV1
	nonce := out[1 : 1+nonceSize]
	if _, err := io.ReadFull(randReader, nonce); err != nil {
		return nil, fmt.Errorf("crypt: generating nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, []byte(sealAADPrefix+purpose)), nil
}

// Open decrypts what Seal produced. A wrong key, purpose or a modified
// ciphertext returns ErrDecrypt.
//
// An unknown version byte or a too short input also returns an error
// wrapping ErrDecrypt that names the problem. The caller owns the returned
// plaintext and should clear it once used if it is key material.
func Open(key *Key, purpose string, sealed []byte) ([]byte, error) {
	kb, err := key.bytes()
	if err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, decryptErrorf("sealed data is empty")
	}
	if sealed[0] != formatV1 {
		return nil, decryptErrorf("unknown sealed format version 0x%02x", sealed[0])
	}
	if len(sealed) < 1+nonceSize+tagSize {
		return nil, decryptErrorf("sealed data is %d bytes; a version 1 ciphertext has at least %d", len(sealed), 1+nonceSize+tagSize)
	}
	aead, err := newGCM(kb)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], []byte(sealAADPrefix+purpose))
	if err != nil {
		return nil, decryptErrorf("sealed data for purpose %q failed authentication: wrong key or purpose, or modified", purpose)
	}
	return pt, nil
}

// SealKey seals k under key for purpose, as Seal does with k's bytes, so
// that key material needn't leave a Key to be stored. It returns the same
// errors as Seal, and an error for a destroyed k.
func SealKey(key *Key, purpose string, k *Key) ([]byte, error) {
	kb, err := k.bytes()
	if err != nil {
		return nil, err
	}
	return Seal(key, purpose, kb)
}

// OpenKey opens what SealKey produced and returns the key. Besides Open's
// errors, it refuses a plaintext that is not KeySize long.
func OpenKey(key *Key, purpose string, sealed []byte) (*Key, error) {
	pt, err := Open(key, purpose, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return KeyFromBytes(pt)
}
