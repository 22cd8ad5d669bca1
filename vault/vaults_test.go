package vault

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// stored returns the vault as the store holds it (nil if there is none).
func (f *fixture) stored(name string) *keyhold.Vault {
	f.t.Helper()
	var v *keyhold.Vault
	err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		var err error
		v, err = tx.Vault(context.Background(), name)
		return err
	})
	if codeIs(err, keyhold.CodeNotFound) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	v.URI = f.svc.VaultURI(v.Name) // as the service renders it: what is stored is relative
	return v
}

// unchanged fails t unless the stored vault is still want.
func (f *fixture) unchanged(want *keyhold.Vault) {
	f.t.Helper()
	if got := f.stored(want.Name); !reflect.DeepEqual(got, want) {
		f.t.Fatalf("the vault changed:\n got %+v\nwant %+v", got, want)
	}
}

func TestPutVault(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.newVault("kv-rules", true, func(v *keyhold.Vault) { v.Location = "West Europe" })
		if v.SoftDeleteRetentionDays != 90 || v.SKU != SKUStandard || v.URI != "https://kv-rules.vault.localhost:8443" || v.Location != testLoc ||
			v.TenantID != testTenant || v.NetworkACLs.Bypass != keyhold.BypassAzureServices || v.NetworkACLs.DefaultAction != keyhold.NetworkAllow ||
			v.PublicNetworkAccess != keyhold.PublicAccessEnabled || v.Version != 1 || !v.CreatedAt.Equal(start) {
			t.Fatalf("defaults: %+v", v)
		}
		// No address is stored: the URI is rendered with the public
		// address as the vault is read.
		f.store.View(context.Background(), func(tx keyhold.Tx) error {
			if raw, err := tx.Vault(context.Background(), "kv-rules"); err != nil || raw.URI != "/vaults/kv-rules" {
				t.Errorf("stored vault = %+v, %v; want the URI /vaults/kv-rules", raw, err)
			}
			return nil
		})
		if got := must[*keyhold.Vault](t)(f.svc.GetVault(as(owner), testSub, testRG, "KV-RULES")); !reflect.DeepEqual(got, f.stored("kv-rules")) {
			t.Fatalf("GetVault = %+v", got)
		}

		// An update keeps the retention when it names none, and may turn
		// purge protection on.
		f.clock.Advance(time.Hour)
		upd := *v
		upd.SoftDeleteRetentionDays, upd.EnablePurgeProtection = 0, true
		if created, err := f.svc.PutVault(as(owner), &upd); err != nil || created {
			t.Fatalf("update: %v, %v", created, err)
		}
		if upd.SoftDeleteRetentionDays != 90 || !upd.EnablePurgeProtection || upd.Version != 2 || !upd.CreatedAt.Equal(start) || !upd.UpdatedAt.Equal(start.Add(time.Hour)) {
			t.Fatalf("after update: %+v", upd)
		}
		before := f.stored("kv-rules")

		for _, tc := range []struct {
			name        string
			id          *keyhold.Identity
			mod         func(v *keyhold.Vault)
			code, inner string
			words       []string
		}{
			{"retention changed", owner, func(v *keyhold.Vault) { v.SoftDeleteRetentionDays = 30 }, keyhold.CodeBadRequest, "", []string{"softDeleteRetentionInDays", "can't be modified"}},
			{"purge protection off", owner, func(v *keyhold.Vault) { v.EnablePurgeProtection = false }, keyhold.CodeBadRequest, "", []string{"enablePurgeProtection", "irreversible"}},
			{"location changed", owner, func(v *keyhold.Vault) { v.Location = "northeurope" }, keyhold.CodeBadRequest, "", []string{"can't be changed"}},
			{"bad sku", owner, func(v *keyhold.Vault) { v.SKU = "gold" }, keyhold.CodeBadRequest, "", []string{`"gold"`}},
			{"bad ip rule", owner, func(v *keyhold.Vault) { v.NetworkACLs.IPRules = []string{"10.0.0.300"} }, keyhold.CodeBadRequest, "", []string{`"10.0.0.300"`}},
			{"bad bypass", owner, func(v *keyhold.Vault) { v.NetworkACLs.Bypass = "Everyone" }, keyhold.CodeBadRequest, "", []string{"AzureServices or None"}},
			{"bad permission", owner, func(v *keyhold.Vault) {
				v.AccessPolicies = []keyhold.AccessPolicy{{ObjectID: "x", Keys: []string{"fly"}}}
			}, keyhold.CodeBadRequest, "", []string{`"fly"`}},
			{"not authorized", stranger, nil, keyhold.CodeAuthorizationFailed, "", []string{
				"The client 'app-stranger' with object id '" + stranger.PrincipalID + "' does not have authorization to perform action 'Microsoft.KeyVault/vaults/write' over scope '" + v.ID() + "'"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := *before
				if tc.mod != nil {
					tc.mod(&req)
				}
				_, err := f.svc.PutVault(as(tc.id), &req)
				wantCode(t, err, tc.code, tc.inner, tc.words...)
				f.unchanged(before)
			})
		}
	})
}

