package http

import (
	"context"
	"encoding/json"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
)

// withARM serves an arm.Service over the fixture's store, and stores it
// in *svc.
func withARM(svc **arm.Service) option {
	return func(f *fixture) {
		s := arm.New(arm.Config{Store: f.store, Clock: f.clock})
		f.srv.ARM = ARMAPI{Resources: s, Directory: s}
		if svc != nil {
			*svc = s
		}
	}
}

// mgmtToken is a management-audience token of the bootstrap admin.
func (f *fixture) mgmtToken(t *testing.T) string {
	t.Helper()
	return f.token(t, "https://management.azure.com/.default")
}

// decode decodes a JSON answer of the wanted status into v.
func (a answer) decode(t *testing.T, status int, v any) {
	t.Helper()
	if a.status != status {
		t.Fatalf("answer %d, want %d: %s", a.status, status, a.body)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, a.body)
	}
}

func TestCanonicalARMPath(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"SDK spelling is kept", "/subscriptions/S/resourceGroups/RG", "/subscriptions/S/resourceGroups/RG"},
		{"script spelling", "/subscriptions/S/resourcegroups/RG", "/subscriptions/S/resourceGroups/RG"},
		{"upper case", "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV",
			"/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/KV"},
		{"group list", "/subscriptions/S/resourcegroups", "/subscriptions/S/resourceGroups"},
		{"names that look like segments stay", "/subscriptions/Providers/resourceGroups/Vaults/providers/microsoft.keyvault/vaults/Deployments",
			"/subscriptions/Providers/resourceGroups/Vaults/providers/Microsoft.KeyVault/vaults/Deployments"},
		{"role assignment at a vault", "/subscriptions/S/resourcegroups/RG/providers/microsoft.keyvault/vaults/KV/providers/microsoft.authorization/roleassignments/ID",
			"/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/KV/providers/Microsoft.Authorization/roleAssignments/ID"},
		{"role definitions at a subscription", "/subscriptions/S/providers/microsoft.authorization/roledefinitions",
			"/subscriptions/S/providers/Microsoft.Authorization/roleDefinitions"},
		{"provider registration", "/subscriptions/S/providers/microsoft.powerplatform/register", "/subscriptions/S/providers/Microsoft.PowerPlatform/register"},
		{"unknown namespace and action stay", "/subscriptions/S/providers/Contoso.Widgets/REGISTER", "/subscriptions/S/providers/Contoso.Widgets/REGISTER"},
		{"deleted vault", "/subscriptions/S/providers/microsoft.keyvault/LOCATIONS/westeurope/deletedvaults/KV/purge",
			"/subscriptions/S/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/KV/purge"},
		{"access policies", "/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/KV/accesspolicies/add",
			"/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/KV/accessPolicies/add"},
		{"enterprise policy", "/subscriptions/S/resourceGroups/RG/providers/microsoft.powerplatform/enterprisepolicies/EP",
			"/subscriptions/S/resourceGroups/RG/providers/Microsoft.PowerPlatform/enterprisePolicies/EP"},
		{"deployment", "/subscriptions/S/resourcegroups/RG/providers/microsoft.resources/DEPLOYMENTS/D",
			"/subscriptions/S/resourceGroups/RG/providers/Microsoft.Resources/deployments/D"},
		{"escaped name kept", "/subscriptions/S/resourcegroups/a%2Fb", "/subscriptions/S/resourceGroups/a%2Fb"},
		{"other APIs untouched", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"},
		{"vault data plane untouched", "/vaults/KV/keys/K", "/vaults/KV/keys/K"},
		{"bare prefix", "/subscriptions", "/subscriptions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := canonicalARMPath(c.in); got != c.want {
				t.Fatalf("canonicalARMPath(%q)\n = %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}

// TestARMResourceGroupsAndProviders: ARM's shapes and statuses, paths in
// any case, and the management audience only.
func TestARMResourceGroupsAndProviders(t *testing.T) {
	f := newFixture(t, withARM(nil))
	tok := f.mgmtToken(t)
	sub := f.creds.SubscriptionID
	rg := "/subscriptions/" + sub + "/resourcegroups/Prod-RG" // as scripts spell it

	var g resourceGroupJSON
	f.jsonCall(t, "PUT", rg, tok, `{"location":"westeurope","tags":{"env":"prod"}}`).decode(t, 201, &g)
	if g.ID != "/subscriptions/"+sub+"/resourceGroups/Prod-RG" || g.Type != "Microsoft.Resources/resourceGroups" || g.Location != "westeurope" ||
		g.Tags["env"] != "prod" || g.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("PUT answered %+v", g)
	}
	f.jsonCall(t, "PUT", "/SUBSCRIPTIONS/"+sub+"/RESOURCEGROUPS/prod-rg", tok, `{"location":"westeurope","tags":{"env":"test"}}`).decode(t, 200, &g)
	if g.Name != "Prod-RG" || g.Tags["env"] != "test" {
		t.Fatalf("update answered %+v", g)
	}
	f.call(t, "GET", "/subscriptions/"+sub+"/resourceGroups/Prod-RG", tok, "", nil).decode(t, 200, &g)
	var groups listJSON[resourceGroupJSON]
	f.call(t, "GET", "/subscriptions/"+sub+"/resourcegroups", tok, "", nil).decode(t, 200, &groups)
	if len(groups.Value) != 1 || groups.Value[0].Name != "Prod-RG" {
		t.Fatalf("list answered %+v", groups)
	}
	f.call(t, "GET", "/subscriptions/"+sub+"/resourceGroups/missing", tok, "", nil).wantError(t, 404, keyhold.CodeResourceGroupNotFound, "'missing' could not be found")
	f.jsonCall(t, "PUT", rg, tok, `{"location":`).wantError(t, 400, keyhold.CodeInvalidRequestContent, "not valid JSON")
	f.jsonCall(t, "PUT", rg, tok, `{"location":"eastus"}`).wantError(t, 409, keyhold.CodeConflict, "already exists in location")

	// The management audience only.
	f.call(t, "GET", rg, f.adminToken(t), "", nil).wantError(t, 401, keyhold.CodeInvalidToken, "https://management.azure.com/.default")

	// Providers.
	var p providerJSON
	f.call(t, "GET", "/subscriptions/"+sub+"/providers/Microsoft.KeyVault", tok, "", nil).decode(t, 200, &p)
	if p.RegistrationState != "NotRegistered" {
		t.Fatalf("before registration: %+v", p)
	}
	f.call(t, "POST", "/subscriptions/"+sub+"/providers/microsoft.keyvault/register", tok, "", nil).decode(t, 200, &p)
	if p.ID != "/subscriptions/"+sub+"/providers/Microsoft.KeyVault" || p.Namespace != "Microsoft.KeyVault" || p.RegistrationState != "Registered" ||
		!slices.ContainsFunc(p.ResourceTypes, func(r providerResourceJSON) bool { return r.ResourceType == "vaults" }) {
		t.Fatalf("register answered %+v", p)
	}
	var ps listJSON[providerJSON]
	f.call(t, "GET", "/subscriptions/"+sub+"/providers", tok, "", nil).decode(t, 200, &ps)
	if len(ps.Value) != 4 {
		t.Fatalf("providers %+v", ps)
	}
	f.call(t, "POST", "/subscriptions/"+sub+"/providers/Microsoft.Web/register", tok, "", nil).wantError(t, 404, keyhold.CodeNotFound, "Microsoft.KeyVault, Microsoft.PowerPlatform")

	var subs listJSON[subscriptionJSON]
	f.call(t, "GET", "/subscriptions", tok, "", nil).decode(t, 200, &subs)
	if len(subs.Value) != 1 || subs.Value[0].SubscriptionID != sub || subs.Value[0].TenantID != f.creds.TenantID {
		t.Fatalf("subscriptions %+v", subs)
	}

	if a := f.call(t, "DELETE", rg, tok, "", nil); a.status != 200 {
		t.Fatalf("DELETE answered %d %s", a.status, a.body)
	}
	f.call(t, "DELETE", rg, tok, "", nil).wantError(t, 404, keyhold.CodeResourceGroupNotFound)
	f.call(t, "GET", "/subscriptions/"+sub+"/no/such/thing", tok, "", nil).wantError(t, 404, keyhold.CodeNotFound, "no API at GET")
}

// TestARMRoleAssignments: the role assignment API at each scope, with its
// refusals, each of which leaves the assignments as they were.
func TestARMRoleAssignments(t *testing.T) {
	var svc *arm.Service
	f := newFixture(t, withARM(&svc))
	tok := f.mgmtToken(t)
	sub := f.creds.SubscriptionID
	ctx := context.Background()
	adminCtx := keyhold.NewContext(ctx, mustAuth(t, f, tok))
	if _, err := svc.PutResourceGroup(adminCtx, &keyhold.ResourceGroup{SubscriptionID: sub, Name: "rg1", Location: "westeurope"}); err != nil {
		t.Fatal(err)
	}
	sp, err := svc.CreateServicePrincipal(adminCtx, "policy identity")
	if err != nil {
		t.Fatal(err)
	}
	f.secrets = append(f.secrets, sp.Secret)
	crypto := "e147488a-f6f5-4113-8e2d-b22465e65bf6"
	vault := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1"
	lowerVault := strings.ToLower(vault)
	name := uuid.NewString()
	body := func(role, principal string) string {
		return `{"properties":{"roleDefinitionId":"/subscriptions/` + sub + `/providers/Microsoft.Authorization/roleDefinitions/` + role +
			`","principalId":"` + principal + `","principalType":"ServicePrincipal"}}`
	}

	var a roleAssignmentJSON
	f.jsonCall(t, "PUT", lowerVault+"/providers/microsoft.authorization/roleassignments/"+name, tok, body(crypto, sp.Principal.ID)).decode(t, 201, &a)
	if a.ID != vault+"/providers/Microsoft.Authorization/roleAssignments/"+name || a.Name != name || a.Type != "Microsoft.Authorization/roleAssignments" ||
		a.Properties.RoleDefinitionID != "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions/"+crypto ||
		a.Properties.PrincipalID != sp.Principal.ID || a.Properties.PrincipalType != "ServicePrincipal" || a.Properties.Scope != vault ||
		a.Properties.CreatedBy == "" || a.Properties.CreatedOn.IsZero() {
		t.Fatalf("PUT answered %+v", a)
	}
	// The same again: 201 and no change.
	f.jsonCall(t, "PUT", vault+"/providers/Microsoft.Authorization/roleAssignments/"+name, tok, body(crypto, sp.Principal.ID)).decode(t, 201, &a)

	list := func() []string {
		t.Helper()
		var l listJSON[roleAssignmentJSON]
		f.call(t, "GET", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments", tok, "", nil).decode(t, 200, &l)
		var ids []string
		for _, x := range l.Value {
			ids = append(ids, x.ID)
		}
		slices.Sort(ids)
		return ids
	}
	before := list()
	if len(before) != 2 {
		t.Fatalf("assignments %v, want the bootstrap Owner and the new one", before)
	}

	// A Contributor, to be refused.
	contributor, err := svc.CreateServicePrincipal(adminCtx, "contributor")
	if err != nil {
		t.Fatal(err)
	}
	f.secrets = append(f.secrets, contributor.Secret)
	err = svc.CreateRoleAssignment(adminCtx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: "/subscriptions/" + sub,
		RoleDefinitionID: "b24988ac-6180-42a0-ab88-20f7382dd24c", PrincipalID: contributor.Principal.ID})
	if err != nil {
		t.Fatal(err)
	}
	before = list()
	contribTok := f.form(t, "/"+f.creds.TenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {contributor.Principal.AppID}, "client_secret": {contributor.Secret}, "scope": {"https://management.azure.com/.default"}})
	var ct tokenJSON
	contribTok.decode(t, 200, &ct)
	f.secrets = append(f.secrets, ct.AccessToken)

	newPath := vault + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
	for _, c := range []struct {
		name   string
		tok    string
		path   string
		body   string
		status int
		code   string
		hint   string
	}{
		{"contributor can't assign roles", ct.AccessToken, newPath, body(crypto, sp.Principal.ID), 403, keyhold.CodeAuthorizationFailed,
			"The client '" + contributor.Principal.AppID + "' with object id '" + contributor.Principal.ID + "' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '" + vault + "' or the scope is invalid."},
		{"unknown role", tok, newPath, body("00000000-0000-0000-0000-000000000000", sp.Principal.ID), 400, keyhold.CodeBadRequest, "does not exist"},
		{"group that doesn't exist", tok, strings.Replace(newPath, "/rg1/", "/nope/", 1), body(crypto, sp.Principal.ID), 404, keyhold.CodeResourceGroupNotFound, "'nope'"},
		{"not JSON", tok, newPath, `{"properties":`, 400, keyhold.CodeInvalidRequestContent, "not valid JSON"},
		{"no properties", tok, newPath, `{}`, 400, keyhold.CodeInvalidRequestContent, "properties.roleDefinitionId"},
		{"properties of the wrong type", tok, newPath, `{"properties":{"principalId":42}}`, 400, keyhold.CodeInvalidRequestContent, "must be a string"},
		{"a condition", tok, newPath, strings.Replace(body(crypto, sp.Principal.ID), `"principalType"`, `"condition":"@Resource[x] == 'y'","principalType"`, 1), 400, keyhold.CodeNotSupported, "conditions"},
		{"name not a GUID", tok, vault + "/providers/Microsoft.Authorization/roleAssignments/mine", body(crypto, sp.Principal.ID), 400, keyhold.CodeBadRequest, "GUID"},
		{"unknown principal", tok, newPath, body(crypto, uuid.NewString()), 400, keyhold.CodeBadRequest, "does not exist in the directory"},
		{"other kind", tok, vault + "/providers/Microsoft.Authorization/roleDefinitions/" + crypto, body(crypto, sp.Principal.ID), 404, keyhold.CodeNotFound, "no API at PUT"},
		{"no token", "", newPath, body(crypto, sp.Principal.ID), 401, keyhold.CodeUnauthorized, "bearer token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.jsonCall(t, "PUT", c.path, c.tok, c.body).wantError(t, c.status, c.code, c.hint)
			if got := list(); !slices.Equal(got, before) {
				t.Fatalf("assignments after the refusal %v, want %v", got, before)
			}
		})
	}

	// Reads: one, filtered lists, and definitions.
	f.call(t, "GET", vault+"/providers/Microsoft.Authorization/roleAssignments/"+name, tok, "", nil).decode(t, 200, &a)
	var l listJSON[roleAssignmentJSON]
	f.call(t, "GET", withFilter(vault+"/providers/Microsoft.Authorization/roleAssignments", "atScope() and principalId eq '"+sp.Principal.ID+"'"), tok, "", nil).decode(t, 200, &l)
	if len(l.Value) != 1 || l.Value[0].Name != name {
		t.Fatalf("filtered list %+v", l)
	}
	f.call(t, "GET", withFilter(vault+"/providers/Microsoft.Authorization/roleAssignments", "roleName eq 'Owner'"), tok, "", nil).wantError(t, 400, keyhold.CodeBadRequest, "atScope()")
	var defs listJSON[roleDefinitionJSON]
	f.call(t, "GET", withFilter("/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions", "roleName eq 'Key Vault Crypto Service Encryption User'"), tok, "", nil).decode(t, 200, &defs)
	if len(defs.Value) != 1 || defs.Value[0].Name != crypto || defs.Value[0].ID != "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions/"+crypto ||
		defs.Value[0].Properties.Type != "BuiltInRole" || !slices.Contains(defs.Value[0].Properties.Permissions[0].DataActions, "Microsoft.KeyVault/vaults/keys/unwrap/action") ||
		!slices.Equal(defs.Value[0].Properties.AssignableScopes, []string{"/"}) {
		t.Fatalf("role definitions %+v", defs)
	}
	var def roleDefinitionJSON
	f.call(t, "GET", "/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.Authorization/roleDefinitions/18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", tok, "", nil).decode(t, 200, &def)
	if def.Properties.RoleName != "User Access Administrator" {
		t.Fatalf("role definition %+v", def)
	}

	// Delete: 200 with the assignment, then 204.
	f.call(t, "DELETE", vault+"/providers/Microsoft.Authorization/roleAssignments/"+name, ct.AccessToken, "", nil).wantError(t, 403, keyhold.CodeAuthorizationFailed, "roleAssignments/delete")
	f.call(t, "DELETE", lowerVault+"/providers/Microsoft.Authorization/roleAssignments/"+name, tok, "", nil).decode(t, 200, &a)
	if a.Name != name {
		t.Fatalf("DELETE answered %+v", a)
	}
	if got := f.call(t, "DELETE", vault+"/providers/Microsoft.Authorization/roleAssignments/"+name, tok, "", nil); got.status != 204 {
		t.Fatalf("second DELETE answered %d %s", got.status, got.body)
	}
}

