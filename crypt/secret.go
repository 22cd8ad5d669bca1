package crypt

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
)

// SecretPrefix starts every client secret Keyhold issues, so secret
// scanners and people can recognise one.
const SecretPrefix = "khs_"

// NewClientSecret returns a new client secret holding 256 random bits.
func NewClientSecret() string {
	// rand.Text gives 128 bits in base32; two of them give 256.
	return SecretPrefix + rand.Text() + rand.Text()
}

// HashClientSecret returns the hash under which a client secret is stored.
// Secrets are 256-bit random values, so one SHA-256 is as strong as any
// password-stretching function here, and cheap on every token request.
func HashClientSecret(secret string) []byte {
	h := sha256.Sum256([]byte("keyhold client secret v1\x00" + secret))
	return h[:]
}

// CheckClientSecret reports, in constant time, whether secret hashes to hash.
func CheckClientSecret(hash []byte, secret string) bool {
	return subtle.ConstantTimeCompare(hash, HashClientSecret(secret)) == 1
}
