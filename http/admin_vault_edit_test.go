package http

import (
	"context"
	"html/template"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// withVaultService serves the built-in key vault, with Microsoft.KeyVault
// registered, the resource group "cmk", and the bootstrap administrator
// Owner of the subscription.
func withVaultService(t *testing.T) option {
	return func(f *fixture) {
		master, err := crypt.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(master.Destroy)
		kv, err := vault.New(vault.Config{Store: f.store, MasterKey: master, Clock: f.clock, BaseURL: f.url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { kv.Close() })
		f.srv.KeyVault = KeyVaultAPI{Vaults: kv, Lookup: storeLookup(f.store)}
	}
}

// adminUserID makes a user (no directory role) and returns their object
// id and password.
func (f *fixture) adminUserID(t *testing.T, upn string) (string, string) {
	t.Helper()
	pw := "pw of " + upn + " that is long enough"
	var u userJSON
	f.jsonCall(t, "POST", "/v1.0/users", f.mgmtToken(t), `{"displayName":"`+upn+`","userPrincipalName":"`+upn+`","passwordProfile":{"password":"`+pw+`"}}`).decode(t, 201, &u)
	f.secrets = append(f.secrets, pw)
	return u.ID, pw
}

// TestAdminVaultEdit: the key vault page's access-policy and network
// forms over HTTPS, on both databases, without a browser. The owner sees
// the forms; a form without the CSRF token and a bad CIDR (the API's own
// message, word for word) are refused and change nothing; the rules and
// an access policy are saved and the API has them. A Reader sees the
// page with no form, and each forced POST (network, access policy,
// role assignment) is refused with the message the API gives her for the
// same change, and changes nothing.
func TestAdminVaultEdit(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t), withARM(nil), withVaultService(t))
		ctx := context.Background()
		sub := "/subscriptions/" + f.creds.SubscriptionID
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			admin, err := tx.PrincipalByAppID(ctx, f.creds.TenantID, f.creds.ClientID)
			if err != nil {
				return err
			}
			if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: f.creds.SubscriptionID,
				Namespace: keyhold.NamespaceKeyVault, State: keyhold.ProviderRegistered, UpdatedAt: f.clock.Now()}); err != nil {
				return err
			}
			if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: f.creds.SubscriptionID, Name: "cmk", Location: "westeurope", CreatedAt: f.clock.Now()}); err != nil {
				return err
			}
			owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
			return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: sub, RoleDefinitionID: owner.ID,
				PrincipalID: admin.ID, PrincipalType: "ServicePrincipal", TenantID: f.creds.TenantID, CreatedAt: f.clock.Now()})
		}); err != nil {
			t.Fatal(err)
		}
		vaultID := sub + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-ap"
		apiPath := vaultID + "?api-version=2023-07-01"
		f.jsonCall(t, "PUT", apiPath, f.mgmtToken(t), `{"location":"westeurope","properties":{"tenantId":"`+f.creds.TenantID+
			`","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":false,"enablePurgeProtection":true}}`).decode(t, 201, &struct{}{})
		vaultJSON := func() string {
			t.Helper()
			a := f.call(t, "GET", apiPath, f.mgmtToken(t), "", nil)
			if a.status != 200 {
				t.Fatalf("GET vault: %d %s", a.status, a.body)
			}
			return string(a.body)
		}
		assignments := func() int {
			t.Helper()
			as, err := f.client.ListRoleAssignments(ctx, sub, keyhold.AssignmentFilter{})
			if err != nil {
				t.Fatal(err)
			}
			return len(as)
		}
		app := f.adminApp(t)
		kim, kimPW := f.adminUserID(t, "kim@contoso.example")
		val, valPW := f.adminUserID(t, "val@contoso.example")
		owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
		reader, _ := keyhold.FindRoleDefinition(keyhold.RoleReader)
		for _, a := range []*keyhold.RoleAssignment{
			{Scope: sub, RoleDefinitionID: owner.ID, PrincipalID: kim, PrincipalType: "User"},
			{Scope: vaultID, RoleDefinitionID: reader.ID, PrincipalID: val, PrincipalType: "User"},
		} {
			if err := f.client.CreateRoleAssignment(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		pagePath := "/admin/vaults/" + f.creds.SubscriptionID + "/cmk/contoso-ap"

		k := f.browser(t)
		k.location(k.adminSignIn(app, "kim@contoso.example", kimPW), 303)
		page := k.do("GET", pagePath, nil)
		wantAdminPage(t, page, 200, "Save network rules", "Add access policy", `id="grant"`, "Disable public access", "No access policy.")
		csrf := page.csrf(t)
		before := vaultJSON()
		// Without the CSRF token: refused, nothing saved.
		wantAdminPage(t, k.do("POST", pagePath, url.Values{"action": {"network"}, "public": {"Enabled"}, "default": {"Deny"}}), 403, "Nothing was changed")
		// A bad CIDR: the API's message, word for word; nothing saved.
		bad := f.jsonCall(t, "PATCH", apiPath, f.mgmtToken(t), `{"properties":{"networkAcls":{"defaultAction":"Deny","ipRules":[{"value":"10.0.0.0/33"}]}}}`)
		if bad.status != 400 {
			t.Fatalf("the API's PATCH with a bad CIDR: %d %s", bad.status, bad.body)
		}
		refused := k.do("POST", pagePath, url.Values{csrfField: {csrf}, "action": {"network"}, "public": {"Enabled"}, "default": {"Deny"}, "ips": {"10.0.0.0/33"}})
		wantAdminPage(t, refused, 400, template.HTMLEscapeString(bad.azureError(t).Message), ">10.0.0.0/33</textarea>")
		if after := vaultJSON(); after != before {
			t.Fatalf("refused forms changed the vault:\n%s\n%s", before, after)
		}
		// The rules and an access policy, saved as the API has them.
		if loc := k.location(k.do("POST", pagePath, url.Values{csrfField: {csrf}, "action": {"network"}, "public": {"Enabled"}, "default": {"Deny"},
			"bypass": {"on"}, "ips": {"203.0.113.0/24, 198.51.100.7"}}), 303); loc != pagePath+"?done=network-set" {
			t.Fatalf("saving the network rules went to %q", loc)
		}
		if got := vaultJSON(); !strings.Contains(got, `"defaultAction":"Deny"`) || !strings.Contains(got, `"bypass":"AzureServices"`) ||
			!strings.Contains(got, `{"value":"203.0.113.0/24"}`) || !strings.Contains(got, `{"value":"198.51.100.7/32"}`) {
			t.Fatalf("the vault after saving the network rules: %s", got)
		}
		k.location(k.do("POST", pagePath, url.Values{csrfField: {csrf}, "action": {"access-policy-add"}, "object": {val}, "perm": {"get", "wrapkey", "unwrapkey"}}), 303)
		if got := vaultJSON(); !strings.Contains(got, `"objectId":"`+val+`"`) || !strings.Contains(got, `"wrapKey"`) {
			t.Fatalf("the vault after adding an access policy: %s", got)
		}
		wantAdminPage(t, k.do("GET", pagePath+"?done=policy-added", nil), 200, "The access policy is saved.", val, "get, wrapkey, unwrapkey",
			"Remove the access policy of "+val, "<code>203.0.113.0/24</code>, <code>198.51.100.7/32</code>")

		// Val, a Reader: the page, no form; forced POSTs get the API's
		// refusal of the same change, and change nothing.
		v := f.browser(t)
		v.location(v.adminSignIn(app, "val@contoso.example", valPW), 303)
		page = v.do("GET", pagePath, nil)
		wantAdminPage(t, page, 200, "contoso-ap", "not change its access policies or network rules", "not change them", val)
		main := string(page.body[strings.Index(string(page.body), "<main"):])
		if strings.Contains(main, "<form") || strings.Contains(main, "<button") {
			t.Fatalf("a Reader's vault page has a form or button: %s", main)
		}
		csrf = page.csrf(t)
		before, count := vaultJSON(), assignments()
		for _, tc := range []struct {
			name, path     string
			form           url.Values
			method, api    string
			body           string
			wantPermission string
		}{
			{"network", pagePath, url.Values{"action": {"network"}, "public": {"Enabled"}, "default": {"Allow"}},
				"PATCH", apiPath, `{"properties":{"networkAcls":{"defaultAction":"Allow"}}}`, actionVaultWrite},
			{"access policy", pagePath, url.Values{"action": {"access-policy-remove"}, "object": {val}},
				"PUT", vaultID + "/accessPolicies/remove?api-version=2023-07-01", `{"properties":{"accessPolicies":[{"objectId":"` + val + `","permissions":{"keys":[]}}]}}`, actionAccessPoliciesWrite},
			{"role assignment", "/admin/access", url.Values{"action": {"grant"}, "scope": {vaultID}, "back": {pagePath}, "principal": {val}, "role": {keyhold.RoleOwner}},
				"PUT", vaultID + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString() + "?api-version=2022-04-01",
				`{"properties":{"roleDefinitionId":"` + owner.ID + `","principalId":"` + val + `","principalType":"User"}}`, actionRoleAssignmentWrite},
		} {
			t.Run(tc.name, func(t *testing.T) {
				msg := f.apiRefusal(t, "val@contoso.example", valPW, tc.method, tc.api, tc.body)
				if !strings.Contains(msg, tc.wantPermission) {
					t.Fatalf("the API's refusal %q does not name %s", msg, tc.wantPermission)
				}
				tc.form.Set(csrfField, csrf)
				wantAdminPage(t, v.do("POST", tc.path, tc.form), 403, template.HTMLEscapeString(msg))
				if vaultJSON() != before || assignments() != count {
					t.Fatal("a Reader's forced POST changed the vault or its role assignments")
				}
			})
		}
	})
}
