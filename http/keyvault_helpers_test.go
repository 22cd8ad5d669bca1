package http

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// kvFixture is a fixture whose Server also serves the built-in key vault,
// with the bootstrap administrator holding Owner and Key Vault
// Administrator on the subscription, Microsoft.KeyVault registered and a
// resource group "keys".
type kvFixture struct {
	*fixture
	v       *vault.Service
	adminID string // the bootstrap administrator's object id
	rg      string
}

// storeLookup is the data plane's vault lookup over the fixture's store,
// as server.Run wires it.
func storeLookup(store keyhold.Store) func(context.Context, string) (*keyhold.Vault, error) {
	return func(ctx context.Context, name string) (v *keyhold.Vault, err error) {
		err = store.View(ctx, func(tx keyhold.Tx) error { v, err = tx.Vault(ctx, name); return err })
		return v, err
	}
}

// newKVFixture serves over SQLite.
func newKVFixture(t *testing.T) *kvFixture {
	t.Helper()
	return newKVFixtureOn(t, storetest.OpenSQLite(t))
}

// forEachKVBackend runs fn against a kvFixture over each storage backend.
func forEachKVBackend(t *testing.T, fn func(t *testing.T, kf *kvFixture)) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newKVFixtureOn(t, open(t)))
	})
}

func newKVFixtureOn(t *testing.T, store keyhold.Store) *kvFixture {
	t.Helper()
	return newKVFixtureHSM(t, store, nil)
}

// newKVFixtureHSM is newKVFixtureOn with the vault's RSA-HSM keys in the
// PKCS#11 token hsm (nil: none).
func newKVFixtureHSM(t *testing.T, store keyhold.Store, hsm *vault.PKCS11Config) *kvFixture {
	t.Helper()
	kf := &kvFixture{rg: "keys"}
	kf.fixture = newFixtureOn(t, store, func(f *fixture) {
		master, err := crypt.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(master.Destroy)
		kf.v, err = vault.New(vault.Config{Store: f.store, MasterKey: master, Clock: f.clock, BaseURL: f.url, HSM: hsm})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kf.v.Close() })
		f.srv.KeyVault = KeyVaultAPI{Vaults: kf.v, Lookup: storeLookup(f.store)}
	})
	ctx := context.Background()
	err := kf.store.Update(ctx, func(tx keyhold.Tx) error {
		admin, err := tx.PrincipalByAppID(ctx, kf.creds.TenantID, kf.creds.ClientID)
		if err != nil {
			return err
		}
		kf.adminID = admin.ID
		if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: kf.creds.SubscriptionID,
			Namespace: keyhold.NamespaceKeyVault, State: keyhold.ProviderRegistered, UpdatedAt: kf.clock.Now()}); err != nil {
			return err
		}
		if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: kf.creds.SubscriptionID, Name: kf.rg,
			Location: "westeurope", CreatedAt: kf.clock.Now()}); err != nil {
			return err
		}
		for _, role := range []string{keyhold.RoleOwner, keyhold.RoleKeyVaultAdministrator} {
			if err := kf.assign(ctx, tx, admin.ID, role, "/subscriptions/"+kf.creds.SubscriptionID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

// assign gives a principal a built-in role at scope.
func (kf *kvFixture) assign(ctx context.Context, tx keyhold.Tx, principal, role, scope string) error {
	r, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		panic("no role " + role)
	}
	return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: scope, RoleDefinitionID: r.ID,
		PrincipalID: principal, PrincipalType: "ServicePrincipal", TenantID: kf.creds.TenantID, CreatedAt: kf.clock.Now()})
}

// admin is a context carrying the administrator's identity, for calls
// straight to the vault service.
func (kf *kvFixture) admin() context.Context {
	return keyhold.NewContext(context.Background(), &keyhold.Identity{TenantID: kf.creds.TenantID, PrincipalID: kf.adminID,
		AppID: kf.creds.ClientID, Type: keyhold.PrincipalServicePrincipal, Audience: keyhold.AudienceVault})
}

// newRBACVault creates an RBAC vault through the service.
func (kf *kvFixture) newRBACVault(t *testing.T, name string) *keyhold.Vault {
	t.Helper()
	v := &keyhold.Vault{SubscriptionID: kf.creds.SubscriptionID, ResourceGroup: kf.rg, Name: name, Location: "westeurope",
		EnableRbacAuthorization: true}
	if _, err := kf.v.PutVault(kf.admin(), v); err != nil {
		t.Fatalf("PutVault: %v", err)
	}
	return v
}

// credential is the administrator's azcore credential.
func (kf *kvFixture) credential() azcore.TokenCredential { return NewCredential(kf.client) }

// keysClient is an azkeys client of a vault, as the administrator.
func (kf *kvFixture) keysClient(t *testing.T, vaultURL string) *azkeys.Client {
	t.Helper()
	// The SDK's default options, challenge verification included; the
	// Client's transport dials {vault}.vault.localhost at the server.
	c, err := azkeys.NewClient(vaultURL, kf.credential(), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: kf.client.HTTPClient(),
			Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pathKeysClient is an azkeys client of a vault by the path form,
// <server>/vaults/{name}: its challenge names https://vault.azure.net,
// which is not the server's domain, so verification is off.
func (kf *kvFixture) pathKeysClient(t *testing.T, name string) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(kf.url+"/vaults/"+name, kf.credential(), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: kf.client.HTTPClient(),
			Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// vaultURI is a vault's URI, host form, without a trailing slash.
func (kf *kvFixture) vaultURI(name string) string {
	_, port, _ := strings.Cut(strings.TrimPrefix(kf.url, "https://"), ":")
	return "https://" + name + ".vault.localhost:" + port
}

// vaultsClient is an armkeyvault client of the subscription, as the
// administrator, with the server as its resource manager.
func (kf *kvFixture) vaultsClient(t *testing.T) *armkeyvault.VaultsClient {
	t.Helper()
	c, err := armkeyvault.NewVaultsClient(kf.creds.SubscriptionID, kf.credential(), &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: kf.url, Audience: string(keyhold.AudienceManagement)},
			}},
			Transport: kf.client.HTTPClient(),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableRPRegistration: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kvPollFreq makes SDK pollers poll quickly, should they ever need to.
var kvPollFreq = time.Millisecond

// testRSAKey is one RSA-2048 key for import tests.
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// testJWK is testRSAKey as an azkeys JSON web key, private part included.
func testJWK(t *testing.T) *azkeys.JSONWebKey {
	t.Helper()
	k := testRSAKey()
	return &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: k.N.Bytes(), E: big.NewInt(int64(k.E)).Bytes(),
		D: k.D.Bytes(), P: k.Primes[0].Bytes(), Q: k.Primes[1].Bytes(),
		DP: k.Precomputed.Dp.Bytes(), DQ: k.Precomputed.Dq.Bytes(), QI: k.Precomputed.Qinv.Bytes()}
}
