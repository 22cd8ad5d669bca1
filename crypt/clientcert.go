package crypt

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MinClientCertRSABits is the smallest RSA key a client certificate may
// hold, as Entra ID requires.
const MinClientCertRSABits = 2048

// ParseClientCertificate reads a service principal's public certificate,
// PEM ("CERTIFICATE" blocks; the first is the leaf) or DER. It refuses
// input that holds a private key, so that one is never uploaded, and a
// certificate whose key can't sign client assertions (RS256, PS256): only
// RSA keys of at least MinClientCertRSABits. Errors say how to fix the
// input and never quote it.
func ParseClientCertificate(in []byte) (*x509.Certificate, error) {
	der := in
	if strings.Contains(string(in), "-----BEGIN") {
		der = nil
		rest := in
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if strings.Contains(b.Type, "PRIVATE KEY") {
				return nil, errors.New("the file holds a private key: upload only the public certificate (openssl x509 -in cert.pem -out public.pem), and keep the key with the application")
			}
			if b.Type == "CERTIFICATE" && der == nil {
				der = b.Bytes
			}
		}
		if der == nil {
			return nil, errors.New("the PEM holds no CERTIFICATE block: upload the application's X.509 certificate, PEM or DER")
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errors.New("not an X.509 certificate: upload the application's certificate, PEM (-----BEGIN CERTIFICATE-----) or DER")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the certificate's key is %s: client assertions are signed RS256 or PS256, so use an RSA key of at least %d bits", cert.PublicKeyAlgorithm, MinClientCertRSABits)
	}
	if pub.N.BitLen() < MinClientCertRSABits {
		return nil, fmt.Errorf("the certificate's RSA key has %d bits: use at least %d", pub.N.BitLen(), MinClientCertRSABits)
	}
	return cert, nil
}

// HashClientCertificate returns the hash under which a certificate
// credential is stored (keyhold.Credential.SecretHash): domain-separated
// from client secrets' hashes, so that no secret matches a certificate.
func HashClientCertificate(der []byte) []byte {
	h := sha256.Sum256(append([]byte("keyhold client certificate v1\x00"), der...))
	return h[:]
}

// CertThumbprints returns a certificate's SHA-1 thumbprint in upper-case
// hex (as Entra ID shows it) and its SHA-256 thumbprint in base64url (as
// x5t#S256 carries it).
func CertThumbprints(der []byte) (sha1Hex, sha256B64 string) {
	s1 := sha1.Sum(der) // #nosec: x5t is SHA-1 by definition (RFC 7515 4.1.7)
	s256 := sha256.Sum256(der)
	return strings.ToUpper(hex.EncodeToString(s1[:])), base64.RawURLEncoding.EncodeToString(s256[:])
}

// MatchThumbprint reports whether a JWT header's x5t#S256 (sha256 true)
// or x5t value names the certificate der. The value is base64url, as RFC
// 7515 says, or standard base64, as MSAL sends it; padding is optional.
func MatchThumbprint(der []byte, value string, sha256Hdr bool) bool {
	var want []byte
	if sha256Hdr {
		s := sha256.Sum256(der)
		want = s[:]
	} else {
		s := sha1.Sum(der) // #nosec: see CertThumbprints
		want = s[:]
	}
	v := strings.TrimRight(value, "=")
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
		if got, err := enc.DecodeString(v); err == nil && string(got) == string(want) {
			return true
		}
	}
	return false
}
