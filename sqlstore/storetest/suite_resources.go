package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// ARM ids compare case-insensitively: every lookup below uses another case
// than the one stored, and every item comes back with the case it was
// stored with.

func testResourceGroups(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	const sub = "0000aaaa-1111-2222-3333-444455556666"
	g1 := &keyhold.ResourceGroup{SubscriptionID: sub, Name: "Prod-RG", Location: "westeurope", Tags: map[string]string{"env": "prod", "owner": "ada"}, CreatedAt: at(0)}
	g2 := &keyhold.ResourceGroup{SubscriptionID: sub, Name: "alpha", Location: "eastus", CreatedAt: at(time.Second)} // nil tags stay nil
	g3 := &keyhold.ResourceGroup{SubscriptionID: "other-sub", Name: "prod-rg", Location: "eastus", Tags: map[string]string{}, CreatedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, g := range []*keyhold.ResourceGroup{g1, g2, g3} {
			if err := tx.CreateResourceGroup(ctx, g); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ResourceGroup(ctx, "0000AAAA-1111-2222-3333-444455556666", "PROD-rg")
		if err != nil {
			return err
		}
		equal(t, "ResourceGroup(other case)", got, g1)
		got, err = tx.ResourceGroup(ctx, "other-sub", "prod-rg")
		if err != nil {
			return err
		}
		equal(t, "ResourceGroup(empty tags)", got, g3)
		l, err := tx.ListResourceGroups(ctx, sub)
		if err != nil {
			return err
		}
		equal(t, "ListResourceGroups", l, []*keyhold.ResourceGroup{g2, g1})
		_, err = tx.ResourceGroup(ctx, sub, "missing-rg")
		wantCode(t, "ResourceGroup(missing)", err, keyhold.CodeNotFound, "missing-rg")
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: sub, Name: "PROD-RG", CreatedAt: at(0)})
	})
	wantCode(t, "CreateResourceGroup(same name, other case)", err, keyhold.CodeConflict, "PROD-RG")
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteResourceGroup(ctx, sub, "prod-RG") })
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListResourceGroups(ctx, sub)
		if err != nil {
			return err
		}
		equal(t, "ListResourceGroups after delete", l, []*keyhold.ResourceGroup{g2})
		return nil
	})
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeleteResourceGroup(ctx, sub, "prod-rg") })
	wantCode(t, "DeleteResourceGroup(missing)", err, keyhold.CodeNotFound, "prod-rg")
}