// shownOnce fails unless secret is in exactly one answer (the one that
// created it) and not in the log.
func (f *fixture) shownOnce(t *testing.T, secret string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, b := range f.bodies {
		if strings.Contains(string(b), secret) {
			n++
		}
	}
	if n != 1 || strings.Contains(f.logs.String(), secret) {
		t.Errorf("a secret is in %d answers (want 1) or in the log", n)
	}
}

// mustAuth authenticates a token as the server would.
func mustAuth(t *testing.T, f *fixture, tok string) *keyhold.Identity {
	t.Helper()
	id, err := f.p.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDirectoryAndPasswordGrant: a Global Administrator creates a service
// principal and a user over the Graph-shaped API; both sign in; the
// directory role and membership APIs work, and a non-Global Administrator
// can't create principals.
func TestDirectoryAndPasswordGrant(t *testing.T) {
	f := newFixture(t, withARM(nil))
	tok := f.mgmtToken(t)
	tenantPath := "/" + f.creds.TenantID + "/oauth2/v2.0/token"

	var sp servicePrincipalJSON
	f.jsonCall(t, "POST", "/v1.0/servicePrincipals", tok, `{"displayName":"automation"}`).decode(t, 201, &sp)
	if sp.ID == "" || sp.AppID == "" || sp.DisplayName != "automation" || len(sp.PasswordCredentials) != 1 ||
		!strings.HasPrefix(sp.PasswordCredentials[0].SecretText, "khs_") || sp.PasswordCredentials[0].EndDateTime.IsZero() {
		t.Fatalf("POST servicePrincipals answered %+v", sp)
	}
	secret := sp.PasswordCredentials[0].SecretText
	var spTok tokenJSON
	f.form(t, tenantPath, url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_secret": {secret},
		"scope": {"https://management.azure.com/.default"}}).decode(t, 200, &spTok)
	f.secrets = append(f.secrets, spTok.AccessToken)
	t.Cleanup(func() { f.shownOnce(t, secret) })
	var sps listJSON[servicePrincipalJSON]
	f.call(t, "GET", "/v1.0/servicePrincipals", tok, "", nil).decode(t, 200, &sps)
	if len(sps.Value) != 2 {
		t.Fatalf("servicePrincipals %+v", sps)
	}
	// The new principal holds no role: it sees no group, and may not
	// create principals.
	var none listJSON[resourceGroupJSON]
	f.call(t, "GET", "/subscriptions/"+f.creds.SubscriptionID+"/resourceGroups", spTok.AccessToken, "", nil).decode(t, 200, &none)
	if len(none.Value) != 0 {
		t.Fatalf("a principal without roles lists %+v", none)
	}
	if _, err := f.client.PutResourceGroup(context.Background(), &keyhold.ResourceGroup{SubscriptionID: f.creds.SubscriptionID, Name: "seen", Location: "eastus"}); err != nil {
		t.Fatal(err)
	}
	f.call(t, "GET", "/subscriptions/"+f.creds.SubscriptionID+"/resourceGroups", spTok.AccessToken, "", nil).decode(t, 200, &none)
	if len(none.Value) != 0 {
		t.Fatalf("a principal without roles lists %+v", none)
	}
	f.jsonCall(t, "POST", "/v1.0/servicePrincipals", spTok.AccessToken, `{"displayName":"x"}`).wantError(t, 403, keyhold.CodeForbidden, "Global Administrator")

	const pw = "correct horse battery staple"
	var u userJSON
	f.jsonCall(t, "POST", "/v1.0/users", tok, `{"displayName":"Ada","userPrincipalName":"ada@contoso.example","passwordProfile":{"password":"`+pw+`"}}`).decode(t, 201, &u)
	if u.ID == "" || u.UserPrincipalName != "ada@contoso.example" || u.PasswordProfile != nil {
		t.Fatalf("POST users answered %+v", u)
	}
	f.secrets = append(f.secrets, pw) // never in an answer: it was given, not generated
	f.jsonCall(t, "POST", "/v1.0/users", tok, `{"displayName":"Ada","userPrincipalName":"ADA@contoso.example"}`).wantError(t, 409, keyhold.CodeConflict, "userPrincipalName")

	// The user signs in with the password grant.
	ropc := url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"}, "username": {"Ada@Contoso.example"},
		"password": {pw}, "scope": {"https://management.azure.com/.default"}}
	var userTok tokenJSON
	f.form(t, tenantPath, ropc).decode(t, 200, &userTok)
	f.secrets = append(f.secrets, userTok.AccessToken)
	id := mustAuth(t, f, userTok.AccessToken)
	if id.Type != keyhold.PrincipalUser || id.PrincipalID != u.ID {
		t.Fatalf("the user's token authenticates as %+v", id)
	}
	wrong := url.Values{}
	for k, v := range ropc {
		wrong[k] = v
	}
	wrong.Set("password", "not the password")
	a := f.form(t, tenantPath, wrong)
	var oe oauthErrorJSON
	a.decode(t, 400, &oe)
	if oe.Error != "invalid_grant" || !strings.HasPrefix(oe.ErrorDescription, "AADSTS50126") {
		t.Fatalf("wrong password answered %+v", oe)
	}
	// ARM names a refused user by its sign-in name.
	f.call(t, "POST", "/subscriptions/"+f.creds.SubscriptionID+"/providers/Microsoft.KeyVault/register", userTok.AccessToken, "", nil).
		wantError(t, 403, keyhold.CodeAuthorizationFailed, "The client 'ada@contoso.example' with object id '"+u.ID+"'")

	// Directory roles.
	var dra directoryRoleAssignmentJSON
	f.jsonCall(t, "POST", "/v1.0/roleManagement/directory/roleAssignments", tok,
		`{"principalId":"`+u.ID+`","roleDefinitionId":"11648597-926c-4cf3-9c36-bcebb0ba8dcc","directoryScopeId":"/"}`).decode(t, 201, &dra)
	if dra.ID != "11648597-926c-4cf3-9c36-bcebb0ba8dcc_"+u.ID || dra.PrincipalID != u.ID {
		t.Fatalf("role assignment answered %+v", dra)
	}
	f.jsonCall(t, "POST", "/v1.0/roleManagement/directory/roleAssignments", tok,
		`{"principalId":"`+u.ID+`","roleDefinitionId":"fe930be7-5e62-47db-91af-98c3a49a38b1","directoryScopeId":"/"}`).wantError(t, 400, keyhold.CodeBadRequest, "11648597-926c-4cf3-9c36-bcebb0ba8dcc")
	var dras listJSON[directoryRoleAssignmentJSON]
	f.call(t, "GET", withFilter("/v1.0/roleManagement/directory/roleAssignments", "principalId eq '"+u.ID+"'"), userTok.AccessToken, "", nil).decode(t, 200, &dras)
	if len(dras.Value) != 1 || dras.Value[0].RoleDefinitionID != "11648597-926c-4cf3-9c36-bcebb0ba8dcc" {
		t.Fatalf("roles %+v", dras)
	}
	// A Power Platform Administrator is not a Global Administrator.
	f.jsonCall(t, "POST", "/v1.0/users", userTok.AccessToken, `{"displayName":"Eve","userPrincipalName":"eve@contoso.example"}`).wantError(t, 403, keyhold.CodeForbidden, "Global Administrator")

	// Membership: the platform admin (the user now) adds the service
	// principal to an environment.
	e := f.createEnv(t, "members")
	memberPath := adminEnvPrefix + "/" + e.ID + "/members/" + sp.ID
	var m memberJSON
	f.call(t, "PUT", memberPath, userTok.AccessToken, "", nil).decode(t, 201, &m)
	if m.Name != sp.ID || m.Properties.EnvironmentID != e.ID || m.Properties.AddedBy != u.ID {
		t.Fatalf("member answered %+v", m)
	}
	f.call(t, "PUT", memberPath, userTok.AccessToken, "", nil).decode(t, 200, &m)
	var ms listJSON[memberJSON]
	f.call(t, "GET", adminEnvPrefix+"/"+e.ID+"/members", f.adminToken(t), "", nil).decode(t, 200, &ms)
	if len(ms.Value) != 1 {
		t.Fatalf("members %+v", ms)
	}
	f.call(t, "PUT", adminEnvPrefix+"/"+e.ID+"/members/"+u.ID, spTok.AccessToken, "", nil).wantError(t, 403, keyhold.CodeForbidden)
	if a := f.call(t, "DELETE", memberPath, userTok.AccessToken, "", nil); a.status != 204 {
		t.Fatalf("DELETE member answered %d %s", a.status, a.body)
	}
	f.call(t, "DELETE", memberPath, userTok.AccessToken, "", nil).wantError(t, 404, keyhold.CodeNotFound, "not a member")

	if a := f.call(t, "DELETE", "/v1.0/roleManagement/directory/roleAssignments/"+dra.ID, tok, "", nil); a.status != nethttp.StatusNoContent {
		t.Fatalf("DELETE role assignment answered %d %s", a.status, a.body)
	}
}

