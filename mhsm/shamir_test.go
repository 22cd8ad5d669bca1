package mhsm

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestGFField(t *testing.T) {
	// 0x53 · 0xCA = 1 in the AES field (FIPS 197, 4.2), and every nonzero
	// element has an inverse.
	if got := gfMul(0x53, 0xca); got != 1 {
		t.Fatalf("0x53·0xca = %#x, want 1", got)
	}
	for a := 1; a < 256; a++ {
		if gfMul(byte(a), gfInv(byte(a))) != 1 {
			t.Fatalf("%#x has no inverse", a)
		}
	}
}

func TestShamirQuorum(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares, err := shamirSplit(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Every 3-subset restores the secret.
	for a := 0; a < 5; a++ {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				got, err := shamirCombine([][]byte{shares[c], shares[a], shares[b]})
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("shares %d,%d,%d: %x, %v", a, b, c, got, err)
				}
			}
		}
	}
	// All five do too; two (below the quorum) do not.
	if got, _ := shamirCombine(shares); !bytes.Equal(got, secret) {
		t.Fatal("all shares do not restore the secret")
	}
	if got, _ := shamirCombine(shares[:2]); bytes.Equal(got, secret) {
		t.Fatal("two shares of a 3-quorum restored the secret")
	}
	// A changed share gives another value.
	bad := bytes.Clone(shares[1])
	bad[5] ^= 1
	if got, _ := shamirCombine([][]byte{shares[0], bad, shares[2]}); bytes.Equal(got, secret) {
		t.Fatal("a tampered share restored the secret")
	}
	if _, err := shamirCombine([][]byte{shares[0], shares[0], shares[1]}); err == nil {
		t.Fatal("a repeated share was accepted")
	}
	if _, err := shamirSplit(secret, 3, 1); err == nil {
		t.Fatal("a quorum of 1 was accepted")
	}
}
