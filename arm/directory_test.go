package arm

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// principals lists the tenant's principals' display names.
func (f *fixture) principals(t *testing.T) []string {
	t.Helper()
	var names []string
	err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		ps, err := tx.ListPrincipals(context.Background(), f.tenant)
		for _, p := range ps {
			names = append(names, p.DisplayName)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestCreatingPrincipalsNeedsGlobalAdministrator: the other administrator
// roles, and none, are refused, and nothing is created.
func TestCreatingPrincipalsNeedsGlobalAdministrator(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ppAdmin := f.principal(t, keyhold.PrincipalUser, "pp admin", keyhold.RolePowerPlatformAdministrator)
	d365Admin := f.principal(t, keyhold.PrincipalUser, "d365 admin", keyhold.RoleDynamics365Administrator)
	owner := f.principal(t, keyhold.PrincipalServicePrincipal, "subscription owner")
	f.grant(t, f.subScope(), keyhold.RoleOwner, owner)
	before := f.principals(t)
	for _, c := range []struct {
		name   string
		caller *keyhold.Identity
	}{
		{"Power Platform Administrator", ppAdmin},
		{"Dynamics 365 Administrator", d365Admin},
		{"ARM Owner without a directory role", owner},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.s.CreateServicePrincipal(as(c.caller), "new app")
			wantErr(t, err, keyhold.CodeForbidden, string(keyhold.RoleGlobalAdministrator))
			_, err = f.s.CreateUser(as(c.caller), "New user", "new@contoso.example", "")
			wantErr(t, err, keyhold.CodeForbidden, string(keyhold.RoleGlobalAdministrator))
			_, err = f.s.AssignDirectoryRole(as(c.caller), c.caller.PrincipalID, keyhold.RoleGlobalAdministrator)
			wantErr(t, err, keyhold.CodeForbidden, string(keyhold.RoleGlobalAdministrator))
			if got := f.principals(t); !slices.Equal(got, before) {
				t.Fatalf("principals %v after the refusals, want %v", got, before)
			}
		})
	}
	// The platform administrators may read the directory; the owner not.
	if _, err := f.s.ServicePrincipals(as(ppAdmin)); err != nil {
		t.Fatalf("ServicePrincipals as a Power Platform Administrator: %v", err)
	}
	_, err := f.s.Users(as(owner))
	wantErr(t, err, keyhold.CodeForbidden)
}