// auditOf returns tenant's audit log.
func (f *fixture) auditOf(tenant string) []*keyhold.AuditEntry {
	f.t.Helper()
	var es []*keyhold.AuditEntry
	f.update(func(tx keyhold.Tx) error {
		var err error
		es, err = tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: tenant, Limit: 1000})
		return err
	})
	return es
}

// TestPutVaultTenantIsTheSubscriptions: a vault's tenant is its
// subscription's. The owner of a subscription in the tenant next door who
// names this tenant is refused with the tenant to give, nothing is
// created, and this tenant's audit log gets nothing (the refusal is in the
// caller's own); an omitted tenant is filled in with the subscription's,
// and naming it (in any case) is accepted.
func TestPutVaultTenantIsTheSubscriptions(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		neighbour := &keyhold.Identity{TenantID: otherTenant, PrincipalID: "00000000-0000-0000-0000-0000000000f1", Type: keyhold.PrincipalUser}
		f.update(func(tx keyhold.Tx) error {
			ctx := context.Background()
			if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: otherSub, Namespace: keyhold.NamespaceKeyVault,
				State: keyhold.ProviderRegistered, UpdatedAt: start}); err != nil {
				return err
			}
			return tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: otherSub, Name: testRG, Location: testLoc, CreatedAt: start})
		})
		f.grant(neighbour, keyhold.RoleOwner, "/subscriptions/"+otherSub)
		oursBefore, theirsBefore := len(f.auditOf(testTenant)), len(f.auditOf(otherTenant))

		v := &keyhold.Vault{SubscriptionID: otherSub, ResourceGroup: testRG, Name: "kv-injected", Location: testLoc, TenantID: testTenant}
		created, err := f.svc.PutVault(as(neighbour), v)
		wantCode(t, err, keyhold.CodeBadRequest, "", `"`+testTenant+`"`, otherSub, "must be its subscription's tenant, "+otherTenant)
		if created || f.stored("kv-injected") != nil {
			t.Fatal("the vault naming another tenant was created")
		}
		if got := f.auditOf(testTenant); len(got) != oursBefore {
			t.Fatalf("the named tenant's audit log grew from %d to %d entries: %+v", oursBefore, len(got), got[0])
		}
		theirs := f.auditOf(otherTenant)
		if len(theirs) != theirsBefore+1 || theirs[0].Result != keyhold.CodeBadRequest || theirs[0].ActorID != neighbour.PrincipalID {
			t.Fatalf("the caller's tenant's audit log: %d entries (was %d), newest %+v; want the refusal", len(theirs), theirsBefore, theirs[0])
		}

		// The same tenant, upper case, is its own; none is filled in.
		v.TenantID = strings.ToUpper(otherTenant)
		if created, err := f.svc.PutVault(as(neighbour), v); err != nil || !created || v.TenantID != otherTenant {
			t.Fatalf("PutVault naming the subscription's tenant: %v, %v, tenant %s", created, err, v.TenantID)
		}
		w := &keyhold.Vault{SubscriptionID: otherSub, ResourceGroup: testRG, Name: "kv-omitted", Location: testLoc}
		if created, err := f.svc.PutVault(as(neighbour), w); err != nil || !created || w.TenantID != otherTenant {
			t.Fatalf("PutVault without a tenant: %v, %v, tenant %s; want the subscription's, %s", created, err, w.TenantID, otherTenant)
		}
		if got := f.auditOf(testTenant); len(got) != oursBefore {
			t.Fatalf("the neighbour's vaults wrote %d entries into this tenant's audit log", len(got)-oursBefore)
		}

		// An update can't move an existing vault to another tenant either.
		before := f.stored("kv-omitted")
		upd := *before
		upd.TenantID = testTenant
		_, err = f.svc.PutVault(as(neighbour), &upd)
		wantCode(t, err, keyhold.CodeBadRequest, "", otherTenant)
		f.unchanged(before)
	})
}

