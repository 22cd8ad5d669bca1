package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlstore/storetest"
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

// TestTLSFromSharedCA: with --tls-ca-cert and --tls-ca-key, the server
// certificate is issued from that CA (the names it permits), the data
// directory gets a copy of the CA certificate and never its key, and a
// restart keeps the certificate; a key that is not the CA's refuses to
// start and writes nothing.
func TestTLSFromSharedCA(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	now := time.Now().Truncate(time.Second)
	shared := t.TempDir()
	caPEM, caKey, err := crypt.GenerateConstrainedCA("Shared CA", []string{"localhost", "127.0.0.1", "::1", "keyhold.example.com"}, now, caValidity)
	if err != nil {
		t.Fatal(err)
	}
	caFile, caKeyFile := filepath.Join(shared, "ca.pem"), filepath.Join(shared, "ca-key.pem")
	os.WriteFile(caFile, caPEM, 0o644)
	os.WriteFile(caKeyFile, caKey, 0o600)
	setup := tlsSetup{bound: loopback, publicURL: "https://keyhold.example.com", caCert: caFile, caKey: caKeyFile}

	dir := t.TempDir()
	f, err := ensureTLS(dir, setup, now, log)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.ca); !bytes.Equal(got, caPEM) {
		t.Fatal("ca.pem is not the shared CA")
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "ca-key.pem")); !os.IsNotExist(err) {
		t.Fatalf("the CA's key was copied into the data directory: %v", err)
	}
	for _, name := range []string{"keyhold.example.com", "contoso-kv.vault.localhost", "127.0.0.1"} {
		if err := verifies(t, f, name, now.Add(time.Second)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	leaf, _ := os.ReadFile(f.cert)
	if _, err := ensureTLS(dir, setup, now.Add(time.Hour), log); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(f.cert); !bytes.Equal(again, leaf) {
		t.Error("a restart re-issued a current certificate")
	}

	_, otherKey, err := crypt.GenerateConstrainedCA("Other CA", []string{"127.0.0.1"}, now, caValidity)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(shared, "wrong-key.pem")
	os.WriteFile(wrongKey, otherKey, 0o600)
	empty := t.TempDir()
	bad := setup
	bad.caKey = wrongKey
	if _, err := ensureTLS(empty, bad, now, log); err == nil || !strings.Contains(err.Error(), "--tls-ca-key") {
		t.Fatalf("a key that is not the CA's: %v; want an error naming --tls-ca-key", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("a refused start wrote %v", entries)
	}
}

// TestReplicaJoins: a second replica joins with the master key and the
// shared CA (no CA of its own, no bootstrap file and no hint naming one),
// behind the same --public-url: a client that trusts the one ca.pem and
// holds a token from the first replica is served by the second, and both
// render the same vault URI.
func TestReplicaJoins(t *testing.T) {
	db := storetest.NewPostgresDatabase(t) // skips without PostgreSQL, fails with KEYHOLD_REQUIRE_POSTGRES=1
	master := base64Key(t)
	const public = "https://keyhold.example.com:8443"
	dirA, dirB := t.TempDir(), t.TempDir()
	srvA, err := start(t, Config{DataDir: dirA, PostgresDSN: db.DSN, MasterKey: master, PublicURL: public + "/"})
	if err != nil {
		t.Fatalf("replica A: %v", err)
	}
	var out bytes.Buffer
	srvB, err := start(t, Config{DataDir: dirB, PostgresDSN: db.DSN, MasterKey: master, PublicURL: public, Stdout: &out,
		TLSCAFile: filepath.Join(dirA, "tls", "ca.pem"), TLSCAKeyFile: filepath.Join(dirA, "tls", "ca-key.pem")})
	if err != nil {
		t.Fatalf("replica B: %v", err)
	}
	if strings.Contains(out.String(), "bootstrap.json") || !strings.Contains(out.String(), "reset-credentials --postgres") {
		t.Errorf("replica B printed %q; want no bootstrap.json named, and how to issue credentials", out.String())
	}
	if _, err := os.Stat(filepath.Join(dirB, "tls", "ca-key.pem")); !os.IsNotExist(err) {
		t.Errorf("replica B holds a CA key: %v", err)
	}
	bs := readBootstrap(t, dirA)
	if bs.URL != public || bs.VaultDomain != keyhold.DefaultVaultDomain {
		t.Errorf("bootstrap names %s and vault domain %q; want %s and %s", bs.URL, bs.VaultDomain, public, keyhold.DefaultVaultDomain)
	}
	a, b := client(t, srvA.url, bs), client(t, srvB.url, bs) // one ca.pem: A's
	tok, err := a.Token(context.Background(), string(keyhold.AudienceManagement)+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name string
		url  string
		c    *khttp.Client
	}{{"A", srvA.url, a}, {"B", srvB.url, b}} {
		req, _ := nethttp.NewRequest("GET", r.url+"/subscriptions/"+bs.SubscriptionID+"/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken) // issued by A
		resp, err := r.c.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !json.Valid(body) {
			t.Errorf("%s with A's token: %d %s", r.name, resp.StatusCode, body)
		}
	}
}

// TestReplicasDoNotRewrapEachOther: two replicas at different listen
// addresses (and no --public-url, so each renders ids with its own) share
// one PostgreSQL database. An environment linked through A stays wrapped
// as A wrapped it while both pick up rotations every 100 ms: the stored
// kid names no address, so B does not take A's wrap for a stale one
// (issue 12 measured 23 rotations in 7 minutes, with no rotation).
func TestReplicasDoNotRewrapEachOther(t *testing.T) {
	db := storetest.NewPostgresDatabase(t) // skips without PostgreSQL, fails with KEYHOLD_REQUIRE_POSTGRES=1
	ctx := context.Background()
	master := base64Key(t)
	const pickup = 100 * time.Millisecond
	dirA, dirB := t.TempDir(), t.TempDir()
	srvA, err := start(t, Config{DataDir: dirA, PostgresDSN: db.DSN, MasterKey: master, rotationPickup: pickup})
	if err != nil {
		t.Fatalf("replica A: %v", err)
	}
	srvB, err := start(t, Config{DataDir: dirB, PostgresDSN: db.DSN, MasterKey: master, rotationPickup: pickup})
	if err != nil {
		t.Fatalf("replica B: %v", err)
	}
	if srvA.url == srvB.url {
		t.Fatalf("both replicas listen at %s", srvA.url)
	}
	bs := readBootstrap(t, dirA)
	a := &replica{name: "A", srv: srvA, c: client(t, srvA.url, bs)}

	sub := bs.SubscriptionID
	for _, ns := range []string{keyhold.NamespaceKeyVault, keyhold.NamespacePowerPlatform} {
		if _, err := a.c.RegisterProvider(ctx, sub, ns); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.c.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: sub, Name: "cmk", Location: "westeurope"}); err != nil {
		t.Fatal(err)
	}
	vaultID := "/subscriptions/" + sub + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/churn-kv"
	status, body := a.call(t, "PUT", vaultID+"?api-version=2023-07-01", keyhold.AudienceManagement, `{"location":"westeurope","properties":{"tenantId":"`+bs.TenantID+
		`","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true,"enableSoftDelete":true,"softDeleteRetentionInDays":90,"enablePurgeProtection":true}}`)
	if status != 200 && status != 201 {
		t.Fatalf("PUT vault: %d %s", status, body)
	}
	sps, err := a.c.ServicePrincipals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range sps {
		if sp.AppID == bs.ClientID {
			a.grant(t, sub, vaultID, keyhold.RoleKeyVaultAdministrator, sp.ID)
		}
	}
	if status, body = a.call(t, "POST", "/vaults/churn-kv/keys/cmk/create?api-version=7.5", keyhold.AudienceVault, `{"kty":"RSA","key_size":2048}`); status != 200 {
		t.Fatalf("create key: %d %s", status, body)
	}
	polID := "/subscriptions/" + sub + "/resourceGroups/cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/churn-cmk"
	status, body = a.call(t, "PUT", polID+"?api-version=2020-10-30", keyhold.AudienceManagement,
		`{"location":"europe","kind":"Encryption","identity":{"type":"SystemAssigned"},"properties":{"encryption":{"state":"Enabled","keyVault":{"id":"`+
			vaultID+`","key":{"name":"cmk"}}}}}`)
	var pol struct {
		Identity   struct{ PrincipalID string }
		Properties struct{ SystemID string }
	}
	if status != 201 || json.Unmarshal(body, &pol) != nil || pol.Properties.SystemID == "" {
		t.Fatalf("PUT policy: %d %s", status, body)
	}
	a.grant(t, sub, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.Identity.PrincipalID)
	env := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	if err := a.c.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	op, err := a.c.LinkPolicy(ctx, env.ID, pol.Properties.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if done, err := a.c.WaitOperation(wctx, op.ID, 0, nil); err != nil || done.State != keyhold.OperationSucceeded {
		t.Fatalf("link: %+v, %v", done, err)
	}

	store, err := postgres.Open(ctx, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	time.Sleep(20 * pickup) // both replicas pick up rotations many times over
	err = store.View(ctx, func(tx keyhold.Tx) error {
		ops, err := tx.ListOperations(ctx, keyhold.OperationFilter{Kind: keyhold.OpRotate})
		if err != nil {
			return err
		}
		if len(ops) != 0 {
			t.Errorf("%d rotation(s) with no rotation of the key: %+v", len(ops), ops[0])
		}
		wks, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil {
			return err
		}
		for _, wk := range wks {
			if wk.Root == keyhold.RootCMK && (!strings.HasPrefix(wk.KeyID, "/vaults/churn-kv/keys/cmk/") || strings.Contains(wk.KeyID, "127.0.0.1")) {
				t.Errorf("stored kid %q names an address", wk.KeyID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
