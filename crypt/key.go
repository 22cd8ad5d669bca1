package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// KeySize is the size in bytes of every symmetric key here (AES-256).
const KeySize = 32

// randReader is the source of every key and nonce this package makes itself.
// It is a variable only so that tests can make the known-answer vectors in
// testdata reproducible; nothing else may change it.
var randReader io.Reader = rand.Reader

// errDestroyed is returned by operations on a key after Destroy. Using a
// destroyed key is a bug in the caller, so it is not an ErrDecrypt.
var errDestroyed = errors.New("crypt: key is destroyed")

// redacted is what a Key prints as, however it is formatted or logged.
const redacted = "crypt.Key(REDACTED)"

// Key is a 256-bit secret key held in memory. Destroy zeroes it. A Key is
// never serialised except sealed or wrapped.
//
// The bytes sit behind a pointer so that copies of a Key value share them
// and Destroy zeroes the only copy. A Key prints as "crypt.Key(REDACTED)"
// with any fmt verb and in slog, so it can't leak into a log by accident.
//
// A Key may be used by several goroutines at once, but Destroy must not run
// concurrently with any other use.
type Key struct{ b *[KeySize]byte }

// NewKey returns a fresh random key. It fails only if the system's random
// source does.
func NewKey() (*Key, error) {
	k := &Key{b: new([KeySize]byte)}
	if _, err := io.ReadFull(randReader, k.b[:]); err != nil {
		return nil, fmt.Errorf("crypt: generating key: %w", err)
	}
	return k, nil
}

// KeyFromBytes returns a key holding a copy of b, which must be KeySize long.
// The caller still owns b and should clear it.
func KeyFromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("crypt: key is %d bytes; want %d", len(b), KeySize)
	}
	k := &Key{b: new([KeySize]byte)}
	copy(k.b[:], b)
	return k, nil
}

// Clone returns an independent copy of k. The clone of a destroyed (or nil)
// key is a destroyed key, whose methods return errors.
func (k *Key) Clone() *Key {
	if k == nil || k.b == nil {
		return &Key{}
	}
	c := &Key{b: new([KeySize]byte)}
	copy(c.b[:], k.b[:])
	return c
}

// Destroy zeroes k. Using k afterwards is an error (methods return one).
// Destroying a key twice is harmless.
func (k *Key) Destroy() {
	if k == nil || k.b == nil {
		return
	}
	clear(k.b[:])
	k.b = nil
}

// Destroyed reports whether k was destroyed (or is nil).
func (k *Key) Destroyed() bool { return k == nil || k.b == nil }

// Equal reports, in constant time, whether k and o hold the same key. A
// destroyed key equals nothing.
func (k *Key) Equal(o *Key) bool {
	if k.Destroyed() || o.Destroyed() {
		return false
	}
	return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// bytes returns the key's own backing bytes (not a copy), for primitives that
// take a slice; callers must not keep or change them.
func (k *Key) bytes() ([]byte, error) {
	if k.Destroyed() {
		return nil, errDestroyed
	}
	return k.b[:], nil
}

// String returns "crypt.Key(REDACTED)".
func (Key) String() string { return redacted }

// GoString returns "crypt.Key(REDACTED)", so %#v doesn't show the bytes.
func (Key) GoString() string { return redacted }

// Format writes "crypt.Key(REDACTED)" for every verb, %x and %q included.
func (Key) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue makes slog record "crypt.Key(REDACTED)".
func (Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// newGCM returns AES-256-GCM under key. The cipher keeps its own expanded
// copy of the key, which Go gives no way to zero.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: %w", err)
	}
	return cipher.NewGCM(block)
}
