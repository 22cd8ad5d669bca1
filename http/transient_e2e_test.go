//go:build keyhold_azure

package http_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	nethttp "net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/deploy"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// These tests put a real network path between the platform and the key
// vault that holds the customer's key: the platform reaches the key as
// the enterprise policy's managed identity through the official azkeys
// SDK (keyprovider.Azure), over HTTPS, through a faultProxy in front of
// Keyhold's Key Vault endpoint. The proxy then fails the way a vault or a
// network does, and the tests check that a transient fault never locks
// and loses nothing, while a revocation through the same path still
// locks.

const (
	// faultCacheTTL is the platform's key-cache TTL in these tests; the
	// fake clock moves past it.
	faultCacheTTL = time.Minute
	// faultTryTimeout is how long the provider waits for one answer of
	// the vault: it ends the calls that faultHang holds.
	faultTryTimeout = 2 * time.Second
)

// faultCA is one CA and server certificate for 127.0.0.1, shared by the
// server and the proxy of every fault test.
var faultCA = sync.OnceValues(func() ([]byte, *tls.Config) {
	now := time.Now()
	caCert, caKey, err := crypt.GenerateConstrainedCA("Keyhold fault test CA", []string{"127.0.0.1"}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		panic(err)
	}
	cert, key, err := crypt.IssueServerCert(caCert, caKey, []string{"127.0.0.1", "*.vault.localhost"}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		panic(err)
	}
	conf, err := crypt.LoadServerTLS(cert, key)
	if err != nil {
		panic(err)
	}
	return caCert, conf
})

// faultStack is the whole stack of newCMKStack, except that the platform
// reaches customer keys over the Key Vault REST API through a faultProxy:
// the built-in vault's URI (and so every key id the platform uses) is the
// proxy's URL. The platform runs on a fake clock with a key-cache TTL of
// faultCacheTTL. The administrator's own calls go to the server directly.
type faultStack struct {
	*cmkStack
	store keyhold.Store
	clock *clocktest.Clock
	kv    *vault.Service
	proxy *faultProxy

	azOpts    *azkeys.ClientOptions
	mu        sync.Mutex
	providers map[string]*keyprovider.Azure // by principal id
}

