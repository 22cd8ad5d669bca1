package http_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/keyhold/keyhold"
)

// TestAdminVaultEditChromium: the key vault page's edits in Chromium
// (issue 17). Kim, the key vault administrator (Owner), assigns Reader
// on a key and on the vault and removes the key's; adds the policy
// identity's access policy (Get, Wrap key, Unwrap key) on a vault of the
// access-policy model, sees it counted among who may wrap, removes it and
// adds it again; is refused a bad CIDR with the API's own message and
// nothing saved; then sets the firewall (Deny, her address and a range,
// trusted services allowed), and, once her address is out of the rules,
// sees the data plane's firewall refusal in place of the keys. Val, a
// Reader of both vaults, sees their pages with no mutating button, and
// each forced POST is refused with the service's message and changes
// nothing; so are Rita's, who has no role. Each page passes axe-core.
func TestAdminVaultEditChromium(t *testing.T) {
	bctx := adminBrowser(t)
	s := newCMKStack(t)
	ctx := context.Background()
	c := s.client
	pol := s.setUpPolicy(t)
	identity := pol.Identity.PrincipalID
	sub := "/subscriptions/" + s.creds.SubscriptionID
	kvID := sub + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-kv"
	apID := sub + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-ap"
	// A vault of the access-policy model, as the spec allows.
	if status, b := s.call(t, "PUT", apID+"?api-version=2023-07-01", keyhold.AudienceManagement, `{"location":"westeurope","properties":{"tenantId":"`+s.creds.TenantID+
		`","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":false,"softDeleteRetentionInDays":90,"enablePurgeProtection":true}}`); status != 200 && status != 201 {
		t.Fatalf("PUT vault: %d %s", status, b)
	}

	appID := s.adminApp(t)
	user := func(name, upn, pw string) string {
		t.Helper()
		u, err := c.CreateUser(ctx, name, upn, pw)
		if err != nil {
			t.Fatal(err)
		}
		return u.User.ID
	}
	const kimUPN, kimPW = "kim@contoso.example", "Kim's long passphrase for keyhold"
	const valUPN, valPW = "val@contoso.example", "Val's long passphrase for keyhold"
	const ritaUPN, ritaPW = "rita@contoso.example", "Rita's long passphrase for keyhold"
	kim, val := user("Kim", kimUPN, kimPW), user("Val", valUPN, valPW)
	user("Rita", ritaUPN, ritaPW)
	owner, _ := keyhold.FindRoleDefinition(keyhold.RoleOwner)
	kva, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultAdministrator)
	reader, _ := keyhold.FindRoleDefinition(keyhold.RoleReader)
	for _, a := range []*keyhold.RoleAssignment{
		{Scope: sub, RoleDefinitionID: owner.ID, PrincipalID: kim, PrincipalType: "User"},
		{Scope: kvID, RoleDefinitionID: kva.ID, PrincipalID: kim, PrincipalType: "User"},
		{Scope: apID, RoleDefinitionID: reader.ID, PrincipalID: val, PrincipalType: "User"},
	} {
		if err := c.CreateRoleAssignment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// assignments lists the role assignments at and below scope.
	assignments := func(scope string) []string {
		t.Helper()
		as, err := c.ListRoleAssignments(ctx, scope, keyhold.AssignmentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range as {
			out = append(out, a.Scope+" "+a.PrincipalID+" "+a.RoleDefinitionID)
		}
		slices.Sort(out)
		return out
	}
	// vaultJSON is the vault as the API has it (every change moves its
	// updated time).
	vaultJSON := func(id string) string {
		t.Helper()
		status, b := s.call(t, "GET", id+"?api-version=2023-07-01", keyhold.AudienceManagement, "")
		if status != 200 {
			t.Fatalf("GET vault: %d %s", status, b)
		}
		return string(b)
	}
	var vj struct {
		Properties struct {
			AccessPolicies []struct {
				ObjectID    string `json:"objectId"`
				Permissions struct {
					Keys []string `json:"keys"`
				} `json:"permissions"`
			} `json:"accessPolicies"`
			NetworkACLs struct {
				Bypass        string `json:"bypass"`
				DefaultAction string `json:"defaultAction"`
				IPRules       []struct {
					Value string `json:"value"`
				} `json:"ipRules"`
			} `json:"networkAcls"`
		} `json:"properties"`
	}
	decodeVault := func(id string) {
		t.Helper()
		vj.Properties.AccessPolicies, vj.Properties.NetworkACLs.IPRules = nil, nil
		if err := json.Unmarshal([]byte(vaultJSON(id)), &vj); err != nil {
			t.Fatal(err)
		}
	}

	k := &page{t: t, ctx: bctx}
	signIn(k, s.url, s.creds.TenantID, appID, kimUPN, kimPW)
	kvPath := "/admin/vaults/" + s.creds.SubscriptionID + "/cmk/contoso-kv"
	apPath := "/admin/vaults/" + s.creds.SubscriptionID + "/cmk/contoso-ap"

	// Role assignments on a key and on the vault.
	k.run(chromedp.Navigate(s.url+kvPath), chromedp.WaitVisible(chromedp.ID("grant-scope")))
	k.run(chromedp.SetValue(chromedp.ID("grant-scope"), kvID+"/keys/cmk"), chromedp.SendKeys(chromedp.ID("grant-principal"), val),
		chromedp.SetValue(chromedp.ID("grant-role"), keyhold.RoleReader))
	k.submit("grant")
	k.wantText("done", "role is assigned")
	k.wantText("assignments", val, keyhold.RoleReader, "key cmk")
	if got := assignments(kvID + "/keys/cmk"); !slices.Contains(got, kvID+"/keys/cmk "+val+" "+reader.ID) {
		t.Fatalf("the key's role assignments after Grant: %v", got)
	}
	k.followLink(`button[aria-label="Remove ` + keyhold.RoleReader + ` of ` + val + ` on key cmk"]`)
	k.wantText("done", "removed")
	if strings.Contains(k.text("assignments"), val) {
		t.Fatalf("the removed assignment is still listed: %s", k.text("assignments"))
	}
	if got := assignments(kvID + "/keys/cmk"); slices.ContainsFunc(got, func(a string) bool { return strings.Contains(a, val) }) {
		t.Fatalf("the key's role assignments after Remove: %v", got)
	}
	k.run(chromedp.SetValue(chromedp.ID("grant-scope"), kvID), chromedp.SendKeys(chromedp.ID("grant-principal"), val),
		chromedp.SetValue(chromedp.ID("grant-role"), keyhold.RoleReader))
	k.submit("grant")
	k.wantText("assignments", val, keyhold.RoleReader, "here")

	// Network rules: a bad CIDR is refused with the API's message, and
	// nothing is saved.
	before := vaultJSON(kvID)
	status, b := s.call(t, "PATCH", kvID+"?api-version=2023-07-01", keyhold.AudienceManagement, `{"properties":{"networkAcls":{"defaultAction":"Deny","ipRules":[{"value":"10.0.0.0/33"}]}}}`)
	var apiErr struct {
		Error struct{ Message string } `json:"error"`
	}
	if status != 400 || json.Unmarshal(b, &apiErr) != nil || apiErr.Error.Message == "" {
		t.Fatalf("the API's PATCH with a bad CIDR: %d %s", status, b)
	}
	k.wantText("net-spec", "Disable public access", "Allow trusted Microsoft services to bypass this firewall")
	k.run(chromedp.Click(chromedp.ID("default-deny")), chromedp.SendKeys(chromedp.ID("net-ips-box"), "10.0.0.0/33"))
	k.submit("network-save")
	if got := k.text("error"); got != apiErr.Error.Message {
		t.Fatalf("the page refuses the bad CIDR with %q; the API with %q", got, apiErr.Error.Message)
	}
	if got := eval[string](k, `document.getElementById('net-ips-box').value`); got != "10.0.0.0/33" {
		t.Fatalf("the refused form shows %q", got)
	}
	if after := vaultJSON(kvID); after != before {
		t.Fatalf("a refused network rule changed the vault:\n%s\n%s", before, after)
	}
	// Deny but for Kim's address and a range, trusted services allowed.
	k.run(chromedp.Navigate(s.url+kvPath), chromedp.WaitVisible(chromedp.ID("network-form")),
		chromedp.Click(chromedp.ID("default-deny")), chromedp.SendKeys(chromedp.ID("net-ips-box"), "203.0.113.0/24\n127.0.0.1"))
	k.submit("network-save")
	k.wantText("done", "network rules are saved")
	k.wantText("net-default", "Deny")
	k.wantText("net-ips", "203.0.113.0/24", "127.0.0.1/32")
	k.wantText("net-bypass", "Allowed")
	k.wantText("key-cmk", "cmk")
	decodeVault(kvID)
	if n := vj.Properties.NetworkACLs; n.DefaultAction != "Deny" || n.Bypass != "AzureServices" || len(n.IPRules) != 2 {
		t.Fatalf("the vault's network rules through the API: %+v", n)
	}
	k.accessible("key vault (access, network)")
	k.screenshot("vault-access-network")
	// Her address out of the rules: the keys are read from it, so the
	// data plane's firewall refuses them, as the spec warns.
	k.run(chromedp.Clear(chromedp.ID("net-ips-box")), chromedp.SendKeys(chromedp.ID("net-ips-box"), "203.0.113.0/24"))
	k.submit("network-save")
	k.wantText("keys-error", "127.0.0.1")
	k.run(chromedp.Click(chromedp.ID("default-allow")))
	k.submit("network-save")
	k.wantText("net-default", "Allow")
	k.wantText("key-cmk", "cmk")

	// Access policies on the access-policy vault: the spec's Get, Wrap
	// key and Unwrap key for the policy's identity.
	k.run(chromedp.Navigate(s.url+apPath), chromedp.WaitVisible(chromedp.ID("no-policies")))
	k.wantText("access-policies", "access policies: they grant")
	k.run(chromedp.SendKeys(chromedp.ID("policy-object"), identity))
	k.submit("policy-add")
	k.wantText("done", "access policy is saved")
	k.wantText("policy-list", identity, "get, wrapkey, unwrapkey")
	k.wantText("wrapper-list", identity, "access policy", "Yes")
	decodeVault(apID)
	if ps := vj.Properties.AccessPolicies; len(ps) != 1 || ps[0].ObjectID != identity || strings.ToLower(strings.Join(ps[0].Permissions.Keys, ",")) != "get,wrapkey,unwrapkey" {
		t.Fatalf("the vault's access policies through the API: %+v", ps)
	}
	k.accessible("key vault (access policies)")
	k.followLink(`button[aria-label="Remove the access policy of ` + identity + `"]`)
	k.wantText("done", "access policy is removed")
	k.wantText("no-policies", "No access policy")
	if decodeVault(apID); len(vj.Properties.AccessPolicies) != 0 {
		t.Fatalf("access policies after Remove: %+v", vj.Properties.AccessPolicies)
	}
	k.run(chromedp.SendKeys(chromedp.ID("policy-object"), identity), chromedp.Click(chromedp.ID("perm-list")))
	k.submit("policy-add")
	k.wantText("policy-list", identity, "get, list, wrapkey, unwrapkey")

	// Val, a Reader of both vaults: the pages, no mutating button; each
	// forced POST refused with the service's message, nothing changed.
	v := &page{t: t, ctx: adminBrowser(t)}
	signIn(v, s.url, s.creds.TenantID, appID, valUPN, valPW)
	kvBefore, apBefore, asBefore := vaultJSON(kvID), vaultJSON(apID), assignments(sub)
	forced := func(p *page, path, form string) string {
		t.Helper()
		return eval[string](p, `fetch('`+path+`', {method: 'POST', body: new URLSearchParams(Object.assign({csrf_token: document.querySelector('input[name=csrf_token]').value}, `+form+`))})
			.then(a => a.text().then(b => a.status + ' ' + new DOMParser().parseFromString(b, 'text/html').getElementById('error').textContent))`)
	}
	for _, path := range []string{kvPath, apPath} {
		v.run(chromedp.Navigate(s.url+path), chromedp.WaitVisible(chromedp.ID("vault-name-value")))
		v.wantText("vault-read-only", "not change")
		v.wantText("access-read-only", "not change them")
		if n := eval[int](v, `document.querySelectorAll('main form, main button').length`); n != 0 {
			t.Fatalf("a Reader's page %s shows %d forms or buttons", path, n)
		}
		v.accessible("key vault (Reader)")
	}
	v.wantText("policy-list", identity)
	v.wantText("net-default", "Allow")
	valsAP, err := c.ListRoleAssignments(ctx, apID, keyhold.AssignmentFilter{PrincipalID: val, AtScope: true})
	if err != nil || len(valsAP) != 1 {
		t.Fatalf("Val's assignments at the access-policy vault: %v, %v", valsAP, err)
	}
	for _, tc := range []struct{ name, path, form, want string }{
		{"grant", "/admin/access", `{action: 'grant', scope: '` + kvID + `', back: '` + kvPath + `', principal: '` + val + `', role: 'Owner'}`, "Microsoft.Authorization/roleAssignments/write"},
		{"revoke", "/admin/access", `{action: 'revoke', scope: '` + apID + `', back: '` + apPath + `', assignment: '` + valsAP[0].ID + `'}`, "Microsoft.Authorization/roleAssignments/delete"},
		{"network", kvPath, `{action: 'network', public: 'Enabled', default: 'Deny', ips: '198.51.100.7'}`, "Microsoft.KeyVault/vaults/write"},
		{"access policy add", apPath, `{action: 'access-policy-add', object: '` + val + `', perm: 'get'}`, "Microsoft.KeyVault/vaults/accessPolicies/write"},
		{"access policy remove", apPath, `{action: 'access-policy-remove', object: '` + identity + `'}`, "Microsoft.KeyVault/vaults/accessPolicies/write"},
	} {
		if got := forced(v, tc.path, tc.form); !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "does not have authorization to perform action '"+tc.want+"'") {
			t.Fatalf("a Reader's forced %s answered %q", tc.name, got)
		}
	}
	if vaultJSON(kvID) != kvBefore || vaultJSON(apID) != apBefore || !slices.Equal(assignments(sub), asBefore) {
		t.Fatal("a Reader's forced POSTs changed the vaults or their role assignments")
	}

	// Rita has no role: the vault's page is the service's refusal, and her
	// forced POSTs change nothing either.
	r := &page{t: t, ctx: adminBrowser(t)}
	signIn(r, s.url, s.creds.TenantID, appID, ritaUPN, ritaPW)
	r.run(chromedp.Navigate(s.url+kvPath), chromedp.WaitVisible(chromedp.ID("error")))
	r.wantText("error", "Microsoft.KeyVault/vaults/read")
	if n := eval[int](r, `document.querySelectorAll('main form, main button').length`); n != 0 {
		t.Fatalf("a refused page shows %d forms or buttons", n)
	}
	r.accessible("key vault (no role)")
	for _, form := range []string{`{action: 'network', public: 'Enabled', default: 'Deny', ips: ''}`, `{action: 'access-policy-remove', object: '` + identity + `'}`} {
		if got := forced(r, apPath, form); !strings.HasPrefix(got, "403 ") || !strings.Contains(got, "does not have authorization") {
			t.Fatalf("Rita's forced %s answered %q", form, got)
		}
	}
	if got := forced(r, "/admin/access", `{action: 'grant', scope: '`+apID+`', back: '`+apPath+`', principal: '`+val+`', role: 'Owner'}`); !strings.HasPrefix(got, "403 ") {
		t.Fatalf("Rita's forced grant answered %q", got)
	}
	if vaultJSON(kvID) != kvBefore || vaultJSON(apID) != apBefore || !slices.Equal(assignments(sub), asBefore) {
		t.Fatal("forced POSTs without a role changed the vaults or their role assignments")
	}
}
