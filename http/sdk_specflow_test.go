package http_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
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

// The spec's whole flow through the official SDKs, unchanged: two
// principals sign in only through azidentity, and every step is an SDK
// client given Keyhold's endpoint, the test CA and, for the vault, a
// dialer; the Power Platform API, which has no Go SDK, goes through an
// azcore pipeline with the credential's bearer policy, as a program of
// one's own would.

// flowStack serves the whole stack as server.Run wires it: the platform
// with its operations runner, the built-in vault as the customer-key
// provider (keyprovider.NewBuiltin), the resource manager, the directory,
// enterprise policies and deployments, over TLS with a certificate that
// also names *.vault.localhost. It runs on the system clock: the
// operations runner and the SDKs' pollers wait in real time.
type flowStack struct {
	url    string
	ca     []byte
	raw    *nethttp.Client // trusts the CA
	creds  *platform.BootstrapCredentials
	client *khttp.Client // the tenant's bootstrap administrator
	p      *platform.Platform
}

func newFlowStack(t *testing.T, store keyhold.Store) *flowStack {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	caCert, caKey, err := crypt.GenerateConstrainedCA("Keyhold SDK flow test CA", []string{"127.0.0.1"}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := crypt.IssueServerCert(caCert, caKey, []string{"127.0.0.1", "*.vault.localhost"}, now.Add(-time.Hour), 24*time.Hour)
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
	s := &flowStack{url: "https://" + ln.Addr().String(), ca: caCert}
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
	s.p, err = platform.Open(ctx, platform.Config{Store: store, MasterKey: master, Issuer: s.url,
		Ops: runner, Vault: kv, CMK: func(id *keyhold.Identity) keyhold.KeyWrapper { return keyprovider.NewBuiltin(kv, id) }})
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

	am := arm.New(arm.Config{Store: store})
	ps := policy.New(policy.Config{Store: store, ARM: am, Vaults: kv})
	ps.RegisterDeleter()
	srv := &khttp.Server{
		Tokens: s.p, Environments: s.p, Data: s.p, Audit: s.p, CMK: s.p, Events: s.p, Keys: s.p, Backups: s.p,
		ARM: khttp.ARMAPI{Resources: am, Directory: am},
		KeyVault: khttp.KeyVaultAPI{Vaults: kv, Lookup: func(ctx context.Context, name string) (v *keyhold.Vault, err error) {
			err = store.View(ctx, func(tx keyhold.Tx) error { v, err = tx.Vault(ctx, name); return err })
			return v, err
		}},
		Policies:  khttp.PolicyAPI{Service: ps, Deployments: deploy.New(deploy.Config{Store: store, Policies: ps, ARM: am, Vaults: kv})},
		Logger:    slog.New(slog.DiscardHandler),
		PublicURL: s.url,
	}
	hs := &nethttp.Server{Handler: srv.Handler(), TLSConfig: tlsConf, ErrorLog: log.New(io.Discard, "", 0)}
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
	return s
}

// clientOptions are every SDK client's options but the vault's: Keyhold's
// cloud (authority host, resource manager) and the CA, nothing else.
func (s *flowStack) clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Transport: s.raw, Cloud: cloud.Configuration{
		ActiveDirectoryAuthorityHost: s.url + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: s.url, Audience: string(keyhold.AudienceManagement)},
		},
	}}
}

// selfSignedCert is an application's certificate, as
// "keyhold identity sp credential add --cert" uploads it.
func selfSignedCert(t *testing.T, key *rsa.PrivateKey, cn string) (*x509.Certificate, []byte) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// flowEnvJSON is what the flow reads of an environment.
type flowEnvJSON struct {
	Name       string `json:"name"`
	Properties struct {
		States struct {
			Runtime struct {
				ID string `json:"id"`
			} `json:"runtime"`
		} `json:"states"`
		ProtectionStatus struct {
			KeyManagedBy string `json:"keyManagedBy"`
		} `json:"protectionStatus"`
		EnterprisePolicies *struct {
			CustomerManagedKeys *struct {
				SystemID string `json:"systemId"`
			} `json:"customerManagedKeys"`
		} `json:"enterprisePolicies"`
	} `json:"properties"`
}

