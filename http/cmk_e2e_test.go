package http_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
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

// An external test package: the stack needs package keyprovider, which
// imports package http.

// cmkStack is the whole stack served over TLS as server.Run wires it: the
// platform with its customer-managed key lifecycle (an ops.Runner at work,
// the built-in vault holding the customer's keys through
// keyprovider.Builtin), the resource manager and directory, enterprise
// policies and the key vault. The bootstrap administrator holds Owner on
// the subscription, where Microsoft.KeyVault and Microsoft.PowerPlatform
// are registered, and a resource group "cmk" exists.
type cmkStack struct {
	url    string
	creds  *platform.BootstrapCredentials
	client *khttp.Client
	raw    *nethttp.Client
	p      *platform.Platform // for what no route does (health checks)
}

func newCMKStack(t testing.TB) *cmkStack {
	t.Helper()
	return newCMKStackOn(t, storetest.OpenSQLite(t))
}

// newCMKStackOn is newCMKStack over store (the backup tests run it on
// both databases); each of opts may add services to the server before it
// starts.
func newCMKStackOn(t testing.TB, store keyhold.Store, opts ...func(*khttp.Server, *platform.Platform, keyhold.Store)) *cmkStack {
	t.Helper()
	return newCMKStackAt(t, store, keyhold.SystemClock{}, opts...)
}