func TestPutVaultRefusesNewVaults(t *testing.T) {
	f := sqliteOnly(t)
	f.newVault("kv-taken", false, nil)
	f.update(func(tx keyhold.Tx) error {
		ctx := context.Background()
		if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: testSub, Name: "rg-other", Location: testLoc, CreatedAt: start}); err != nil {
			return err
		}
		// A subscription that unregistered the namespace.
		return tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: "sub-unreg", Namespace: keyhold.NamespaceKeyVault,
			State: keyhold.ProviderNotRegistered, UpdatedAt: start})
	})
	f.grant(owner, keyhold.RoleOwner, "/subscriptions/sub-unreg")
	f.grant(owner, keyhold.RoleOwner, "/subscriptions/sub-none")
	for _, tc := range []struct {
		name, sub, rg, vault string
		retention            int
		code                 string
		words                []string
	}{
		{"retention 6", testSub, testRG, "kv-new", 6, keyhold.CodeBadRequest, []string{"between 7 and 90"}},
		{"retention 91", testSub, testRG, "kv-new", 91, keyhold.CodeBadRequest, []string{"between 7 and 90"}},
		{"not registered", "sub-unreg", testRG, "kv-new", 0, keyhold.CodeMissingSubscriptionRegistration, []string{"not registered to use namespace 'Microsoft.KeyVault'", "https://aka.ms/rps-not-found"}},
		{"never registered", "sub-none", testRG, "kv-new", 0, keyhold.CodeMissingSubscriptionRegistration, []string{"Microsoft.KeyVault"}},
		{"no resource group", testSub, "rg-missing", "kv-new", 0, keyhold.CodeResourceGroupNotFound, []string{"rg-missing"}},
		{"name in another group", testSub, "rg-other", "KV-Taken", 0, keyhold.CodeConflict, []string{"already in use"}},
		{"bad name", testSub, testRG, "kv--x", 0, keyhold.CodeInvalidName, []string{`"kv--x"`}},
		{"short name", testSub, testRG, "kv", 0, keyhold.CodeInvalidName, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &keyhold.Vault{SubscriptionID: tc.sub, ResourceGroup: tc.rg, Name: tc.vault, Location: testLoc, SoftDeleteRetentionDays: tc.retention}
			created, err := f.svc.PutVault(as(owner), v)
			wantCode(t, err, tc.code, "", tc.words...)
			if created || (tc.vault == "kv-new" && f.stored("kv-new") != nil) {
				t.Fatal("a vault was created")
			}
		})
	}
	// Bounds are inclusive.
	for _, days := range []int{7, 90} {
		v := f.newVault("kv-days-"+string(rune('a'+days%26)), false, func(v *keyhold.Vault) { v.SoftDeleteRetentionDays = days })
		if v.SoftDeleteRetentionDays != days {
			t.Fatalf("retention %d stored as %d", days, v.SoftDeleteRetentionDays)
		}
	}
}

