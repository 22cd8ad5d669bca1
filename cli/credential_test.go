package cli

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
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

// TestSPCredentialStack: against a real server, the administrator adds a
// certificate to a new service principal with the CLI, and the
// application then signs in with azidentity's certificate credential,
// told only the server's URL, its CA and DisableInstanceDiscovery. A file
// holding the private key is refused before anything is sent.
func TestSPCredentialStack(t *testing.T) {
	bootstrap := startServer(t)
	admin := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	admin.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	var sp struct {
		AppID string `json:"appId"`
	}
	admin.okJSON(&sp, "identity", "sp", "create", "--name", "cert-app")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "cert-app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	dir := t.TempDir()
	pub, both := filepath.Join(dir, "app.pem"), filepath.Join(dir, "app-with-key.pem")
	if err := os.WriteFile(pub, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(both, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	admin.fails(1, "private key", "identity", "sp", "credential", "add", "--sp", sp.AppID, "--cert", both)
	if out := admin.ok("identity", "sp", "credential", "add", "--sp", sp.AppID, "--cert", pub); !strings.Contains(out, "Added certificate ") || !strings.Contains(out, "CN=cert-app") {
		t.Fatalf("credential add printed\n%s", out)
	}

	caPEM, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(hc.CloseIdleConnections)
	certs, pk, err := azidentity.ParseCertificates(append(certPEM, keyPEM...), nil)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewClientCertificateCredential(b.TenantID, sp.AppID, certs, pk, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: b.URL + "/"}, Transport: hc},
		DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}); err != nil {
		t.Fatalf("GetToken with the uploaded certificate: %v", err)
	}
}
