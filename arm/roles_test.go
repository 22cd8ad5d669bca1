package arm

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestScopeInheritance: an assignment at the subscription reaches resource
// groups and resources in it; one at a resource group reaches its
// resources only; one at a vault reaches nothing else.
func TestScopeInheritance(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	f.group(t, "rg1")
	f.group(t, "rg2")
	subReader := f.principal(t, keyhold.PrincipalUser, "sub reader")
	f.grant(t, f.subScope(), keyhold.RoleReader, subReader)
	rgContrib := f.principal(t, keyhold.PrincipalServicePrincipal, "rg contributor")
	f.grant(t, f.rgScope("rg1"), keyhold.RoleContributor, rgContrib)
	vaultAdmin := f.principal(t, keyhold.PrincipalUser, "vault access admin")
	f.grant(t, f.vaultScope("rg1", "kv1"), keyhold.RoleUserAccessAdministrator, vaultAdmin)

	const (
		read        = "Microsoft.KeyVault/vaults/read"
		write       = "Microsoft.KeyVault/vaults/write"
		assignRoles = ActionRoleAssignmentWrite
	)
	cases := []struct {
		name     string
		id       *keyhold.Identity
		resource string
		action   string
		want     bool
	}{
		{"owner at subscription writes a vault", f.admin, f.vaultScope("rg2", "kv9"), write, true},
		{"owner at subscription assigns roles on a vault", f.admin, f.vaultScope("rg1", "kv1"), assignRoles, true},
		{"reader at subscription reads a group", subReader, f.rgScope("rg2"), ActionGroupRead, true},
		{"reader at subscription reads a vault", subReader, f.vaultScope("rg1", "kv1"), read, true},
		{"reader at subscription may not write a vault", subReader, f.vaultScope("rg1", "kv1"), write, false},
		{"contributor at group writes its vault", rgContrib, f.vaultScope("rg1", "kv1"), write, true},
		{"contributor at group may not assign roles there", rgContrib, f.vaultScope("rg1", "kv1"), assignRoles, false},
		{"contributor at group does not reach the subscription", rgContrib, f.subScope(), read, false},
		{"contributor at group does not reach another group", rgContrib, f.vaultScope("rg2", "kv1"), write, false},
		{"contributor at group does not reach a group with its name as prefix", rgContrib, f.vaultScope("rg10", "kv1"), write, false},
		{"user access admin at vault assigns roles there", vaultAdmin, f.vaultScope("rg1", "kv1"), assignRoles, true},
		{"user access admin at vault assigns roles on its keys", vaultAdmin, f.vaultScope("rg1", "kv1") + "/keys/k1", assignRoles, true},
		{"user access admin at vault does not reach its group", vaultAdmin, f.rgScope("rg1"), assignRoles, false},
		{"ids compare case-insensitively", rgContrib, "/SUBSCRIPTIONS/" + f.sub + "/resourcegroups/RG1/providers/microsoft.keyvault/vaults/KV1", write, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
				return Authorize(context.Background(), tx, c.id, c.resource, c.action)
			})
			if c.want && err != nil {
				t.Fatalf("Authorize: %v, want allowed", err)
			}
			if !c.want {
				wantErr(t, err, keyhold.CodeAuthorizationFailed, "with object id '"+c.id.PrincipalID+"'", "perform action '"+c.action+"'", "over scope '"+c.resource+"'")
			}
		})
	}
}

// TestAuthorizationFailedNamesTheClient: ARM's message names an
// application by its app id and a user by its sign-in name.
func TestAuthorizationFailedNamesTheClient(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	sp := f.principal(t, keyhold.PrincipalServicePrincipal, "app")
	user := f.principal(t, keyhold.PrincipalUser, "ada")
	update(t, f.store, func(tx keyhold.Tx) error {
		return tx.CreateUserAccount(context.Background(), &keyhold.UserAccount{PrincipalID: user.PrincipalID, TenantID: f.tenant, UserPrincipalName: "ada@contoso.example", PasswordHash: []byte("x")})
	})
	for _, c := range []struct {
		name   string
		id     *keyhold.Identity
		client string
	}{
		{"service principal", sp, sp.AppID},
		{"user", user, "ada@contoso.example"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.s.RegisterProvider(as(c.id), f.sub, keyhold.NamespaceKeyVault)
			want := "The client '" + c.client + "' with object id '" + c.id.PrincipalID + "' does not have authorization to perform action 'Microsoft.KeyVault/register/action' over scope '/subscriptions/" + f.sub + "' or the scope is invalid."
			wantErr(t, err, keyhold.CodeAuthorizationFailed, want)
		})
	}
}

