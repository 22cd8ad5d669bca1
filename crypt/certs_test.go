package crypt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// GenerateCA is GenerateConstrainedCA without name constraints: a CA that
// may vouch for any name, as an operator's private CA may. The server
// never makes one (it constrains its CA to its hosts), so it lives here,
// for the tests of what the two have in common and of a CA that signs for
// more than one server.
func GenerateCA(commonName string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	return generateCA(commonName, nil, now, validity)
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerateCA(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	certPEM, keyPEM, err := GenerateCA("Keyhold test CA", now, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := parseCert(t, certPEM)
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || !ca.MaxPathLenZero {
		t.Fatalf("CA: IsCA %v, KeyUsage %v, MaxPathLenZero %v; want a CA that signs leaf certificates", ca.IsCA, ca.KeyUsage, ca.MaxPathLenZero)
	}
	if ca.Subject.CommonName != "Keyhold test CA" {
		t.Fatalf("CommonName = %q", ca.Subject.CommonName)
	}
	if !ca.NotBefore.Equal(now) || !ca.NotAfter.Equal(now.Add(10*365*24*time.Hour)) {
		t.Fatalf("validity %v to %v; want from %v for ten years", ca.NotBefore, ca.NotAfter, now)
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %T; want ECDSA P-256", ca.PublicKey)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("CA is not self-signed: %v", err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatal("CA key is not a PEM PRIVATE KEY (PKCS#8)")
	}
	if _, _, err := GenerateCA("x", now, 0); err == nil {
		t.Fatal("GenerateCA with zero validity succeeded")
	}
}

func TestIssueServerCert(t *testing.T) {
	now := time.Now()
	caPEM, caKey, err := GenerateCA("Keyhold test CA", now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := IssueServerCert(caPEM, caKey, []string{"localhost", "127.0.0.1", "::1", "keyhold.example"}, now.Add(-time.Minute), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, certPEM)
	if got := strings.Join(leaf.DNSNames, ","); got != "localhost,keyhold.example" {
		t.Fatalf("DNSNames = %q", got)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Fatalf("IPAddresses = %v", leaf.IPAddresses)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
		t.Fatalf("ExtKeyUsage %v, IsCA %v; want a server-auth leaf", leaf.ExtKeyUsage, leaf.IsCA)
	}
	ca := parseCert(t, caPEM)
	if !leaf.NotAfter.Equal(ca.NotAfter) {
		t.Fatalf("leaf expires %v, after its CA's %v", leaf.NotAfter, ca.NotAfter)
	}

	pool, err := CertPool(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "keyhold.example"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Fatalf("verifying for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "evil.example", Roots: pool}); err == nil {
		t.Fatal("certificate verified for a host it doesn't name")
	}

	t.Run("handshake", func(t *testing.T) {
		cfg, err := LoadServerTLS(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MinVersion != tls.VersionTLS12 {
			t.Fatalf("MinVersion = %x; want TLS 1.2", cfg.MinVersion)
		}
		if err := handshake(cfg, &tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if err := handshake(cfg, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil {
			t.Fatal("a TLS 1.1 client connected")
		}
		other, _, _ := GenerateCA("other CA", now.Add(-time.Hour), time.Hour*2)
		otherPool, _ := CertPool(other)
		if err := handshake(cfg, &tls.Config{RootCAs: otherPool, ServerName: "localhost"}); err == nil {
			t.Fatal("a client trusting another CA connected")
		}
	})

	t.Run("refusals", func(t *testing.T) {
		otherCA, otherKey, _ := GenerateCA("other", now, time.Hour)
		tests := []struct {
			name    string
			caPEM   []byte
			caKey   []byte
			hosts   []string
			wantErr string
		}{
			{"no hosts", caPEM, caKey, nil, "at least one host"},
			{"empty host", caPEM, caKey, []string{"a", " "}, "host is empty"},
			{"leaf as CA", certPEM, keyPEM, []string{"a"}, "is not a CA"},
			{"mismatched key", caPEM, otherKey, []string{"a"}, "CA key does not match"},
			{"key of other CA", otherCA, caKey, []string{"a"}, "CA key does not match"},
			{"not PEM", []byte("junk"), caKey, []string{"a"}, "no PEM certificate"},
			{"no key", caPEM, caPEM, []string{"a"}, "no PEM PRIVATE KEY"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, _, err := IssueServerCert(tt.caPEM, tt.caKey, tt.hosts, now, time.Hour)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v; want %q", err, tt.wantErr)
				}
			})
		}
	})
}

// handshake runs a TLS handshake over loopback TCP (net.Pipe, having no
// buffer, deadlocks on TLS 1.3 session tickets).
func handshake(server, client *tls.Config) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		done <- tls.Server(c, server).Handshake()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	err = tls.Client(c, client).Handshake()
	c.Close()
	if serr := <-done; err == nil {
		err = serr
	}
	return err
}

func TestCertPool(t *testing.T) {
	caPEM, keyPEM, err := GenerateCA("a", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CertPool(append(append([]byte{}, keyPEM...), caPEM...)); err != nil {
		t.Fatalf("CertPool of a key and a certificate: %v", err)
	}
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")})
	for name, in := range map[string][]byte{"empty": nil, "key only": keyPEM, "bad certificate": bad} {
		if _, err := CertPool(in); err == nil {
			t.Fatalf("CertPool of %s succeeded", name)
		}
	}
}

func TestSigningKey(t *testing.T) {
	key, der, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseSigningKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.Equal(key) {
		t.Fatal("ParseSigningKey returned another key")
	}
	digest := sha256.Sum256([]byte("token"))
	sig, err := ecdsa.SignASN1(rand.Reader, parsed, digest[:])
	if err != nil || !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
		t.Fatalf("signature by the parsed key does not verify: %v", err)
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	for name, tt := range map[string]struct {
		der     []byte
		wantErr string
	}{
		"garbage": {[]byte("not a key"), "not valid PKCS#8 DER"},
		"empty":   {nil, "not valid PKCS#8 DER"},
		"P-384":   {p384DER, "uses curve P-384; want P-256"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSigningKey(tt.der)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v; want %q", err, tt.wantErr)
			}
		})
	}
}

// TestGenerateConstrainedCA: the CA's name constraints are critical and
// name exactly the hosts it was made for, so a chain verifies for them and
// not for any other name the CA's key could be made to sign.
func TestGenerateConstrainedCA(t *testing.T) {
	now := time.Now().Add(-time.Minute).Truncate(time.Second)
	hosts := []string{"localhost", "127.0.0.1", "::1", "keyhold.internal"}
	caPEM, caKey, err := GenerateConstrainedCA("Keyhold test CA", hosts, now, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := parseCert(t, caPEM)
	if !ca.PermittedDNSDomainsCritical {
		t.Fatal("name constraints are not critical")
	}
	if got := strings.Join(ca.PermittedDNSDomains, ","); got != "localhost,keyhold.internal" {
		t.Fatalf("permitted DNS names %q; want localhost,keyhold.internal", got)
	}
	var ranges []string
	for _, r := range ca.PermittedIPRanges {
		ranges = append(ranges, r.String())
	}
	if got := strings.Join(ranges, ","); got != "127.0.0.1/32,::1/128" {
		t.Fatalf("permitted IP ranges %q; want 127.0.0.1/32,::1/128", got)
	}
	pool, err := CertPool(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(hosts ...string) error {
		certPEM, _, err := IssueServerCert(caPEM, caKey, hosts, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseCert(t, certPEM).Verify(x509.VerifyOptions{Roots: pool, DNSName: hosts[0], CurrentTime: now.Add(time.Second)})
		return err
	}
	if err := verify("localhost", "127.0.0.1", "::1"); err != nil {
		t.Fatalf("a certificate for the served names does not verify: %v", err)
	}
	for _, other := range [][]string{{"bank.example"}, {"localhost", "10.0.0.1"}, {"localhost.example"}} {
		if err := verify(other...); err == nil {
			t.Errorf("a certificate for %v verifies under the constrained CA", other)
		}
	}
	if _, _, err := GenerateConstrainedCA("x", nil, now, time.Hour); err == nil {
		t.Error("GenerateConstrainedCA without hosts succeeded")
	}
	if _, _, err := GenerateConstrainedCA("x", []string{" "}, now, time.Hour); err == nil {
		t.Error("GenerateConstrainedCA with an empty host succeeded")
	}
}

// TestLoadServerTLSRefusesCBC: a TLS 1.2 client that offers only a
// CBC-SHA1 suite can't complete a handshake; one offering an AEAD suite
// and a TLS 1.3 client can.
func TestLoadServerTLSRefusesCBC(t *testing.T) {
	now := time.Now().Add(-time.Minute)
	caPEM, caKey, err := GenerateCA("Keyhold test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := IssueServerCert(caPEM, caKey, []string{"localhost"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := LoadServerTLS(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := CertPool(caPEM)
	handshake := func(max uint16, suites ...uint16) error {
		c, s := net.Pipe()
		defer c.Close()
		defer s.Close()
		srv := tls.Server(s, conf)
		go srv.Handshake()
		cl := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: max, CipherSuites: suites})
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return cl.Handshake()
	}
	for _, cbc := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA} {
		if err := handshake(tls.VersionTLS12, cbc); err == nil {
			t.Errorf("a TLS 1.2 client offering only %s completed a handshake", tls.CipherSuiteName(cbc))
		}
	}
	if err := handshake(tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Errorf("a TLS 1.2 client offering AES-GCM: %v", err)
	}
	if err := handshake(tls.VersionTLS13); err != nil {
		t.Errorf("a TLS 1.3 client: %v", err)
	}
}

// CertPool returns a pool holding the PEM certificate(s): the tests' way
// to trust a CA they made (the server and clients build their pools with
// x509's AppendCertsFromPEM).
//
// Blocks other than CERTIFICATE (a key in the same file, say) are skipped.
// It returns an error if a certificate doesn't parse or there is none.
func CertPool(pemData []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := pemData; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("crypt: certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("crypt: no PEM certificate found")
	}
	return pool, nil
}
