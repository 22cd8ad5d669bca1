package mhsm

import (
	"crypto/rand"
	"errors"
)

// Shamir's secret sharing over GF(2^8) (the AES field, x^8+x^4+x^3+x+1),
// byte by byte: share i of a secret is (x_i, f(x_i)) for a random
// polynomial f of degree quorum-1 whose constant term is the secret byte.
// Any quorum shares give f(0) back by Lagrange interpolation; fewer give
// nothing about it. No library in the module proxy was maintained and
// small enough to take on for this (hashicorp/vault's shamir is a package
// of the whole vault module), so it is here, with tests of its properties.

// gfMul multiplies in GF(2^8) in constant time.
func gfMul(a, b byte) byte {
	var p byte
	for i := 0; i < 8; i++ {
		p ^= -(b & 1) & a
		hi := -(a >> 7)
		a = a<<1 ^ hi&0x1b
		b >>= 1
	}
	return p
}

// gfInv returns a^-1 = a^254 (0 for 0).
func gfInv(a byte) byte {
	r := byte(1)
	for i := 0; i < 7; i++ { // a^(2+4+…+128) = a^254
		a = gfMul(a, a)
		r = gfMul(r, a)
	}
	return r
}

// shamirSplit splits secret into n shares, any k of which restore it.
// Share i is x_i = i+1 followed by the evaluations; 2 ≤ k ≤ n ≤ 255.
func shamirSplit(secret []byte, n, k int) ([][]byte, error) {
	if k < 2 || n < k || n > 255 || len(secret) == 0 {
		return nil, errors.New("mhsm: shamir needs 2 ≤ k ≤ n ≤ 255 and a secret")
	}
	shares := make([][]byte, n)
	for i := range shares {
		shares[i] = make([]byte, 1+len(secret))
		shares[i][0] = byte(i + 1)
	}
	coef := make([]byte, k)
	defer clear(coef)
	for j, s := range secret {
		coef[0] = s
		if _, err := rand.Read(coef[1:]); err != nil {
			return nil, err
		}
		for i := range shares {
			x, y := shares[i][0], byte(0)
			for c := k - 1; c >= 0; c-- { // Horner
				y = gfMul(y, x) ^ coef[c]
			}
			shares[i][1+j] = y
		}
	}
	return shares, nil
}

// shamirCombine restores the secret from shares (each x followed by the
// evaluations, all of one length, distinct nonzero x). With fewer shares
// than the quorum it returns a value unrelated to the secret: the caller
// checks the result (the domain's hash).
func shamirCombine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, errors.New("mhsm: shamir needs at least two shares")
	}
	size := len(shares[0])
	seen := map[byte]bool{}
	for _, s := range shares {
		if len(s) != size || size < 2 || s[0] == 0 || seen[s[0]] {
			return nil, errors.New("mhsm: shares differ in length or repeat an x coordinate")
		}
		seen[s[0]] = true
	}
	out := make([]byte, size-1)
	for i, si := range shares {
		// Lagrange basis at 0: prod_{j≠i} x_j / (x_j - x_i); minus is xor.
		num, den := byte(1), byte(1)
		for j, sj := range shares {
			if i != j {
				num = gfMul(num, sj[0])
				den = gfMul(den, sj[0]^si[0])
			}
		}
		l := gfMul(num, gfInv(den))
		for b := range out {
			out[b] ^= gfMul(l, si[1+b])
		}
	}
	return out, nil
}
