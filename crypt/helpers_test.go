package crypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// testKey returns a key whose bytes count up from first, so that tests and
// vectors can name keys without randomness.
func testKey(t testing.TB, first byte) *Key {
	t.Helper()
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = first + byte(i)
	}
	k, err := KeyFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Destroy)
	return k
}

// setRand makes randReader a deterministic stream for the rest of t.
func setRand(t testing.TB, seed uint64) {
	t.Helper()
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	old := randReader
	randReader = rand.NewChaCha8(s)
	t.Cleanup(func() { randReader = old })
}

func mustStoreKey(t testing.TB, ek *Key, envID string, epoch uint32, store string) *StoreKey {
	t.Helper()
	sk, err := DeriveStoreKey(ek, envID, epoch, store)
	if err != nil {
		t.Fatalf("DeriveStoreKey(%q, %d, %q): %v", envID, epoch, store, err)
	}
	t.Cleanup(sk.Destroy)
	return sk
}

// flipBit returns a copy of b with bit i flipped.
func flipBit(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i/8] ^= 1 << (i % 8)
	return c
}

// pattern returns n bytes that differ from segment to segment, so that a
// moved segment can't decrypt to the same plaintext by accident.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>16)
	}
	return b
}

// wantDecryptErr fails t unless err wraps ErrDecrypt and its message holds
// want.
func wantDecryptErr(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want one wrapping ErrDecrypt with %q", want)
	}
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("error %q does not wrap ErrDecrypt", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

const testEnv = "4f5a2b1c-0d3e-4f60-8a7b-9c0d1e2f3a4b" // 36 characters, like a GUID