func TestVaultSoftDelete(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-protected", func(v *keyhold.Vault) { v.EnablePurgeProtection, v.SoftDeleteRetentionDays = true, 7 })
		f.createKey(v.Name, "cmk")
		kid, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", "RSA-OAEP-256", []byte("ek")))

		f.clock.Advance(time.Hour)
		deletedAt := f.clock.Now()
		if err := f.svc.DeleteVault(as(stranger), testSub, testRG, v.Name); !codeIs(err, keyhold.CodeAuthorizationFailed) {
			t.Fatalf("stranger deletes: %v", err)
		}
		if err := f.svc.DeleteVault(as(owner), testSub, testRG, v.Name); err != nil {
			t.Fatal(err)
		}
		_, err := f.svc.GetVault(as(owner), testSub, testRG, v.Name)
		wantCode(t, err, keyhold.CodeResourceNotFound, "", v.Name)
		if err := f.svc.DeleteVault(as(owner), testSub, testRG, v.Name); !codeIs(err, keyhold.CodeResourceNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if vs := must[[]*keyhold.Vault](t)(f.svc.ListVaults(as(owner), testSub, "")); len(vs) != 0 {
			t.Fatalf("ListVaults shows %d vaults", len(vs))
		}
		dv := must[[]*keyhold.Vault](t)(f.svc.ListDeletedVaults(as(owner), testSub))
		if len(dv) != 1 || dv[0].Name != v.Name || !dv[0].DeletedAt.Equal(deletedAt) || !dv[0].ScheduledPurgeAt.Equal(deletedAt.Add(7*day)) {
			t.Fatalf("ListDeletedVaults = %+v", dv)
		}
		must[*keyhold.Vault](t)(f.svc.GetDeletedVault(as(owner), testSub, "West Europe", v.Name))
		// The keys go with the vault.
		_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", "RSA-OAEP-256", ct)
		wantCode(t, err, keyhold.CodeVaultNotFound, "", v.Name)
		// The name stays taken.
		_, err = f.svc.PutVault(as(owner), &keyhold.Vault{SubscriptionID: testSub, ResourceGroup: testRG, Name: v.Name, Location: testLoc})
		wantCode(t, err, keyhold.CodeConflict, "", "deleted state", "recover or purge")

		// Recover brings it back with its keys.
		rv := must[*keyhold.Vault](t)(f.svc.RecoverVault(as(owner), testSub, testRG, v.Name))
		if rv.Deleted() || !rv.ScheduledPurgeAt.IsZero() {
			t.Fatalf("recovered vault: %+v", rv)
		}
		if _, got, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", versionOf(kid), "RSA-OAEP-256", ct); err != nil || string(got) != "ek" {
			t.Fatalf("unwrap after recovery: %v", err)
		}
		_, err = f.svc.RecoverVault(as(owner), testSub, testRG, v.Name)
		wantCode(t, err, keyhold.CodeConflict, "", "not deleted")

		// Under purge protection, purge waits for the scheduled date.
		if err := f.svc.DeleteVault(as(owner), testSub, testRG, v.Name); err != nil {
			t.Fatal(err)
		}
		purgeAt := f.stored(v.Name).ScheduledPurgeAt
		f.clock.Set(purgeAt.Add(-time.Second))
		before := f.stored(v.Name)
		err = f.svc.PurgeDeletedVault(as(owner), testSub, testLoc, v.Name)
		wantCode(t, err, keyhold.CodeConflict, "", "purge protection")
		f.unchanged(before)
		if n, err := f.svc.PurgeExpired(context.Background()); err != nil || n != 0 {
			t.Fatalf("PurgeExpired a second early = %d, %v", n, err)
		}
		f.unchanged(before)
		f.clock.Set(purgeAt)
		if err := f.svc.PurgeDeletedVault(as(stranger), testSub, testLoc, v.Name); !codeIs(err, keyhold.CodeAuthorizationFailed) {
			t.Fatalf("stranger purges: %v", err)
		}
		if err := f.svc.PurgeDeletedVault(as(owner), testSub, testLoc, v.Name); err != nil {
			t.Fatal(err)
		}
		if f.stored(v.Name) != nil {
			t.Fatal("the purged vault is still stored")
		}
		_, err = f.svc.GetDeletedVault(as(owner), testSub, testLoc, v.Name)
		wantCode(t, err, keyhold.CodeResourceNotFound, "")
		// The name is free again, and the new vault has no keys.
		f.rbacVault(v.Name, nil)
		_, err = f.svc.GetKey(as(officer), v.Name, "cmk", "")
		wantCode(t, err, keyhold.CodeKeyNotFound, "")
	})
}

