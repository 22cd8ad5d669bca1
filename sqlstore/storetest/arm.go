package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// The identity side of issue 3: resource group updates, user accounts,
// environment membership and the removal of principals.

func testUpdateResourceGroup(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	g := &keyhold.ResourceGroup{SubscriptionID: "sub", Name: "Prod-RG", Location: "westeurope", Tags: map[string]string{"a": "1"}, CreatedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error { return tx.CreateResourceGroup(ctx, g) })
	// The update names the group in another case and brings another
	// location and time: only the tags change.
	update(t, s, func(tx keyhold.Tx) error {
		return tx.UpdateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: "SUB", Name: "prod-rg", Location: "eastus", Tags: map[string]string{"b": "2"}, CreatedAt: at(time.Hour)})
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ResourceGroup(ctx, "sub", "Prod-RG")
		if err != nil {
			return err
		}
		want := *g
		want.Tags = map[string]string{"b": "2"}
		equal(t, "ResourceGroup after UpdateResourceGroup", got, &want)
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.UpdateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: "sub", Name: "missing-rg"})
	})
	wantCode(t, "UpdateResourceGroup(missing)", err, keyhold.CodeNotFound, "missing-rg")
}

// seedPrincipals creates tenants t1 and t2 and the principals given.
func seedPrincipals(t *testing.T, s keyhold.Store, ps ...*keyhold.Principal) {
	t.Helper()
	update(t, s, func(tx keyhold.Tx) error {
		ctx := context.Background()
		for _, tn := range []string{"t1", "t2"} {
			if err := tx.CreateTenant(ctx, tenant(tn)); err != nil {
				return err
			}
		}
		for _, p := range ps {
			if err := tx.CreatePrincipal(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
}

func testUserAccounts(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedPrincipals(t, s,
		&keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Ada", CreatedAt: at(0)},
		&keyhold.Principal{ID: "u2", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Bob", CreatedAt: at(0)},
		&keyhold.Principal{ID: "u3", TenantID: "t2", Type: keyhold.PrincipalUser, DisplayName: "Ada", CreatedAt: at(0)},
		&keyhold.Principal{ID: "u4", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Eve", CreatedAt: at(0)},
	)
	hash := []byte("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\x00\xff") // opaque bytes, NUL and 0xff included
	a1 := &keyhold.UserAccount{PrincipalID: "u1", TenantID: "t1", UserPrincipalName: "Ada@Contoso.example", PasswordHash: hash, UpdatedAt: at(time.Second)}
	a2 := &keyhold.UserAccount{PrincipalID: "u2", TenantID: "t1", UserPrincipalName: "bob@contoso.example", PasswordHash: []byte("h2"), UpdatedAt: at(0)}
	// The same UPN in another tenant is another user.
	a3 := &keyhold.UserAccount{PrincipalID: "u3", TenantID: "t2", UserPrincipalName: "ada@contoso.example", PasswordHash: []byte("h3"), UpdatedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, a := range []*keyhold.UserAccount{a2, a1, a3} {
			if err := tx.CreateUserAccount(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.UserAccountByUPN(ctx, "t1", "ADA@contoso.EXAMPLE")
		if err != nil {
			return err
		}
		equal(t, "UserAccountByUPN(other case)", got, a1)
		got, err = tx.UserAccount(ctx, "u3")
		if err != nil {
			return err
		}
		equal(t, "UserAccount(u3)", got, a3)
		_, err = tx.UserAccountByUPN(ctx, "t2", "bob@contoso.example")
		wantCode(t, "UserAccountByUPN(other tenant)", err, keyhold.CodeNotFound, "bob@contoso.example")
		_, err = tx.UserAccount(ctx, "u4")
		wantCode(t, "UserAccount(no account)", err, keyhold.CodeNotFound, "u4")
		l, err := tx.ListUserAccounts(ctx, "t1")
		if err != nil {
			return err
		}
		equal(t, "ListUserAccounts(t1)", l, []*keyhold.UserAccount{a1, a2})
		l, err = tx.ListUserAccounts(ctx, "t9")
		if err == nil && (l == nil || len(l) != 0) {
			t.Errorf("ListUserAccounts(t9) = %s, want an empty, non-nil slice", show(l))
		}
		return err
	})
	for _, tc := range []struct {
		name  string
		a     *keyhold.UserAccount
		code  string
		names []string
	}{
		{"UPN taken in another case", &keyhold.UserAccount{PrincipalID: "u4", TenantID: "t1", UserPrincipalName: "BOB@contoso.example", PasswordHash: []byte("x"), UpdatedAt: at(0)}, keyhold.CodeConflict, []string{"BOB@contoso.example"}},
		{"second account", &keyhold.UserAccount{PrincipalID: "u1", TenantID: "t1", UserPrincipalName: "other@contoso.example", PasswordHash: []byte("x"), UpdatedAt: at(0)}, keyhold.CodeConflict, []string{"u1"}},
		{"unknown principal", &keyhold.UserAccount{PrincipalID: "ghost", TenantID: "t1", UserPrincipalName: "ghost@contoso.example", PasswordHash: []byte("x"), UpdatedAt: at(0)}, keyhold.CodeNotFound, []string{"ghost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateUserAccount(ctx, tc.a) })
			wantCode(t, "CreateUserAccount", err, tc.code, tc.names...)
		})
	}
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListUserAccounts(ctx, "t1")
		if err != nil {
			return err
		}
		equal(t, "ListUserAccounts(t1) after refusals", l, []*keyhold.UserAccount{a1, a2})
		return nil
	})
}

func testEnvironmentMembers(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedPrincipals(t, s,
		&keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, CreatedAt: at(0)},
		&keyhold.Principal{ID: "p1", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal, AppID: "a1", CreatedAt: at(0)},
	)
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	m1 := &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "u1", AddedBy: "admin", AddedAt: at(time.Hour)}
	m2 := &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "p1", AddedBy: "admin", AddedAt: at(time.Minute)}
	m3 := &keyhold.EnvironmentMember{EnvID: "e2", PrincipalID: "u1", AddedBy: "admin", AddedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, m := range []*keyhold.EnvironmentMember{m1, m2, m3} {
			if err := tx.AddEnvironmentMember(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	isMember := func(envID, principalID string, want bool) {
		t.Helper()
		view(t, s, func(tx keyhold.Tx) error {
			got, err := tx.IsEnvironmentMember(ctx, envID, principalID)
			if err == nil && got != want {
				t.Errorf("IsEnvironmentMember(%s, %s) = %v, want %v", envID, principalID, got, want)
			}
			return err
		})
	}
	isMember("e1", "u1", true)
	isMember("e2", "p1", false)
	isMember("e3", "u1", false)
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.EnvironmentMembers(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "EnvironmentMembers(e1), oldest first", l, []*keyhold.EnvironmentMember{m2, m1})
		l, err = tx.EnvironmentMembers(ctx, "nope")
		if err == nil && (l == nil || len(l) != 0) {
			t.Errorf("EnvironmentMembers(nope) = %s, want an empty, non-nil slice", show(l))
		}
		return err
	})
	for _, tc := range []struct {
		name string
		m    *keyhold.EnvironmentMember
		code string
	}{
		{"already a member", &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "u1", AddedBy: "x", AddedAt: at(0)}, keyhold.CodeConflict},
		{"unknown environment", &keyhold.EnvironmentMember{EnvID: "e9", PrincipalID: "u1", AddedBy: "x", AddedAt: at(0)}, keyhold.CodeNotFound},
		{"unknown principal", &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "ghost", AddedBy: "x", AddedAt: at(0)}, keyhold.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.AddEnvironmentMember(ctx, tc.m) })
			wantCode(t, "AddEnvironmentMember", err, tc.code)
		})
	}
	update(t, s, func(tx keyhold.Tx) error { return tx.RemoveEnvironmentMember(ctx, "e1", "p1") })
	isMember("e1", "p1", false)
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.RemoveEnvironmentMember(ctx, "e1", "p1") })
	wantCode(t, "RemoveEnvironmentMember(not a member)", err, keyhold.CodeNotFound, "p1", "e1")

	// Deleting an environment ends its memberships.
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteEnvironment(ctx, "e2") })
	isMember("e2", "u1", false)
	isMember("e1", "u1", true)
}

