package http

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/deploy"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/vault"
)

// policyFixture is a fixture whose Server also serves the resource
// manager, the vault's ARM routes and the enterprise policy provider, with
// a vault "contoso-kv" (purge protection) holding an RSA key "cmk", and a
// vault "plain-kv" without purge protection holding "cmk" too, both in
// the resource group "keys", and a resource group "rg" for policies.
// Microsoft.PowerPlatform is not registered yet.
type policyFixture struct {
	*fixture
	arm     *arm.Service
	vault   *vault.Service
	policy  *policy.Service
	sub     string
	adminID string
	tok     string // the admin's management token
}

func newPolicyFixture(t *testing.T) *policyFixture {
	t.Helper()
	pf := &policyFixture{}
	pf.fixture = newFixture(t, func(f *fixture) {
		master, err := crypt.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(master.Destroy)
		pf.arm = arm.New(arm.Config{Store: f.store, Clock: f.clock})
		pf.vault, err = vault.New(vault.Config{Store: f.store, MasterKey: master, Clock: f.clock, BaseURL: f.url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pf.vault.Close() })
		pf.policy = policy.New(policy.Config{Store: f.store, Clock: f.clock, ARM: pf.arm, Vaults: pf.vault})
		pf.policy.RegisterDeleter()
		f.srv.ARM = ARMAPI{Resources: pf.arm, Directory: pf.arm}
		f.srv.KeyVault = KeyVaultAPI{Vaults: pf.vault}
		f.srv.Policies = PolicyAPI{Service: pf.policy,
			Deployments: deploy.New(deploy.Config{Store: f.store, Clock: f.clock, Policies: pf.policy, ARM: pf.arm, Vaults: pf.vault})}
	})
	pf.sub = pf.creds.SubscriptionID
	ctx := context.Background()
	err := pf.store.Update(ctx, func(tx keyhold.Tx) error {
		admin, err := tx.PrincipalByAppID(ctx, pf.creds.TenantID, pf.creds.ClientID)
		if err != nil {
			return err
		}
		pf.adminID = admin.ID
		if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: pf.sub,
			Namespace: keyhold.NamespaceKeyVault, State: keyhold.ProviderRegistered, UpdatedAt: pf.clock.Now()}); err != nil {
			return err
		}
		for _, rg := range []string{"keys", "rg"} {
			if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: pf.sub, Name: rg, Location: "westeurope", CreatedAt: pf.clock.Now()}); err != nil {
				return err
			}
		}
		r, _ := keyhold.FindRoleDefinition(keyhold.RoleKeyVaultAdministrator)
		return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: "/subscriptions/" + pf.sub, RoleDefinitionID: r.ID,
			PrincipalID: admin.ID, PrincipalType: "ServicePrincipal", TenantID: pf.creds.TenantID, CreatedAt: pf.clock.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The vaults and keys, as the key vault admin makes them.
	for _, v := range []struct {
		name  string
		purge bool
	}{{"contoso-kv", true}, {"plain-kv", false}} {
		kv := &keyhold.Vault{SubscriptionID: pf.sub, ResourceGroup: "keys", Name: v.name, Location: "westeurope",
			EnableRbacAuthorization: true, EnablePurgeProtection: v.purge}
		if _, err := pf.vault.PutVault(pf.adminCtx(), kv); err != nil {
			t.Fatalf("PutVault(%s): %v", v.name, err)
		}
		if _, err := pf.vault.CreateKey(pf.adminCtx(), v.name, "cmk", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048}); err != nil {
			t.Fatalf("CreateKey(%s): %v", v.name, err)
		}
	}
	pf.tok = pf.mgmtToken(t)
	return pf
}

// adminCtx carries the bootstrap administrator's identity, for calls
// straight to the services.
func (pf *policyFixture) adminCtx() context.Context {
	return keyhold.NewContext(context.Background(), &keyhold.Identity{TenantID: pf.creds.TenantID, PrincipalID: pf.adminID,
		AppID: pf.creds.ClientID, Type: keyhold.PrincipalServicePrincipal, Audience: keyhold.AudienceManagement})
}

func (pf *policyFixture) vaultID(name string) string {
	return "/subscriptions/" + pf.sub + "/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/" + name
}

func (pf *policyFixture) policyPath(name string) string {
	return "/subscriptions/" + pf.sub + "/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/" + name + "?api-version=2020-10-30"
}