func (e *flowEnvJSON) state() string        { return e.Properties.States.Runtime.ID }
func (e *flowEnvJSON) keyManagedBy() string { return e.Properties.ProtectionStatus.KeyManagedBy }
func (e *flowEnvJSON) systemID() string {
	if ep := e.Properties.EnterprisePolicies; ep != nil && ep.CustomerManagedKeys != nil {
		return ep.CustomerManagedKeys.SystemID
	}
	return ""
}

// flowOperationJSON is what the flow reads of an operation.
type flowOperationJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// The Power Platform admin API's paths.
const (
	bapPrefix      = "/providers/Microsoft.BusinessAppPlatform"
	adminEnvPrefix = bapPrefix + "/scopes/admin/environments"
)

// ppAPI is the Power Platform API as a program reaches it without an SDK:
// an azcore pipeline whose bearer policy asks the credential for the
// Power Platform audience, and azcore's own poller for the operations.
type ppAPI struct {
	base string
	pl   runtime.Pipeline
}

func newPPAPI(base string, cred azcore.TokenCredential, transport azpolicy.Transporter) *ppAPI {
	bearer := runtime.NewBearerTokenPolicy(cred, []string{string(keyhold.AudiencePowerApps) + "/.default"}, nil)
	return &ppAPI{base: base, pl: runtime.NewPipeline("keyhold-specflow", "v1.0.0",
		runtime.PipelineOptions{PerRetry: []azpolicy.Policy{bearer}}, &azpolicy.ClientOptions{Transport: transport})}
}

// send sends a request (in nil: no body) and returns the answer and its
// body, whatever its status.
func (p *ppAPI) send(t *testing.T, method, path string, in any) (*nethttp.Response, []byte) {
	t.Helper()
	req, err := runtime.NewRequest(context.Background(), method, p.base+path)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		if err := runtime.MarshalAsJSON(req, in); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := p.pl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := runtime.Payload(resp)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp, b
}

// ok sends a request that must answer 2xx and decodes its body into out.
func (p *ppAPI) ok(t *testing.T, method, path string, in, out any) *nethttp.Response {
	t.Helper()
	resp, b := p.send(t, method, path, in)
	if !runtime.HasStatusCode(resp, nethttp.StatusOK, nethttp.StatusCreated, nethttp.StatusAccepted) {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp
}

// operation starts a long-running operation (a 202 with
// operation-location) and follows it with azcore's poller to its end,
// which must be Succeeded.
func (p *ppAPI) operation(t *testing.T, what, path string, in any) flowOperationJSON {
	t.Helper()
	resp := p.ok(t, "POST", path, in, nil)
	if resp.StatusCode != nethttp.StatusAccepted || resp.Header.Get("Operation-Location") == "" {
		t.Fatalf("%s: %d, operation-location %q; want 202 naming the operation", what, resp.StatusCode, resp.Header.Get("Operation-Location"))
	}
	poller, err := runtime.NewPoller[flowOperationJSON](resp, p.pl, nil)
	if err != nil {
		t.Fatalf("%s: NewPoller: %v", what, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	op, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 100 * time.Millisecond})
	if err != nil || op.Status != string(keyhold.OperationSucceeded) {
		t.Fatalf("%s: PollUntilDone = %+v, %v", what, op, err)
	}
	return op
}

// environment reads an environment through the admin API.
func (p *ppAPI) environment(t *testing.T, id string) *flowEnvJSON {
	t.Helper()
	var j flowEnvJSON
	p.ok(t, "GET", adminEnvPrefix+"/"+id, nil, &j)
	return &j
}

// TestSDKSpecFlow walks the spec's flow with the official SDKs only, as
// docs/sdk.md's worked example: a key vault administrator (a certificate
// credential) makes the group (armresources), the vault with soft delete
// and purge protection (armkeyvault, its poller), a key (azkeys, default
// options, the vault by host) and the enterprise policy (armresources'
// generic client, its poller), grants the policy's identity the key
// (armauthorization) and the platform administrator Reader on the
// policy; the platform administrator (a secret credential) links an
// environment and writes a row through the Power Platform API (an azcore
// pipeline); the key is rotated (azkeys) and the environment moves to the
// new version; access is revoked (armauthorization) and the environment
// locks; access is granted again, the environment re-enabled, and the row
// reads back.
func TestSDKSpecFlow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		testSDKSpecFlow(t, newFlowStack(t, open(t)))
	})
}