// TestRoleAssignmentRefusals: every refused assignment leaves the role
// assignments as they were.
func TestRoleAssignmentRefusals(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	f.group(t, "rg1")
	contributor := f.principal(t, keyhold.PrincipalUser, "contributor")
	f.grant(t, f.subScope(), keyhold.RoleContributor, contributor)
	stranger := f.principal(t, keyhold.PrincipalServicePrincipal, "stranger")
	target := f.principal(t, keyhold.PrincipalServicePrincipal, "policy identity")
	crypto, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultCryptoServiceEncryptUser)
	existing := &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: f.vaultScope("rg1", "kv1"), RoleDefinitionID: crypto.ID, PrincipalID: target.PrincipalID}
	if err := f.s.CreateRoleAssignment(as(f.admin), existing); err != nil {
		t.Fatal(err)
	}
	otherTenant := newFixture(t, f.store) // another tenant in the same store

	good := func() *keyhold.RoleAssignment {
		return &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: f.vaultScope("rg1", "kv2"), RoleDefinitionID: keyhold.RoleDefinitionID(f.sub, crypto.ID), PrincipalID: target.PrincipalID}
	}
	cases := []struct {
		name   string
		caller *keyhold.Identity
		change func(a *keyhold.RoleAssignment)
		code   string
		hint   string
	}{
		{"contributor can't assign roles", contributor, nil, keyhold.CodeAuthorizationFailed, "Microsoft.Authorization/roleAssignments/write"},
		{"stranger", stranger, nil, keyhold.CodeAuthorizationFailed, "does not have authorization"},
		{"another tenant's owner", otherTenant.admin, nil, keyhold.CodeAuthorizationFailed, "does not have authorization"},
		{"unknown role", f.admin, func(a *keyhold.RoleAssignment) { a.RoleDefinitionID = "00000000-0000-0000-0000-000000000001" }, keyhold.CodeBadRequest, "role definition with ID '00000000-0000-0000-0000-000000000001' does not exist"},
		{"role by name is not an id", f.admin, func(a *keyhold.RoleAssignment) { a.RoleDefinitionID = keyhold.RoleOwner }, keyhold.CodeBadRequest, "does not exist"},
		{"resource group that doesn't exist", f.admin, func(a *keyhold.RoleAssignment) { a.Scope = f.vaultScope("nope", "kv1") }, keyhold.CodeResourceGroupNotFound, "'nope' could not be found"},
		{"subscription that doesn't exist", f.admin, func(a *keyhold.RoleAssignment) { a.Scope = "/subscriptions/" + uuid.NewString() }, keyhold.CodeAuthorizationFailed, "or the scope is invalid"},
		{"malformed scope", f.admin, func(a *keyhold.RoleAssignment) { a.Scope = f.rgScope("rg1") + "/providers/Microsoft.KeyVault" }, keyhold.CodeBadRequest, "is not valid"},
		{"subscription-level resource", f.admin, func(a *keyhold.RoleAssignment) { a.Scope = f.subScope() + "/providers/Microsoft.KeyVault/vaults/kv1" }, keyhold.CodeBadRequest, "is not valid"},
		{"name is not a GUID", f.admin, func(a *keyhold.RoleAssignment) { a.ID = "my-assignment" }, keyhold.CodeBadRequest, "must be a GUID"},
		{"unknown principal", f.admin, func(a *keyhold.RoleAssignment) { a.PrincipalID = uuid.NewString() }, keyhold.CodeBadRequest, "does not exist in the directory"},
		{"another tenant's principal", f.admin, func(a *keyhold.RoleAssignment) { a.PrincipalID = otherTenant.admin.PrincipalID }, keyhold.CodeBadRequest, "does not exist in the directory"},
		{"wrong principal type", f.admin, func(a *keyhold.RoleAssignment) { a.PrincipalType = PrincipalTypeUser }, keyhold.CodeBadRequest, "has type 'ServicePrincipal'"},
		{"same principal, role and scope under another name", f.admin, func(a *keyhold.RoleAssignment) { a.Scope = existing.Scope }, keyhold.CodeConflict, "already exists"},
		{"existing name with other properties", f.admin, func(a *keyhold.RoleAssignment) { a.ID = existing.ID }, keyhold.CodeConflict, "already exists"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.assignments(t)
			auditBefore := len(f.auditActions(t))
			a := good()
			if c.change != nil {
				c.change(a)
			}
			err := f.s.CreateRoleAssignment(as(c.caller), a)
			wantErr(t, err, c.code, c.hint)
			sameAssignments(t, "after the refusal", f.assignments(t), before)
			if n := len(f.auditActions(t)); n != auditBefore {
				t.Fatalf("the refusal added %d audit entries", n-auditBefore)
			}
		})
	}
}