func newFaultStack(t *testing.T, store keyhold.Store) *faultStack {
	t.Helper()
	ctx := context.Background()
	ca, tlsConf := faultCA()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &faultStack{cmkStack: &cmkStack{url: "https://" + ln.Addr().String()}, store: store,
		clock: clocktest.New(time.Now().Truncate(time.Second)), providers: make(map[string]*keyprovider.Azure)}
	s.proxy = newFaultProxy(t, s.url, ca, tlsConf)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	// The vaults' hosts, {vault}.vault.localhost:{proxy port}, are dialled
	// at the proxy.
	vaultHTTP := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		DialContext: khttp.VaultDialer("", strings.TrimPrefix(s.proxy.url, "https://"))}}
	t.Cleanup(vaultHTTP.CloseIdleConnections)
	s.azOpts = &azkeys.ClientOptions{
		// No retries: a test must see each fault at once, not after the
		// SDK's backoff. The SDK's challenge verification stays on.
		ClientOptions: azcore.ClientOptions{Transport: vaultHTTP, Retry: azpolicy.RetryOptions{MaxRetries: -1, TryTimeout: faultTryTimeout}},
	}

	master, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Destroy)
	s.kv, err = vault.New(vault.Config{Store: store, MasterKey: master, Clock: s.clock, BaseURL: s.proxy.url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kv.Close() })
	runner, err := ops.New(ops.Config{Store: store, PollInterval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.p, err = platform.Open(ctx, platform.Config{Store: store, MasterKey: master, Clock: s.clock, KeyCacheTTL: faultCacheTTL,
		Issuer: s.url, Ops: runner, Vault: s.kv, CMK: s.provider})
	if err != nil {
		t.Fatalf("platform.Open: %v", err)
	}
	t.Cleanup(func() { s.p.Close() })
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { runner.Run(runCtx); close(stopped) }()
	t.Cleanup(func() { stop(); <-stopped })

	if s.creds, _, err = s.p.BootstrapCustomer(ctx); err != nil || s.creds == nil {
		t.Fatalf("BootstrapCustomer: %v", err)
	}
	am := arm.New(arm.Config{Store: store, Clock: s.clock})
	ps := policy.New(policy.Config{Store: store, Clock: s.clock, ARM: am, Vaults: s.kv})
	srv := &khttp.Server{
		Tokens: s.p, Environments: s.p, Data: s.p, Audit: s.p, CMK: s.p,
		ARM: khttp.ARMAPI{Resources: am, Directory: am},
		KeyVault: khttp.KeyVaultAPI{Vaults: s.kv, Lookup: func(ctx context.Context, name string) (v *keyhold.Vault, err error) {
			err = store.View(ctx, func(tx keyhold.Tx) error { v, err = tx.Vault(ctx, name); return err })
			return v, err
		}},
		Policies:  khttp.PolicyAPI{Service: ps, Deployments: deploy.New(deploy.Config{Store: store, Clock: s.clock, Policies: ps, ARM: am, Vaults: s.kv})},
		Logger:    slog.New(slog.DiscardHandler),
		PublicURL: s.url,
	}
	hs := &nethttp.Server{Handler: srv.Handler(), TLSConfig: tlsConf.Clone()}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })

	s.raw = &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(s.raw.CloseIdleConnections)
	if s.client, err = khttp.NewClient(s.url, ca, s.creds.TenantID, s.creds.ClientID, s.creds.ClientSecret); err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(s.client.HTTPClient().CloseIdleConnections)

	seedCMKWorld(t, store, s.creds, s.clock.Now())
	return s
}

// provider is the platform's Config.CMK: the Azure provider of an
// enterprise policy's managed identity, one per identity so that its SDK
// clients (and the bearer challenge they did) are kept, as a server would.
func (s *faultStack) provider(id *keyhold.Identity) keyhold.KeyWrapper {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.providers[id.PrincipalID]
	if !ok {
		a = keyprovider.NewAzure(miCredential{s: s, principalID: id.PrincipalID}, s.azOpts)
		s.providers[id.PrincipalID] = a
	}
	return a
}

// miCredential is the azcore credential of one of the platform's managed
// identities. A managed identity has no secret: the platform mints its
// tokens in process (platform.TokenFor), as Azure's instance metadata
// service does for a resource's identity. The tokens are real, and the
// vault checks them and the identity's access.
type miCredential struct {
	s           *faultStack
	principalID string
}

// GetToken returns a token of the identity for the one scope asked, an
// audience followed by "/.default" (a host-form vault's scope is the vault
// audience's).
func (c miCredential) GetToken(ctx context.Context, opts azpolicy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 {
		return azcore.AccessToken{}, fmt.Errorf("a token request must name one scope, got %q", opts.Scopes)
	}
	aud, _ := strings.CutSuffix(opts.Scopes[0], "/.default")
	if keyhold.IsVaultScope(opts.Scopes[0], "") {
		aud = string(keyhold.AudienceVault) // as the token endpoint reads it
	}
	tok, err := c.s.p.TokenFor(ctx, c.principalID, keyhold.Audience(aud))
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok.AccessToken, ExpiresOn: time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)}, nil
}

