package keyhold

import "testing"

func TestActionMatches(t *testing.T) {
	cases := []struct {
		name            string
		pattern, action string
		want            bool
	}{
		{"exact", "Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/read", true},
		{"case-insensitive", "microsoft.keyvault/vaults/keys/READ", "Microsoft.KeyVault/vaults/keys/read", true},
		{"trailing star", "Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keys/unwrap/action", true},
		{"star alone", "*", "Microsoft.KeyVault/vaults/write", true},
		{"leading star", "*/read", "Microsoft.PowerPlatform/enterprisePolicies/read", true},
		{"leading star no match", "*/read", "Microsoft.PowerPlatform/enterprisePolicies/write", false},
		{"middle star", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/read", true},
		{"prefix is not a match", "Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/readx", false},
		{"other namespace", "Microsoft.KeyVault/*", "Microsoft.Authorization/roleAssignments/write", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ActionMatches(c.pattern, c.action); got != c.want {
				t.Fatalf("ActionMatches(%q, %q) = %v, want %v", c.pattern, c.action, got, c.want)
			}
		})
	}
}

func TestAllowedInheritsDownAndHonoursNotActions(t *testing.T) {
	const sub = "/subscriptions/s1"
	vault := sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v1"
	assign := func(scope, role string) *RoleAssignment {
		r, ok := FindRoleDefinition(role)
		if !ok {
			t.Fatalf("no built-in role %q", role)
		}
		return &RoleAssignment{Scope: scope, RoleDefinitionID: r.ID}
	}
	cases := []struct {
		name   string
		as     []*RoleAssignment
		res    string
		action string
		data   bool
		want   bool
	}{
		{"owner at subscription manages vault", []*RoleAssignment{assign(sub, RoleOwner)}, vault, "Microsoft.KeyVault/vaults/write", false, true},
		{"owner has no data actions", []*RoleAssignment{assign(sub, RoleOwner)}, vault + "/keys/k", "Microsoft.KeyVault/vaults/keys/unwrap/action", true, false},
		{"contributor may not assign roles", []*RoleAssignment{assign(sub, RoleContributor)}, vault, "Microsoft.Authorization/roleAssignments/write", false, false},
		{"contributor writes vaults", []*RoleAssignment{assign(sub, RoleContributor)}, vault, "Microsoft.KeyVault/vaults/write", false, true},
		{"encryption user unwraps", []*RoleAssignment{assign(vault, RoleKeyVaultCryptoServiceEncryptUser)}, vault + "/keys/k", "Microsoft.KeyVault/vaults/keys/unwrap/action", true, true},
		{"encryption user may not create", []*RoleAssignment{assign(vault, RoleKeyVaultCryptoServiceEncryptUser)}, vault + "/keys/k", "Microsoft.KeyVault/vaults/keys/create/action", true, false},
		{"assignment on another vault", []*RoleAssignment{assign(sub+"/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v2", RoleKeyVaultCryptoOfficer)}, vault + "/keys/k", "Microsoft.KeyVault/vaults/keys/read", true, false},
		{"sibling with a shared prefix", []*RoleAssignment{assign(vault, RoleKeyVaultCryptoOfficer)}, vault + "x/keys/k", "Microsoft.KeyVault/vaults/keys/read", true, false},
		{"reader reads", []*RoleAssignment{assign(vault, RoleReader)}, vault, "Microsoft.KeyVault/vaults/read", false, true},
		{"unknown role grants nothing", []*RoleAssignment{{Scope: sub, RoleDefinitionID: "00000000-0000-0000-0000-000000000000"}}, vault, "Microsoft.KeyVault/vaults/read", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Allowed(c.as, c.res, c.action, c.data); got != c.want {
				t.Fatalf("Allowed = %v, want %v", got, c.want)
			}
		})
	}
}
