package platform

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	nethttp "net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// customerCloud is a second Keyhold run by the customer: its directory
// (with the app whose federated credential trusts the platform's issuer)
// and its vault (with the key), served over HTTPS.
type customerCloud struct {
	store     keyhold.Store
	p         *Platform
	v         *vault.Service
	url, addr string
	tenant    string
	sub, rg   string
	admin     context.Context
	app       *keyhold.Principal
	vaultName string
	vaultURI  string
}

// customerVaultDomain is the customer's vaults' domain: not the
// platform's (a key id under the platform's vault domain is its own).
const customerVaultDomain = "customer.localhost"

// externalCA is a CA and a certificate for the platform's issuer
// (keyhold.test), the customer's server (127.0.0.1) and its host-form
// vaults (*.vault.localhost).
func externalCA(t *testing.T) (*x509.CertPool, *tls.Config) {
	now := time.Now()
	caCert, caKey, err := crypt.GenerateConstrainedCA("external test CA", []string{"127.0.0.1", "keyhold.test", customerVaultDomain}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := crypt.IssueServerCert(caCert, caKey, []string{"127.0.0.1", "keyhold.test", "*." + customerVaultDomain}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := crypt.LoadServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caCert)
	return pool, conf
}

// serve serves h over TLS on a loopback port until the test ends.
func serve(t *testing.T, h nethttp.Handler, conf *tls.Config) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &nethttp.Server{Handler: h, TLSConfig: conf.Clone()}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// newCustomerCloud starts the customer's Keyhold with a vault holding an
// RSA key "cmk", and an app; platformAddr serves the platform's issuer
// (cmkBase), whose documents the customer's directory fetches.
func newCustomerCloud(t *testing.T, pool *x509.CertPool, conf *tls.Config, platformAddr string) *customerCloud {
	ctx := context.Background()
	store, _ := storetest.OpenSQLiteAt(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &customerCloud{store: store, addr: ln.Addr().String(), rg: "keys"}
	c.url = "https://" + c.addr
	master, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Destroy)
	if c.p, err = Open(ctx, Config{Store: store, MasterKey: master, Issuer: c.url}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.p.Close() })
	if c.v, err = vault.New(vault.Config{Store: store, MasterKey: master, BaseURL: c.url, VaultDomain: customerVaultDomain}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.v.Close() })
	issuerHost := strings.TrimPrefix(cmkBase, "https://") + ":443"
	c.p.SetFederationClient(&nethttp.Client{Timeout: 10 * time.Second, Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == issuerHost {
				addr = platformAddr
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}})
	creds, _, err := c.p.BootstrapCustomer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.tenant, c.sub = creds.TenantID, creds.SubscriptionID
	var admin *keyhold.Principal
	c.update(t, func(tx keyhold.Tx) error {
		if admin, err = tx.PrincipalByAppID(ctx, creds.TenantID, creds.ClientID); err != nil {
			return err
		}
		if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: c.sub, Namespace: keyhold.NamespaceKeyVault,
			State: keyhold.ProviderRegistered, UpdatedAt: time.Now()}); err != nil {
			return err
		}
		if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: c.sub, Name: c.rg, Location: "westeurope", CreatedAt: time.Now()}); err != nil {
			return err
		}
		for _, role := range []string{keyhold.RoleOwner, keyhold.RoleKeyVaultAdministrator} {
			r, _ := keyhold.FindRoleDefinition(role)
			if err := tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: "/subscriptions/" + c.sub, RoleDefinitionID: r.ID,
				PrincipalID: admin.ID, PrincipalType: string(admin.Type), TenantID: c.tenant, CreatedAt: time.Now()}); err != nil {
				return err
			}
		}
		c.app = &keyhold.Principal{ID: uuid.NewString(), TenantID: c.tenant, Type: keyhold.PrincipalServicePrincipal,
			DisplayName: "platform-cmk", AppID: uuid.NewString(), CreatedAt: time.Now()}
		return tx.CreatePrincipal(ctx, c.app)
	})
	c.admin = keyhold.NewContext(ctx, &keyhold.Identity{TenantID: c.tenant, PrincipalID: admin.ID, AppID: admin.AppID, Type: admin.Type, Audience: keyhold.AudienceVault})
	c.vaultName = "kvcustomer"
	if _, err := c.v.PutVault(c.admin, &keyhold.Vault{SubscriptionID: c.sub, ResourceGroup: c.rg, Name: c.vaultName, Location: "westeurope",
		EnableRbacAuthorization: true, EnablePurgeProtection: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.v.CreateKey(c.admin, c.vaultName, "cmk", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048}); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(c.addr)
	c.vaultURI = "https://" + c.vaultName + "." + customerVaultDomain + ":" + port
	api := &khttp.Server{Tokens: c.p, Environments: c.p, Data: c.p, Audit: c.p, PublicURL: c.url, Keys: c.p, VaultDomain: customerVaultDomain,
		KeyVault: khttp.KeyVaultAPI{Vaults: c.v, Lookup: func(ctx context.Context, name string) (v *keyhold.Vault, err error) {
			err = store.View(ctx, func(tx keyhold.Tx) error { v, err = tx.Vault(ctx, name); return err })
			return v, err
		}}}
	srv := &nethttp.Server{Handler: api.Handler(), TLSConfig: conf.Clone()}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return c
}

