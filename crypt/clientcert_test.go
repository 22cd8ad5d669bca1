package crypt

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func selfSigned(t *testing.T, key *rsa.PrivateKey, cn string) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestParseClientCertificate: PEM and DER are read; a PEM holding a
// private key, and what is no certificate, are refused without quoting
// the input.
func TestParseClientCertificate(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der := selfSigned(t, key, "app")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, in := range map[string][]byte{"der": der, "pem": pemCert} {
		c, err := ParseClientCertificate(in)
		if err != nil || !bytes.Equal(c.Raw, der) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	pk := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if _, err := ParseClientCertificate(append(pemCert, pk...)); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("PEM with a private key: %v", err)
	}
	if _, err := ParseClientCertificate([]byte("secret-looking junk")); err == nil || strings.Contains(err.Error(), "junk") {
		t.Fatalf("junk: %v", err)
	}
}

// TestCertificateCredentialSeal: a certificate credential's seal covers
// the certificate, and differs from the seal of the same fields without
// one, so neither can stand for the other.
func TestCertificateCredentialSeal(t *testing.T) {
	mk, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	defer mk.Destroy()
	rk, err := NewRecordKey(mk)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der := selfSigned(t, key, "app")
	c := &keyhold.Credential{PrincipalID: "p1", SecretHash: HashClientCertificate(der), Certificate: der, ExpiresAt: time.Unix(1e9, 0)}
	seal := rk.SealCredential("t1", c)
	if err := rk.CheckCredential("t1", c, seal); err != nil {
		t.Fatal(err)
	}
	swapped := *c
	swapped.Certificate = selfSigned(t, key, "other")
	noCert := *c
	noCert.Certificate = nil
	for name, x := range map[string]*keyhold.Credential{"swapped certificate": &swapped, "certificate removed": &noCert} {
		if err := rk.CheckCredential("t1", x, seal); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Errorf("%s: %v, want %s", name, err, keyhold.CodeRecordIntegrity)
		}
	}
	if bytes.Equal(HashClientCertificate(der), HashClientSecret(string(der))) {
		t.Fatal("a certificate's hash is a client secret's")
	}
}
