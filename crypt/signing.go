package crypt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
)

// NewSigningKey returns a fresh ECDSA P-256 key for signing tokens, and its
// PKCS#8 DER encoding (to be sealed with Seal before storage).
//
// The DER holds the private key: clear it once sealed. It returns an error
// only if key generation fails.
func NewSigningKey() (*ecdsa.PrivateKey, []byte, error) {
	// Go 1.26 ignores the reader and always uses a secure source.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: generating signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: encoding signing key: %w", err)
	}
	return key, der, nil
}

// ParseSigningKey parses the PKCS#8 DER that NewSigningKey returned.
//
// It returns an error, which never quotes der, if der is not PKCS#8 or holds
// anything but an ECDSA P-256 key.
func ParseSigningKey(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("crypt: signing key is not valid PKCS#8 DER")
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("crypt: signing key is a %T; want an ECDSA P-256 key", k)
	}
	if ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("crypt: signing key uses curve %s; want P-256", ek.Curve.Params().Name)
	}
	return ek, nil
}
