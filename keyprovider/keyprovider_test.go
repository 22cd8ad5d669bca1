package keyprovider_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net"
	nethttp "net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/keyprovider/providertest"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// world is a real platform and vault over a real SQLite store, served over
// HTTPS, with a tenant whose administrator holds Owner and Key Vault
// Administrator on its subscription.
type world struct {
	store           keyhold.Store
	p               *platform.Platform
	v               *vault.Service
	url             string
	ca              []byte
	srv             *nethttp.Server
	tenant, sub, rg string
	admin           context.Context // the administrator's identity
}

// testCA is one CA and server certificate for 127.0.0.1.
var testCA = sync.OnceValues(func() ([]byte, *nethttp.Server) {
	now := time.Now()
	caCert, caKey, err := crypt.GenerateConstrainedCA("Keyhold test CA", []string{"127.0.0.1"}, now.Add(-time.Hour), 24*time.Hour)
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
	return caCert, &nethttp.Server{TLSConfig: conf}
})

// lookupVault is the data plane's unauthenticated vault lookup over a
// store, as the server wires it.
func lookupVault(store keyhold.Store) func(context.Context, string) (*keyhold.Vault, error) {
	return func(ctx context.Context, name string) (v *keyhold.Vault, err error) {
		err = store.View(ctx, func(tx keyhold.Tx) error { v, err = tx.Vault(ctx, name); return err })
		return v, err
	}
}

// newWorld builds a world over SQLite.
func newWorld(t testing.TB) *world {
	t.Helper()
	store, _ := storetest.OpenSQLiteAt(t)
	return newWorldOn(t, store)
}

func newWorldOn(t testing.TB, store keyhold.Store) *world {
	t.Helper()
	ctx := context.Background()
	ca, tmpl := testCA()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{store: store, ca: ca, url: "https://" + ln.Addr().String(), rg: "keys"}
	master, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Destroy)
	if w.p, err = platform.Open(ctx, platform.Config{Store: store, MasterKey: master, Issuer: w.url}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.p.Close() })
	if w.v, err = vault.New(vault.Config{Store: store, MasterKey: master, BaseURL: w.url}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.v.Close() })
	creds, _, err := w.p.BootstrapCustomer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.tenant, w.sub = creds.TenantID, creds.SubscriptionID
	var admin *keyhold.Principal
	w.update(t, func(tx keyhold.Tx) error {
		if admin, err = tx.PrincipalByAppID(ctx, creds.TenantID, creds.ClientID); err != nil {
			return err
		}
		if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: w.sub, Namespace: keyhold.NamespaceKeyVault,
			State: keyhold.ProviderRegistered, UpdatedAt: time.Now()}); err != nil {
			return err
		}
		if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: w.sub, Name: w.rg, Location: "westeurope", CreatedAt: time.Now()}); err != nil {
			return err
		}
		for _, role := range []string{keyhold.RoleOwner, keyhold.RoleKeyVaultAdministrator} {
			if err := w.assign(ctx, tx, admin.ID, role, "/subscriptions/"+w.sub); err != nil {
				return err
			}
		}
		return nil
	})
	w.admin = keyhold.NewContext(ctx, &keyhold.Identity{TenantID: w.tenant, PrincipalID: admin.ID, AppID: admin.AppID,
		Type: admin.Type, Audience: keyhold.AudienceVault})

	api := &khttp.Server{Tokens: w.p, Environments: w.p, Data: w.p, Audit: w.p, PublicURL: w.url, Keys: w.p,
		KeyVault: khttp.KeyVaultAPI{Vaults: w.v, Lookup: lookupVault(store)}}
	w.srv = &nethttp.Server{Handler: api.Handler(), TLSConfig: tmpl.TLSConfig.Clone()}
	go w.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { w.srv.Close() })
	return w
}

func (w *world) update(t testing.TB, fn func(keyhold.Tx) error) {
	t.Helper()
	if err := w.store.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// assign gives principal the built-in role at scope; it returns the
// assignment's id through the store only.
func (w *world) assign(ctx context.Context, tx keyhold.Tx, principal, role, scope string) error {
	r, _ := keyhold.FindRoleDefinition(role)
	return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: scope, RoleDefinitionID: r.ID,
		PrincipalID: principal, PrincipalType: "ServicePrincipal", TenantID: w.tenant, CreatedAt: time.Now()})
}

// identity is a managed identity of the tenant with a client secret, so
// that it can also get tokens from the token endpoint.
type identity struct {
	keyhold.Identity
	secret string
}

func (w *world) newIdentity(t testing.TB) *identity {
	t.Helper()
	p := &keyhold.Principal{ID: uuid.NewString(), TenantID: w.tenant, Type: keyhold.PrincipalManagedIdentity,
		DisplayName: "policy identity", AppID: uuid.NewString(), CreatedAt: time.Now()}
	secret := crypt.NewClientSecret()
	w.update(t, func(tx keyhold.Tx) error {
		if err := tx.CreatePrincipal(context.Background(), p); err != nil {
			return err
		}
		return tx.AddCredential(context.Background(), &keyhold.Credential{PrincipalID: p.ID, SecretHash: crypt.HashClientSecret(secret),
			CreatedAt: time.Now(), ExpiresAt: time.Now().Add(24 * time.Hour)})
	})
	return &identity{Identity: keyhold.Identity{TenantID: w.tenant, PrincipalID: p.ID, AppID: p.AppID, Type: p.Type, Audience: keyhold.AudienceVault}, secret: secret}
}

