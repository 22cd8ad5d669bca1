package crypt

import (
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestAccessSealsCoverEachField: each access record's seal checks, and
// fails with CodeRecordIntegrity once any field it covers changes, or when
// a seal of another kind of record is presented for it.
func TestAccessSealsCoverEachField(t *testing.T) {
	r := testRecordKey(t)
	exp := time.Date(2028, 1, 2, 3, 4, 5, 6, time.UTC)
	cred := func() *keyhold.Credential {
		return &keyhold.Credential{PrincipalID: "p1", SecretHash: []byte("hash"), CreatedAt: exp.AddDate(-2, 0, 0), ExpiresAt: exp}
	}
	acct := func() *keyhold.UserAccount {
		return &keyhold.UserAccount{PrincipalID: "u1", TenantID: "t1", UserPrincipalName: "ada@contoso.example", PasswordHash: []byte("argon")}
	}
	ra := func() *keyhold.RoleAssignment {
		return &keyhold.RoleAssignment{ID: "a1", Scope: "/subscriptions/s1", RoleDefinitionID: "r1", PrincipalID: "p1", PrincipalType: "User", TenantID: "t1"}
	}
	vault := func() *keyhold.Vault {
		return &keyhold.Vault{Name: "kv", TenantID: "t1", AccessPolicies: []keyhold.AccessPolicy{{TenantID: "t1", ObjectID: "p1", Keys: []string{"wrapkey"}}}}
	}
	credSeal := r.SealCredential("t1", cred())
	acctSeal := r.SealUserAccount(acct())
	raSeal := r.SealRoleAssignment(ra())
	drSeal := r.SealDirectoryRole("t1", "p1", keyhold.RoleGlobalAdministrator)
	sealedVault := vault()
	r.SealVault(sealedVault)

	cases := map[string]struct {
		check func() error
		fails bool
	}{
		"credential":           {func() error { return r.CheckCredential("t1", cred(), credSeal) }, false},
		"credential tenant":    {func() error { return r.CheckCredential("t2", cred(), credSeal) }, true},
		"credential principal": {func() error { c := cred(); c.PrincipalID = "p2"; return r.CheckCredential("t1", c, credSeal) }, true},
		"credential hash":      {func() error { c := cred(); c.SecretHash = []byte("mine"); return r.CheckCredential("t1", c, credSeal) }, true},
		"credential expiry":    {func() error { c := cred(); c.ExpiresAt = time.Time{}; return r.CheckCredential("t1", c, credSeal) }, true},
		"credential created":   {func() error { c := cred(); c.CreatedAt = exp; return r.CheckCredential("t1", c, credSeal) }, false},
		"credential no seal":   {func() error { return r.CheckCredential("t1", cred(), nil) }, true},
		"account":              {func() error { return r.CheckUserAccount(acct(), acctSeal) }, false},
		"account hash":         {func() error { u := acct(); u.PasswordHash = []byte("mine"); return r.CheckUserAccount(u, acctSeal) }, true},
		"account upn": {func() error {
			u := acct()
			u.UserPrincipalName = "eve@contoso.example"
			return r.CheckUserAccount(u, acctSeal)
		}, true},
		"account tenant":            {func() error { u := acct(); u.TenantID = "t2"; return r.CheckUserAccount(u, acctSeal) }, true},
		"assignment":                {func() error { return r.CheckRoleAssignment(ra(), raSeal) }, false},
		"assignment scope":          {func() error { a := ra(); a.Scope = "/subscriptions/s2"; return r.CheckRoleAssignment(a, raSeal) }, true},
		"assignment role":           {func() error { a := ra(); a.RoleDefinitionID = "r2"; return r.CheckRoleAssignment(a, raSeal) }, true},
		"assignment principal":      {func() error { a := ra(); a.PrincipalID = "p2"; return r.CheckRoleAssignment(a, raSeal) }, true},
		"assignment tenant":         {func() error { a := ra(); a.TenantID = "t2"; return r.CheckRoleAssignment(a, raSeal) }, true},
		"directory role":            {func() error { return r.CheckDirectoryRole("t1", "p1", keyhold.RoleGlobalAdministrator, drSeal) }, false},
		"directory role other role": {func() error { return r.CheckDirectoryRole("t1", "p1", keyhold.RolePowerPlatformAdministrator, drSeal) }, true},
		"directory role other one":  {func() error { return r.CheckDirectoryRole("t1", "p2", keyhold.RoleGlobalAdministrator, drSeal) }, true},
		"directory role as assignment": {func() error {
			return r.CheckRoleAssignment(&keyhold.RoleAssignment{TenantID: "t1", PrincipalID: "p1"}, drSeal)
		}, true},
		"vault access": {func() error { return r.CheckVaultAccess(sealedVault) }, false},
		"vault access policy added": {func() error {
			v := *sealedVault
			v.AccessPolicies = append(v.AccessPolicies, keyhold.AccessPolicy{ObjectID: "eve", Keys: []string{"all"}})
			return r.CheckVaultAccess(&v)
		}, true},
		"vault access rbac flipped": {func() error { v := *sealedVault; v.EnableRbacAuthorization = true; return r.CheckVaultAccess(&v) }, true},
		"vault state unaffected by policies": {func() error {
			v := *sealedVault
			v.AccessPolicies = nil
			return r.CheckVault(&v)
		}, false},
		"vault sealed before access": {func() error {
			v := *sealedVault
			v.MAC = v.MAC[:recordSealSize]
			if err := r.CheckVault(&v); err != nil {
				return err
			}
			return r.CheckVaultAccess(&v)
		}, true},
	}
	for name, c := range cases {
		err := c.check()
		switch {
		case c.fails && keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity:
			t.Errorf("%s: check = %v, want %s", name, err, keyhold.CodeRecordIntegrity)
		case !c.fails && err != nil:
			t.Errorf("%s: check = %v, want nil", name, err)
		}
	}
}
