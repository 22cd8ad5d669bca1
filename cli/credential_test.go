package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func TestNewCmdSPCredentialAdd(t *testing.T) {
	got, err := parseOpts(t, nil, newCmdSPCredentialAdd, "--sp", "app-1", "--cert", "app.pem")
	if checkParse(t, err, "") {
		sameOptions(t, got, &SPCredentialAddOptions{SP: "app-1", Cert: "app.pem", Format: FormatTable})
	}
	_, err = parseOpts(t, nil, newCmdSPCredentialAdd, "--sp", "app-1")
	checkParse(t, err, "needs --cert")
}

// fakeCertDirectory records the certificate it is given.
type fakeCertDirectory struct {
	principal string
	cert      []byte
}

func (f *fakeCertDirectory) AddClientCertificate(_ context.Context, principal string, cert []byte) (*keyhold.ClientCertificate, error) {
	f.principal, f.cert = principal, cert
	return &keyhold.ClientCertificate{Thumbprint: "AB12", ThumbprintSHA256: "q83v", Subject: "CN=app",
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
}

func TestSPCredentialAddRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(file, []byte("-----BEGIN CERTIFICATE-----\n…"), 0o600); err != nil {
		t.Fatal(err)
	}
	io, out, _ := testIO("")
	fake := &fakeCertDirectory{}
	err := spCredentialAddRun(&SPCredentialAddOptions{IO: io, Ctx: context.Background(), SP: "app-1", Cert: file,
		Client: func() (keyhold.CertificateDirectory, error) { return fake, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if fake.principal != "app-1" || !strings.HasPrefix(string(fake.cert), "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("sent %q %q", fake.principal, fake.cert)
	}
	if s := out.String(); !strings.Contains(s, "Added certificate AB12 to service principal app-1") || !strings.Contains(s, "q83v") {
		t.Fatalf("output = %q", s)
	}
	// A missing file is an error that names it; nothing is sent.
	fake2 := &fakeCertDirectory{}
	err = spCredentialAddRun(&SPCredentialAddOptions{IO: io, Ctx: context.Background(), SP: "app-1", Cert: file + ".missing",
		Client: func() (keyhold.CertificateDirectory, error) { return fake2, nil }})
	if err == nil || !strings.Contains(err.Error(), "app.pem.missing") || fake2.principal != "" {
		t.Fatalf("missing file: %v, sent %q", err, fake2.principal)
	}
}