// TestClientARM: the Go client's resource manager and directory methods
// against the server.
func TestClientARM(t *testing.T) {
	f := newFixture(t, withARM(nil))
	ctx := context.Background()
	c := f.client
	sub := f.creds.SubscriptionID

	g := &keyhold.ResourceGroup{SubscriptionID: sub, Name: "rg1", Location: "West Europe", Tags: map[string]string{"a": "b"}}
	if created, err := c.PutResourceGroup(ctx, g); err != nil || !created || g.Location != "westeurope" {
		t.Fatalf("PutResourceGroup = %v, %v, %+v", created, err, g)
	}
	if created, err := c.PutResourceGroup(ctx, g); err != nil || created {
		t.Fatalf("PutResourceGroup again = %v, %v", created, err)
	}
	if p, err := c.RegisterProvider(ctx, sub, "microsoft.powerplatform"); err != nil || p.State != keyhold.ProviderRegistered || p.Namespace != keyhold.NamespacePowerPlatform {
		t.Fatalf("RegisterProvider = %+v, %v", p, err)
	}
	sp, err := c.CreateServicePrincipal(ctx, "automation")
	if err != nil || sp.Secret == "" {
		t.Fatalf("CreateServicePrincipal = %+v, %v", sp, err)
	}
	t.Cleanup(func() { f.shownOnce(t, sp.Secret) })
	defs, err := c.RoleDefinitions(ctx, "/subscriptions/"+sub, "Reader")
	if err != nil || len(defs) != 1 {
		t.Fatalf("RoleDefinitions = %v, %v", defs, err)
	}
	a := &keyhold.RoleAssignment{Scope: g.ID(), RoleDefinitionID: defs[0].ID, PrincipalID: sp.Principal.ID}
	if err := c.CreateRoleAssignment(ctx, a); err != nil || a.ID == "" || a.PrincipalType != "ServicePrincipal" || a.RoleDefinitionID != defs[0].ID {
		t.Fatalf("CreateRoleAssignment = %+v, %v", a, err)
	}
	l, err := c.ListRoleAssignments(ctx, g.ID(), keyhold.AssignmentFilter{PrincipalID: sp.Principal.ID})
	if err != nil || len(l) != 1 || l[0].ID != a.ID {
		t.Fatalf("ListRoleAssignments = %v, %v", l, err)
	}
	if _, err := c.DeleteRoleAssignment(ctx, g.ID(), a.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteRoleAssignment(ctx, g.ID(), a.ID)
	wantCode(t, err, keyhold.CodeNotFound)
	u, err := c.CreateUser(ctx, "Bob", "bob@contoso.example", "")
	if err != nil || u.Password == "" {
		t.Fatalf("CreateUser = %+v, %v", u, err)
	}
	t.Cleanup(func() { f.shownOnce(t, u.Password) })
	if _, err := c.AssignDirectoryRole(ctx, u.User.ID, keyhold.RoleDynamics365Administrator); err != nil {
		t.Fatal(err)
	}
	roles, err := c.DirectoryRoleAssignments(ctx, u.User.ID)
	if err != nil || len(roles) != 1 || roles[0].Role != keyhold.RoleDynamics365Administrator {
		t.Fatalf("DirectoryRoleAssignments = %v, %v", roles, err)
	}
	e := f.createEnv(t, "e")
	if _, created, err := c.AddEnvironmentMember(ctx, e.ID, u.User.ID); err != nil || !created {
		t.Fatalf("AddEnvironmentMember = %v, %v", created, err)
	}
	if ms, err := c.EnvironmentMembers(ctx, e.ID); err != nil || len(ms) != 1 || ms[0].PrincipalID != u.User.ID {
		t.Fatalf("EnvironmentMembers = %v, %v", ms, err)
	}
	if err := c.DeleteResourceGroup(ctx, sub, "rg1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.ResourceGroup(ctx, sub, "rg1")
	wantCode(t, err, keyhold.CodeResourceGroupNotFound)
}
