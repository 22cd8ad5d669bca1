package policy

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

var systemIDRE = regexp.MustCompile(`^/regions/europe/providers/Microsoft\.PowerPlatform/enterprisePolicies/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestPutCreatesPolicyWithIdentity: a policy is created with a managed
// identity of its own, its systemId in the spec's shape, health
// Undetermined, on both backends; putting it again changes nothing.
func TestPutCreatesPolicyWithIdentity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		spec := f.spec()
		spec.Location, spec.Kind, spec.Tags = "Europe", "encryption", map[string]string{"env": "prod"}
		p, created, err := f.s.Put(as(f.admin), f.sub, "RG", "Contoso-Policy", spec)
		if err != nil || !created {
			t.Fatalf("Put = %v, %v", created, err)
		}
		if p.Name != "Contoso-Policy" || p.ResourceGroup != "rg" || p.Location != "europe" || p.Kind != keyhold.PolicyKindEncryption ||
			p.KeyVaultID != f.vaultID("contoso-kv") || p.KeyName != "cmk" || p.KeyVersion != "" || p.EncryptionState != keyhold.PolicyEncryptionEnabled ||
			p.HealthStatus != keyhold.HealthUndetermined || p.TenantID != f.tenant || p.Tags["env"] != "prod" || p.Version != 1 {
			t.Fatalf("Put stored %+v", p)
		}
		if !systemIDRE.MatchString(p.SystemID) {
			t.Fatalf("systemId %q is not /regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid}", p.SystemID)
		}
		f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
			mi, err := tx.Principal(ctx, p.PrincipalID)
			if err != nil {
				return err
			}
			if mi.Type != keyhold.PrincipalManagedIdentity || mi.TenantID != f.tenant || mi.DisplayName != "Contoso-Policy" || mi.AppID == "" {
				t.Errorf("the policy's identity is %+v", mi)
			}
			return nil
		})
		if got := f.auditActions(t); !slices.Equal(got, []string{"managedIdentity.create", "enterprisePolicy.create"}) {
			t.Fatalf("audit = %v", got)
		}

		got, err := f.s.Get(as(f.admin), f.sub, "rg", "contoso-policy")
		if err != nil || got.SystemID != p.SystemID || got.PrincipalID != p.PrincipalID {
			t.Fatalf("Get = %+v, %v", got, err)
		}

		before := f.snapshot(t)
		again, created, err := f.s.Put(as(f.admin), f.sub, "rg", "contoso-policy", spec)
		if err != nil || created || again.PrincipalID != p.PrincipalID || again.SystemID != p.SystemID {
			t.Fatalf("Put again = %+v, %v, %v", again, created, err)
		}
		f.unchanged(t, "putting the same policy again", before)
	})
}

// TestPutRefusals: every refusal names the fix and changes nothing.
func TestPutRefusals(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	unreg := newFixture(t, storetest.OpenSQLite(t), unregistered)
	f.update(t, func(ctx context.Context, tx keyhold.Tx) error {
		k, err := tx.Key(ctx, "contoso-kv", "cmk")
		if err != nil {
			return err
		}
		old := *k
		old.Name, old.DeletedAt = "old", f.clock.Now()
		return tx.PutKey(ctx, &old)
	})
	tests := []struct {
		name  string
		f     *fixture
		rg    string
		pname string
		edit  func(s *keyhold.PolicySpec)
		code  string
		hints []string
	}{
		{name: "unregistered provider", f: unreg, code: keyhold.CodeMissingSubscriptionRegistration, hints: []string{"Microsoft.PowerPlatform", "register"}},
		{name: "unknown vault", edit: func(s *keyhold.PolicySpec) { s.KeyVaultID = f.vaultID("nope-kv") }, code: keyhold.CodeBadRequest,
			hints: []string{"nope-kv", "create or recover the vault first"}},
		{name: "not a vault id", edit: func(s *keyhold.PolicySpec) { s.KeyVaultID = "https://localhost/vaults/contoso-kv" }, code: keyhold.CodeBadRequest,
			hints: []string{"Resource ID"}},
		{name: "vault in another group", edit: func(s *keyhold.PolicySpec) {
			s.KeyVaultID = strings.Replace(f.vaultID("contoso-kv"), "/keys/", "/rg/", 1)
		},
			code: keyhold.CodeBadRequest, hints: []string{"not the Resource ID of a key vault"}},
		{name: "unknown key", edit: func(s *keyhold.PolicySpec) { s.KeyName = "nokey" }, code: keyhold.CodeBadRequest, hints: []string{"key 'nokey' does not exist", "create"}},
		{name: "deleted key", edit: func(s *keyhold.PolicySpec) { s.KeyName = "old" }, code: keyhold.CodeBadRequest, hints: []string{"recover the deleted one"}},
		{name: "unknown key version", edit: func(s *keyhold.PolicySpec) { s.KeyVersion = strings.Repeat("ab", 16) }, code: keyhold.CodeBadRequest, hints: []string{"has no version"}},
		{name: "malformed key version", edit: func(s *keyhold.PolicySpec) { s.KeyVersion = "v1" }, code: keyhold.CodeBadRequest, hints: []string{"32 hex digits"}},
		{name: "vault without purge protection", edit: func(s *keyhold.PolicySpec) { s.KeyVaultID = f.vaultID("plain-kv") }, code: keyhold.CodeBadRequest,
			hints: []string{"enable purge protection on the vault"}},
		{name: "other kind", edit: func(s *keyhold.PolicySpec) { s.Kind = "Lockbox" }, code: keyhold.CodeNotSupported, hints: []string{"kind 'Lockbox' is not supported", "Encryption"}},
		{name: "no kind", edit: func(s *keyhold.PolicySpec) { s.Kind = "" }, code: keyhold.CodeBadRequest, hints: []string{"kind is missing"}},
		{name: "unknown location", edit: func(s *keyhold.PolicySpec) { s.Location = "westeurope" }, code: keyhold.CodeInvalidLocation,
			hints: []string{"'westeurope'", "unitedstates,southafrica"}},
		{name: "identity type None", edit: func(s *keyhold.PolicySpec) { s.IdentityType = "None" }, code: keyhold.CodeBadRequest, hints: []string{"SystemAssigned"}},
		{name: "no identity", edit: func(s *keyhold.PolicySpec) { s.IdentityType = "" }, code: keyhold.CodeBadRequest, hints: []string{"SystemAssigned"}},
		{name: "encryption disabled", edit: func(s *keyhold.PolicySpec) { s.EncryptionState = "Disabled" }, code: keyhold.CodeNotSupported, hints: []string{"Enabled"}},
		{name: "missing resource group", rg: "nope", code: keyhold.CodeResourceGroupNotFound, hints: []string{"'nope'"}},
		{name: "bad name", pname: "bad name!", code: keyhold.CodeInvalidName, hints: []string{"'bad name!'"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := f
			if tc.f != nil {
				fx = tc.f
			}
			spec := fx.spec()
			if tc.edit != nil {
				tc.edit(&spec)
			}
			rg, name := "rg", "p1"
			if tc.rg != "" {
				rg = tc.rg
			}
			if tc.pname != "" {
				name = tc.pname
			}
			before := fx.snapshot(t)
			_, _, err := fx.s.Put(as(fx.admin), fx.sub, rg, name, spec)
			wantErr(t, err, tc.code, tc.hints...)
			fx.unchanged(t, tc.name, before)
		})
	}
}

// TestUpdate: an update changes the key and tags only.
func TestUpdate(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	p := f.put(t, "p1", f.spec())

	// A new version of the key: health starts over.
	f.update(t, func(ctx context.Context, tx keyhold.Tx) error {
		return tx.UpdatePolicy(ctx, &keyhold.EnterprisePolicy{SubscriptionID: p.SubscriptionID, ResourceGroup: p.ResourceGroup, Name: p.Name,
			Location: p.Location, Kind: p.Kind, TenantID: p.TenantID, PrincipalID: p.PrincipalID, EncryptionState: p.EncryptionState,
			KeyVaultID: p.KeyVaultID, KeyName: p.KeyName, HealthStatus: keyhold.HealthHealthy, UpdatedAt: f.clock.Now(), Version: p.Version})
	})
	spec := f.spec()
	spec.KeyVersion = strings.ToUpper(f.version)
	spec.Tags = map[string]string{"team": "keys"}
	u, created, err := f.s.Put(as(f.admin), f.sub, "rg", "p1", spec)
	if err != nil || created || u.KeyVersion != f.version || u.HealthStatus != keyhold.HealthUndetermined || u.Tags["team"] != "keys" ||
		u.SystemID != p.SystemID || u.PrincipalID != p.PrincipalID {
		t.Fatalf("Put (update) = %+v, %v, %v", u, created, err)
	}
	if got := f.auditActions(t); got[len(got)-1] != "enterprisePolicy.update" {
		t.Fatalf("audit = %v", got)
	}

	// PATCH: the tags alone; then another key, which drops the version.
	tags := map[string]string{"a": "b"}
	u, err = f.s.Patch(as(f.admin), f.sub, "rg", "p1", keyhold.PolicyPatch{Tags: &tags})
	if err != nil || u.Tags["a"] != "b" || u.KeyVersion != f.version {
		t.Fatalf("Patch(tags) = %+v, %v", u, err)
	}
	f.update(t, func(ctx context.Context, tx keyhold.Tx) error {
		return tx.PutKey(ctx, &keyhold.Key{VaultName: "contoso-kv", Name: "cmk2", Type: keyhold.KeyTypeRSA, Size: 2048, CurrentVersion: "x",
			CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()})
	})
	k2 := "CMK2"
	u, err = f.s.Patch(as(f.admin), f.sub, "rg", "p1", keyhold.PolicyPatch{KeyName: &k2})
	if err != nil || u.KeyName != "cmk2" || u.KeyVersion != "" {
		t.Fatalf("Patch(key) = %+v, %v", u, err)
	}

	refusals := []struct {
		name  string
		patch keyhold.PolicyPatch
		put   func(s *keyhold.PolicySpec)
		code  string
		hints []string
	}{
		{name: "PUT changing the location", put: func(s *keyhold.PolicySpec) { s.Location = "asia" }, code: keyhold.CodeBadRequest,
			hints: []string{"location of enterprise policy 'p1' is 'europe' and can't be changed to 'asia'"}},
		{name: "PUT changing the kind", put: func(s *keyhold.PolicySpec) { s.Kind = "Lockbox" }, code: keyhold.CodeBadRequest, hints: []string{"kind of enterprise policy"}},
		{name: "PUT without the location", put: func(s *keyhold.PolicySpec) { s.Location = "" }, code: keyhold.CodeBadRequest, hints: []string{"location is missing"}},
		{name: "PATCH changing the location", patch: keyhold.PolicyPatch{Location: ptr("uk")}, code: keyhold.CodeBadRequest, hints: []string{"location"}},
		{name: "PATCH to a vault without purge protection", patch: keyhold.PolicyPatch{KeyVaultID: ptr(f.vaultID("plain-kv"))}, code: keyhold.CodeBadRequest,
			hints: []string{"enable purge protection"}},
		{name: "PATCH identity None", patch: keyhold.PolicyPatch{IdentityType: ptr("None")}, code: keyhold.CodeBadRequest, hints: []string{"SystemAssigned"}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before := f.snapshot(t)
			var err error
			if tc.put != nil {
				spec := f.spec()
				tc.put(&spec)
				_, _, err = f.s.Put(as(f.admin), f.sub, "rg", "p1", spec)
			} else {
				_, err = f.s.Patch(as(f.admin), f.sub, "rg", "p1", tc.patch)
			}
			wantErr(t, err, tc.code, tc.hints...)
			f.unchanged(t, tc.name, before)
		})
	}
	_, err = f.s.Patch(as(f.admin), f.sub, "rg", "missing", keyhold.PolicyPatch{Tags: &tags})
	wantErr(t, err, keyhold.CodeResourceNotFound, "missing")
}

func ptr(s string) *string { return &s }

// TestLinkedPolicy: while an environment is linked, updates that change
// something are refused naming it, and so are deletes and the group's
// deletion without Config.LockLinked (TestDeleteLinkedPolicy has them with
// it).
func TestLinkedPolicy(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	p := f.put(t, "p1", f.spec())
	f.linkEnv(t, "env-1", "Contoso Sales", p)

	before := f.snapshot(t)
	if _, created, err := f.s.Put(as(f.admin), f.sub, "rg", "p1", f.spec()); err != nil || created {
		t.Fatalf("the same PUT while linked = %v, %v; want a no-op", created, err)
	}
	f.unchanged(t, "the same PUT while linked", before)

	spec := f.spec()
	spec.KeyVersion = f.version
	tags := map[string]string{"x": "y"}
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"PUT another version", func() error { _, _, err := f.s.Put(as(f.admin), f.sub, "rg", "p1", spec); return err }},
		{"PATCH tags", func() error {
			_, err := f.s.Patch(as(f.admin), f.sub, "rg", "p1", keyhold.PolicyPatch{Tags: &tags})
			return err
		}},
		{"DELETE", func() error { return f.s.Delete(as(f.admin), f.sub, "rg", "p1") }},
		{"delete the resource group", func() error { return f.arm.DeleteResourceGroup(as(f.admin), f.sub, "rg") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.do(), keyhold.CodeConflict, "env-1 (Contoso Sales)", "unlink")
			f.unchanged(t, tc.name, before)
		})
	}
}

// TestReaderAccess: Reader on a policy (as the spec grants the platform
// admin) reads it, and nothing more.
func TestReaderAccess(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	p := f.put(t, "p1", f.spec())
	f.put(t, "p2", f.spec())
	reader := f.principal(t, "platform admin")
	f.grant(t, p.ID(), keyhold.RoleReader, reader)
	nobody := f.principal(t, "nobody")

	if got, err := f.s.Get(as(reader), f.sub, "rg", "p1"); err != nil || got.SystemID != p.SystemID {
		t.Fatalf("Get as the reader = %+v, %v", got, err)
	}
	if got, err := f.s.BySystemID(as(reader), strings.ToUpper(p.SystemID)); err != nil || got.Name != "p1" {
		t.Fatalf("BySystemID as the reader = %+v, %v", got, err)
	}
	l, err := f.s.ListByResourceGroup(as(reader), f.sub, "rg")
	if err != nil || len(l) != 1 || l[0].Name != "p1" {
		t.Fatalf("ListByResourceGroup as the reader = %v, %v", l, err)
	}
	if l, err := f.s.ListBySubscription(as(f.admin), f.sub); err != nil || len(l) != 2 {
		t.Fatalf("ListBySubscription as the admin = %v, %v", l, err)
	}
	before := f.snapshot(t)
	_, _, err = f.s.Put(as(reader), f.sub, "rg", "p1", f.spec())
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionWrite, p.ID())
	_, err = f.s.Patch(as(reader), f.sub, "rg", "p1", keyhold.PolicyPatch{})
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionWrite)
	wantErr(t, f.s.Delete(as(reader), f.sub, "rg", "p1"), keyhold.CodeAuthorizationFailed, ActionDelete)
	_, err = f.s.Get(as(reader), f.sub, "rg", "p2")
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionRead)
	_, err = f.s.Get(as(nobody), f.sub, "rg", "p1")
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionRead)
	_, err = f.s.BySystemID(as(nobody), p.SystemID)
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionRead)
	f.unchanged(t, "the reader's refused changes", before)

	// Another tenant's caller learns nothing.
	other := &keyhold.Identity{TenantID: "other", PrincipalID: "x"}
	_, err = f.s.BySystemID(as(other), p.SystemID)
	wantErr(t, err, keyhold.CodeResourceNotFound)
	_, err = f.s.Get(as(f.admin), f.sub, "rg", "missing")
	wantErr(t, err, keyhold.CodeResourceNotFound, "missing")
}

// TestDelete: the policy goes with its identity, the identity's role
// assignments and the role assignments on the policy.
func TestDelete(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	p := f.put(t, "p1", f.spec())
	mi := &keyhold.Identity{TenantID: f.tenant, PrincipalID: p.PrincipalID, Type: keyhold.PrincipalManagedIdentity}
	f.grant(t, f.vaultID("contoso-kv"), keyhold.RoleKeyVaultCryptoServiceEncryptUser, mi)
	reader := f.principal(t, "platform admin")
	f.grant(t, p.ID(), keyhold.RoleReader, reader)

	if err := f.s.Delete(as(f.admin), f.sub, "RG", "P1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
		if _, err := tx.Principal(ctx, p.PrincipalID); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
			t.Errorf("the identity is still there: %v", err)
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: f.tenant})
		for _, a := range as {
			if a.PrincipalID == p.PrincipalID || keyhold.ScopeCovers(p.ID(), a.Scope) {
				t.Errorf("role assignment %+v outlived the policy", a)
			}
		}
		return err
	})
	if got := f.auditActions(t); !slices.Contains(got, "enterprisePolicy.delete") || !slices.Contains(got, "managedIdentity.delete") {
		t.Fatalf("audit = %v", got)
	}
	wantErr(t, f.s.Delete(as(f.admin), f.sub, "rg", "p1"), keyhold.CodeResourceNotFound)
	_, err := f.s.BySystemID(as(f.admin), p.SystemID)
	wantErr(t, err, keyhold.CodeResourceNotFound)
}

// TestFind: a policy is found by its systemId or resource id, in any case.
func TestFind(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	p := f.put(t, "p1", f.spec())
	for _, ref := range []string{p.SystemID, strings.ToUpper(p.SystemID), p.ID(), strings.ToLower(p.ID()), " " + p.SystemID} {
		f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
			got, err := Find(ctx, tx, ref)
			if err != nil || got.Name != "p1" {
				t.Errorf("Find(%q) = %v, %v", ref, got, err)
			}
			return nil
		})
	}
	for _, ref := range []string{"", "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/nope",
		"/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/p1", "/subscriptions/x"} {
		f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
			_, err := Find(ctx, tx, ref)
			wantErr(t, err, keyhold.CodeResourceNotFound, "systemId")
			return nil
		})
	}
}
