package vault

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func TestMain(m *testing.M) {
	// Software RSA-2048 keys come from a pool generated once per test
	// binary: generating them is what would make these tests slow.
	// Other sizes are generated for real.
	generateRSAKey = func(bits int) (*rsa.PrivateKey, error) {
		if bits == 2048 {
			return poolKey(), nil
		}
		return crypt.GenerateRSAKey(bits)
	}
	code := m.Run()
	hsmtest.Remove()
	os.Exit(code)
}

// keyPoolSize keys are handed out round robin, so consecutive versions of
// a key (and keys created one after another) hold different keys.
const keyPoolSize = 6

var (
	keyPool = sync.OnceValue(func() []*rsa.PrivateKey {
		keys := make([]*rsa.PrivateKey, keyPoolSize)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := crypt.GenerateRSAKey(2048)
				if err != nil {
					panic(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		return keys
	})
	keyPoolNext atomic.Uint64
)

func poolKey() *rsa.PrivateKey {
	return keyPool()[keyPoolNext.Add(1)%keyPoolSize]
}

const day = 24 * time.Hour

var start = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

const (
	testTenant = "7a1c0b57-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
	testSub    = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901"
	testRG     = "rg-keys"
	// otherTenant holds otherSub: the tenant next door.
	otherTenant = "3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b"
	otherSub    = "4d5e6f70-8192-43a4-b5c6-d7e8f90a1b2c"
	testBase    = "https://keyhold.test:8443"
	testLoc     = "westeurope"
)

// Principals of the tests. Each is who its name says; the fixture gives
// them their roles.
var (
	owner    = &keyhold.Identity{TenantID: testTenant, PrincipalID: "00000000-0000-0000-0000-00000000000a", Type: keyhold.PrincipalUser}
	officer  = &keyhold.Identity{TenantID: testTenant, PrincipalID: "00000000-0000-0000-0000-00000000000b", AppID: "app-officer", Type: keyhold.PrincipalServicePrincipal}
	encUser  = &keyhold.Identity{TenantID: testTenant, PrincipalID: "00000000-0000-0000-0000-00000000000c", Type: keyhold.PrincipalManagedIdentity}
	reader   = &keyhold.Identity{TenantID: testTenant, PrincipalID: "00000000-0000-0000-0000-00000000000d", Type: keyhold.PrincipalUser}
	stranger = &keyhold.Identity{TenantID: testTenant, PrincipalID: "00000000-0000-0000-0000-00000000000e", AppID: "app-stranger", Type: keyhold.PrincipalServicePrincipal}
	apUser   = &keyhold.Identity{TenantID: testTenant, PrincipalID: "00000000-0000-0000-0000-00000000000f", AppID: "app-ap", Type: keyhold.PrincipalServicePrincipal}
)

// fixture is a Service over a real store, with a subscription that
// registered Microsoft.KeyVault, a resource group, and owner as the
// subscription's Owner.
type fixture struct {
	t     testing.TB
	store keyhold.Store
	clock *clocktest.Clock
	svc   *Service
	nextA atomic.Int64
}

func newFixture(t *testing.T, open func(t *testing.T) keyhold.Store) *fixture {
	return newFixtureWith(t, open, nil)
}

func newFixtureWith(t *testing.T, open func(t *testing.T) keyhold.Store, hsm *PKCS11Config) *fixture {
	t.Helper()
	return newFixtureOn(t, open(t), hsm)
}

// newFixtureOn is newFixture over a given store, for benchmarks too.
func newFixtureOn(t testing.TB, store keyhold.Store, hsm *PKCS11Config) *fixture {
	t.Helper()
	f := &fixture{t: t, store: store, clock: clocktest.New(start)}
	master, err := crypt.KeyFromBytes([]byte(strings.Repeat("m", crypt.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	defer master.Destroy()
	f.svc, err = New(Config{Store: f.store, MasterKey: master, Clock: f.clock, BaseURL: testBase + "/", HSM: hsm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	f.update(func(tx keyhold.Tx) error {
		// Two tenants, each with a subscription: a vault's tenant is its
		// subscription's.
		for _, tn := range []struct{ tenant, sub string }{{testTenant, testSub}, {otherTenant, otherSub}} {
			if err := tx.CreateTenant(context.Background(), &keyhold.Tenant{ID: tn.tenant, DisplayName: "Tenant " + tn.tenant[:4], CreatedAt: start}); err != nil {
				return err
			}
			if err := tx.CreateSubscription(context.Background(), &keyhold.Subscription{ID: tn.sub, TenantID: tn.tenant, DisplayName: "Subscription " + tn.sub[:4], CreatedAt: start}); err != nil {
				return err
			}
		}
		if err := tx.PutProviderRegistration(context.Background(), &keyhold.ProviderRegistration{
			SubscriptionID: testSub, Namespace: keyhold.NamespaceKeyVault, State: keyhold.ProviderRegistered, UpdatedAt: start}); err != nil {
			return err
		}
		return tx.CreateResourceGroup(context.Background(), &keyhold.ResourceGroup{SubscriptionID: testSub, Name: testRG, Location: testLoc, CreatedAt: start})
	})
	f.grant(owner, keyhold.RoleOwner, "/subscriptions/"+testSub)
	return f
}

func sqliteOnly(t *testing.T) *fixture { return newFixture(t, storetest.OpenSQLite) }

func (f *fixture) update(fn func(tx keyhold.Tx) error) {
	f.t.Helper()
	if err := f.store.Update(context.Background(), fn); err != nil {
		f.t.Fatal(err)
	}
}

// grant assigns a built-in role at scope.
func (f *fixture) grant(id *keyhold.Identity, role, scope string) {
	f.t.Helper()
	r, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		f.t.Fatalf("no role %q", role)
	}
	n := f.nextA.Add(1)
	f.update(func(tx keyhold.Tx) error {
		return tx.CreateRoleAssignment(context.Background(), &keyhold.RoleAssignment{
			ID: fmt.Sprintf("aaaaaaaa-0000-0000-0000-%012d", n), Scope: scope, RoleDefinitionID: r.ID,
			PrincipalID: id.PrincipalID, PrincipalType: string(id.Type), TenantID: id.TenantID, CreatedAt: f.clock.Now()})
	})
}

// as returns a context of a call by id.
func as(id *keyhold.Identity) context.Context {
	return keyhold.NewContext(context.Background(), id)
}

// from returns a context of a call by id from origin.
func from(id *keyhold.Identity, o keyhold.Origin) context.Context {
	return keyhold.NewOriginContext(as(id), o)
}

// newVault creates a vault as owner, with mod applied to the request.
func (f *fixture) newVault(name string, rbac bool, mod func(v *keyhold.Vault)) *keyhold.Vault {
	f.t.Helper()
	v := &keyhold.Vault{SubscriptionID: testSub, ResourceGroup: testRG, Name: name, Location: testLoc, EnableRbacAuthorization: rbac}
	if mod != nil {
		mod(v)
	}
	created, err := f.svc.PutVault(as(owner), v)
	if err != nil || !created {
		f.t.Fatalf("PutVault(%s) = %v, %v", name, created, err)
	}
	return v
}

// rbacVault creates an RBAC vault where officer is Key Vault Crypto
// Officer, encUser Key Vault Crypto Service Encryption User and reader
// Key Vault Reader.
func (f *fixture) rbacVault(name string, mod func(v *keyhold.Vault)) *keyhold.Vault {
	f.t.Helper()
	v := f.newVault(name, true, mod)
	f.grant(officer, keyhold.RoleKeyVaultCryptoOfficer, v.ID())
	f.grant(encUser, keyhold.RoleKeyVaultCryptoServiceEncryptUser, v.ID())
	f.grant(reader, keyhold.RoleKeyVaultReader, v.ID())
	return v
}

// apVault creates an access-policy vault where officer holds every key
// permission and apUser only wrapKey.
func (f *fixture) apVault(name string, mod func(v *keyhold.Vault)) *keyhold.Vault {
	f.t.Helper()
	return f.newVault(name, false, func(v *keyhold.Vault) {
		v.AccessPolicies = []keyhold.AccessPolicy{
			{ObjectID: officer.PrincipalID, Keys: []string{"all"}},
			{ObjectID: apUser.PrincipalID, Keys: []string{keyhold.PermWrapKey}},
		}
		if mod != nil {
			mod(v)
		}
	})
}

// createKey creates an RSA-2048 key as officer.
func (f *fixture) createKey(vault, name string) *keyhold.KeyBundle {
	f.t.Helper()
	b, err := f.svc.CreateKey(as(officer), vault, name, keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA})
	if err != nil {
		f.t.Fatalf("CreateKey(%s/%s): %v", vault, name, err)
	}
	return b
}

// wantCode fails t unless err carries code (and inner, if given), and its
// message holds each of words.
func wantCode(t *testing.T, err error, code, inner string, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want %s", code)
	}
	var e *keyhold.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T); want a *keyhold.Error with code %s", err, err, code)
	}
	if e.Code != code || e.Inner != inner {
		t.Fatalf("got %s/%s (%v); want %s/%s", e.Code, e.Inner, err, code, inner)
	}
	for _, w := range words {
		if !strings.Contains(e.Message, w) {
			t.Fatalf("message %q does not say %q", e.Message, w)
		}
	}
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ptr[T any](v T) *T { return &v }