func (c *customerCloud) update(t *testing.T, fn func(keyhold.Tx) error) {
	t.Helper()
	if err := c.store.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// trust registers the platform's issuer and subject as a federated
// credential on the customer's app.
func (c *customerCloud) trust(t *testing.T, issuer, subject string) {
	c.update(t, func(tx keyhold.Tx) error {
		return tx.AddFederatedCredential(context.Background(), &keyhold.FederatedCredential{ID: uuid.NewString(), PrincipalID: c.app.ID, Name: "platform-cmk",
			Issuer: issuer, Subject: subject, Audiences: []string{keyhold.FederatedAudience}, CreatedAt: time.Now()})
	})
}

// grant gives the app Key Vault Crypto Service Encryption User on the
// vault and returns the assignment's id.
func (c *customerCloud) grant(t *testing.T) string {
	id := uuid.NewString()
	c.update(t, func(tx keyhold.Tx) error {
		r, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultCryptoServiceEncryptUser)
		return tx.CreateRoleAssignment(context.Background(), &keyhold.RoleAssignment{ID: id,
			Scope:            "/subscriptions/" + c.sub + "/resourceGroups/" + c.rg + "/providers/Microsoft.KeyVault/vaults/" + c.vaultName,
			RoleDefinitionID: r.ID, PrincipalID: c.app.ID, PrincipalType: "ServicePrincipal", TenantID: c.tenant, CreatedAt: time.Now()})
	})
	return id
}