// TestRoleAssignmentLifecycle: create at a vault, put again, read, list
// with inheritance, delete.
func TestRoleAssignmentLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		f.group(t, "rg1")
		mi := f.principal(t, keyhold.PrincipalManagedIdentity, "policy identity")
		reader := f.principal(t, keyhold.PrincipalUser, "platform admin", keyhold.RolePowerPlatformAdministrator)
		crypto, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultCryptoServiceEncryptUser)
		vault := f.vaultScope("rg1", "kv1")
		a := &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: vault, RoleDefinitionID: keyhold.RoleDefinitionID(f.sub, crypto.ID), PrincipalID: mi.PrincipalID}
		if err := f.s.CreateRoleAssignment(as(f.admin), a); err != nil {
			t.Fatal(err)
		}
		if a.RoleDefinitionID != crypto.ID || a.PrincipalType != PrincipalTypeServicePrincipal || a.TenantID != f.tenant || a.CreatedBy != f.admin.PrincipalID {
			t.Fatalf("created %+v", a)
		}
		again := &keyhold.RoleAssignment{ID: a.ID, Scope: "/SUBSCRIPTIONS/" + f.sub + "/resourcegroups/RG1/providers/microsoft.keyvault/vaults/KV1/", RoleDefinitionID: crypto.ID, PrincipalID: mi.PrincipalID}
		if err := f.s.CreateRoleAssignment(as(f.admin), again); err != nil || again.ID != a.ID || !again.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("putting the same assignment again = %+v, %v", again, err)
		}
		// Reader on the vault for the platform admin, as the spec's
		// "Grant the Power Platform admin privilege to read enterprise
		// policy" does for a policy.
		readerRole, _ := keyhold.FindRoleDefinition(keyhold.RoleReader)
		ra := &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: vault, RoleDefinitionID: readerRole.ID, PrincipalID: reader.PrincipalID, PrincipalType: "User"}
		if err := f.s.CreateRoleAssignment(as(f.admin), ra); err != nil {
			t.Fatal(err)
		}

		got, err := f.s.RoleAssignment(as(reader), vault, a.ID)
		if err != nil || got.PrincipalID != mi.PrincipalID {
			t.Fatalf("RoleAssignment as the reader = %+v, %v", got, err)
		}
		_, err = f.s.RoleAssignment(as(f.admin), f.rgScope("rg1"), a.ID)
		wantErr(t, err, keyhold.CodeNotFound, "not found at scope")

		names := func(as []*keyhold.RoleAssignment) []string {
			var s []string
			for _, a := range as {
				s = append(s, a.ID)
			}
			slices.Sort(s)
			return s
		}
		sorted := func(s ...string) []string { slices.Sort(s); return s }
		owner := f.owner // the admin's Owner at the subscription
		for _, c := range []struct {
			name   string
			caller *keyhold.Identity
			scope  string
			f      keyhold.AssignmentFilter
			want   []string
		}{
			{"at the subscription, with those below", f.admin, f.subScope(), keyhold.AssignmentFilter{}, sorted(owner, a.ID, ra.ID)},
			{"at the subscription only", f.admin, f.subScope(), keyhold.AssignmentFilter{AtScope: true}, []string{owner}},
			{"at the vault, inherited included", f.admin, vault, keyhold.AssignmentFilter{AtScope: true}, sorted(owner, a.ID, ra.ID)},
			{"one principal", reader, vault, keyhold.AssignmentFilter{PrincipalID: mi.PrincipalID}, []string{a.ID}},
			{"another vault", f.admin, f.vaultScope("rg1", "kv2"), keyhold.AssignmentFilter{}, []string{owner}},
		} {
			t.Run(c.name, func(t *testing.T) {
				l, err := f.s.ListRoleAssignments(as(c.caller), c.scope, c.f)
				if err != nil {
					t.Fatal(err)
				}
				if got := names(l); !slices.Equal(got, c.want) {
					t.Fatalf("listed %v, want %v", got, c.want)
				}
			})
		}
		_, err = f.s.ListRoleAssignments(as(reader), f.subScope(), keyhold.AssignmentFilter{})
		wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionRoleAssignmentRead)

		_, err = f.s.DeleteRoleAssignment(as(reader), vault, a.ID)
		wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionRoleAssignmentDelete)
		del, err := f.s.DeleteRoleAssignment(as(f.admin), vault, a.ID)
		if err != nil || del.ID != a.ID {
			t.Fatalf("DeleteRoleAssignment = %+v, %v", del, err)
		}
		_, err = f.s.DeleteRoleAssignment(as(f.admin), vault, a.ID)
		wantErr(t, err, keyhold.CodeNotFound)
		want := []string{"resourceGroup.create", "roleAssignment.create", "roleAssignment.create", "roleAssignment.delete"}
		if got := f.auditActions(t); !slices.Equal(got, want) {
			t.Fatalf("audit = %v, want %v", got, want)
		}
	})
}