func (pf *policyFixture) register(t *testing.T) {
	t.Helper()
	if a := pf.call(t, "POST", "/subscriptions/"+pf.sub+"/providers/Microsoft.PowerPlatform/register", pf.tok, "", nil); a.status != 200 {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
}

// policyBody is a PUT body naming vault's key cmk.
func (pf *policyFixture) policyBody(location, kind, identity, vaultName string) string {
	return `{"location":"` + location + `","kind":"` + kind + `","identity":{"type":"` + identity + `"},"properties":{"lockbox":null,"networkInjection":null,` +
		`"encryption":{"state":"Enabled","keyVault":{"id":"` + pf.vaultID(vaultName) + `","key":{"name":"cmk"}}}}}`
}

// policyState is what a refusal must leave unchanged: the policies, the
// managed identities and the audit log's length.
type policyState struct {
	policies   []string
	identities int
	audit      int
}

func (pf *policyFixture) state(t *testing.T) policyState {
	t.Helper()
	var s policyState
	ctx := context.Background()
	err := pf.store.View(ctx, func(tx keyhold.Tx) error {
		ps, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{})
		if err != nil {
			return err
		}
		for _, p := range ps {
			b, _ := json.Marshal(p)
			s.policies = append(s.policies, string(b))
		}
		prs, err := tx.ListPrincipals(ctx, pf.creds.TenantID)
		if err != nil {
			return err
		}
		for _, p := range prs {
			if p.Type == keyhold.PrincipalManagedIdentity {
				s.identities++
			}
		}
		es, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: pf.creds.TenantID, Limit: 1000})
		s.audit = len(es)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (pf *policyFixture) unchanged(t *testing.T, what string, before policyState) {
	t.Helper()
	if after := pf.state(t); !slices.Equal(before.policies, after.policies) || before.identities != after.identities || before.audit != after.audit {
		t.Fatalf("%s changed something:\nbefore %+v\nafter  %+v", what, before, after)
	}
}

// specTemplateBody returns a deployment body holding the spec's
// enterprise policy template (deploy/testdata/spec-template.txt, as the
// spec prints it) with its placeholders filled in.
func specTemplateBody(t *testing.T, name, location, vaultID, keyName string) string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/testdata/spec-template.txt")
	if err != nil {
		t.Fatal(err)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tmpl := strings.NewReplacer("{EnterprisePolicyName}", q(name), "{location where EnterprisePolicy needs to be created}", q(location),
		"{keyVaultId}", q(vaultID), "{keyName}", q(keyName)).Replace(string(raw))
	return `{"properties":{"mode":"Incremental","template":` + tmpl + `,"parameters":{}}}`
}

var systemIDRE = regexp.MustCompile(`^/regions/europe/providers/Microsoft\.PowerPlatform/enterprisePolicies/[0-9a-f-]{36}$`)

// TestPolicySpecTemplate: the spec's template, filled in, deploys as it
// stands over HTTPS and creates a policy whose identity is a real managed
// identity; deploying it again changes nothing.
func TestPolicySpecTemplate(t *testing.T) {
	pf := newPolicyFixture(t)
	pf.register(t)
	deploy := "/subscriptions/" + pf.sub + "/resourcegroups/rg/providers/Microsoft.Resources/deployments/cmk-policy?api-version=2021-04-01"
	body := specTemplateBody(t, "ContosoPolicy", "europe", pf.vaultID("contoso-kv"), "cmk")
	policyID := "/subscriptions/" + pf.sub + "/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/ContosoPolicy"

	var d deploymentJSON
	pf.jsonCall(t, "PUT", deploy, pf.tok, body).decode(t, 201, &d)
	if d.ID != "/subscriptions/"+pf.sub+"/resourceGroups/rg/providers/Microsoft.Resources/deployments/cmk-policy" || d.Type != "Microsoft.Resources/deployments" ||
		d.Properties.ProvisioningState != "Succeeded" || d.Properties.Mode != "Incremental" || d.Properties.Timestamp == "" ||
		len(d.Properties.OutputResources) != 1 || d.Properties.OutputResources[0].ID != policyID || d.Properties.Error != nil {
		t.Fatalf("PUT deployment answered %+v", d)
	}

	a := pf.call(t, "GET", strings.ToLower(pf.policyPath("ContosoPolicy")), pf.tok, "", nil)
	var p keyhold.PolicyResource
	a.decode(t, 200, &p)
	if p.ID != policyID || p.Name != "ContosoPolicy" || p.Type != "Microsoft.PowerPlatform/enterprisePolicies" || p.Location != "europe" ||
		p.Kind != "Encryption" || p.Identity.Type != "SystemAssigned" || p.Identity.TenantID != pf.creds.TenantID ||
		p.Properties.Encryption == nil || p.Properties.Encryption.State != "Enabled" || p.Properties.Encryption.KeyVault.ID != pf.vaultID("contoso-kv") ||
		p.Properties.Encryption.KeyVault.Key.Name != "cmk" || p.Properties.HealthStatus != "Undetermined" {
		t.Fatalf("GET answered %s", a.body)
	}
	if !systemIDRE.MatchString(p.Properties.SystemID) {
		t.Fatalf("systemId %q is not /regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid}", p.Properties.SystemID)
	}
	for _, want := range []string{`"lockbox":null`, `"networkInjection":null`} {
		if !strings.Contains(string(a.body), want) {
			t.Fatalf("GET answered no %s: %s", want, a.body)
		}
	}
	// identity.principalId is a real managed identity of the tenant.
	err := pf.store.View(context.Background(), func(tx keyhold.Tx) error {
		mi, err := tx.Principal(context.Background(), p.Identity.PrincipalID)
		if err != nil {
			return err
		}
		if mi.Type != keyhold.PrincipalManagedIdentity || mi.TenantID != pf.creds.TenantID {
			t.Errorf("identity.principalId names %+v", mi)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("identity.principalId %q: %v", p.Identity.PrincipalID, err)
	}

	// Incremental: deploying again changes nothing but the record.
	before := pf.state(t)
	pf.jsonCall(t, "PUT", deploy, pf.tok, body).decode(t, 200, &d)
	if d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("second deployment answered %+v", d)
	}
	after := pf.state(t)
	if !slices.Equal(before.policies, after.policies) || before.identities != after.identities {
		t.Fatalf("deploying again changed the policy:\nbefore %+v\nafter  %+v", before, after)
	}
	pf.call(t, "GET", deploy, pf.tok, "", nil).decode(t, 200, &d)
	if d.Name != "cmk-policy" || d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("GET deployment answered %+v", d)
	}

	var l listJSON[keyhold.PolicyResource]
	pf.call(t, "GET", "/subscriptions/"+pf.sub+"/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies?api-version=2020-10-30-preview", pf.tok, "", nil).decode(t, 200, &l)
	if len(l.Value) != 1 || l.Value[0].Properties.SystemID != p.Properties.SystemID {
		t.Fatalf("list by resource group answered %+v", l)
	}
	pf.call(t, "GET", "/subscriptions/"+pf.sub+"/providers/microsoft.powerplatform/enterprisepolicies", pf.tok, "", nil).decode(t, 200, &l)
	if len(l.Value) != 1 {
		t.Fatalf("list by subscription answered %+v", l)
	}
}

// TestPolicyRefusals: each refusal answers the right status and code with
// a message naming the fix, and changes nothing.
func TestPolicyRefusals(t *testing.T) {
	pf := newPolicyFixture(t)
	good := pf.policyBody("europe", "Encryption", "SystemAssigned", "contoso-kv")
	path := pf.policyPath("p1")

	before := pf.state(t)
	pf.jsonCall(t, "PUT", path, pf.tok, good).wantError(t, 409, keyhold.CodeMissingSubscriptionRegistration, "Microsoft.PowerPlatform")
	pf.unchanged(t, "PUT before registration", before)
	pf.register(t)

	// A reader of the policy, as the spec makes the platform admin.
	var created keyhold.PolicyResource
	pf.jsonCall(t, "PUT", path, pf.tok, good).decode(t, 201, &created)
	reader, err := pf.arm.CreateServicePrincipal(pf.adminCtx(), "platform admin")
	if err != nil {
		t.Fatal(err)
	}
	pf.secrets = append(pf.secrets, reader.Secret)
	if err := pf.arm.CreateRoleAssignment(pf.adminCtx(), &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: created.ID,
		RoleDefinitionID: "acdd72a7-3385-48ef-bd42-f606fba81ae7", PrincipalID: reader.Principal.ID}); err != nil {
		t.Fatal(err)
	}
	var rt tokenJSON
	pf.form(t, "/"+pf.creds.TenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {reader.Principal.AppID},
		"client_secret": {reader.Secret}, "scope": {"https://management.azure.com/.default"}}).decode(t, 200, &rt)
	pf.secrets = append(pf.secrets, rt.AccessToken)
	if a := pf.call(t, "GET", path, rt.AccessToken, "", nil); a.status != 200 {
		t.Fatalf("GET as the reader: %d %s", a.status, a.body)
	}

	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
		hints                           []string
	}{
		{name: "unknown vault", method: "PUT", path: pf.policyPath("p2"), body: pf.policyBody("europe", "Encryption", "SystemAssigned", "nope-kv"),
			status: 400, code: keyhold.CodeBadRequest, hints: []string{"nope-kv", "create or recover the vault first"}},
		{name: "unknown key", method: "PUT", path: pf.policyPath("p2"), body: strings.Replace(good, `"name":"cmk"`, `"name":"nokey"`, 1),
			status: 400, code: keyhold.CodeBadRequest, hints: []string{"key 'nokey' does not exist"}},
		{name: "vault without purge protection", method: "PUT", path: pf.policyPath("p2"), body: pf.policyBody("europe", "Encryption", "SystemAssigned", "plain-kv"),
			status: 400, code: keyhold.CodeBadRequest, hints: []string{"enable purge protection on the vault"}},
		{name: "other kind", method: "PUT", path: pf.policyPath("p2"), body: pf.policyBody("europe", "Lockbox", "SystemAssigned", "contoso-kv"),
			status: 400, code: keyhold.CodeNotSupported, hints: []string{"kind 'Lockbox' is not supported"}},
		{name: "unknown location", method: "PUT", path: pf.policyPath("p2"), body: pf.policyBody("mars", "Encryption", "SystemAssigned", "contoso-kv"),
			status: 400, code: keyhold.CodeInvalidLocation, hints: []string{"'mars'", "unitedstates"}},
		{name: "identity type None", method: "PUT", path: pf.policyPath("p2"), body: pf.policyBody("europe", "Encryption", "None", "contoso-kv"),
			status: 400, code: keyhold.CodeBadRequest, hints: []string{"SystemAssigned"}},
		{name: "lockbox set", method: "PUT", path: pf.policyPath("p2"), body: strings.Replace(good, `"lockbox":null`, `"lockbox":{"state":"Enabled"}`, 1),
			status: 400, code: keyhold.CodeNotSupported, hints: []string{"properties.lockbox is not supported"}},
		{name: "not JSON", method: "PUT", path: pf.policyPath("p2"), body: `{"location":`, status: 400, code: keyhold.CodeInvalidRequestContent},
		{name: "update changing the location", method: "PUT", path: path, body: pf.policyBody("asia", "Encryption", "SystemAssigned", "contoso-kv"),
			status: 400, code: keyhold.CodeBadRequest, hints: []string{"location of enterprise policy 'p1' is 'europe' and can't be changed"}},
		{name: "PATCH changing the kind", method: "PATCH", path: path, body: `{"kind":"Lockbox"}`,
			status: 400, code: keyhold.CodeBadRequest, hints: []string{"kind of enterprise policy"}},
		{name: "reader PUT", method: "PUT", path: path, token: rt.AccessToken, body: good, status: 403, code: keyhold.CodeAuthorizationFailed,
			hints: []string{reader.Principal.AppID, policy.ActionWrite}},
		{name: "reader DELETE", method: "DELETE", path: path, token: rt.AccessToken, status: 403, code: keyhold.CodeAuthorizationFailed,
			hints: []string{policy.ActionDelete}},
		{name: "Power Apps audience", method: "GET", path: path, token: pf.adminToken(t), status: 401, code: keyhold.CodeInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token
			if tok == "" {
				tok = pf.tok
			}
			before := pf.state(t)
			pf.jsonCall(t, tc.method, tc.path, tok, tc.body).wantError(t, tc.status, tc.code, tc.hints...)
			pf.unchanged(t, tc.name, before)
		})
	}

	// Linked: updates and deletes are refused, naming the environment.
	err = pf.store.Update(context.Background(), func(tx keyhold.Tx) error {
		return tx.CreateEnvironment(context.Background(), &keyhold.Environment{ID: "env-1", TenantID: pf.creds.TenantID, DisplayName: "Contoso Sales",
			Location: "europe", SKU: keyhold.SKUProduction, State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 1,
			PolicyID: strings.ToLower(created.ID), LinkStatus: keyhold.LinkStatusLinked, CreatedAt: pf.clock.Now(), UpdatedAt: pf.clock.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	before = pf.state(t)
	pf.jsonCall(t, "PATCH", path, pf.tok, `{"tags":{"a":"b"}}`).wantError(t, 409, keyhold.CodeConflict, "env-1 (Contoso Sales)", "unlink")
	pf.call(t, "DELETE", path, pf.tok, "", nil).wantError(t, 409, keyhold.CodeConflict, "env-1 (Contoso Sales)")
	pf.call(t, "DELETE", "/subscriptions/"+pf.sub+"/resourceGroups/rg", pf.tok, "", nil).wantError(t, 409, keyhold.CodeConflict, "env-1")
	pf.unchanged(t, "changes while linked", before)
	if a := pf.jsonCall(t, "PUT", path, pf.tok, good); a.status != 200 {
		t.Fatalf("the same PUT while linked answered %d %s", a.status, a.body)
	}
	pf.unchanged(t, "the same PUT while linked", before)
}

// TestPolicyDeploymentErrors: a template that can't be evaluated is 400
// InvalidTemplate; a resource that fails is its own error, and the
// deployment is stored as Failed with it.
func TestPolicyDeploymentErrors(t *testing.T) {
	pf := newPolicyFixture(t)
	deploy := func(name string) string {
		return "/subscriptions/" + pf.sub + "/resourceGroups/rg/providers/Microsoft.Resources/deployments/" + name + "?api-version=2021-04-01"
	}
	body := specTemplateBody(t, "p1", "europe", pf.vaultID("contoso-kv"), "cmk")
	before := pf.state(t)
	pf.jsonCall(t, "PUT", deploy("d1"), pf.tok, strings.Replace(body, `"Encryption"`, `"[reference('x')]"`, 1)).
		wantError(t, 400, keyhold.CodeInvalidTemplate, "'[reference('x')]'")
	pf.jsonCall(t, "PUT", deploy("d1"), pf.tok, strings.Replace(body, `"Incremental"`, `"Complete"`, 1)).wantError(t, 400, keyhold.CodeNotSupported, "Incremental")
	pf.jsonCall(t, "PUT", deploy("d1"), pf.tok, `{"properties":{"mode":"Incremental","templateLink":{"uri":"https://example.com/t.json"}}}`).
		wantError(t, 400, keyhold.CodeNotSupported, "inline")
	pf.unchanged(t, "refused templates", before)
	pf.call(t, "GET", deploy("d1"), pf.tok, "", nil).wantError(t, 404, keyhold.CodeNotFound, "'d1' could not be found")

	// Microsoft.PowerPlatform is not registered: the resource fails.
	pf.jsonCall(t, "PUT", deploy("d1"), pf.tok, body).wantError(t, 409, keyhold.CodeMissingSubscriptionRegistration, "enterprisePolicies/p1")
	var d deploymentJSON
	pf.call(t, "GET", deploy("d1"), pf.tok, "", nil).decode(t, 200, &d)
	if d.Properties.ProvisioningState != "Failed" || d.Properties.Error == nil || d.Properties.Error.Code != keyhold.CodeMissingSubscriptionRegistration ||
		len(d.Properties.OutputResources) != 0 {
		t.Fatalf("the failed deployment reads %+v", d)
	}

	// A template with a key vault: the vault service deploys it.
	pf.register(t)
	vaultTemplate := `{"properties":{"mode":"Incremental","template":{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "contentVersion":"1.0.0.0","parameters":{"vaultName":{"type":"string"}},
	  "resources":[{"type":"Microsoft.KeyVault/vaults","apiVersion":"2023-07-01","name":"[parameters('vaultName')]","location":"[resourceGroup().location]",
	    "properties":{"tenantId":"[subscription().tenantId]","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true,
	    "enablePurgeProtection":true,"softDeleteRetentionInDays":7}}]},
	  "parameters":{"vaultName":{"value":"templated-kv"}}}}`
	pf.jsonCall(t, "PUT", deploy("d2"), pf.tok, vaultTemplate).decode(t, 201, &d)
	v, err := pf.vault.GetVault(pf.adminCtx(), pf.sub, "rg", "templated-kv")
	if err != nil || !v.EnablePurgeProtection || v.SoftDeleteRetentionDays != 7 || v.TenantID != pf.creds.TenantID || v.Location != "westeurope" {
		t.Fatalf("the templated vault is %+v, %v", v, err)
	}
}

// TestPolicyClient: the Go client implements PolicyService over HTTPS.
func TestPolicyClient(t *testing.T) {
	pf := newPolicyFixture(t)
	pf.register(t)
	ctx := context.Background()
	pc := pf.client.Policies()
	spec := keyhold.PolicySpec{Location: "europe", Kind: "Encryption", IdentityType: "SystemAssigned", KeyVaultID: pf.vaultID("contoso-kv"), KeyName: "cmk",
		Tags: map[string]string{"env": "prod"}}
	p, created, err := pc.Put(ctx, pf.sub, "rg", "p1", spec)
	if err != nil || !created || p.SubscriptionID != pf.sub || p.ResourceGroup != "rg" || p.Name != "p1" || p.PrincipalID == "" ||
		!systemIDRE.MatchString(p.SystemID) || p.Tags["env"] != "prod" || p.KeyVaultID != spec.KeyVaultID {
		t.Fatalf("Put = %+v, %v, %v", p, created, err)
	}
	if _, created, err := pc.Put(ctx, pf.sub, "rg", "p1", spec); err != nil || created {
		t.Fatalf("Put again = %v, %v", created, err)
	}
	tags := map[string]string{"team": "keys"}
	if p, err = pc.Patch(ctx, pf.sub, "rg", "p1", keyhold.PolicyPatch{Tags: &tags}); err != nil || p.Tags["team"] != "keys" || p.Tags["env"] != "" {
		t.Fatalf("Patch = %+v, %v", p, err)
	}
	if got, err := pc.Get(ctx, pf.sub, "rg", "p1"); err != nil || got.SystemID != p.SystemID {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if l, err := pc.ListBySubscription(ctx, pf.sub); err != nil || len(l) != 1 {
		t.Fatalf("ListBySubscription = %v, %v", l, err)
	}
	if n, err := pc.LinkedEnvironments(ctx, pf.sub, "rg", "p1"); err != nil || n != 0 {
		t.Fatalf("LinkedEnvironments = %d, %v", n, err)
	}
	if err := pc.Delete(ctx, pf.sub, "rg", "p1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantCode(t, pc.Delete(ctx, pf.sub, "rg", "p1"), keyhold.CodeResourceNotFound)
	_, err = pc.LinkedEnvironments(ctx, pf.sub, "rg", "p1")
	wantCode(t, err, keyhold.CodeResourceNotFound)
	_, err = pc.Get(ctx, pf.sub, "rg", "p1")
	wantCode(t, err, keyhold.CodeResourceNotFound)
	if l, err := pc.ListByResourceGroup(ctx, pf.sub, "rg"); err != nil || len(l) != 0 {
		t.Fatalf("ListByResourceGroup after delete = %v, %v", l, err)
	}

	body := specTemplateBody(t, "p2", "europe", pf.vaultID("contoso-kv"), "cmk")
	var req struct {
		Properties struct {
			Template json.RawMessage `json:"template"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	d, created, err := pc.Deploy(ctx, pf.sub, "rg", "d1", keyhold.DeploymentRequest{Mode: "Incremental", Template: req.Properties.Template})
	if err != nil || !created || d.ProvisioningState != "Succeeded" || d.SubscriptionID != pf.sub || d.ResourceGroup != "rg" || len(d.OutputResources) != 1 {
		t.Fatalf("Deploy = %+v, %v, %v", d, created, err)
	}
	if got, err := pc.Deployment(ctx, pf.sub, "rg", "d1"); err != nil || got.Name != "d1" || got.UpdatedAt.IsZero() {
		t.Fatalf("Deployment = %+v, %v", got, err)
	}
	_, err = pc.Deployment(ctx, pf.sub, "rg", "nope")
	wantCode(t, err, keyhold.CodeNotFound)
}

// TestPolicyRoutesByService: the enterprise policy routes are served while
// PolicyAPI.Service is set, and the template deployment routes while
// PolicyAPI.Deployments is, each without the other.
func TestPolicyRoutesByService(t *testing.T) {
	pc := (&Client{}).Policies() // implements both contracts; never called here
	count := func(api PolicyAPI) (policies, deployments int) {
		s := &Server{Policies: api}
		for _, r := range s.policyRoutes() {
			if strings.HasPrefix(r.Pattern, deploymentPath) {
				deployments++
			} else {
				policies++
			}
		}
		return policies, deployments
	}
	for _, c := range []struct {
		name                  string
		api                   PolicyAPI
		policies, deployments int
	}{
		{"neither", PolicyAPI{}, 0, 0},
		{"policies only", PolicyAPI{Service: pc}, 7, 0},
		{"deployments only", PolicyAPI{Deployments: pc}, 0, 3},
		{"both", PolicyAPI{Service: pc, Deployments: pc}, 7, 3},
	} {
		if p, d := count(c.api); p != c.policies || d != c.deployments {
			t.Errorf("%s: %d policy and %d deployment routes, want %d and %d", c.name, p, d, c.policies, c.deployments)
		}
	}
}