func testDeletePrincipal(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mi := &keyhold.Principal{ID: "mi", TenantID: "t1", Type: keyhold.PrincipalManagedIdentity, DisplayName: "policy", AppID: "mi-app", CreatedAt: at(0)}
	user := &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Ada", CreatedAt: at(0)}
	keep := &keyhold.Principal{ID: "u2", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Bob", CreatedAt: at(0)}
	seedPrincipals(t, s, mi, user, keep)
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		steps := []error{
			tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: "mi", SecretHash: []byte("h"), CreatedAt: at(0)}),
			tx.AssignDirectoryRole(ctx, "t1", "u1", keyhold.RolePowerPlatformAdministrator),
			tx.CreateUserAccount(ctx, &keyhold.UserAccount{PrincipalID: "u1", TenantID: "t1", UserPrincipalName: "ada@contoso.example", PasswordHash: []byte("h"), UpdatedAt: at(0)}),
			tx.AddEnvironmentMember(ctx, &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "u1", AddedBy: "x", AddedAt: at(0)}),
			tx.AddEnvironmentMember(ctx, &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "u2", AddedBy: "x", AddedAt: at(0)}),
		}
		for _, err := range steps {
			if err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.DeletePrincipal(ctx, "mi"); err != nil {
			return err
		}
		return tx.DeletePrincipal(ctx, "u1")
	})
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Principal(ctx, "mi")
		wantCode(t, "Principal(deleted)", err, keyhold.CodeNotFound)
		_, err = tx.PrincipalByAppID(ctx, "t1", "mi-app")
		wantCode(t, "PrincipalByAppID(deleted)", err, keyhold.CodeNotFound)
		_, err = tx.UserAccountByUPN(ctx, "t1", "ada@contoso.example")
		wantCode(t, "UserAccountByUPN(deleted)", err, keyhold.CodeNotFound)
		creds, err := tx.Credentials(ctx, "mi")
		if err != nil {
			return err
		}
		roles, err := tx.DirectoryRoles(ctx, "t1", "u1")
		if err != nil {
			return err
		}
		members, err := tx.EnvironmentMembers(ctx, "e1")
		if err != nil {
			return err
		}
		if len(creds) != 0 || len(roles) != 0 || len(members) != 1 || members[0].PrincipalID != "u2" {
			t.Errorf("after DeletePrincipal: credentials %s, roles %v, members %s; want none, none and only u2", show(creds), roles, show(members))
		}
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeletePrincipal(ctx, "mi") })
	wantCode(t, "DeletePrincipal(missing)", err, keyhold.CodeNotFound, "mi")
	// The UPN is free again.
	update(t, s, func(tx keyhold.Tx) error {
		return tx.CreateUserAccount(ctx, &keyhold.UserAccount{PrincipalID: "u2", TenantID: "t1", UserPrincipalName: "ADA@contoso.example", PasswordHash: []byte("h"), UpdatedAt: at(0)})
	})
}