func TestVaultPurgeWithoutProtection(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-open", nil)
		f.createKey(v.Name, "k1")
		if err := f.svc.DeleteVault(as(owner), testSub, testRG, v.Name); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.PurgeDeletedVault(as(owner), testSub, testLoc, v.Name); err != nil {
			t.Fatalf("purge right after delete: %v", err)
		}
		if f.stored(v.Name) != nil {
			t.Fatal("still stored")
		}
	})
}

func TestPurgeExpiredVaults(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-expiring", func(v *keyhold.Vault) { v.SoftDeleteRetentionDays, v.EnablePurgeProtection = 7, true })
		keep := f.rbacVault("kv-kept", nil)
		f.createKey(v.Name, "k1")
		if err := f.svc.DeleteVault(as(owner), testSub, testRG, v.Name); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(7*day - time.Nanosecond)
		if n, err := f.svc.PurgeExpired(context.Background()); err != nil || n != 0 {
			t.Fatalf("before the date: %d, %v", n, err)
		}
		if f.stored(v.Name) == nil {
			t.Fatal("purged early")
		}
		f.clock.Advance(time.Nanosecond)
		if n, err := f.svc.PurgeExpired(context.Background()); err != nil || n != 1 {
			t.Fatalf("on the date: %d, %v", n, err)
		}
		if f.stored(v.Name) != nil || f.stored(keep.Name) == nil {
			t.Fatal("PurgeExpired purged the wrong vaults")
		}
		if n, err := f.svc.PurgeExpired(context.Background()); err != nil || n != 0 {
			t.Fatalf("again: %d, %v", n, err)
		}
	})
}