// faultWorld is a linked environment with data, and what every row and
// file must read back as.
type faultWorld struct {
	pol   *keyhold.PolicyResource
	env   *keyhold.Environment
	keyID string // the policy's key, as the platform names it: at the proxy

	mu    sync.Mutex
	rows  map[string]string // table "accounts", by row id
	files map[string][]byte
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// putRow writes a row through the Go client; acknowledged, it is what the
// row must read back as.
func (s *faultStack) putRow(ctx context.Context, w *faultWorld, id, data string) error {
	row, err := s.client.PutRow(ctx, w.env.ID, "accounts", id, json.RawMessage(data))
	if err != nil {
		return err
	}
	if string(row.Data) != data {
		return fmt.Errorf("PutRow %s answered data %s, want %s", id, row.Data, data)
	}
	w.mu.Lock()
	w.rows[id] = data
	w.mu.Unlock()
	return nil
}

// putFile writes a file through the Go client; acknowledged, it is what
// the file must read back as.
func (s *faultStack) putFile(ctx context.Context, w *faultWorld, name string, content []byte) error {
	info, err := s.client.PutFile(ctx, w.env.ID, name, bytes.NewReader(content))
	if err != nil {
		return err
	}
	if info.Size != int64(len(content)) {
		return fmt.Errorf("PutFile %s answered size %d, want %d", name, info.Size, len(content))
	}
	w.mu.Lock()
	w.files[name] = content
	w.mu.Unlock()
	return nil
}

// linkedWorld sets up the policy, an environment with rows and files
// written before and after it is linked to the policy (so through the
// proxy), and checks that it all reads back and the policy is Healthy.
func (s *faultStack) linkedWorld(t *testing.T) *faultWorld {
	t.Helper()
	ctx := context.Background()
	w := &faultWorld{rows: make(map[string]string), files: make(map[string][]byte)}
	w.pol = s.setUpPolicy(t)
	w.keyID = s.kv.KeyID("contoso-kv", "cmk", "")
	if _, port, _ := strings.Cut(strings.TrimPrefix(s.proxy.url, "https://"), ":"); !strings.HasPrefix(w.keyID, "https://contoso-kv.vault.localhost:"+port+"/") {
		t.Fatalf("the policy's key id %s is not at the proxy %s", w.keyID, s.proxy.url)
	}
	w.env = &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	if err := s.client.CreateEnvironment(ctx, w.env); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.putRow(ctx, w, fmt.Sprintf("a%d", i), fmt.Sprintf(`{"n":%d,"written":"before the link"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.putFile(ctx, w, "before.bin", randomBytes(2*platform.ChunkSize+17)); err != nil {
		t.Fatal(err)
	}
	op, err := s.client.LinkPolicy(ctx, w.env.ID, w.pol.Properties.SystemID)
	if err != nil {
		t.Fatalf("LinkPolicy: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if done, err := s.client.WaitOperation(wctx, op.ID, 0, nil); err != nil || done.State != keyhold.OperationSucceeded {
		t.Fatalf("link: %+v, %v", done, err)
	}
	if n := s.proxy.requests(faultPass); n == 0 {
		t.Fatal("the link did not reach the vault through the proxy")
	}
	for i := range 3 {
		if err := s.putRow(ctx, w, fmt.Sprintf("b%d", i), fmt.Sprintf(`{"n":%d,"written":"after the link"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.putFile(ctx, w, "after.bin", randomBytes(platform.ChunkSize+1)); err != nil {
		t.Fatal(err)
	}
	s.wantHealth(t, w, keyhold.HealthHealthy)
	s.checkAll(t, w)
	return w
}

// wantHealth probes the policy's key and checks the result.
func (s *faultStack) wantHealth(t *testing.T, w *faultWorld, want keyhold.HealthStatus) {
	t.Helper()
	if got, err := s.p.CheckPolicyHealth(context.Background(), w.pol.ID); err != nil || got != want {
		t.Fatalf("CheckPolicyHealth = %s, %v; want %s", got, err, want)
	}
	status, b := s.call(t, "GET", w.pol.ID+"?api-version=2020-10-30", keyhold.AudienceManagement, "")
	var res keyhold.PolicyResource
	if status != 200 || json.Unmarshal(b, &res) != nil || res.Properties.HealthStatus != string(want) {
		t.Fatalf("GET policy: %d %s; want healthStatus %s", status, b, want)
	}
}

// wantState checks the environment's runtime state.
func (s *faultStack) wantState(t *testing.T, w *faultWorld, want keyhold.RuntimeState) {
	t.Helper()
	if got, err := s.client.FindEnvironment(context.Background(), w.env.ID); err != nil || got.State != want {
		t.Fatalf("environment = %+v, %v; want state %s", got, err, want)
	}
}

// checkAll reads every row and file back byte for byte through the Go
// client, and checks in the store that there is nothing else: no row or
// file that a failed write left, and no upload in progress.
func (s *faultStack) checkAll(t *testing.T, w *faultWorld) {
	t.Helper()
	ctx := context.Background()
	w.mu.Lock()
	rows, files := maps.Clone(w.rows), maps.Clone(w.files)
	w.mu.Unlock()
	for id, want := range rows {
		row, err := s.client.GetRow(ctx, w.env.ID, "accounts", id)
		if err != nil || string(row.Data) != want {
			t.Fatalf("row %s = %v, %v; want %s", id, row, err, want)
		}
	}
	for name, want := range files {
		_, rc, err := s.client.OpenFile(ctx, w.env.ID, name)
		if err != nil {
			t.Fatalf("OpenFile %s: %v", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("file %s: %d bytes, %v; want its %d bytes exactly", name, len(got), err, len(want))
		}
	}
	var storedRows, storedFiles, uploads []string
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		storedRows, storedFiles, uploads = nil, nil, nil
		rs, err := tx.ListRows(ctx, keyhold.RowFilter{EnvID: w.env.ID, Limit: 10000})
		if err != nil {
			return err
		}
		for _, r := range rs {
			storedRows = append(storedRows, r.ID)
		}
		fs, err := tx.ListFiles(ctx, w.env.ID)
		if err != nil {
			return err
		}
		for _, f := range fs {
			storedFiles = append(storedFiles, f.Name)
		}
		us, err := tx.StaleUploads(ctx, s.clock.Now().Add(365*24*time.Hour))
		for _, u := range us {
			if u.EnvID == w.env.ID {
				uploads = append(uploads, u.Generation)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(storedRows)
	slices.Sort(storedFiles)
	if want := slices.Sorted(maps.Keys(rows)); !slices.Equal(storedRows, want) {
		t.Fatalf("stored rows %v, want exactly %v", storedRows, want)
	}
	if want := slices.Sorted(maps.Keys(files)); !slices.Equal(storedFiles, want) {
		t.Fatalf("stored files %v, want exactly %v", storedFiles, want)
	}
	if len(uploads) != 0 {
		t.Fatalf("uploads left in progress: %v", uploads)
	}
}

// lastAuditID is the id of the tenant's newest audit entry.
func (s *faultStack) lastAuditID(t *testing.T) int64 {
	t.Helper()
	es, err := s.client.ListAudit(context.Background(), keyhold.AuditFilter{Limit: 1})
	if err != nil || len(es) != 1 {
		t.Fatalf("ListAudit: %v, %v", es, err)
	}
	return es[0].ID
}

// auditSince returns the tenant's audit entries after id, oldest first.
func (s *faultStack) auditSince(t *testing.T, id int64) []*keyhold.AuditEntry {
	t.Helper()
	var out []*keyhold.AuditEntry
	before := int64(0)
	for {
		es, err := s.client.ListAudit(context.Background(), keyhold.AuditFilter{BeforeID: before, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.ID > id {
				out = append(out, e)
			}
		}
		if len(es) == 0 || es[len(es)-1].ID <= id {
			break
		}
		before = es[len(es)-1].ID
	}
	slices.Reverse(out) // newest first from the server
	return out
}

// rawGet sends a GET as the administrator without failing the test, for
// use from several goroutines.
func (s *faultStack) rawGet(path, token string) (*nethttp.Response, []byte, error) {
	req, err := nethttp.NewRequest("GET", s.url+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.raw.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// wantVaultUnavailable checks a raw answer: 503 with Azure's error shape
// and code KeyVaultUnavailable, saying to retry.
func wantVaultUnavailable(resp *nethttp.Response, b []byte) error {
	var body struct {
		Error struct{ Code, Message string }
	}
	switch {
	case resp.StatusCode != nethttp.StatusServiceUnavailable:
		return fmt.Errorf("status %d (%s), want 503", resp.StatusCode, b)
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"):
		return fmt.Errorf("Content-Type %q, want application/json", resp.Header.Get("Content-Type"))
	case json.Unmarshal(b, &body) != nil || body.Error.Code != keyhold.CodeKeyVaultUnavailable || !strings.Contains(body.Error.Message, "retry"):
		return fmt.Errorf("body %s, want an Azure error with code %s saying to retry", b, keyhold.CodeKeyVaultUnavailable)
	}
	return nil
}

// TestTransientKeyVaultFaults: the vault answering 503, not answering at
// all, or refusing connections, through a real network path, makes the
// policy Warning and nothing more. Reads and writes go on from the key
// cache until its TTL, then get 503 KeyVaultUnavailable; the environment
// is never Locked; every acknowledged write reads back byte for byte once
// the path is back, and a refused one left nothing behind; the next probe
// is Healthy and nothing needs re-enabling.
func TestTransientKeyVaultFaults(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		s := newFaultStack(t, open(t))
		w := s.linkedWorld(t)
		for _, mode := range []struct {
			mode faultMode
			// causes is what the provider says of the fault: the first
			// when it can't connect at all; the audit entry may say any
			// (the probe that meets the fault first may find a pooled
			// connection broken rather than refused).
			causes []string
		}{
			{fault503, []string{"failed (503 ServiceUnavailable)"}},
			{faultHang, []string{"did not answer in time"}},
			{faultRefuse, []string{"refused the connection", "closed the connection before it answered"}},
		} {
			t.Run(mode.mode.String(), func(t *testing.T) { s.transientFault(t, w, mode.mode, mode.causes) })
		}
		for _, e := range s.auditSince(t, 0) {
			if e.Action == "environment.lock" {
				t.Errorf("a transient fault locked: %+v", e)
			}
		}
	})
}

func (s *faultStack) transientFault(t *testing.T, w *faultWorld, mode faultMode, causes []string) {
	ctx := context.Background()
	s.wantHealth(t, w, keyhold.HealthHealthy)
	s.checkAll(t, w) // fills the key cache
	mark := s.lastAuditID(t)
	prov := s.provider(&keyhold.Identity{PrincipalID: w.pol.Identity.PrincipalID}).(keyprovider.Provider)

	// The fault: the probe says Warning, with the cause; nothing locks.
	s.proxy.set(mode)
	reached := s.proxy.requests(mode)
	start := time.Now()
	s.wantHealth(t, w, keyhold.HealthWarning)
	switch {
	case mode == faultRefuse && s.proxy.requests(mode) != reached:
		t.Fatal("a request reached the proxy while it refuses connections")
	case mode != faultRefuse && s.proxy.requests(mode) == reached:
		t.Fatal("the probe did not go through the proxy")
	case mode == faultHang && time.Since(start) < faultTryTimeout:
		t.Fatalf("the probe of a vault that does not answer ended after %s, before the provider's %s timeout", time.Since(start), faultTryTimeout)
	}
	err := prov.Probe(ctx, w.keyID)
	if keyhold.ErrorCode(err) != keyhold.CodeKeyVaultUnavailable || !strings.Contains(keyhold.ErrorMessage(err), causes[0]) {
		t.Fatalf("the Azure provider's Probe = %v; want %s saying %q", err, keyhold.CodeKeyVaultUnavailable, causes[0])
	}
	s.wantState(t, w, keyhold.StateEnabled)

	// While the key is cached, reads and writes go on without the vault.
	before := s.proxy.total()
	s.checkAll(t, w)
	tag := mode.String()
	for _, err := range []error{
		s.putRow(ctx, w, "cached-"+tag, fmt.Sprintf(`{"written":"during the %s fault, key cached"}`, tag)),
		s.putRow(ctx, w, "a0", fmt.Sprintf(`{"n":0,"written":"over, during the %s fault"}`, tag)),
		s.putFile(ctx, w, "cached-"+tag+".bin", randomBytes(2*platform.ChunkSize+1)),
		s.putFile(ctx, w, "before.bin", randomBytes(platform.ChunkSize-1)),
	} {
		if err != nil {
			t.Fatalf("a write while the key is cached: %v", err)
		}
	}
	s.checkAll(t, w)
	if n := s.proxy.total(); n != before {
		t.Fatalf("reads and writes with the key cached sent %d requests to the vault", n-before)
	}

	// Past the cache's TTL every read and write needs the vault: each gets
	// 503 KeyVaultUnavailable, at once or after the provider's timeout,
	// and changes nothing. They run together, as a burst of requests
	// would.
	s.clock.Advance(faultCacheTTL + time.Second)
	token := s.token(t, keyhold.AudiencePowerApps)
	rowPath := "/environments/" + w.env.ID + "/tables/accounts/rows/b0"
	filePath := "/environments/" + w.env.ID + "/files/after.bin"
	requests := map[string]func() error{
		"GET row": func() error {
			resp, b, err := s.rawGet(rowPath, token)
			if err != nil {
				return err
			}
			return wantVaultUnavailable(resp, b)
		},
		"GET file": func() error {
			resp, b, err := s.rawGet(filePath, token)
			if err != nil {
				return err
			}
			return wantVaultUnavailable(resp, b)
		},
		"new row":  func() error { return s.putRow(ctx, w, "expired-"+tag, `{"lost":false}`) },
		"row over": func() error { return s.putRow(ctx, w, "b1", `{"overwritten":"after the TTL"}`) },
		"new file": func() error { return s.putFile(ctx, w, "expired-"+tag+".bin", randomBytes(2*platform.ChunkSize+3)) },
		"file over": func() error {
			return s.putFile(ctx, w, "after.bin", randomBytes(platform.ChunkSize))
		},
	}
	errs := make(map[string]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, fn := range requests {
		wg.Go(func() {
			err := fn()
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	for name, err := range errs {
		switch {
		case strings.HasPrefix(name, "GET"):
			if err != nil {
				t.Errorf("%s past the TTL: %v", name, err)
			}
		case err == nil:
			t.Errorf("%s past the TTL succeeded with the vault out of reach: the cache outlived its TTL", name)
		case keyhold.ErrorCode(err) != keyhold.CodeKeyVaultUnavailable:
			t.Errorf("%s past the TTL: %v; want a clean 503 %s", name, err, keyhold.CodeKeyVaultUnavailable)
		}
	}
	if _, err := s.client.GetRow(ctx, w.env.ID, "accounts", "a1"); keyhold.ErrorCode(err) != keyhold.CodeKeyVaultUnavailable {
		t.Fatalf("GetRow past the TTL: %v; want %s", err, keyhold.CodeKeyVaultUnavailable)
	}
	s.wantHealth(t, w, keyhold.HealthWarning)
	s.wantState(t, w, keyhold.StateEnabled)

	// The path comes back: Healthy at the next probe, still Enabled, with
	// nothing to re-enable, and every acknowledged write reads back.
	s.proxy.set(faultPass)
	s.wantHealth(t, w, keyhold.HealthHealthy)
	s.wantState(t, w, keyhold.StateEnabled)
	_, err = s.client.EnableEnvironmentOp(ctx, w.env.ID)
	if keyhold.ErrorCode(err) != keyhold.CodeConflict || !strings.Contains(keyhold.ErrorMessage(err), "not Locked") {
		t.Fatalf("EnableEnvironmentOp after a transient fault: %v; want 409, not Locked", err)
	}
	s.wantState(t, w, keyhold.StateEnabled)
	s.checkAll(t, w)

	// The audit log says Warning with the cause, then Healthy; no lock.
	var changes []string
	for _, e := range s.auditSince(t, mark) {
		switch {
		case e.Action == "environment.lock":
			t.Errorf("environment locked by a transient fault: %+v", e)
		case e.Action == "policy.health" && strings.EqualFold(e.Target, w.pol.ID):
			changes = append(changes, e.Detail)
		}
	}
	if len(changes) != 2 || !strings.HasPrefix(changes[0], "health Healthy -> Warning: ") || !strings.Contains(changes[0], keyhold.CodeKeyVaultUnavailable) ||
		!slices.ContainsFunc(causes, func(c string) bool { return strings.Contains(changes[0], c) }) || !strings.HasPrefix(changes[1], "health Warning -> Healthy") {
		t.Fatalf("health audit entries %q; want Healthy -> Warning saying %s (%q), then Warning -> Healthy", changes, keyhold.CodeKeyVaultUnavailable, causes)
	}
}

// TestFaultProxyRevocationLocks: a revocation seen through the same path
// (the vault's 403 passed on by the proxy) still locks, and after access
// is restored and the environment re-enabled, everything reads back.
func TestFaultProxyRevocationLocks(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		s := newFaultStack(t, open(t))
		w := s.linkedWorld(t)
		ctx := context.Background()
		vaultID := "/subscriptions/" + s.creds.SubscriptionID + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-kv"
		as, err := s.client.ListRoleAssignments(ctx, vaultID, keyhold.AssignmentFilter{PrincipalID: w.pol.Identity.PrincipalID})
		if err != nil || len(as) == 0 {
			t.Fatalf("the policy identity's assignments: %v, %v", as, err)
		}
		for _, a := range as {
			if _, err := s.client.DeleteRoleAssignment(ctx, a.Scope, a.ID); err != nil {
				t.Fatal(err)
			}
		}
		forbidden := s.proxy.passedStatus(nethttp.StatusForbidden)
		s.wantHealth(t, w, keyhold.HealthUnhealthy)
		if s.proxy.passedStatus(nethttp.StatusForbidden) == forbidden {
			t.Fatal("the vault's 403 did not come through the proxy")
		}
		prov := s.provider(&keyhold.Identity{PrincipalID: w.pol.Identity.PrincipalID}).(keyprovider.Provider)
		var ke *keyhold.Error
		if err := prov.Probe(ctx, w.keyID); !errors.As(err, &ke) || ke.Code != keyhold.CodeForbidden || ke.Inner != keyhold.InnerForbiddenByRbac {
			t.Fatalf("the Azure provider's Probe after the revocation = %v; want Forbidden (ForbiddenByRbac)", err)
		}
		s.wantState(t, w, keyhold.StateLocked)
		status, b := s.call(t, "GET", "/environments/"+w.env.ID+"/tables/accounts/rows/a0", keyhold.AudiencePowerApps, "")
		if status != 403 || !bytes.Contains(b, []byte(`"code":"`+keyhold.CodeEnvironmentLocked+`"`)) || !bytes.Contains(b, []byte(w.pol.ID)) {
			t.Fatalf("GET row of a locked environment: %d %s; want 403 %s naming the policy", status, b, keyhold.CodeEnvironmentLocked)
		}

		s.grant(t, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, w.pol.Identity.PrincipalID)
		s.wantHealth(t, w, keyhold.HealthHealthy)
		s.wantState(t, w, keyhold.StateLocked) // restored access unlocks nothing by itself
		if op, err := s.client.EnableEnvironmentOp(ctx, w.env.ID); err != nil || op.State != keyhold.OperationSucceeded {
			t.Fatalf("EnableEnvironmentOp = %+v, %v", op, err)
		}
		s.wantState(t, w, keyhold.StateEnabled)
		s.checkAll(t, w)
	})
}
