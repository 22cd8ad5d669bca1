package platform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
)

// extWorld is the platform (f) wrapping with keys in the customer's
// Keyhold (c) over HTTPS, as TestExternalVaultLinkLockReenable sets them
// up, with a hook on the platform's answers from the customer's vaults
// (bend) for answers the customer's Keyhold would never give.
type extWorld struct {
	f    *cmkFixture
	c    *customerCloud
	pool *x509.CertPool
	conf *tls.Config

	mu   sync.Mutex
	bend func(*nethttp.Response) // changes an answer of the customer's vault; nil: none
	// vaultAddr is where the platform's connections to the customer's
	// vaults go: the customer's server, or a fault (faults_test).
	vaultAddr  string
	transports []*nethttp.Transport // the platform's, to the customer's vaults
	// ext is how the platform reaches the customer's vaults.
	ext ExternalCMK
}

// dialVault dials the customer's vault hosts at w.vaultAddr.
func (w *extWorld) dialVault(ctx context.Context, network, addr string) (net.Conn, error) {
	if _, ok := (keyhold.VaultAddress{Domain: customerVaultDomain}).VaultOfHost(addr); ok {
		w.mu.Lock()
		addr = w.vaultAddr
		w.mu.Unlock()
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

// setVaultAddr sends the platform's next connections to the customer's
// vaults to addr, closing its pooled ones.
func (w *extWorld) setVaultAddr(addr string) {
	w.mu.Lock()
	w.vaultAddr = addr
	trs := w.transports
	w.mu.Unlock()
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
}

// bendingTransport passes requests on, and lets the world's bend change
// the vault's answers.
type bendingTransport struct {
	w    *extWorld
	base nethttp.RoundTripper
}

func (b bendingTransport) RoundTrip(r *nethttp.Request) (*nethttp.Response, error) {
	resp, err := b.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	b.w.mu.Lock()
	fn := b.w.bend
	b.w.mu.Unlock()
	if fn != nil && strings.HasSuffix(r.URL.Hostname(), "."+customerVaultDomain) {
		fn(resp)
	}
	return resp, nil
}

func (w *extWorld) setBend(fn func(*nethttp.Response)) {
	w.mu.Lock()
	w.bend = fn
	w.mu.Unlock()
}

// newExtWorld starts the customer's Keyhold and makes f's platform reach
// external vaults through it.
func newExtWorld(t *testing.T, f *cmkFixture) *extWorld {
	f.clock.Set(time.Now()) // the customer's directory checks the assertion's times with its own clock
	pool, conf := externalCA(t)
	platformAddr := serve(t, (&khttp.Server{Tokens: f.p, Environments: f.p, Data: f.p, Audit: f.p, PublicURL: cmkBase, Keys: f.p}).Handler(), conf)
	w := &extWorld{f: f}
	w.c = newCustomerCloud(t, pool, conf, platformAddr)
	w.vaultAddr = w.c.addr
	w.pool, w.conf = pool, conf
	w.ext = func(x keyhold.ExternalKeyVault, assertion func(context.Context) (string, error)) (keyhold.KeyWrapper, error) {
		tr := &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: w.dialVault}
		t.Cleanup(tr.CloseIdleConnections)
		w.mu.Lock()
		w.transports = append(w.transports, tr)
		w.mu.Unlock()
		hc := &nethttp.Client{Transport: bendingTransport{w: w, base: tr}}
		return keyprovider.NewFederated(keyprovider.FederatedIdentity{TenantID: x.TenantID, ClientID: x.ClientID, AuthorityHost: x.AuthorityHost}, assertion,
			&azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1, TryTimeout: 2 * time.Second}}})
	}
	useExternal(f.p.core, w.ext)
	return w
}

// issuer is the platform's issuer, as the customer registers it.
func (w *extWorld) issuer() string { return cmkBase + "/" + w.f.creds.TenantID + "/v2.0" }

// policy stores a policy naming key (and version, if not "") in the
// customer's vault at uri ("" for the customer's main vault), and
// registers its identity as a federated credential on the customer's app
// for issuer and audience ("" for the platform's and the default).
func (w *extWorld) policy(t *testing.T, name, uri, key, version, issuer, audience string) *keyhold.EnterprisePolicy {
	t.Helper()
	if uri == "" {
		uri = w.c.vaultURI
	}
	if issuer == "" {
		issuer = w.issuer()
	}
	if audience == "" {
		audience = keyhold.FederatedAudience
	}
	unused := &keyhold.Vault{SubscriptionID: w.f.sub, ResourceGroup: cmkRG, Name: "kv-unused"}
	pol := w.f.newPolicy(t, name, unused, key, func(p *keyhold.EnterprisePolicy) {
		p.KeyVaultID, p.KeyVersion = "", version
		p.External = &keyhold.ExternalKeyVault{URI: uri, TenantID: w.c.tenant, ClientID: w.c.app.AppID, AuthorityHost: w.c.url + "/"}
	})
	w.c.update(t, func(tx keyhold.Tx) error {
		return tx.AddFederatedCredential(context.Background(), &keyhold.FederatedCredential{ID: uuid.NewString(), PrincipalID: w.c.app.ID, Name: "platform-" + name,
			Issuer: issuer, Subject: pol.PrincipalID, Audiences: []string{audience}, CreatedAt: time.Now()})
	})
	return pol
}

// customerKey creates key name in the customer's vault and returns it.
func (w *extWorld) customerKey(t *testing.T, vault, name string, p keyhold.CreateKeyParams) *keyhold.KeyBundle {
	t.Helper()
	kb, err := w.c.v.CreateKey(w.c.admin, vault, name, p)
	if err != nil {
		t.Fatal(err)
	}
	return kb
}

// customerVault creates another vault of the customer's and returns its
// URI.
func (w *extWorld) customerVault(t *testing.T, name string, purgeProtection bool) string {
	t.Helper()
	if _, err := w.c.v.PutVault(w.c.admin, &keyhold.Vault{SubscriptionID: w.c.sub, ResourceGroup: w.c.rg, Name: name, Location: "westeurope",
		EnableRbacAuthorization: true, EnablePurgeProtection: purgeProtection}); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(w.c.vaultURI, "https://"+w.c.vaultName+".", "https://"+name+".", 1)
}

// grantOn gives the customer's app Key Vault Crypto Service Encryption
// User on the customer's vault named vault, and returns the assignment's
// id.
func (w *extWorld) grantOn(t *testing.T, vault string) string {
	id := uuid.NewString()
	w.c.update(t, func(tx keyhold.Tx) error {
		r, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultCryptoServiceEncryptUser)
		return tx.CreateRoleAssignment(context.Background(), &keyhold.RoleAssignment{ID: id,
			Scope:            "/subscriptions/" + w.c.sub + "/resourceGroups/" + w.c.rg + "/providers/Microsoft.KeyVault/vaults/" + vault,
			RoleDefinitionID: r.ID, PrincipalID: w.c.app.ID, PrincipalType: "ServicePrincipal", TenantID: w.c.tenant, CreatedAt: time.Now()})
	})
	return id
}