// TestExternalVaultLinkLockReenable runs the vertical slice of issue 13
// with two Keyholds: an environment is linked to a policy whose key is in
// the customer's Keyhold, reached as the policy's managed identity through
// the customer's federated credential; its rows read back under that key;
// the customer removing the role assignment locks it at the next health
// check; re-granting makes the policy Healthy and re-enabling unwraps the
// key across the boundary again.
func TestExternalVaultLinkLockReenable(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		f.clock.Set(time.Now()) // the customer's directory checks the assertion's times with its own clock
		pool, conf := externalCA(t)
		platformAddr := serve(t, (&khttp.Server{Tokens: f.p, Environments: f.p, Data: f.p, Audit: f.p, PublicURL: cmkBase, Keys: f.p}).Handler(), conf)
		c := newCustomerCloud(t, pool, conf, platformAddr)
		useExternal(f.p.core, func(x keyhold.ExternalKeyVault, assertion func(context.Context) (string, error)) (keyhold.KeyWrapper, error) {
			hc := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: khttp.VaultDialer(customerVaultDomain, c.addr)}}
			t.Cleanup(hc.CloseIdleConnections)
			return keyprovider.NewFederated(keyprovider.FederatedIdentity{TenantID: x.TenantID, ClientID: x.ClientID, AuthorityHost: x.AuthorityHost}, assertion,
				&azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}}})
		})
		defer f.runRunner()()

		unused := f.newVault(t, "kv-unused", true)
		pol := f.newPolicy(t, "external", unused, "cmk", func(p *keyhold.EnterprisePolicy) {
			p.KeyVaultID = ""
			p.External = &keyhold.ExternalKeyVault{URI: c.vaultURI, TenantID: c.tenant, ClientID: c.app.AppID, AuthorityHost: c.url + "/"}
		})
		c.trust(t, cmkBase+"/"+f.creds.TenantID+"/v2.0", pol.PrincipalID)
		assignment := c.grant(t)

		env := f.managedEnv(t, "e")
		rows := f.fill(t, env.ID, 20, 3000)
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		e := f.env(t, env.ID)
		wks := f.wrapped(t, env.ID)
		if e.PolicyID != pol.ID() || e.State != keyhold.StateEnabled || e.EncryptionStatus != keyhold.EncryptionSucceeded ||
			len(wks) != 1 || wks[0].Root != keyhold.RootCMK || !strings.HasPrefix(strings.ToLower(wks[0].KeyID), strings.ToLower(c.vaultURI+"/keys/cmk/")) {
			t.Fatalf("after the link: environment %+v, wrapped keys %v; want linked, Enabled, one copy under the customer's key %s", e, describeKeys(wks), c.vaultURI)
		}
		f.check(t, env.ID, rows)
		more := f.fill(t, env.ID, 5)
		f.check(t, env.ID, more)

		// The customer removes the grant: the next health check locks.
		c.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(ctx, assignment) })
		if st, err := f.p.CheckPolicyHealth(ctx, pol.ID()); st != keyhold.HealthUnhealthy {
			t.Fatalf("health check with the grant removed = %s, %v; want %s", st, err, keyhold.HealthUnhealthy)
		}
		if e := f.env(t, env.ID); e.State != keyhold.StateLocked {
			t.Fatalf("environment after the revocation: state %s, want %s", e.State, keyhold.StateLocked)
		}
		if err := f.readBack(env.ID, more); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Fatalf("read while locked = %v, want %s", err, keyhold.CodeEnvironmentLocked)
		}

		// Re-grant, then re-enable: the key is unwrapped across the boundary again.
		c.grant(t)
		if st, err := f.p.CheckPolicyHealth(ctx, pol.ID()); st != keyhold.HealthHealthy || err != nil {
			t.Fatalf("health check after the re-grant = %s, %v; want %s", st, err, keyhold.HealthHealthy)
		}
		if err := f.p.EnableEnvironment(f.ctx, env.ID); err != nil {
			t.Fatalf("EnableEnvironment after the re-grant: %v", err)
		}
		if e := f.env(t, env.ID); e.State != keyhold.StateEnabled {
			t.Fatalf("environment after re-enabling: state %s, want %s", e.State, keyhold.StateEnabled)
		}
		f.check(t, env.ID, rows)
		f.check(t, env.ID, more)
	})
}

// TestExternalVaultUnderOwnDomainRefused: a policy whose external vault's
// address is under this server's own vault domain is refused at link
// (key ids route by their vault, so its key would be looked for in the
// built-in vault), and nothing changes: no operation, no wrapped key, the
// environment still under the platform's key.
func TestExternalVaultUnderOwnDomainRefused(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		useExternal(f.p.core, func(keyhold.ExternalKeyVault, func(context.Context) (string, error)) (keyhold.KeyWrapper, error) {
			t.Error("the external vault was contacted")
			return nil, keyhold.Errorf(keyhold.CodeForbidden, "contacted")
		})
		unused := f.newVault(t, "kv-unused", true)
		pol := f.newPolicy(t, "own-domain", unused, "cmk", func(p *keyhold.EnterprisePolicy) {
			p.KeyVaultID = ""
			p.External = &keyhold.ExternalKeyVault{URI: "https://kvother." + keyhold.DefaultVaultDomain, TenantID: uuid.NewString(), ClientID: uuid.NewString()}
		})
		env := f.managedEnv(t, "e")
		before := f.state(t, env.ID)
		_, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		if keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(err.Error(), "kvother."+keyhold.DefaultVaultDomain) {
			t.Fatalf("LinkPolicy = %v, want BadRequest naming the vault", err)
		}
		if after := f.state(t, env.ID); !reflect.DeepEqual(after, before) {
			t.Errorf("state changed by a refused link:\n before %+v\n after  %+v", before, after)
		}
		if ops := f.operations(t, env.ID); len(ops) != 0 {
			t.Errorf("operations after a refused link: %d, want none", len(ops))
		}
	})
}
