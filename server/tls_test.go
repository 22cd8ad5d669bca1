package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	khttp "github.com/keyhold/keyhold/http"
)

var loopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}

// tlsState reads the generated CA and server certificate of dataDir, and
// checks that the certificate verifies for 127.0.0.1 under the CA at now.
func tlsState(t *testing.T, f tlsFiles, now time.Time) (ca, leaf *x509.Certificate) {
	t.Helper()
	ca, err := readCert(f.ca)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err = readCert(f.cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1", CurrentTime: now}); err != nil {
		t.Fatalf("the server certificate does not verify under the CA at %v: %v", now, err)
	}
	if _, err := f.config(); err != nil {
		t.Fatal(err)
	}
	return ca, leaf
}

// TestGeneratedCA: the CA made at first start may vouch only for the names
// the server serves (critical name constraints), lives at most a year, and
// its server certificate at most 90 days.
func TestGeneratedCA(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	f, err := ensureTLS(t.TempDir(), tlsSetup{bound: loopback, requested: "127.0.0.1:8443"}, now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ca, leaf := tlsState(t, f, now.Add(time.Second))
	if !ca.PermittedDNSDomainsCritical || !slices.Contains(ca.PermittedDNSDomains, "localhost") {
		t.Fatalf("CA name constraints: critical %v, DNS %v; want critical, with localhost", ca.PermittedDNSDomainsCritical, ca.PermittedDNSDomains)
	}
	var ranges []string
	for _, r := range ca.PermittedIPRanges {
		ranges = append(ranges, r.String())
	}
	if !slices.Contains(ranges, "127.0.0.1/32") || !slices.Contains(ranges, "::1/128") || len(ranges) != 2 {
		t.Fatalf("CA permitted IP ranges %v; want exactly 127.0.0.1/32 and ::1/128", ranges)
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life > 365*24*time.Hour {
		t.Errorf("the CA lives %v; want at most a year", life)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 90*24*time.Hour {
		t.Errorf("the server certificate lives %v; want at most 90 days", life)
	}
	// What the constraints are for: a certificate the CA's key signs for
	// another name does not verify.
	caPEM, _ := os.ReadFile(f.ca)
	caKey, _ := os.ReadFile(filepath.Join(filepath.Dir(f.ca), "ca-key.pem"))
	other, _, err := crypt.IssueServerCert(caPEM, caKey, []string{"login.example.com"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	o := x509.NewCertPool()
	o.AppendCertsFromPEM(caPEM)
	blk := parsePEMCert(t, other)
	if _, err := blk.Verify(x509.VerifyOptions{Roots: o, DNSName: "login.example.com", CurrentTime: now.Add(time.Second)}); err == nil {
		t.Fatal("a certificate for login.example.com verifies under the generated CA")
	}
}

func parsePEMCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.pem")
	os.WriteFile(p, certPEM, 0o600)
	c, err := readCert(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSRenewalOnStart: a start keeps a server certificate that is far
// from its end, renews it (same CA, same names) within 30 days of it, and
// makes a new CA within 30 days of the CA's end, so a server that is
// restarted never serves an expired certificate.
func TestTLSRenewalOnStart(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	t0 := time.Now().Truncate(time.Second)
	f, err := ensureTLS(dir, tlsSetup{bound: loopback, requested: "127.0.0.1:8443"}, t0, log)
	if err != nil {
		t.Fatal(err)
	}
	ca0, leaf0 := tlsState(t, f, t0.Add(time.Second))

	t1 := t0.Add(30 * 24 * time.Hour)
	if _, err := ensureTLS(dir, tlsSetup{bound: loopback}, t1, log); err != nil {
		t.Fatal(err)
	}
	if _, leaf := tlsState(t, f, t1); !leaf.Equal(leaf0) {
		t.Fatal("a start 30 days in renewed a certificate with 60 days left")
	}

	t2 := t0.Add(70 * 24 * time.Hour)
	if _, err := ensureTLS(dir, tlsSetup{bound: loopback}, t2, log); err != nil {
		t.Fatal(err)
	}
	ca2, leaf2 := tlsState(t, f, t2.Add(time.Second))
	if !ca2.Equal(ca0) {
		t.Fatal("renewing the server certificate replaced the CA")
	}
	if leaf2.Equal(leaf0) || !leaf2.NotAfter.After(leaf0.NotAfter) {
		t.Fatalf("a start 70 days in kept the certificate ending %v", leaf0.NotAfter)
	}
	if !slices.Equal(leaf2.DNSNames, leaf0.DNSNames) || len(leaf2.IPAddresses) != len(leaf0.IPAddresses) {
		t.Fatalf("the renewed certificate names %v %v; want %v %v", leaf2.DNSNames, leaf2.IPAddresses, leaf0.DNSNames, leaf0.IPAddresses)
	}

	t3 := t0.Add(340 * 24 * time.Hour)
	if _, err := ensureTLS(dir, tlsSetup{bound: loopback}, t3, log); err != nil {
		t.Fatal(err)
	}
	if ca3, _ := tlsState(t, f, t3.Add(time.Second)); ca3.Equal(ca0) {
		t.Fatal("a start 25 days before the CA's end kept the CA")
	}
}

// TestOwnCertificate: with --tls-cert and --tls-key the server serves the
// operator's certificate, generates no CA, and its bootstrap file names no
// CA file; a half-given or mismatched pair refuses to start.
func TestOwnCertificate(t *testing.T) {
	now := time.Now().Add(-time.Minute)
	caPEM, caKey, err := crypt.GenerateConstrainedCA("Operator CA", []string{"127.0.0.1"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := crypt.IssueServerCert(caPEM, caKey, []string{"127.0.0.1"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := crypt.IssueServerCert(caPEM, caKey, []string{"127.0.0.1"}, now, time.Hour)
	files := t.TempDir()
	certFile, keyFile, otherFile := filepath.Join(files, "cert.pem"), filepath.Join(files, "key.pem"), filepath.Join(files, "other.pem")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	os.WriteFile(otherFile, otherKey, 0o600)

	for _, c := range []struct{ name, cert, key, want string }{
		{"no key", certFile, "", "--tls-cert and --tls-key go together"},
		{"key of another certificate", certFile, otherFile, "private key does not match"},
	} {
		dataDir := t.TempDir()
		if _, err := start(t, Config{DataDir: dataDir, TLSCertFile: c.cert, TLSKeyFile: c.key}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: start = %v, want an error with %q", c.name, err, c.want)
		}
		if _, err := os.Stat(filepath.Join(dataDir, "tls")); err == nil {
			t.Errorf("%s: a refused start made a tls directory", c.name)
		}
	}

	dataDir := t.TempDir()
	var out bytes.Buffer
	srv, err := start(t, Config{DataDir: dataDir, Stdout: &out, TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tls")); err == nil {
		t.Error("a server with its own certificate generated a CA")
	}
	bs := readBootstrap(t, dataDir)
	if bs.CAFile != "" {
		t.Errorf("bootstrap caFile = %q; want none, as clients trust the operator's CA", bs.CAFile)
	}
	c, err := khttp.NewClient(srv.url, caPEM, bs.TenantID, bs.ClientID, bs.ClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	env := &keyhold.Environment{DisplayName: "own cert", Location: "uk", SKU: keyhold.SKUSandbox}
	if err := c.CreateEnvironment(context.Background(), env); err != nil {
		t.Fatalf("a client trusting the operator's CA: %v", err)
	}
}
