package crypt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// Certificates use ECDSA P-256: small, fast, and accepted by every TLS
// client Keyhold talks to. Since Go 1.26 key and signature generation ignore
// a caller's random source, so these functions pass crypto/rand's and tests
// that want determinism use testing/cryptotest.

// GenerateConstrainedCA returns a new self-signed ECDSA P-256 CA
// certificate (PEM) and its private key (PEM, PKCS#8), valid from now for
// validity, that may vouch only for hosts: its certificate carries
// critical name constraints that permit
// those DNS names (and, as X.509 can't say less, their subdomains) and
// exactly those IP addresses, and nothing else. A client that trusts it
// then trusts it for the server it was made for, not for any name an
// attacker holding its key might issue (a bank's, say).
//
// The CA may sign only end-entity certificates (path length 0). It
// returns an error for no hosts or an empty host, for a non-positive
// validity, or if key generation or signing fails.
func GenerateConstrainedCA(commonName string, hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("crypt: a constrained CA needs at least one host name or IP address")
	}
	return generateCA(commonName, hosts, now, validity)
}

// generateCA makes a CA; a non-nil hosts constrains its names (the tests'
// GenerateCA passes none).
func generateCA(commonName string, hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("crypt: CA validity %v is not positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: generating CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	if hosts != nil {
		// RFC 5280 4.2.1.10: name constraints MUST be critical, so a
		// client that does not understand them refuses the chain rather
		// than ignoring them.
		tmpl.PermittedDNSDomainsCritical = true
		for _, h := range hosts {
			h = strings.TrimSpace(h)
			switch ip := net.ParseIP(h); {
			case h == "":
				return nil, nil, errors.New("crypt: a constrained CA's host is empty")
			case ip == nil:
				tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, h)
			case ip.To4() != nil:
				tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)})
			default:
				tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)})
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: creating CA certificate: %w", err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// IssueServerCert returns a server certificate (PEM) and key (PEM) signed
// by the CA, for the given DNS names and IP addresses.
//
// Each host that net.ParseIP accepts becomes an IP address SAN, every other
// one a DNS name; the first host is also the subject's common name. The
// certificate is valid from now for validity, but never past the CA's own
// expiry, since a chain is only as valid as its CA. It returns an error for
// no hosts, an empty host, a non-positive validity, a CA that doesn't parse,
// is not a CA, or whose key doesn't match its certificate.
func IssueServerCert(caCertPEM, caKeyPEM []byte, hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("crypt: a server certificate needs at least one host name or IP address")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("crypt: certificate validity %v is not positive", validity)
	}
	ca, err := parseCertPEM(caCertPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: CA certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("crypt: certificate %q is not a CA", ca.Subject.CommonName)
	}
	caKey, err := parseKeyPEM(caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: CA key: %w", err)
	}
	pub, ok := caKey.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, errors.New("crypt: the CA key does not match the CA certificate")
	}

	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: strings.TrimSpace(hosts[0])},
		NotBefore:   now,
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, nil, errors.New("crypt: a server certificate host is empty")
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: generating server key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("crypt: creating server certificate: %w", err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// TLS12CipherSuites are the only TLS 1.2 cipher suites a server from
// LoadServerTLS offers: ECDHE key exchange (forward secrecy) with an AEAD
// cipher, for ECDSA and RSA certificates (a certificate brought by the
// operator may be RSA). The CBC suites with SHA-1 MACs that Go still
// enables by default (Lucky13-style padding oracles, no AEAD) are left
// out. TLS 1.3 has only AEAD suites and is not configurable, so it is
// unaffected.
var TLS12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// LoadServerTLS returns a tls.Config (TLS 1.2 minimum, with only the
// TLS12CipherSuites) serving cert/key.
//
// It returns an error if the pair doesn't parse or doesn't match.
func LoadServerTLS(certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("crypt: loading TLS certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: slices.Clone(TLS12CipherSuites),
	}, nil
}

// newSerial returns a random 128-bit certificate serial number, as the CA/B
// Forum asks (at least 64 random bits).
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("crypt: generating serial number: %w", err)
	}
	return serial, nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM PRIVATE KEY found")
		}
		if b.Type != "PRIVATE KEY" {
			continue
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, errors.New("PRIVATE KEY block is not valid PKCS#8")
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T can't sign certificates", k)
		}
		return s, nil
	}
}

func encodeKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("crypt: encoding private key: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