// newVault creates an RBAC vault with purge protection.
func (w *world) newVault(t testing.TB) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "kv" + hex.EncodeToString(b[:])
	v := &keyhold.Vault{SubscriptionID: w.sub, ResourceGroup: w.rg, Name: name, Location: "westeurope",
		EnableRbacAuthorization: true, EnablePurgeProtection: true}
	if _, err := w.v.PutVault(w.admin, v); err != nil {
		t.Fatalf("PutVault: %v", err)
	}
	return name
}

// grant gives id the role Key Vault Crypto Service Encryption User (get,
// wrap, unwrap) on a vault, and returns the assignment's id.
func (w *world) grant(t testing.TB, id *identity, vaultName string) string {
	t.Helper()
	assignment := uuid.NewString()
	w.update(t, func(tx keyhold.Tx) error {
		r, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultCryptoServiceEncryptUser)
		return tx.CreateRoleAssignment(context.Background(), &keyhold.RoleAssignment{ID: assignment,
			Scope:            "/subscriptions/" + w.sub + "/resourceGroups/" + w.rg + "/providers/Microsoft.KeyVault/vaults/" + vaultName,
			RoleDefinitionID: r.ID, PrincipalID: id.PrincipalID, PrincipalType: "ServicePrincipal", TenantID: w.tenant, CreatedAt: time.Now()})
	})
	return assignment
}

// envFor returns a providertest.Env over world w whose provider newProvider
// makes for the identity.
func envFor(t *testing.T, w *world, newProvider func(id *identity) keyprovider.Provider) *providertest.Env {
	id := w.newIdentity(t)
	vaultName := w.newVault(t)
	assignment := w.grant(t, id, vaultName)
	revoke := func(t *testing.T) {
		w.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(context.Background(), assignment) })
	}
	return w.env(t, id, vaultName, revoke, newProvider)
}

// envWithPolicies is envFor with a vault that uses access policies: the
// identity has get, wrapKey and unwrapKey, and the administrator all.
func envWithPolicies(t *testing.T, w *world, newProvider func(id *identity) keyprovider.Provider) *providertest.Env {
	id := w.newIdentity(t)
	var b [4]byte
	rand.Read(b[:])
	vaultName := "ap" + hex.EncodeToString(b[:])
	admin := keyhold.IdentityFrom(w.admin)
	v := &keyhold.Vault{SubscriptionID: w.sub, ResourceGroup: w.rg, Name: vaultName, Location: "westeurope", AccessPolicies: []keyhold.AccessPolicy{
		{ObjectID: admin.PrincipalID, Keys: []string{"all"}},
		{ObjectID: id.PrincipalID, Keys: []string{keyhold.PermGet, keyhold.PermWrapKey, keyhold.PermUnwrapKey}},
	}}
	if _, err := w.v.PutVault(w.admin, v); err != nil {
		t.Fatalf("PutVault: %v", err)
	}
	revoke := func(t *testing.T) {
		if _, err := w.v.UpdateAccessPolicies(w.admin, w.sub, w.rg, vaultName, "remove", []keyhold.AccessPolicy{{ObjectID: id.PrincipalID}}); err != nil {
			t.Fatalf("UpdateAccessPolicies: %v", err)
		}
	}
	return w.env(t, id, vaultName, revoke, newProvider)
}

// env is the providertest.Env of identity id on a vault.
func (w *world) env(t *testing.T, id *identity, vaultName string, revoke func(*testing.T), newProvider func(id *identity) keyprovider.Provider) *providertest.Env {
	keyName := func(id string) string { return id[strings.LastIndex(id, "/")+1:] }
	n := 0
	return &providertest.Env{
		Provider: newProvider(id),
		NewKey: func(t *testing.T) string {
			n++
			b, err := w.v.CreateKey(w.admin, vaultName, "key"+string(rune('a'+n)), keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048})
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			return strings.TrimSuffix(b.KID, "/"+b.Version.Version)
		},
		Rotate: func(t *testing.T, keyID string) {
			if _, err := w.v.RotateKey(w.admin, vaultName, keyName(keyID)); err != nil {
				t.Fatalf("RotateKey: %v", err)
			}
		},
		Disable: func(t *testing.T, keyID string) {
			if _, err := w.v.UpdateKey(w.admin, vaultName, keyName(keyID), "", keyhold.KeyAttributes{Enabled: to.Ptr(false)}, nil, nil); err != nil {
				t.Fatalf("UpdateKey: %v", err)
			}
		},
		Revoke: revoke,
	}
}

// TestBuiltin and TestAzure (azure_test.go) run the conformance suite over each storage
// backend (PostgreSQL when KEYHOLD_TEST_POSTGRES is set, as
// scripts/test.sh does).
func TestBuiltin(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorldOn(t, open(t))
		providertest.Run(t, func(t *testing.T) *providertest.Env {
			return envFor(t, w, func(id *identity) keyprovider.Provider { return keyprovider.NewBuiltin(w.v, &id.Identity) })
		})
	})
}

// TestAccessPolicies runs the suite for every provider (testProviders) on a vault that
// uses access policies rather than RBAC.
func TestAccessPolicies(t *testing.T) {
	w := newWorld(t)
	for _, name := range slices.Sorted(maps.Keys(testProviders)) {
		t.Run(name, func(t *testing.T) {
			providertest.Run(t, func(t *testing.T) *providertest.Env {
				return envWithPolicies(t, w, func(id *identity) keyprovider.Provider { return testProviders[name](t, w, id) })
			})
		})
	}
}

// testProviders makes each provider that the shared tests run over, by
// name: the built-in one here, and Azure in keyhold_azure builds
// (azure_test.go).
var testProviders = map[string]func(t *testing.T, w *world, id *identity) keyprovider.Provider{
	"builtin": func(t *testing.T, w *world, id *identity) keyprovider.Provider {
		return keyprovider.NewBuiltin(w.v, &id.Identity)
	},
}