func testSDKSpecFlow(t *testing.T, f *flowStack) {
	ctx := context.Background()
	sub := f.creds.SubscriptionID
	subScope := "/subscriptions/" + sub

	// The tenant's administrator makes the two people's principals: a key
	// vault administrator, Owner of the subscription, who signs in with a
	// certificate; a platform administrator, Power Platform Administrator,
	// who signs in with a secret. Neither holds the other's role.
	kvSP, err := f.client.CreateServicePrincipal(ctx, "Contoso key vault admin")
	if err != nil {
		t.Fatal(err)
	}
	paSP, err := f.client.CreateServicePrincipal(ctx, "Contoso platform admin")
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
	if err := f.client.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Scope: subScope, RoleDefinitionID: owner.ID,
		PrincipalID: kvSP.Principal.ID, PrincipalType: "ServicePrincipal"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.AssignDirectoryRole(ctx, paSP.Principal.ID, keyhold.RolePowerPlatformAdministrator); err != nil {
		t.Fatal(err)
	}
	appKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	appCert, appPEM := selfSignedCert(t, appKey, "contoso-kv-admin")
	if _, err := f.client.AddClientCertificate(ctx, kvSP.Principal.AppID, appPEM); err != nil {
		t.Fatalf("AddClientCertificate: %v", err)
	}

	// Each signs in through azidentity only: Keyhold's cloud, the CA,
	// instance discovery off.
	kvCred, err := azidentity.NewClientCertificateCredential(f.creds.TenantID, kvSP.Principal.AppID, []*x509.Certificate{appCert}, appKey,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: f.clientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	paCred, err := azidentity.NewClientSecretCredential(f.creds.TenantID, paSP.Principal.AppID, paSP.Secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: f.clientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	armOpts := &azarm.ClientOptions{ClientOptions: f.clientOptions()}

	// Step 1 (key vault admin): providers, group, vault, key.
	providers, err := armresources.NewProvidersClient(sub, kvCred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{keyhold.NamespaceKeyVault, keyhold.NamespacePowerPlatform} {
		if _, err := providers.Register(ctx, ns, nil); err != nil {
			t.Fatalf("Register(%s): %v", ns, err)
		}
	}
	groups, err := armresources.NewResourceGroupsClient(sub, kvCred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "cmk", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatalf("CreateOrUpdate group: %v", err)
	}
	vaults, err := armkeyvault.NewVaultsClient(sub, kvCred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	vp, err := vaults.BeginCreateOrUpdate(ctx, "cmk", "contoso-kv", armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr("westeurope"),
		Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(f.creds.TenantID),
			SKU:                     &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableRbacAuthorization: to.Ptr(true), EnableSoftDelete: to.Ptr(true), SoftDeleteRetentionInDays: to.Ptr[int32](90),
			EnablePurgeProtection: to.Ptr(true)}}, nil)
	if err != nil {
		t.Fatalf("vault BeginCreateOrUpdate: %v", err)
	}
	v, err := vp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("vault PollUntilDone: %v", err)
	}
	if !*v.Properties.EnablePurgeProtection || !*v.Properties.EnableSoftDelete || v.Properties.VaultURI == nil {
		t.Fatalf("vault = %+v", v.Properties)
	}
	vaultID, vaultURI := *v.ID, *v.Properties.VaultURI
	_, port, _ := strings.Cut(strings.TrimPrefix(f.url, "https://"), ":")
	if vaultURI != "https://contoso-kv.vault.localhost:"+port+"/" {
		t.Fatalf("vaultUri = %q", vaultURI)
	}

	assigns, err := armauthorization.NewRoleAssignmentsClient(sub, kvCred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	grant := func(scope, role, principal string) string {
		t.Helper()
		def, _ := keyhold.FindRoleDefinition(role)
		name := uuid.NewString()
		if _, err := assigns.Create(ctx, scope, name, armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr(keyhold.RoleDefinitionID(sub, def.ID)), PrincipalID: to.Ptr(principal),
			PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal)}}, nil); err != nil {
			t.Fatalf("grant %s to %s at %s: %v", role, principal, scope, err)
		}
		return name
	}
	// Owner manages the vault, but makes keys only as Crypto Officer.
	grant(vaultID, keyhold.RoleKeyVaultCryptoOfficer, kvSP.Principal.ID)

	// The vault client: the vault's own URI, the SDK's default options
	// but for a transport that trusts the CA and dials the vault's name
	// at the server.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.ca)
	vaultHC := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: khttp.VaultDialer("", strings.TrimPrefix(f.url, "https://"))}}
	t.Cleanup(vaultHC.CloseIdleConnections)
	keys, err := azkeys.NewClient(vaultURI, kvCred, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: vaultHC}})
	if err != nil {
		t.Fatal(err)
	}
	created, err := keys.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	v1 := created.Key.KID.Version()
	if created.Key.KID.Name() != "cmk" || len(v1) != 32 {
		t.Fatalf("created kid %s", *created.Key.KID)
	}
	// A rotation policy, as an administrator sets one beside the key.
	if _, err := keys.UpdateKeyRotationPolicy(ctx, "cmk", azkeys.KeyRotationPolicy{
		Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P1Y")},
		LifetimeActions: []*azkeys.LifetimeAction{{Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)},
			Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P90D")}}}}, nil); err != nil {
		t.Fatalf("UpdateKeyRotationPolicy: %v", err)
	}
	if rp, err := keys.GetKeyRotationPolicy(ctx, "cmk", nil); err != nil || rp.Attributes == nil || *rp.Attributes.ExpiryTime != "P1Y" ||
		len(rp.LifetimeActions) != 1 || *rp.LifetimeActions[0].Trigger.TimeAfterCreate != "P90D" {
		t.Fatalf("GetKeyRotationPolicy = %+v, %v", rp, err)
	}

	// Step 2 (key vault admin): the enterprise policy, through the
	// generic resources client and its poller.
	resources, err := armresources.NewClient(sub, kvCred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	policyID := subScope + "/resourceGroups/cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/ContosoPolicy"
	const policyAPI = "2020-10-30"
	pp, err := resources.BeginCreateOrUpdateByID(ctx, policyID, policyAPI, armresources.GenericResource{
		Location: to.Ptr("europe"), Kind: to.Ptr("Encryption"),
		Identity: &armresources.Identity{Type: to.Ptr(armresources.ResourceIdentityTypeSystemAssigned)},
		Properties: map[string]any{"encryption": map[string]any{"state": "Enabled",
			"keyVault": map[string]any{"id": vaultID, "key": map[string]any{"name": "cmk"}}}}}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdateByID policy: %v", err)
	}
	pol, err := pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("policy PollUntilDone: %v", err)
	}
	if pol.ID == nil || !strings.EqualFold(*pol.ID, policyID) || pol.Name == nil || *pol.Name != "ContosoPolicy" ||
		pol.Type == nil || !strings.EqualFold(*pol.Type, "Microsoft.PowerPlatform/enterprisePolicies") || pol.Kind == nil || *pol.Kind != "Encryption" ||
		pol.Location == nil || *pol.Location != "europe" || pol.Identity == nil || pol.Identity.PrincipalID == nil || *pol.Identity.PrincipalID == "" {
		t.Fatalf("policy = %+v", pol.GenericResource)
	}
	identity := *pol.Identity.PrincipalID

	// Step 3 (key vault admin): the policy's identity may use the key.
	identityGrant := grant(vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, identity)

	// Step 4 (key vault admin): the platform administrator may read the
	// policy only once given Reader on it.
	paResources, err := armresources.NewClient(sub, paCred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = paResources.GetByID(ctx, policyID, policyAPI, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != nethttp.StatusForbidden || re.ErrorCode != keyhold.CodeAuthorizationFailed {
		t.Fatalf("the platform administrator read the policy before the Reader grant: %v", err)
	}
	grant(policyID, keyhold.RoleReader, paSP.Principal.ID)
	read, err := paResources.GetByID(ctx, policyID, policyAPI, nil)
	if err != nil {
		t.Fatalf("the platform administrator reads the policy: %v", err)
	}
	props, _ := read.Properties.(map[string]any)
	systemID, _ := props["systemId"].(string)
	if !strings.HasPrefix(systemID, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/") {
		t.Fatalf("policy properties = %+v", read.Properties)
	}

	// Step 5 (platform admin): a Managed Environment with a row, linked.
	pa := newPPAPI(f.url, paCred, f.raw)
	var envOut flowEnvJSON
	pa.ok(t, "POST", bapPrefix+"/environments", map[string]any{"location": "europe", "properties": map[string]any{
		"displayName": "Contoso", "environmentSku": "Production", "governanceConfiguration": map[string]any{"protectionLevel": "Standard"}}}, &envOut)
	envID := envOut.Name
	if envID == "" {
		t.Fatalf("created environment = %+v", envOut)
	}
	rowPath := "/environments/" + envID + "/tables/accounts/rows/a1"
	const row = `{"name":"Fabrikam"}`
	pa.ok(t, "PUT", rowPath, json.RawMessage(row), nil)
	readRow := func(when string) {
		t.Helper()
		var got keyhold.Row
		pa.ok(t, "GET", rowPath, nil, &got)
		if string(got.Data) != row {
			t.Fatalf("%s: row = %s, want %s", when, got.Data, row)
		}
	}
	linkPath := adminEnvPrefix + "/" + envID + "/enterprisePolicies/Encryption/link?api-version=2019-10-01"
	// Separation of duty: the key vault administrator may not link, nor
	// the platform administrator make keys; neither refusal changes
	// anything.
	if resp, b := newPPAPI(f.url, kvCred, f.raw).send(t, "POST", linkPath, map[string]string{"SystemId": systemID}); resp.StatusCode != nethttp.StatusForbidden {
		t.Fatalf("the key vault administrator linked: %d %s", resp.StatusCode, b)
	}
	if e := pa.environment(t, envID); e.keyManagedBy() != string(keyhold.KeyManagedByMicrosoft) || e.systemID() != "" {
		t.Fatalf("after the refused link: %+v", e)
	}
	paKeys, err := azkeys.NewClient(vaultURI, paCred, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: vaultHC}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = paKeys.CreateKey(ctx, "rogue", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if !errors.As(err, &re) || re.StatusCode != nethttp.StatusForbidden {
		t.Fatalf("the platform administrator made a key: %v", err)
	}
	if _, err := keys.GetKey(ctx, "rogue", "", nil); !errors.As(err, &re) || re.StatusCode != nethttp.StatusNotFound {
		t.Fatalf("GetKey(rogue) after the refusal: %v", err)
	}
	pa.operation(t, "link", linkPath, map[string]string{"SystemId": systemID})
	if e := pa.environment(t, envID); e.keyManagedBy() != string(keyhold.KeyManagedByCustomer) || e.systemID() != systemID || e.state() != string(keyhold.StateEnabled) {
		t.Fatalf("after the link: %+v", e)
	}
	readRow("after the link")
	// The link unwrapped with the policy's key: the policy, as the SDK
	// reads it, says when (issue 13's operator view).
	got, err := paResources.GetByID(ctx, policyID, policyAPI, nil)
	if err != nil {
		t.Fatalf("GetByID policy after the link: %v", err)
	}
	kvProps, _ := got.Properties.(map[string]any)["encryption"].(map[string]any)["keyVault"].(map[string]any)
	if last, _ := kvProps["lastSuccessfulUnwrap"].(string); last == "" {
		t.Fatalf("policy after the link, as the SDK reads it: keyVault %v, want lastSuccessfulUnwrap", kvProps)
	}

	// Which key versions wrap the environments' keys (a platform
	// administrator with Reader on the policy may ask): an ARM action
	// with no SDK, through azcore's resource manager pipeline.
	paARM, err := azarm.NewClient("keyhold-specflow", "v1.0.0", paCred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	liveKeys := func() map[string]int {
		t.Helper()
		req, err := runtime.NewRequest(ctx, "GET", runtime.JoinPaths(paARM.Endpoint(), policyID, "keyVersionUsage")+"?api-version="+policyAPI)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := paARM.Pipeline().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Value []struct {
				Version             string `json:"version"`
				LiveEnvironmentKeys int    `json:"liveEnvironmentKeys"`
			} `json:"value"`
		}
		if err := runtime.UnmarshalAsJSON(resp, &out); err != nil || resp.StatusCode != nethttp.StatusOK {
			b, _ := runtime.Payload(resp)
			t.Fatalf("keyVersionUsage: %d %s, %v", resp.StatusCode, b, err)
		}
		m := map[string]int{}
		for _, u := range out.Value {
			m[u.Version] = u.LiveEnvironmentKeys
		}
		return m
	}
	if got := liveKeys(); got[v1] != 1 {
		t.Fatalf("before the rotation, live keys by version = %v; want 1 under %s", got, v1)
	}

	// The key is rotated; the next pickup (the server's, every
	// platform.RotationPickupInterval) moves the environment's key to the
	// new version.
	rotated, err := keys.RotateKey(ctx, "cmk", nil)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	v2 := rotated.Key.KID.Version()
	if v2 == v1 || rotated.Key.KID.Name() != "cmk" {
		t.Fatalf("rotated kid %s", *rotated.Key.KID)
	}
	var versions []string
	for pg := keys.NewListKeyPropertiesVersionsPager("cmk", nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("list the key's versions: %v", err)
		}
		for _, k := range page.Value {
			versions = append(versions, k.KID.Version())
		}
	}
	if len(versions) != 2 || !slices.Contains(versions, v1) || !slices.Contains(versions, v2) {
		t.Fatalf("the key's versions = %v; want %s and %s", versions, v1, v2)
	}
	if n, err := f.p.PickUpRotations(ctx); err != nil || n != 1 {
		t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := liveKeys()
		if got[v2] == 1 && got[v1] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rotation, live keys by version = %v; want 1 under %s", got, v2)
		}
	}
	readRow("after the rotation")

	// Revoke: the key vault admin takes the identity's role away; the
	// health check (the server runs it on key-vault events and on a
	// schedule) finds the key unreachable and the environment locks.
	// As "az role assignment delete --assignee" does: list the
	// identity's assignments at the vault, delete each by its id. The SDK
	// sends $filter as given (the API marks it x-ms-skip-url-encoding), so
	// the program encodes it, as it must for Azure too: a raw space in the
	// request line is a 400 there and here (Azure/azure-sdk-for-go#20847).
	var revoked []string
	for pg := assigns.NewListForScopePager(vaultID, &armauthorization.RoleAssignmentsClientListForScopeOptions{
		Filter: to.Ptr(url.QueryEscape("principalId eq '" + identity + "'"))}); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("list the identity's role assignments: %v", err)
		}
		for _, a := range page.Value {
			if _, err := assigns.DeleteByID(ctx, *a.ID, nil); err != nil {
				t.Fatalf("RoleAssignments.DeleteByID(%s): %v", *a.ID, err)
			}
			revoked = append(revoked, *a.Name)
		}
	}
	if len(revoked) != 1 || revoked[0] != identityGrant {
		t.Fatalf("revoked %v; want the one assignment %s", revoked, identityGrant)
	}
	if h, err := f.p.CheckPolicyHealth(ctx, policyID); err != nil || h != keyhold.HealthUnhealthy {
		t.Fatalf("CheckPolicyHealth after the revoke = %s, %v", h, err)
	}
	wantLocked := func(when string) {
		t.Helper()
		if e := pa.environment(t, envID); e.state() != string(keyhold.StateLocked) {
			t.Fatalf("%s: environment state %s, want Locked", when, e.state())
		}
		resp, b := pa.send(t, "GET", rowPath, nil)
		if resp.StatusCode != nethttp.StatusForbidden || !strings.Contains(string(b), `"code":"`+keyhold.CodeEnvironmentLocked+`"`) {
			t.Fatalf("%s: GET row = %d %s; want 403 %s", when, resp.StatusCode, b, keyhold.CodeEnvironmentLocked)
		}
	}
	wantLocked("after the revoke")
	enablePath := adminEnvPrefix + "/" + envID + "/enable" + "?api-version=2019-10-01"
	if resp, b := pa.send(t, "POST", enablePath, nil); resp.StatusCode != nethttp.StatusForbidden || !strings.Contains(string(b), "stays locked") {
		t.Fatalf("enable before the re-grant: %d %s; want 403", resp.StatusCode, b)
	}
	wantLocked("after refusing to enable")

	// Re-grant, this time on the key alone (an assignment at a key's
	// scope, as Azure allows), then re-enable: the row reads back.
	grant(vaultID+"/keys/cmk", keyhold.RoleKeyVaultCryptoServiceEncryptUser, identity)
	if h, err := f.p.CheckPolicyHealth(ctx, policyID); err != nil || h != keyhold.HealthHealthy {
		t.Fatalf("CheckPolicyHealth after the re-grant = %s, %v", h, err)
	}
	wantLocked("after the re-grant, before the enable")
	pa.operation(t, "enable", enablePath, nil)
	if e := pa.environment(t, envID); e.state() != string(keyhold.StateEnabled) || e.keyManagedBy() != string(keyhold.KeyManagedByCustomer) {
		t.Fatalf("after the enable: %+v", e)
	}
	readRow("after the enable")
	if got := liveKeys(); got[v2] != 1 {
		t.Fatalf("after the enable, live keys by version = %v; want 1 under %s", got, v2)
	}
}
