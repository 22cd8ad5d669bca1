package mhsm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/mhsm"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	hsmtest.Remove()
	os.Exit(code)
}

const (
	tenant = "7a1c0b57-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
	sub    = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901"
	rg     = "rg-hsm"
	loc    = "westeurope"
)

var (
	start    = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	owner    = &keyhold.Identity{TenantID: tenant, PrincipalID: "00000000-0000-0000-0000-00000000000a", Type: keyhold.PrincipalUser}
	admin    = &keyhold.Identity{TenantID: tenant, PrincipalID: "00000000-0000-0000-0000-00000000000b", Type: keyhold.PrincipalUser}
	user     = &keyhold.Identity{TenantID: tenant, PrincipalID: "00000000-0000-0000-0000-00000000000c", Type: keyhold.PrincipalManagedIdentity}
	officer  = &keyhold.Identity{TenantID: tenant, PrincipalID: "00000000-0000-0000-0000-00000000000d", Type: keyhold.PrincipalUser}
	stranger = &keyhold.Identity{TenantID: tenant, PrincipalID: "00000000-0000-0000-0000-00000000000e", Type: keyhold.PrincipalUser}
)

func as(id *keyhold.Identity) context.Context { return keyhold.NewContext(context.Background(), id) }

type fixture struct {
	t     *testing.T
	store keyhold.Store
	clock *clocktest.Clock
	svc   *mhsm.Service
}

