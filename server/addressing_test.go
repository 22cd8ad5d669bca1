package server

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyhold/keyhold/crypt"
)

// verifies reports whether the server certificate of f verifies for name
// under f's CA at now.
func verifies(t *testing.T, f tlsFiles, name string, now time.Time) error {
	t.Helper()
	ca, err := readCert(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := readCert(f.cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now})
	return err
}

// TestTLSVaultHosts: the generated certificate serves every vault's host,
// *.{vault-domain}, and the public URL's host, under a CA constrained to
// them; a certificate of the previous release, without those names, is
// re-issued from the same CA at start; a vault domain the CA does not
// permit gets a new CA.
func TestTLSVaultHosts(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	now := time.Now().Truncate(time.Second)
	dir := t.TempDir()
	f, err := ensureTLS(dir, tlsSetup{bound: loopback, requested: "127.0.0.1:8443", publicURL: "https://keyhold.example.com:8443"}, now, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"contoso-kv.vault.localhost", "keyhold.example.com", "127.0.0.1"} {
		if err := verifies(t, f, name, now.Add(time.Second)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := verifies(t, f, "a.b.vault.localhost", now.Add(time.Second)); err == nil {
		t.Error("the certificate verifies for a.b.vault.localhost: a wildcard covers one label")
	}

	// The previous release's certificate: its names (and its CA's), no
	// vault names.
	old := t.TempDir()
	prev := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		prev = append(prev, h)
	}
	caPEM, caKey, err := crypt.GenerateConstrainedCA("Keyhold local CA", prev, now, caValidity)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, leafKey, err := crypt.IssueServerCert(caPEM, caKey, prev, now, leafValidity)
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(old, "tls")
	os.MkdirAll(tlsDir, 0o700)
	if err := writeTLSFiles([]tlsFile{{filepath.Join(tlsDir, "ca.pem"), caPEM, 0o644}, {filepath.Join(tlsDir, "ca-key.pem"), caKey, 0o600},
		{filepath.Join(tlsDir, "server-key.pem"), leafKey, 0o600}, {filepath.Join(tlsDir, "server.pem"), leafPEM, 0o644}}); err != nil {
		t.Fatal(err)
	}
	f, err = ensureTLS(old, tlsSetup{bound: loopback}, now.Add(time.Hour), log)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.ca); !bytes.Equal(got, caPEM) {
		t.Fatal("re-issuing for the vault names replaced the CA")
	}
	if err := verifies(t, f, "contoso-kv.vault.localhost", now.Add(2*time.Hour)); err != nil {
		t.Fatalf("the certificate of the previous release was not re-issued for the vaults' hosts: %v", err)
	}

	// A vault domain outside the CA's constraints: a new CA, which permits it.
	f, err = ensureTLS(old, tlsSetup{bound: loopback, vaultDomain: "vault.example.com"}, now.Add(2*time.Hour), log)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.ca); bytes.Equal(got, caPEM) {
		t.Fatal("the CA was kept though it does not permit vault.example.com")
	}
	if err := verifies(t, f, "contoso-kv.vault.example.com", now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
}