func testProviderRegistrations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	kv := &keyhold.ProviderRegistration{SubscriptionID: "sub", Namespace: keyhold.NamespaceKeyVault, State: keyhold.ProviderNotRegistered, UpdatedAt: at(0)}
	pp := &keyhold.ProviderRegistration{SubscriptionID: "sub", Namespace: keyhold.NamespacePowerPlatform, State: keyhold.ProviderRegistered, UpdatedAt: at(time.Second)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, r := range []*keyhold.ProviderRegistration{pp, kv} {
			if err := tx.PutProviderRegistration(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	// Registering replaces the record (the same namespace in any case).
	kv2 := &keyhold.ProviderRegistration{SubscriptionID: "sub", Namespace: keyhold.NamespaceKeyVault, State: keyhold.ProviderRegistered, UpdatedAt: at(time.Hour)}
	update(t, s, func(tx keyhold.Tx) error {
		again := *kv2
		again.Namespace = "microsoft.keyvault"
		if err := tx.PutProviderRegistration(ctx, &again); err != nil {
			return err
		}
		return tx.PutProviderRegistration(ctx, kv2)
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ProviderRegistration(ctx, "SUB", "MICROSOFT.KEYVAULT")
		if err != nil {
			return err
		}
		equal(t, "ProviderRegistration", got, kv2)
		l, err := tx.ListProviderRegistrations(ctx, "sub")
		if err != nil {
			return err
		}
		equal(t, "ListProviderRegistrations", l, []*keyhold.ProviderRegistration{kv2, pp})
		_, err = tx.ProviderRegistration(ctx, "sub", "Microsoft.Web")
		wantCode(t, "ProviderRegistration(missing)", err, keyhold.CodeNotFound, "Microsoft.Web")
		l, err = tx.ListProviderRegistrations(ctx, "other")
		if err == nil && (l == nil || len(l) != 0) {
			t.Errorf("ListProviderRegistrations(other) = %s, want an empty, non-nil slice", show(l))
		}
		return err
	})
}

func testRoleAssignments(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	vault := "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
	a1 := &keyhold.RoleAssignment{ID: "aaaaaaaa-0000-0000-0000-000000000001", Scope: "/subscriptions/sub", RoleDefinitionID: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
		PrincipalID: "admin", PrincipalType: "User", TenantID: "t1", CreatedBy: "bootstrap", CreatedAt: at(0)}
	a2 := &keyhold.RoleAssignment{ID: "aaaaaaaa-0000-0000-0000-000000000002", Scope: vault, RoleDefinitionID: "e147488a-f6f5-4113-8e2d-b22465e65bf6",
		PrincipalID: "policy-identity", PrincipalType: "ServicePrincipal", TenantID: "t1", CreatedBy: "admin", CreatedAt: at(time.Hour)}
	a3 := &keyhold.RoleAssignment{ID: "aaaaaaaa-0000-0000-0000-000000000003", Scope: vault + "/", RoleDefinitionID: "21090545-7ca7-4776-b22c-e363652d74d2",
		PrincipalID: "admin", PrincipalType: "User", TenantID: "t2", CreatedBy: "admin", CreatedAt: at(time.Minute)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, a := range []*keyhold.RoleAssignment{a2, a3, a1} {
			if err := tx.CreateRoleAssignment(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.RoleAssignment(ctx, "AAAAAAAA-0000-0000-0000-000000000002")
		if err != nil {
			return err
		}
		equal(t, "RoleAssignment(upper case id)", got, a2)
		for _, tc := range []struct {
			name string
			f    keyhold.RoleAssignmentFilter
			want []*keyhold.RoleAssignment
		}{
			{"all, oldest first", keyhold.RoleAssignmentFilter{}, []*keyhold.RoleAssignment{a1, a3, a2}},
			{"tenant", keyhold.RoleAssignmentFilter{TenantID: "t1"}, []*keyhold.RoleAssignment{a1, a2}},
			{"principal", keyhold.RoleAssignmentFilter{PrincipalID: "admin"}, []*keyhold.RoleAssignment{a1, a3}},
			{"scope, other case and trailing slash", keyhold.RoleAssignmentFilter{Scope: "/SUBSCRIPTIONS/sub/resourcegroups/RG/providers/microsoft.keyvault/vaults/KV1/"}, []*keyhold.RoleAssignment{a3, a2}},
			{"scope is exact, not inherited", keyhold.RoleAssignmentFilter{Scope: "/subscriptions/sub/resourceGroups/rg"}, []*keyhold.RoleAssignment{}},
			{"all filters", keyhold.RoleAssignmentFilter{TenantID: "t1", PrincipalID: "policy-identity", Scope: vault}, []*keyhold.RoleAssignment{a2}},
		} {
			l, err := tx.ListRoleAssignments(ctx, tc.f)
			if err != nil {
				return err
			}
			equal(t, "ListRoleAssignments("+tc.name+")", l, tc.want)
		}
		_, err = tx.RoleAssignment(ctx, "missing")
		wantCode(t, "RoleAssignment(missing)", err, keyhold.CodeNotFound, "missing")
		return nil
	})
	dup := *a1
	dup.ID = "AAAAAAAA-0000-0000-0000-000000000001"
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateRoleAssignment(ctx, &dup) })
	wantCode(t, "CreateRoleAssignment(same id, other case)", err, keyhold.CodeConflict, dup.ID)
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(ctx, a1.ID) })
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(ctx, a1.ID) })
	wantCode(t, "DeleteRoleAssignment(missing)", err, keyhold.CodeNotFound, a1.ID)
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{})
		if err != nil {
			return err
		}
		equal(t, "ListRoleAssignments after delete", l, []*keyhold.RoleAssignment{a3, a2})
		return nil
	})
}