// newCMKStackAt is newCMKStackOn with the platform's clock: a
// clocktest.Clock moves its 28- and 30-day rules (the vault and the
// operations runner keep the real time).
func newCMKStackAt(t testing.TB, store keyhold.Store, clock keyhold.Clock, opts ...func(*khttp.Server, *platform.Platform, keyhold.Store)) *cmkStack {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	caCert, caKey, err := crypt.GenerateConstrainedCA("Keyhold CMK test CA", []string{"127.0.0.1"}, now.Add(-time.Hour), time.Hour*24)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := crypt.IssueServerCert(caCert, caKey, []string{"127.0.0.1"}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := crypt.LoadServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &cmkStack{url: "https://" + ln.Addr().String()}
	master, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Destroy)
	kv, err := vault.New(vault.Config{Store: store, MasterKey: master, BaseURL: s.url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	runner, err := ops.New(ops.Config{Store: store, PollInterval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p, err := platform.Open(ctx, platform.Config{Store: store, MasterKey: master, Issuer: s.url,
		Ops: runner, Vault: kv, Clock: clock, CMK: func(id *keyhold.Identity) keyhold.KeyWrapper { return keyprovider.NewBuiltin(kv, id) }})
	if err != nil {
		t.Fatalf("platform.Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	s.p = p
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { runner.Run(runCtx); close(stopped) }()
	t.Cleanup(func() { stop(); <-stopped })

	if s.creds, _, err = p.BootstrapCustomer(ctx); err != nil || s.creds == nil {
		t.Fatalf("BootstrapCustomer: %v", err)
	}
	am := arm.New(arm.Config{Store: store})
	ps := policy.New(policy.Config{Store: store, ARM: am, Vaults: kv})
	srv := &khttp.Server{
		Tokens: p, Environments: p, Data: p, Audit: p, CMK: p, Events: p, Keys: p, Backups: p,
		ARM: khttp.ARMAPI{Resources: am, Directory: am},
		KeyVault: khttp.KeyVaultAPI{Vaults: kv, Lookup: func(ctx context.Context, name string) (v *keyhold.Vault, err error) {
			err = store.View(ctx, func(tx keyhold.Tx) error { v, err = tx.Vault(ctx, name); return err })
			return v, err
		}},
		Policies:  khttp.PolicyAPI{Service: ps, Deployments: deploy.New(deploy.Config{Store: store, Policies: ps, ARM: am, Vaults: kv})},
		Logger:    slog.New(slog.DiscardHandler),
		PublicURL: s.url,
	}
	for _, o := range opts {
		o(srv, p, store)
	}
	hs := &nethttp.Server{Handler: srv.Handler(), TLSConfig: tlsConf}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caCert)
	s.raw = &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(s.raw.CloseIdleConnections)
	if s.client, err = khttp.NewClient(s.url, caCert, s.creds.TenantID, s.creds.ClientID, s.creds.ClientSecret); err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(s.client.HTTPClient().CloseIdleConnections)

	seedCMKWorld(t, store, s.creds, now)
	return s
}

// seedCMKWorld registers Microsoft.KeyVault and Microsoft.PowerPlatform on
// the bootstrap subscription, creates the resource group "cmk" and makes
// the bootstrap administrator Owner of the subscription, straight in the
// store (the stacks' shared starting point).
func seedCMKWorld(t testing.TB, store keyhold.Store, creds *platform.BootstrapCredentials, now time.Time) {
	t.Helper()
	ctx := context.Background()
	err := store.Update(ctx, func(tx keyhold.Tx) error {
		admin, err := tx.PrincipalByAppID(ctx, creds.TenantID, creds.ClientID)
		if err != nil {
			return err
		}
		for _, ns := range []string{keyhold.NamespaceKeyVault, keyhold.NamespacePowerPlatform} {
			if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: creds.SubscriptionID,
				Namespace: ns, State: keyhold.ProviderRegistered, UpdatedAt: now}); err != nil {
				return err
			}
		}
		if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: creds.SubscriptionID, Name: "cmk",
			Location: "westeurope", CreatedAt: now}); err != nil {
			return err
		}
		owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
		return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: "/subscriptions/" + creds.SubscriptionID,
			RoleDefinitionID: owner.ID, PrincipalID: admin.ID, PrincipalType: "ServicePrincipal", TenantID: creds.TenantID, CreatedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// token is a token of the administrator for an audience.
func (s *cmkStack) token(t testing.TB, audience keyhold.Audience) string {
	t.Helper()
	tok, err := s.client.Token(context.Background(), string(audience)+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// call sends a JSON request (body "" for none) and returns the status and
// the answer.
func (s *cmkStack) call(t testing.TB, method, path string, audience keyhold.Audience, body string) (int, []byte) {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := nethttp.NewRequest(method, s.url+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token(t, audience))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.raw.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// setUpPolicy does the key vault administrator's part over HTTPS: a vault
// with purge protection, an RSA key, an Encryption policy naming it, and
// the policy's identity granted the key. It returns the policy resource.
func (s *cmkStack) setUpPolicy(t testing.TB) *keyhold.PolicyResource {
	t.Helper()
	mgmt := keyhold.AudienceManagement
	sub := "/subscriptions/" + s.creds.SubscriptionID
	vaultID := sub + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-kv"
	status, b := s.call(t, "PUT", vaultID+"?api-version=2023-07-01", mgmt, `{"location":"westeurope","properties":{"tenantId":"`+s.creds.TenantID+
		`","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true,"enableSoftDelete":true,"softDeleteRetentionInDays":90,"enablePurgeProtection":true}}`)
	if status != 200 && status != 201 {
		t.Fatalf("PUT vault: %d %s", status, b)
	}
	// Owner can manage the vault, not use its keys: Key Vault Administrator
	// at the vault lets the administrator create the key.
	s.grant(t, vaultID, keyhold.RoleKeyVaultAdministrator, s.principalID(t))
	if status, b = s.call(t, "POST", "/vaults/contoso-kv/keys/cmk/create?api-version=7.5", keyhold.AudienceVault, `{"kty":"RSA","key_size":2048}`); status != 200 {
		t.Fatalf("create key: %d %s", status, b)
	}
	status, b = s.call(t, "PUT", sub+"/resourceGroups/cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/contoso-cmk?api-version=2020-10-30", mgmt,
		`{"location":"europe","kind":"Encryption","identity":{"type":"SystemAssigned"},"properties":{"encryption":{"state":"Enabled","keyVault":{"id":"`+
			vaultID+`","key":{"name":"cmk"}}}}}`)
	var pol keyhold.PolicyResource
	if status != 201 || json.Unmarshal(b, &pol) != nil || pol.Identity.PrincipalID == "" || pol.Properties.SystemID == "" {
		t.Fatalf("PUT policy: %d %s", status, b)
	}
	s.grant(t, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.Identity.PrincipalID)
	return &pol
}

// grant assigns a built-in role at scope over HTTPS.
func (s *cmkStack) grant(t testing.TB, scope, role, principalID string) {
	t.Helper()
	r, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		t.Fatalf("no role %s", role)
	}
	status, b := s.call(t, "PUT", scope+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01",
		keyhold.AudienceManagement, `{"properties":{"roleDefinitionId":"/subscriptions/`+s.creds.SubscriptionID+
			`/providers/Microsoft.Authorization/roleDefinitions/`+r.ID+`","principalId":"`+principalID+`","principalType":"ServicePrincipal"}}`)
	if status != 201 {
		t.Fatalf("grant %s to %s: %d %s", role, principalID, status, b)
	}
}

// principalID is the administrator's object id.
func (s *cmkStack) principalID(t testing.TB) string {
	t.Helper()
	sps, err := s.client.ServicePrincipals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range sps {
		if sp.AppID == s.creds.ClientID {
			return sp.ID
		}
	}
	t.Fatalf("no service principal with app id %s", s.creds.ClientID)
	return ""
}

func wantErrorCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// TestCMKEndToEnd links a Managed Environment to an enterprise policy and
// back, through the Go client, over TLS, against the real stack.
func TestCMKEndToEnd(t *testing.T) {
	s := newCMKStack(t)
	ctx := context.Background()
	c := s.client
	pol := s.setUpPolicy(t)
	systemID := pol.Properties.SystemID

	env := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	if err := c.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRow(ctx, env.ID, "accounts", "a1", json.RawMessage(`{"name":"Fabrikam"}`)); err != nil {
		t.Fatal(err)
	}

	// Refusals change nothing.
	linkPath := "/providers/Microsoft.BusinessAppPlatform/environments/" + env.ID + "/enterprisePolicies/Encryption/link"
	if status, b := s.call(t, "POST", linkPath, keyhold.AudiencePowerApps, `{}`); status != 400 || !bytes.Contains(b, []byte("SystemId is required")) {
		t.Fatalf("link without SystemId: %d %s", status, b)
	}
	_, err := c.LinkPolicy(ctx, uuid.NewString(), systemID)
	wantErrorCode(t, err, keyhold.CodeEnvironmentNotFound)
	_, err = c.LinkPolicy(ctx, env.ID, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/"+uuid.NewString())
	wantErrorCode(t, err, keyhold.CodeNotFound)
	_, err = c.GetOperation(ctx, uuid.NewString())
	wantErrorCode(t, err, keyhold.CodeNotFound)
	if got, err := c.FindEnvironment(ctx, env.ID); err != nil || got.KeyManagedBy != keyhold.KeyManagedByMicrosoft || got.PolicyID != "" {
		t.Fatalf("after refusals the environment is %+v, %v", got, err)
	}
	if links, err := c.PolicyLinks(ctx); err != nil || len(links) != 0 {
		t.Fatalf("after refusals PolicyLinks = %v, %v", links, err)
	}

	// The policy named by its resource id resolves to its systemId.
	if got, err := c.PolicySystemID(ctx, pol.ID); err != nil || got != systemID {
		t.Fatalf("PolicySystemID = %q, %v; want %q", got, err, systemID)
	}

	// Link.
	op, err := c.LinkPolicy(ctx, env.ID, systemID)
	if err != nil {
		t.Fatalf("LinkPolicy: %v", err)
	}
	if op.Kind != keyhold.OpLink || op.Target != env.ID || op.State != keyhold.OperationRunning {
		t.Fatalf("LinkPolicy = %+v", op)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	done, err := c.WaitOperation(wctx, op.ID, 0, nil)
	if err != nil || done.State != keyhold.OperationSucceeded {
		t.Fatalf("link: %+v, %v", done, err)
	}
	got, err := c.FindEnvironment(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyManagedBy != keyhold.KeyManagedByCustomer || !strings.EqualFold(got.PolicyID, pol.ID) || !strings.EqualFold(got.PolicySystemID, systemID) ||
		got.LinkStatus != keyhold.LinkStatusLinked || got.State != keyhold.StateEnabled {
		t.Fatalf("linked environment = %+v; want Customer, linked to %s", got, pol.ID)
	}
	_, b := s.call(t, "GET", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/"+env.ID, keyhold.AudiencePowerApps, "")
	var j struct {
		Properties struct {
			EnterprisePolicies struct {
				CustomerManagedKeys struct{ PolicyID, SystemID string }
			}
		}
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if cmk := j.Properties.EnterprisePolicies.CustomerManagedKeys; cmk.PolicyID == "" || !strings.HasSuffix(strings.ToLower(systemID), "/"+strings.ToLower(cmk.PolicyID)) {
		t.Errorf("customerManagedKeys = %+v, want the policy GUID ending %s", cmk, systemID)
	}
	if row, err := c.GetRow(ctx, env.ID, "accounts", "a1"); err != nil || string(row.Data) != `{"name":"Fabrikam"}` {
		t.Fatalf("row after link: %v, %v", row, err)
	}

	links, err := c.PolicyLinks(ctx)
	if err != nil || len(links) != 1 || links[0].Policy == nil || links[0].Policy.Name != "contoso-cmk" ||
		links[0].Environment.EncryptionStatus != keyhold.EncryptionSucceeded || links[0].LastOperation == nil {
		t.Fatalf("PolicyLinks = %+v, %v", links, err)
	}
	usage, err := c.KeyVersionUsage(ctx, pol.ID)
	if err != nil || len(usage) != 1 || !usage[0].Current || usage[0].LiveKeys == 0 {
		t.Fatalf("KeyVersionUsage = %+v, %v; want the current version, in use", usage, err)
	}

	// Linking again to the same policy is a conflict.
	_, err = c.LinkPolicy(ctx, env.ID, systemID)
	wantErrorCode(t, err, keyhold.CodeConflict)

	// Managed Environment can't be turned off under the key: 409, unchanged.
	status, b := s.call(t, "PATCH", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/"+env.ID, keyhold.AudiencePowerApps,
		`{"properties":{"governanceConfiguration":{"protectionLevel":"Basic"}}}`)
	if status != 409 || !bytes.Contains(b, []byte(`"code":"Conflict"`)) || !bytes.Contains(b, []byte("unlink it first")) {
		t.Fatalf("PATCH protectionLevel Basic while linked: %d %s", status, b)
	}
	if got, err = c.FindEnvironment(ctx, env.ID); err != nil || !got.Managed || got.LinkStatus != keyhold.LinkStatusLinked {
		t.Fatalf("after the refused PATCH: %+v, %v", got, err)
	}

	// Unlink.
	op, err = c.UnlinkPolicy(ctx, env.ID, systemID)
	if err != nil {
		t.Fatalf("UnlinkPolicy: %v", err)
	}
	// The 202 warns, through the wire and the client, to keep the key and
	// the grant 30 days.
	if len(op.Warnings) != 1 || !strings.Contains(op.Warnings[0], "30 days") || !strings.Contains(op.Warnings[0], "contoso-cmk") {
		t.Errorf("unlink answer warnings %q, want one to keep the key of contoso-cmk 30 days", op.Warnings)
	}
	if done, err = c.WaitOperation(wctx, op.ID, 0, nil); err != nil || done.State != keyhold.OperationSucceeded {
		t.Fatalf("unlink: %+v, %v", done, err)
	}
	if got, err = c.FindEnvironment(ctx, env.ID); err != nil || got.KeyManagedBy != keyhold.KeyManagedByMicrosoft || got.PolicyID != "" || got.PolicySystemID != "" {
		t.Fatalf("unlinked environment = %+v, %v", got, err)
	}
	if _, b = s.call(t, "GET", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/"+env.ID, keyhold.AudiencePowerApps, ""); bytes.Contains(b, []byte("enterprisePolicies")) {
		t.Errorf("an unlinked environment shows a policy: %s", b)
	}
	if row, err := c.GetRow(ctx, env.ID, "accounts", "a1"); err != nil || string(row.Data) != `{"name":"Fabrikam"}` {
		t.Fatalf("row after unlink: %v, %v", row, err)
	}
}