func TestVaultReadsAndAccessPolicies(t *testing.T) {
	f := sqliteOnly(t)
	v := f.apVault("kv-policies", nil)
	// Reader at the vault sees it; a stranger neither sees nor lists it.
	f.grant(reader, keyhold.RoleReader, v.ID())
	must[*keyhold.Vault](t)(f.svc.GetVault(as(reader), testSub, testRG, v.Name))
	_, err := f.svc.GetVault(as(stranger), testSub, testRG, v.Name)
	wantCode(t, err, keyhold.CodeAuthorizationFailed, "", "Microsoft.KeyVault/vaults/read")
	// A stranger is refused before learning whether a vault exists.
	_, err = f.svc.GetVault(as(stranger), testSub, testRG, "kv-nothing")
	wantCode(t, err, keyhold.CodeAuthorizationFailed, "")
	_, err = f.svc.GetVault(as(owner), testSub, testRG, "kv-nothing")
	wantCode(t, err, keyhold.CodeResourceNotFound, "")
	if vs := must[[]*keyhold.Vault](t)(f.svc.ListVaults(as(stranger), testSub, "")); len(vs) != 0 {
		t.Fatalf("stranger lists %d vaults", len(vs))
	}
	if vs := must[[]*keyhold.Vault](t)(f.svc.ListVaults(as(reader), testSub, testRG)); len(vs) != 1 {
		t.Fatalf("reader lists %d vaults", len(vs))
	}
	_, err = f.svc.ListVaults(as(owner), testSub, "rg-missing")
	wantCode(t, err, keyhold.CodeResourceGroupNotFound, "")

	// apUser may wrap but not unwrap; add unwrapkey, then remove wrapkey.
	policy := func() []string {
		for _, p := range f.stored(v.Name).AccessPolicies {
			if p.ObjectID == apUser.PrincipalID {
				return p.Keys
			}
		}
		return nil
	}
	before := f.stored(v.Name)
	_, err = f.svc.UpdateAccessPolicies(as(reader), testSub, testRG, v.Name, "add", []keyhold.AccessPolicy{{ObjectID: apUser.PrincipalID, Keys: []string{"unwrapKey"}}})
	wantCode(t, err, keyhold.CodeAuthorizationFailed, "", "Microsoft.KeyVault/vaults/accessPolicies/write")
	_, err = f.svc.UpdateAccessPolicies(as(owner), testSub, testRG, v.Name, "merge", nil)
	wantCode(t, err, keyhold.CodeBadRequest, "", "add, replace or remove")
	f.unchanged(before)

	must[*keyhold.Vault](t)(f.svc.UpdateAccessPolicies(as(owner), testSub, testRG, v.Name, "add", []keyhold.AccessPolicy{{ObjectID: apUser.PrincipalID, Keys: []string{"UnwrapKey", "get"}}}))
	if got := policy(); !reflect.DeepEqual(got, []string{"wrapkey", "unwrapkey", "get"}) {
		t.Fatalf("after add: %q", got)
	}
	must[*keyhold.Vault](t)(f.svc.UpdateAccessPolicies(as(owner), testSub, testRG, v.Name, "remove", []keyhold.AccessPolicy{{ObjectID: apUser.PrincipalID, Keys: []string{"wrapkey"}}}))
	if got := policy(); !reflect.DeepEqual(got, []string{"unwrapkey", "get"}) {
		t.Fatalf("after remove: %q", got)
	}
	must[*keyhold.Vault](t)(f.svc.UpdateAccessPolicies(as(owner), testSub, testRG, v.Name, "replace", []keyhold.AccessPolicy{{ObjectID: apUser.PrincipalID, Keys: []string{"list"}}}))
	if got := policy(); !reflect.DeepEqual(got, []string{"list"}) {
		t.Fatalf("after replace: %q", got)
	}
	got := must[*keyhold.Vault](t)(f.svc.UpdateAccessPolicies(as(owner), testSub, testRG, v.Name, "remove", []keyhold.AccessPolicy{{ObjectID: apUser.PrincipalID}}))
	if policy() != nil || len(got.AccessPolicies) != 1 {
		t.Fatalf("after removing the whole policy: %+v", got.AccessPolicies)
	}
}

// must2 is must for functions that return two values and an error.
func must2(t *testing.T) func(a string, b []byte, err error) (string, []byte) {
	return func(a string, b []byte, err error) (string, []byte) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

// versionOf returns the version part of a kid.
func versionOf(kid string) string { return kid[len(kid)-32:] }

// TestStoredVaultURIOfThePreviousRelease: a vault stored by the previous
// release holds its URI as a full URL of the path form, with the host of
// the server that created it; it is read with the URI of today's address,
// host form.
func TestStoredVaultURIOfThePreviousRelease(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		f.newVault("kv-old", true, nil)
		ctx := context.Background()
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			v, err := tx.Vault(ctx, "kv-old")
			if err != nil {
				return err
			}
			v.URI = "https://10.0.0.9:8443/vaults/kv-old"
			return tx.UpdateVault(ctx, v)
		}); err != nil {
			t.Fatal(err)
		}
		v := must[*keyhold.Vault](t)(f.svc.GetVault(as(owner), testSub, testRG, "kv-old"))
		if v.URI != "https://kv-old.vault.localhost:8443" {
			t.Fatalf("URI = %q; want the host form at today's address", v.URI)
		}
		vs := must[[]*keyhold.Vault](t)(f.svc.ListVaults(as(owner), testSub, testRG))
		if len(vs) != 1 || vs[0].URI != v.URI {
			t.Fatalf("ListVaults = %+v", vs)
		}
	})
}