func newFixture(t *testing.T, open func(t *testing.T) keyhold.Store) *fixture {
	f := &fixture{t: t, store: open(t), clock: clocktest.New(start)}
	svc, err := mhsm.New(mhsm.Config{Store: f.store, Clock: f.clock, BaseURL: "https://keyhold.test:8443", HSM: hsmtest.Token(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	t.Cleanup(func() { svc.Close() })
	setup(t, f.store)
	return f
}

// setup stores the tenant, its subscription (Microsoft.KeyVault
// registered), the resource group, and owner as the subscription's Owner.
func setup(tb testing.TB, store keyhold.Store, roles ...string) {
	ctx := context.Background()
	err := store.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: tenant, DisplayName: "T", CreatedAt: start}); err != nil {
			return err
		}
		if err := tx.CreateSubscription(ctx, &keyhold.Subscription{ID: sub, TenantID: tenant, DisplayName: "S", CreatedAt: start}); err != nil {
			return err
		}
		if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: sub, Namespace: keyhold.NamespaceKeyVault,
			State: keyhold.ProviderRegistered, UpdatedAt: start}); err != nil {
			return err
		}
		if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: sub, Name: rg, Location: loc, CreatedAt: start}); err != nil {
			return err
		}
		for i, role := range append([]string{keyhold.RoleOwner}, roles...) {
			r, _ := keyhold.FindRoleDefinition(role)
			if err := tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: fmt.Sprintf("aaaaaaaa-0000-0000-0000-%012d", i+1), Scope: "/subscriptions/" + sub,
				RoleDefinitionID: r.ID, PrincipalID: owner.PrincipalID, PrincipalType: string(owner.Type), TenantID: tenant, CreatedAt: start}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if keyhold.ErrorCode(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func (f *fixture) newHSM(name string) *keyhold.ManagedHSM {
	f.t.Helper()
	h := &keyhold.ManagedHSM{SubscriptionID: sub, ResourceGroup: rg, Name: name, Location: loc,
		InitialAdminObjectIDs: []string{admin.PrincipalID}, EnablePurgeProtection: true, SoftDeleteRetentionDays: 7}
	if created, err := f.svc.PutManagedHSM(as(owner), h, false); err != nil || !created {
		f.t.Fatalf("PutManagedHSM = %v, %v", created, err)
	}
	return h
}

// holders are the share holders' RSA keys, generated once.
var holders = func() []*rsa.PrivateKey {
	ks := make([]*rsa.PrivateKey, 3)
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
}()

func domainRequest(quorum int, keys ...*rsa.PrivateKey) keyhold.SecurityDomainRequest {
	req := keyhold.SecurityDomainRequest{Quorum: quorum}
	for _, k := range keys {
		sum := sha256.Sum256(k.N.Bytes())
		req.Keys = append(req.Keys, keyhold.SecurityDomainKey{KID: string(rune('a'+len(req.Keys))) + "-" + string(sum[:2]), N: k.N.Bytes(), E: k.E})
	}
	return req
}

func (f *fixture) activated(name string) bool {
	f.t.Helper()
	h, err := f.svc.LookupManagedHSM(context.Background(), name)
	if err != nil {
		f.t.Fatal(err)
	}
	return h.Activated()
}

func TestManagedHSM(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)

		// The resource manager's RBAC guards the resource.
		_, err := f.svc.PutManagedHSM(as(stranger), &keyhold.ManagedHSM{SubscriptionID: sub, ResourceGroup: rg, Name: "hsm1", Location: loc,
			InitialAdminObjectIDs: []string{admin.PrincipalID}}, false)
		wantCode(t, err, keyhold.CodeAuthorizationFailed)
		if _, err := f.svc.LookupManagedHSM(context.Background(), "hsm1"); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
			t.Fatalf("a refused create stored an HSM: %v", err)
		}
		_, err = f.svc.PutManagedHSM(as(owner), &keyhold.ManagedHSM{SubscriptionID: sub, ResourceGroup: rg, Name: "hsm1", Location: loc}, false)
		wantCode(t, err, keyhold.CodeBadRequest) // no initial administrator
		f.newHSM("hsm1")

		// Inactive: keys and role assignments refused until activation.
		_, err = f.svc.CreateKey(as(admin), "hsm1", "k1", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM})
		wantCode(t, err, keyhold.CodeForbidden)
		_, err = f.svc.PutHSMRoleAssignment(as(admin), "hsm1", &keyhold.HSMRoleAssignment{Name: "11111111-0000-4000-8000-000000000001", Scope: "/",
			RoleDefinitionID: keyhold.HSMRoleDefinitionPrefix + keyhold.RoleHSMCryptoUser, PrincipalID: user.PrincipalID})
		wantCode(t, err, keyhold.CodeForbidden)

		// Refused downloads leave the HSM inactive.
		for _, bad := range []struct {
			id   *keyhold.Identity
			req  keyhold.SecurityDomainRequest
			code string
		}{
			{admin, domainRequest(2, holders[:2]...), keyhold.CodeBadParameter},                     // 2 keys
			{admin, domainRequest(1, holders...), keyhold.CodeBadParameter},                         // quorum 1
			{admin, domainRequest(4, holders...), keyhold.CodeBadParameter},                         // quorum > n
			{admin, domainRequest(2, holders[0], holders[1], holders[0]), keyhold.CodeBadParameter}, // a key twice
			{stranger, domainRequest(2, holders...), keyhold.CodeForbidden},                         // not an administrator
			{owner, domainRequest(2, holders...), keyhold.CodeForbidden},                            // ARM Owner is not a local role
		} {
			_, err := f.svc.DownloadSecurityDomain(as(bad.id), "hsm1", bad.req)
			wantCode(t, err, bad.code)
			if f.activated("hsm1") {
				t.Fatal("a refused download activated the HSM")
			}
		}
		sd, err := f.svc.DownloadSecurityDomain(as(admin), "hsm1", domainRequest(2, holders...))
		if err != nil || len(sd.Shares) != 3 || sd.Quorum != 2 || !f.activated("hsm1") {
			t.Fatalf("download = %+v, %v", sd, err)
		}
		_, err = f.svc.DownloadSecurityDomain(as(admin), "hsm1", domainRequest(2, holders...))
		wantCode(t, err, keyhold.CodeConflict)

		// Recovery: a quorum of decrypted shares activates a new HSM; one
		// share, or altered shares, do not.
		dec := make([]keyhold.SecurityDomainShare, 3)
		for i, sh := range sd.Shares {
			pt, err := crypt.UnwrapOAEP(holders[i], crypt.AlgRSAOAEP256, sh.Value)
			if err != nil {
				t.Fatal(err)
			}
			dec[i] = keyhold.SecurityDomainShare{X: sh.X, Value: pt}
		}
		f.newHSM("hsm2")
		err = f.svc.UploadSecurityDomain(as(admin), "hsm2", dec[:1])
		wantCode(t, err, keyhold.CodeBadParameter)
		tampered := []keyhold.SecurityDomainShare{dec[0], {X: dec[2].X, Value: bytes.Clone(dec[2].Value)}}
		tampered[1].Value[0] ^= 1
		err = f.svc.UploadSecurityDomain(as(admin), "hsm2", tampered)
		wantCode(t, err, keyhold.CodeBadParameter)
		err = f.svc.UploadSecurityDomain(as(stranger), "hsm2", dec[1:])
		wantCode(t, err, keyhold.CodeForbidden)
		if f.activated("hsm2") {
			t.Fatal("a refused upload activated the HSM")
		}
		if err := f.svc.UploadSecurityDomain(as(admin), "hsm2", []keyhold.SecurityDomainShare{dec[2], dec[0]}); err != nil || !f.activated("hsm2") {
			t.Fatalf("upload of a quorum: %v", err)
		}

		// Local RBAC.
		_, err = f.svc.CreateKey(as(admin), "hsm1", "k1", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM})
		wantCode(t, err, keyhold.CodeForbidden) // the administrator manages no key
		assign := func(by *keyhold.Identity, name, scope, role string, to *keyhold.Identity) error {
			_, err := f.svc.PutHSMRoleAssignment(as(by), "hsm1", &keyhold.HSMRoleAssignment{Name: name, Scope: scope,
				RoleDefinitionID: keyhold.HSMRoleDefinitionPrefix + role, PrincipalID: to.PrincipalID})
			return err
		}
		wantCode(t, assign(user, "11111111-0000-4000-8000-000000000009", "/", keyhold.RoleHSMCryptoUser, user), keyhold.CodeForbidden)
		wantCode(t, assign(admin, "11111111-0000-4000-8000-000000000009", "/secrets", keyhold.RoleHSMCryptoUser, user), keyhold.CodeBadParameter)
		wantCode(t, assign(admin, "11111111-0000-4000-8000-000000000009", "/", "12338af0-0e69-4776-bea7-57ae8d297424", user), keyhold.CodeBadParameter)
		if as, _ := f.svc.ListHSMRoleAssignments(as(admin), "hsm1", ""); len(as) != 1 {
			t.Fatalf("refused assignments were stored: %d assignments", len(as))
		}
		if err := assign(admin, "11111111-0000-4000-8000-000000000001", "/keys/k1", keyhold.RoleHSMCryptoUser, user); err != nil {
			t.Fatal(err)
		}
		if err := assign(admin, "11111111-0000-4000-8000-000000000002", "/", keyhold.RoleHSMCryptoOfficer, officer); err != nil {
			t.Fatal(err)
		}
		kb, err := f.svc.CreateKey(as(user), "hsm1", "k1", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM})
		if err != nil {
			t.Fatal(err)
		}
		if want := "https://hsm1.managedhsm.localhost:8443/keys/k1/" + kb.Version.Version; kb.KID != want {
			t.Fatalf("kid %s, want %s", kb.KID, want)
		}
		_, err = f.svc.CreateKey(as(user), "hsm1", "k2", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM})
		wantCode(t, err, keyhold.CodeForbidden) // scoped to /keys/k1
		_, err = f.svc.CreateKey(as(user), "hsm1", "k1", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA})
		wantCode(t, err, keyhold.CodeBadParameter) // software keys: none in an HSM
		_, err = f.svc.ListKeys(as(user), "hsm1")
		wantCode(t, err, keyhold.CodeForbidden) // listing needs /keys

		secret := []byte("0123456789abcdef0123456789abcdef")
		kid, ct, err := f.svc.WrapKey(as(user), "hsm1", "k1", "", crypt.AlgRSAOAEP256, secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, pt, err := f.svc.UnwrapKey(as(user), "hsm1", "k1", kb.Version.Version, crypt.AlgRSAOAEP256, ct); err != nil || !bytes.Equal(pt, secret) || kid != kb.KID {
			t.Fatalf("unwrap = %q, %v (kid %s)", pt, err, kid)
		}
		for _, id := range []*keyhold.Identity{stranger, admin, owner} {
			_, _, err = f.svc.UnwrapKey(as(id), "hsm1", "k1", kb.Version.Version, crypt.AlgRSAOAEP256, ct)
			wantCode(t, err, keyhold.CodeForbidden)
		}

		// Disable and enable.
		off, on := false, true
		if _, err := f.svc.UpdateKey(as(user), "hsm1", "k1", "", keyhold.KeyAttributes{Enabled: &off}, nil, nil); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.svc.UnwrapKey(as(user), "hsm1", "k1", kb.Version.Version, crypt.AlgRSAOAEP256, ct)
		wantCode(t, err, keyhold.CodeForbidden)
		if _, err := f.svc.UpdateKey(as(user), "hsm1", "k1", "", keyhold.KeyAttributes{Enabled: &on}, nil, nil); err != nil {
			t.Fatal(err)
		}

		// Rotation keeps the old version.
		rb, err := f.svc.RotateKey(as(user), "hsm1", "k1")
		if err != nil || rb.Version.Version == kb.Version.Version {
			t.Fatalf("rotate = %v, %v", rb, err)
		}
		if _, pt, err := f.svc.UnwrapKey(as(user), "hsm1", "k1", kb.Version.Version, crypt.AlgRSAOAEP256, ct); err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("unwrap with the old version after rotation: %v", err)
		}
		if vs, err := f.svc.ListKeyVersions(as(user), "hsm1", "k1"); err != nil || len(vs) != 2 {
			t.Fatalf("versions = %d, %v", len(vs), err)
		}

		// Delete, recover (the officer's), purge refused under purge protection.
		if _, err := f.svc.DeleteKey(as(user), "hsm1", "k1"); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.svc.WrapKey(as(user), "hsm1", "k1", "", crypt.AlgRSAOAEP256, secret)
		wantCode(t, err, keyhold.CodeKeyNotFound)
		_, err = f.svc.RecoverDeletedKey(as(user), "hsm1", "k1")
		wantCode(t, err, keyhold.CodeForbidden)
		wantCode(t, f.svc.PurgeDeletedKey(as(officer), "hsm1", "k1"), keyhold.CodeForbidden)
		if _, err := f.svc.GetDeletedKey(as(officer), "hsm1", "k1"); err != nil {
			t.Fatalf("a refused purge removed the key: %v", err)
		}
		if _, err := f.svc.RecoverDeletedKey(as(officer), "hsm1", "k1"); err != nil {
			t.Fatal(err)
		}

		// Removing the crypto user's assignment ends its access.
		if _, err := f.svc.DeleteHSMRoleAssignment(as(user), "hsm1", "11111111-0000-4000-8000-000000000001"); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("the crypto user removed an assignment: %v", err)
		}
		if _, err := f.svc.DeleteHSMRoleAssignment(as(admin), "hsm1", "11111111-0000-4000-8000-000000000001"); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.svc.UnwrapKey(as(user), "hsm1", "k1", kb.Version.Version, crypt.AlgRSAOAEP256, ct)
		wantCode(t, err, keyhold.CodeForbidden)

		// Soft delete of the HSM: its data plane answers no more; purge
		// protection holds; recovery brings it back with its keys.
		wantCode(t, f.svc.DeleteManagedHSM(as(stranger), sub, rg, "hsm1"), keyhold.CodeAuthorizationFailed)
		if err := f.svc.DeleteManagedHSM(as(owner), sub, rg, "hsm1"); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.GetKey(as(officer), "hsm1", "k1", "")
		wantCode(t, err, keyhold.CodeVaultNotFound)
		if ds, err := f.svc.ListDeletedManagedHSMs(as(owner), sub); err != nil || len(ds) != 1 {
			t.Fatalf("deleted = %v, %v", ds, err)
		}
		wantCode(t, f.svc.PurgeDeletedManagedHSM(as(owner), sub, loc, "hsm1"), keyhold.CodeConflict)
		_, err = f.svc.PutManagedHSM(as(owner), &keyhold.ManagedHSM{SubscriptionID: sub, ResourceGroup: rg, Name: "hsm1", Location: loc,
			InitialAdminObjectIDs: []string{admin.PrincipalID}}, false)
		wantCode(t, err, keyhold.CodeConflict)
		if _, err := f.svc.PutManagedHSM(as(owner), &keyhold.ManagedHSM{SubscriptionID: sub, ResourceGroup: rg, Name: "hsm1", Location: loc}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.GetKey(as(officer), "hsm1", "k1", ""); err != nil {
			t.Fatalf("the recovered HSM lost its key: %v", err)
		}
		// Past the retention, the purge goes through.
		if err := f.svc.DeleteManagedHSM(as(owner), sub, rg, "hsm1"); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(8 * 24 * time.Hour)
		if err := f.svc.PurgeDeletedManagedHSM(as(owner), sub, loc, "hsm1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.LookupManagedHSM(context.Background(), "hsm1"); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
			t.Fatalf("purged HSM still found: %v", err)
		}
	})
}