func TestRoleDefinitions(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	stranger := f.principal(t, keyhold.PrincipalUser, "anyone in the tenant")
	all, err := f.s.RoleDefinitions(as(stranger), f.subScope(), "")
	if err != nil || len(all) != len(keyhold.BuiltinRoles) {
		t.Fatalf("RoleDefinitions = %d, %v; want the %d built-ins", len(all), err, len(keyhold.BuiltinRoles))
	}
	one, err := f.s.RoleDefinitions(as(stranger), f.subScope(), "key vault crypto service encryption user")
	if err != nil || len(one) != 1 || one[0].ID != "e147488a-f6f5-4113-8e2d-b22465e65bf6" {
		t.Fatalf("RoleDefinitions(by name) = %v, %v", one, err)
	}
	uaa, err := f.s.RoleDefinition(as(stranger), f.subScope(), keyhold.RoleDefinitionID(f.sub, "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"))
	if err != nil || uaa.Name != keyhold.RoleUserAccessAdministrator {
		t.Fatalf("RoleDefinition(User Access Administrator) = %+v, %v", uaa, err)
	}
	_, err = f.s.RoleDefinition(as(stranger), f.subScope(), keyhold.RoleOwner)
	wantErr(t, err, keyhold.CodeNotFound, "does not exist")
	_, err = f.s.RoleDefinitions(as(stranger), f.rgScope("missing"), "")
	wantErr(t, err, keyhold.CodeResourceGroupNotFound)
}

func TestParseScope(t *testing.T) {
	cases := []struct {
		name, in, want string
		kind           string
	}{
		{"subscription", "/subscriptions/s1", "/subscriptions/s1", "subscription"},
		{"trailing slash, other case", "/SUBSCRIPTIONS/s1/", "/subscriptions/s1", "subscription"},
		{"group", "/subscriptions/s1/resourcegroups/RG", "/subscriptions/s1/resourceGroups/RG", "resource group"},
		{"vault", "/subscriptions/s1/resourceGroups/rg/providers/microsoft.keyvault/vaults/kv", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", "resource"},
		{"key", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k", "resource"},
		{"unknown namespace kept", "/subscriptions/s1/resourceGroups/rg/providers/Contoso.Widgets/widgets/w", "/subscriptions/s1/resourceGroups/rg/providers/Contoso.Widgets/widgets/w", "resource"},
		{"root", "/", "", ""},
		{"no leading slash", "subscriptions/s1", "", ""},
		{"empty subscription", "/subscriptions//resourceGroups/rg", "", ""},
		{"group without name", "/subscriptions/s1/resourceGroups", "", ""},
		{"type without name", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults", "", ""},
		{"other segment", "/subscriptions/s1/locations/westeurope", "", ""},
		{"management group", "/providers/Microsoft.Management/managementGroups/mg", "", ""},
		{"query characters", "/subscriptions/s1/resourceGroups/rg?x", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc, err := keyhold.ParseScope(c.in)
			if c.want == "" {
				wantErr(t, err, keyhold.CodeBadRequest, "is not valid")
				return
			}
			if err != nil || sc.String() != c.want || sc.Kind() != c.kind {
				t.Fatalf("keyhold.ParseScope(%q) = %v (%v), %v; want %s (%s)", c.in, sc, sc.Kind(), err, c.want, c.kind)
			}
		})
	}
}