func TestServicePrincipalsAndUsers(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := as(f.admin)
	sp, err := f.s.CreateServicePrincipal(ctx, "  automation  ")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Principal.DisplayName != "automation" || sp.Principal.AppID == "" || !strings.HasPrefix(sp.Secret, crypt.SecretPrefix) || sp.SecretExpires.IsZero() {
		t.Fatalf("CreateServicePrincipal = %+v", sp)
	}
	// Only the secret's hash is stored.
	err = f.store.View(context.Background(), func(tx keyhold.Tx) error {
		creds, err := tx.Credentials(context.Background(), sp.Principal.ID)
		if err == nil && (len(creds) != 1 || !crypt.CheckClientSecret(creds[0].SecretHash, sp.Secret) || bytes.Contains(creds[0].SecretHash, []byte(sp.Secret))) {
			t.Errorf("stored credentials %+v", creds)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	u, err := f.s.CreateUser(ctx, "Ada", "Ada@Contoso.example", "correct horse battery staple")
	if err != nil || u.Password != "" || u.User.UserPrincipalName != "Ada@Contoso.example" || u.User.Type != keyhold.PrincipalUser {
		t.Fatalf("CreateUser = %+v, %v", u, err)
	}
	gen, err := f.s.CreateUser(ctx, "Bob", "bob@contoso.example", "")
	if err != nil || len(gen.Password) < crypt.MinPasswordLen {
		t.Fatalf("CreateUser with a generated password = %+v, %v", gen, err)
	}
	err = f.store.View(context.Background(), func(tx keyhold.Tx) error {
		a, err := tx.UserAccount(context.Background(), gen.User.ID)
		if err == nil && !crypt.CheckPassword(a.PasswordHash, gen.Password) {
			t.Error("the generated password does not match the stored hash")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, display, upn, pw string
		code, hint             string
	}{
		{"UPN taken in another case", "Ada 2", "ADA@contoso.example", "", keyhold.CodeConflict, "already exists"},
		{"bad UPN", "X", "not-an-email", "", keyhold.CodeBadRequest, "userPrincipalName"},
		{"short password", "X", "x@contoso.example", "short", keyhold.CodeBadRequest, "password"},
		{"empty display name", " ", "y@contoso.example", "", keyhold.CodeBadRequest, "displayName"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := f.principals(t)
			_, err := f.s.CreateUser(ctx, c.display, c.upn, c.pw)
			wantErr(t, err, c.code, c.hint)
			if got := f.principals(t); !slices.Equal(got, before) {
				t.Fatalf("principals %v after the refusal, want %v", got, before)
			}
		})
	}
	users, err := f.s.Users(ctx)
	if err != nil || len(users) != 2 || users[0].UserPrincipalName != "Ada@Contoso.example" || users[1].UserPrincipalName != "bob@contoso.example" {
		t.Fatalf("Users = %v, %v", users, err)
	}
	sps, err := f.s.ServicePrincipals(ctx)
	if err != nil || len(sps) != 2 {
		t.Fatalf("ServicePrincipals = %v, %v; want the admin and automation", sps, err)
	}
}

func TestDirectoryRoles(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := as(f.admin)
	user := f.principal(t, keyhold.PrincipalUser, "ada")
	a, err := f.s.AssignDirectoryRole(ctx, user.PrincipalID, keyhold.RolePowerPlatformAdministrator)
	if err != nil || a.ID != "11648597-926c-4cf3-9c36-bcebb0ba8dcc_"+user.PrincipalID || a.DirectoryScopeID != "/" {
		t.Fatalf("AssignDirectoryRole = %+v, %v", a, err)
	}
	_, err = f.s.AssignDirectoryRole(ctx, user.PrincipalID, keyhold.RolePowerPlatformAdministrator)
	wantErr(t, err, keyhold.CodeConflict, "already holds")
	_, err = f.s.AssignDirectoryRole(ctx, uuid.NewString(), keyhold.RoleDynamics365Administrator)
	wantErr(t, err, keyhold.CodeNotFound, "does not exist in the directory")
	_, err = f.s.AssignDirectoryRole(ctx, user.PrincipalID, "Billing Administrator")
	wantErr(t, err, keyhold.CodeBadRequest, "Billing Administrator")

	// A principal lists its own roles; the user, now a platform admin,
	// lists everyone's.
	mine, err := f.s.DirectoryRoleAssignments(as(user), user.PrincipalID)
	if err != nil || len(mine) != 1 || mine[0].Role != keyhold.RolePowerPlatformAdministrator {
		t.Fatalf("own roles = %v, %v", mine, err)
	}
	all, err := f.s.DirectoryRoleAssignments(as(user), "")
	if err != nil || len(all) != 2 {
		t.Fatalf("all roles = %v, %v", all, err)
	}
	stranger := f.principal(t, keyhold.PrincipalServicePrincipal, "stranger")
	_, err = f.s.DirectoryRoleAssignments(as(stranger), user.PrincipalID)
	wantErr(t, err, keyhold.CodeForbidden)

	if err := f.s.RemoveDirectoryRoleAssignment(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	err = f.s.RemoveDirectoryRoleAssignment(ctx, a.ID)
	wantErr(t, err, keyhold.CodeNotFound)
	// The last Global Administrator stays.
	err = f.s.RemoveDirectoryRoleAssignment(ctx, "62e90394-69f5-4237-9190-012177145e10_"+f.admin.PrincipalID)
	wantErr(t, err, keyhold.CodeConflict, "last Global Administrator")
	if got, _ := f.s.DirectoryRoleAssignments(ctx, f.admin.PrincipalID); len(got) != 1 {
		t.Fatalf("the refused removal removed: %v", got)
	}
	want := []string{"directoryRole.assign", "directoryRole.remove"}
	if got := f.auditActions(t); !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

// TestManagedIdentities: created for a resource, listed as a service
// principal, deleted with its role assignments.
func TestManagedIdentities(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	f.group(t, "rg1")
	mi, err := f.s.CreateManagedIdentity(as(f.admin), f.tenant, "policy-1")
	if err != nil || mi.Type != keyhold.PrincipalManagedIdentity || mi.AppID == "" {
		t.Fatalf("CreateManagedIdentity = %+v, %v", mi, err)
	}
	miID := &keyhold.Identity{TenantID: f.tenant, PrincipalID: mi.ID, AppID: mi.AppID, Type: mi.Type}
	crypto, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultCryptoServiceEncryptUser)
	a := &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: f.vaultScope("rg1", "kv1"), RoleDefinitionID: crypto.ID, PrincipalID: mi.ID, PrincipalType: "ServicePrincipal"}
	if err := f.s.CreateRoleAssignment(as(f.admin), a); err != nil {
		t.Fatal(err)
	}
	sps, _ := f.s.ServicePrincipals(as(f.admin))
	if !slices.ContainsFunc(sps, func(p *keyhold.Principal) bool { return p.ID == mi.ID }) {
		t.Fatalf("ServicePrincipals %v lacks the managed identity", sps)
	}
	err = f.s.DeleteManagedIdentity(context.Background(), f.admin.PrincipalID)
	wantErr(t, err, keyhold.CodeBadRequest, "not a managed identity")

	if err := f.s.DeleteManagedIdentity(context.Background(), mi.ID); err != nil {
		t.Fatal(err)
	}
	for _, x := range f.assignments(t) {
		if x.PrincipalID == mi.ID {
			t.Fatalf("the deleted identity keeps role assignment %+v", x)
		}
	}
	err = f.store.View(context.Background(), func(tx keyhold.Tx) error {
		return Authorize(context.Background(), tx, miID, a.Scope, "Microsoft.KeyVault/vaults/read")
	})
	wantErr(t, err, keyhold.CodeAuthorizationFailed)
	// The audit says who: the admin created it, "system" deleted it.
	var actors []string
	f.store.View(context.Background(), func(tx keyhold.Tx) error {
		es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: f.tenant})
		for _, e := range es {
			if strings.HasPrefix(e.Action, "managedIdentity.") {
				actors = append(actors, e.Action+" by "+e.ActorID)
			}
		}
		return err
	})
	want := []string{"managedIdentity.delete by system", "managedIdentity.create by " + f.admin.PrincipalID}
	if !slices.Equal(actors, want) {
		t.Fatalf("audit %v, want %v", actors, want)
	}
}

func TestEnvironmentMembers(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ppAdmin := f.principal(t, keyhold.PrincipalUser, "pp admin", keyhold.RolePowerPlatformAdministrator)
	user := f.principal(t, keyhold.PrincipalUser, "maker")
	envID := uuid.NewString()
	now := time.Now()
	update(t, f.store, func(tx keyhold.Tx) error {
		return tx.CreateEnvironment(context.Background(), &keyhold.Environment{ID: envID, TenantID: f.tenant, DisplayName: "Contoso", Location: "europe",
			SKU: keyhold.SKUProduction, State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByMicrosoft, Epoch: 1, Version: 1,
			CreatedBy: "test", CreatedAt: now, UpdatedAt: now})
	})
	other := newFixture(t, f.store)

	m, created, err := f.s.AddEnvironmentMember(as(ppAdmin), envID, user.PrincipalID)
	if err != nil || !created || m.AddedBy != ppAdmin.PrincipalID {
		t.Fatalf("AddEnvironmentMember = %+v, %v, %v", m, created, err)
	}
	again, created, err := f.s.AddEnvironmentMember(as(ppAdmin), envID, user.PrincipalID)
	if err != nil || created || !again.AddedAt.Equal(m.AddedAt) {
		t.Fatalf("adding again = %+v, %v, %v", again, created, err)
	}
	for _, c := range []struct {
		name        string
		caller      *keyhold.Identity
		env, member string
		code        string
	}{
		{"not an administrator", user, envID, ppAdmin.PrincipalID, keyhold.CodeForbidden},
		{"unknown environment", ppAdmin, uuid.NewString(), user.PrincipalID, keyhold.CodeEnvironmentNotFound},
		{"another tenant's environment", other.admin, envID, other.admin.PrincipalID, keyhold.CodeEnvironmentNotFound},
		{"another tenant's principal", ppAdmin, envID, other.admin.PrincipalID, keyhold.CodeNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := f.s.AddEnvironmentMember(as(c.caller), c.env, c.member)
			wantErr(t, err, c.code)
			ms, err := f.s.EnvironmentMembers(as(ppAdmin), envID)
			if err != nil || len(ms) != 1 || ms[0].PrincipalID != user.PrincipalID {
				t.Fatalf("members after the refusal: %v, %v", ms, err)
			}
		})
	}
	_, err = f.s.EnvironmentMembers(as(user), envID)
	wantErr(t, err, keyhold.CodeForbidden)
	if err := f.s.RemoveEnvironmentMember(as(ppAdmin), envID, user.PrincipalID); err != nil {
		t.Fatal(err)
	}
	err = f.s.RemoveEnvironmentMember(as(ppAdmin), envID, user.PrincipalID)
	wantErr(t, err, keyhold.CodeNotFound, "not a member")
	want := []string{"environment.member.add", "environment.member.remove"}
	if got := f.auditActions(t); !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

// TestWeakPasswordsRefused: a user's password shorter than 12 bytes, or a
// common one, is refused with a message naming the rule (and not quoting
// the password), and no user is created.
func TestWeakPasswordsRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := as(f.admin)
		for _, c := range []struct{ name, pw, hint string }{
			{"password", "password", "12 to 256 bytes"},
			{"eleven bytes", "tbq-vmr-wxk", "12 to 256 bytes"},
			{"common with digits", "Password1234", "common"},
			{"common repeated", "monkeymonkey", "common"},
			{"a date", "2024-12-05 10:00", "without a letter"},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := f.principals(t)
				_, err := f.s.CreateUser(ctx, "Weak", "weak@contoso.example", c.pw)
				wantErr(t, err, keyhold.CodeBadRequest, "passwordProfile.password", c.hint)
				if c.pw != "password" && strings.Contains(keyhold.ErrorMessage(err), c.pw) { // the message says "password"
					t.Errorf("the refusal quotes the password: %v", err)
				}
				if got := f.principals(t); !slices.Equal(got, before) {
					t.Fatalf("principals %v after the refusal, want %v", got, before)
				}
				users, err := f.s.Users(ctx)
				if err != nil || len(users) != 0 {
					t.Fatalf("Users after the refusal = %v, %v; want none", users, err)
				}
			})
		}
		if _, err := f.s.CreateUser(ctx, "Strong", "strong@contoso.example", "ochre lantern quilt 42"); err != nil {
			t.Fatalf("a good passphrase: %v", err)
		}
	})
}
