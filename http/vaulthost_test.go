package http

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
)

// sdkRecorder is an azcore Transporter that records the host and
// api-version of each request it sends.
type sdkRecorder struct {
	next  policy.Transporter
	mu    sync.Mutex
	hosts []string
	apis  []string
}

func (r *sdkRecorder) Do(req *nethttp.Request) (*nethttp.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	r.apis = append(r.apis, req.URL.Query().Get("api-version"))
	r.mu.Unlock()
	return r.next.Do(req)
}

// TestVaultByHost: the newest azkeys (v1.6.0, api-version 2026-04-01),
// with its default options (challenge verification on), drives a vault
// addressed by host, {vault}.vault.localhost:{port}, through a transport
// whose dialer maps those names to the server; the ids it gets back are
// Azure's form, so azkeys.ID's Name and Version work; the path form stays
// an alias that answers the same canonical ids.
func TestVaultByHost(t *testing.T) { forEachKVBackend(t, testVaultByHost) }

func testVaultByHost(t *testing.T, kf *kvFixture) {
	ctx := context.Background()
	v := kf.newRBACVault(t, "host-kv")
	if v.URI != kf.vaultURI("host-kv") {
		t.Fatalf("vault URI = %q, want %q", v.URI, kf.vaultURI("host-kv"))
	}
	rec := &sdkRecorder{next: kf.client.HTTPClient()}
	c, err := azkeys.NewClient(v.URI+"/", kf.credential(), &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		t.Fatalf("CreateKey with default options: %v", err)
	}
	kid := *created.Key.KID
	if kid.Name() != "cmk" || len(kid.Version()) != 32 || string(kid) != v.URI+"/keys/cmk/"+kid.Version() {
		t.Fatalf("kid %s: Name %q, Version %q", kid, kid.Name(), kid.Version())
	}
	// Wrap and unwrap by the names azkeys.ID gives.
	secret := make([]byte, 32)
	rand.Read(secret)
	alg := to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)
	w, err := c.WrapKey(ctx, kid.Name(), kid.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: secret}, nil)
	if err != nil {
		t.Fatalf("WrapKey(ID.Name(), ID.Version()): %v", err)
	}
	u, err := c.UnwrapKey(ctx, kid.Name(), kid.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: w.Result}, nil)
	if err != nil || string(u.Result) != string(secret) {
		t.Fatalf("UnwrapKey = %v", err)
	}
	host := strings.TrimPrefix(v.URI, "https://")
	for i := range rec.hosts {
		if rec.hosts[i] != host || rec.apis[i] != "2026-04-01" {
			t.Fatalf("request %d went to %s with api-version %q; want %s, 2026-04-01", i, rec.hosts[i], rec.apis[i], host)
		}
	}

	// The path form is an alias, and answers the canonical (host-form) id.
	got, err := kf.pathKeysClient(t, "host-kv").GetKey(ctx, "cmk", "", nil)
	if err != nil || *got.Key.KID != kid {
		t.Fatalf("GetKey by the path form = %v, %v; want kid %s", got.Key, err, kid)
	}
}

// TestVaultHostChallenge: a request by host is challenged with the
// resource https://vault.localhost:{port}, whose scope the token
// endpoint grants as the vault audience; the path form keeps Key Vault's
// own resource; an unknown vault by host is VaultNotFound, naming both
// forms; and only scopes under the vault domain are read as the vault's.
func TestVaultHostChallenge(t *testing.T) {
	kf := newKVFixture(t)
	kf.newRBACVault(t, "chal-kv")
	addr := strings.TrimPrefix(kf.url, "https://")
	_, port, _ := strings.Cut(addr, ":")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(kf.ca)
	raw := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: VaultDialer("", addr)}}
	t.Cleanup(raw.CloseIdleConnections)
	get := func(t *testing.T, rawURL, token string) (*nethttp.Response, string) {
		t.Helper()
		req, err := nethttp.NewRequest("GET", rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	hostURL := "https://chal-kv.vault.localhost:" + port + "/keys?api-version=7.5"

	resp, _ := get(t, hostURL, "")
	want := `Bearer authorization="` + kf.url + "/" + kf.creds.TenantID + `", resource="https://vault.localhost:` + port + `"`
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("by host: %d %q; want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	resp, _ = get(t, kf.url+"/vaults/chal-kv/keys?api-version=7.5", "")
	if !strings.HasSuffix(resp.Header.Get("WWW-Authenticate"), `resource="https://vault.azure.net"`) {
		t.Fatalf("by path: %q", resp.Header.Get("WWW-Authenticate"))
	}

	tok := kf.token(t, "https://vault.localhost:"+port+"/.default")
	if resp, body := get(t, hostURL, tok); resp.StatusCode != 200 || !strings.Contains(body, `"value":[]`) {
		t.Fatalf("with the challenge's scope: %d %s", resp.StatusCode, body)
	}
	resp, body := get(t, "https://nope-kv.vault.localhost:"+port+"/keys?api-version=7.5", tok)
	if resp.StatusCode != 404 || !strings.Contains(body, keyhold.CodeVaultNotFound) || !strings.Contains(body, "nope-kv") ||
		!strings.Contains(body, "https://{vault}.vault.localhost:"+port) {
		t.Fatalf("unknown vault by host: %d %s", resp.StatusCode, body)
	}
	// The rest of the API answers on a vault's host as on the server's;
	// a vault's host routes only the data plane.
	if resp, body := get(t, "https://chal-kv.vault.localhost:"+port+"/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz on a vault's host: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, "https://chal-kv.vault.localhost:"+port+"/keysx?api-version=7.5", tok); resp.StatusCode != 404 {
		t.Errorf("/keysx on a vault's host: %d; want 404", resp.StatusCode)
	}
	for _, scope := range []string{"https://vault.example.com/.default", "https://x.vault.localhost:" + port + "/.default"} {
		a := kf.form(t, "/"+kf.creds.TenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {kf.creds.ClientID}, "client_secret": {kf.creds.ClientSecret}, "scope": {scope}})
		if a.status != 400 || !strings.Contains(string(a.body), "invalid_scope") {
			t.Errorf("scope %s: %d %s; want 400 invalid_scope", scope, a.status, a.body)
		}
	}
}
