package deploy

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func (f *fixture) deployment(t testing.TB, name string) *keyhold.Deployment {
	t.Helper()
	var d *keyhold.Deployment
	f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
		var err error
		d, err = tx.(keyhold.DeploymentTx).Deployment(ctx, f.sub, "rg", name)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			d, err = nil, nil
		}
		return err
	})
	return d
}

// TestDeploySpecTemplate: the spec's template, its placeholders filled in,
// deploys as it stands and creates the policy with its identity; deploying
// it again changes nothing.
func TestDeploySpecTemplate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		tmpl := specTemplate(t, "ContosoPolicy", "europe", f.vaultID("contoso-kv"), "cmk")
		req := keyhold.DeploymentRequest{Mode: "Incremental", Template: tmpl}
		d, created, err := f.s.Deploy(as(f.admin), f.sub, "rg", "policy-deploy", req)
		if err != nil || !created {
			t.Fatalf("Deploy = %v, %v", created, err)
		}
		id := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/ContosoPolicy"
		if d.ProvisioningState != keyhold.DeploymentSucceeded || !slices.Equal(d.OutputResources, []string{id}) || d.Mode != keyhold.DeploymentModeIncremental {
			t.Fatalf("deployment %+v", d)
		}
		p, err := f.pol.Get(as(f.admin), f.sub, "rg", "ContosoPolicy")
		if err != nil {
			t.Fatal(err)
		}
		if !systemIDRE.MatchString(p.SystemID) || p.KeyVaultID != f.vaultID("contoso-kv") || p.KeyName != "cmk" || p.PrincipalID == "" {
			t.Fatalf("the deployed policy is %+v", p)
		}
		got, err := f.s.Deployment(as(f.admin), f.sub, "RG", "POLICY-DEPLOY")
		if err != nil || got.ProvisioningState != keyhold.DeploymentSucceeded || got.Name != "policy-deploy" {
			t.Fatalf("Deployment = %+v, %v", got, err)
		}

		before := f.snapshot(t)
		d, created, err = f.s.Deploy(as(f.admin), f.sub, "rg", "policy-deploy", req)
		if err != nil || created || d.ProvisioningState != keyhold.DeploymentSucceeded {
			t.Fatalf("Deploy again = %+v, %v, %v", d, created, err)
		}
		after := f.snapshot(t)
		if !slices.Equal(before.policies, after.policies) || !slices.Equal(before.identities, after.identities) || after.audit != before.audit+1 {
			t.Fatalf("deploying again changed more than the deployment record:\nbefore %+v\nafter  %+v", before, after)
		}
		if a := f.auditActions(t); a[len(a)-1] != "deployment.update" {
			t.Fatalf("audit = %v", a)
		}
	})
}

// TestDeployTemplateFeatures: parameters with defaults, variables,
// resourceId, concat, outputs, conditions and a role assignment.
func TestDeployTemplateFeatures(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	reader := f.principal(t, "platform admin")
	tmpl := `{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "contentVersion": "1.0.0.0",
	  "parameters": {
	    "policyName": {"type": "string"},
	    "location": {"type": "string", "defaultValue": "europe", "allowedValues": ["europe", "unitedstates"]},
	    "vaultGroup": {"type": "string", "defaultValue": "keys"},
	    "adminObjectId": {"type": "string"},
	    "grant": {"type": "bool", "defaultValue": true}
	  },
	  "variables": {
	    "vaultId": "[resourceId(parameters('vaultGroup'), 'Microsoft.KeyVault/vaults', 'contoso-kv')]",
	    "fullName": "[concat(parameters('policyName'), '-', subscription().subscriptionId)]"
	  },
	  "resources": [
	    {
	      "type": "Microsoft.PowerPlatform/enterprisePolicies",
	      "apiVersion": "2020-10-30-preview",
	      "name": "[variables('fullName')]",
	      "location": "[parameters('location')]",
	      "kind": "Encryption",
	      "identity": {"type": "SystemAssigned"},
	      "tags": {"deployedBy": "[concat('template in ', resourceGroup().name)]"},
	      "properties": {"lockbox": null, "networkInjection": null,
	        "encryption": {"state": "Enabled", "keyVault": {"id": "[variables('vaultId')]", "key": {"name": "cmk"}}}}
	    },
	    {
	      "type": "Microsoft.Authorization/roleAssignments",
	      "apiVersion": "2022-04-01",
	      "condition": "[parameters('grant')]",
	      "name": "[guid(resourceGroup().id, parameters('adminObjectId'), 'reader')]",
	      "scope": "[concat('Microsoft.PowerPlatform/enterprisePolicies/', variables('fullName'))]",
	      "dependsOn": ["[resourceId('Microsoft.PowerPlatform/enterprisePolicies', variables('fullName'))]"],
	      "properties": {"roleDefinitionId": "[concat(subscription().id, '/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7')]",
	        "principalId": "[parameters('adminObjectId')]", "principalType": "ServicePrincipal"}
	    },
	    {
	      "type": "Microsoft.Web/sites", "apiVersion": "2022-01-01", "name": "skipped", "condition": false
	    }
	  ],
	  "outputs": {"policyId": {"type": "string", "value": "[resourceId('Microsoft.PowerPlatform/enterprisePolicies', variables('fullName'))]"}}
	}`
	params := `{"policyName": {"value": "Contoso"}, "adminObjectId": {"value": "` + reader.PrincipalID + `"}}`
	d, _, err := f.s.Deploy(as(f.admin), f.sub, "rg", "features", keyhold.DeploymentRequest{Mode: "incremental", Template: json.RawMessage(tmpl), Parameters: json.RawMessage(params)})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	name := "Contoso-" + f.sub
	pid := policyID(f.sub, "rg", name)
	if len(d.OutputResources) != 2 || d.OutputResources[0] != pid || !strings.HasPrefix(d.OutputResources[1], pid+"/providers/Microsoft.Authorization/roleAssignments/") {
		t.Fatalf("output resources %v", d.OutputResources)
	}
	var outputs map[string]struct{ Type, Value string }
	if err := json.Unmarshal(d.Outputs, &outputs); err != nil || outputs["policyId"].Value != pid {
		t.Fatalf("outputs %s (%v)", d.Outputs, err)
	}
	p, err := f.pol.Get(as(reader), f.sub, "rg", name) // the reader role was granted by the template
	if err != nil || p.Tags["deployedBy"] != "template in rg" || p.Location != "europe" {
		t.Fatalf("Get as the reader = %+v, %v", p, err)
	}
	// Deploying again is idempotent, role assignment included.
	if _, created, err := f.s.Deploy(as(f.admin), f.sub, "rg", "features", keyhold.DeploymentRequest{Mode: "Incremental", Template: json.RawMessage(tmpl), Parameters: json.RawMessage(params)}); err != nil || created {
		t.Fatalf("Deploy again = %v, %v", created, err)
	}
}

// TestDeployRefusals: a template that can't be evaluated is refused and
// stores nothing.
func TestDeployRefusals(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	good := string(specTemplate(t, "p1", "europe", f.vaultID("contoso-kv"), "cmk"))
	withParams := func(decl string) string {
		return strings.Replace(good, `"parameters": {}`, `"parameters": {`+decl+`}`, 1)
	}
	tests := []struct {
		name     string
		mode     string
		template string
		params   string
		code     string
		hints    []string
	}{
		{name: "complete mode", mode: "Complete", template: good, code: keyhold.CodeNotSupported, hints: []string{"Incremental"}},
		{name: "no mode", mode: "", template: good, code: keyhold.CodeBadRequest, hints: []string{"properties.mode is missing"}},
		{name: "no template", code: keyhold.CodeInvalidTemplate, hints: []string{"properties.template is missing"}},
		{name: "template not an object", template: `[1]`, code: keyhold.CodeInvalidTemplate, hints: []string{"must be a JSON object"}},
		{name: "unsupported function", template: strings.Replace(good, `"Encryption"`, `"[reference('x')]"`, 1), code: keyhold.CodeInvalidTemplate,
			hints: []string{"resources[0].kind", "'[reference('x')]'", "'reference'"}},
		{name: "unsupported resource type", template: strings.Replace(good, `"Microsoft.PowerPlatform/enterprisePolicies"`, `"Microsoft.Web/sites"`, 1),
			code: keyhold.CodeInvalidTemplate, hints: []string{"'Microsoft.Web/sites' is not supported", "Microsoft.PowerPlatform/enterprisePolicies"}},
		{name: "missing required parameter", template: withParams(`"keyName": {"type": "string"}`), code: keyhold.CodeInvalidTemplate,
			hints: []string{"'keyName' is not provided"}},
		{name: "undeclared parameter", template: good, params: `{"nope": {"value": 1}}`, code: keyhold.CodeInvalidTemplate,
			hints: []string{"'nope' is given, but the template does not declare it"}},
		{name: "parameter without value", template: withParams(`"n": {"type": "string"}`), params: `{"n": "x"}`, code: keyhold.CodeInvalidTemplate,
			hints: []string{"{\"value\": …}"}},
		{name: "parameter of the wrong type", template: withParams(`"n": {"type": "int"}`), params: `{"n": {"value": "x"}}`, code: keyhold.CodeInvalidTemplate,
			hints: []string{"'n' is of type int"}},
		{name: "value not allowed", template: withParams(`"n": {"type": "string", "allowedValues": ["a"]}`), params: `{"n": {"value": "b"}}`,
			code: keyhold.CodeInvalidTemplate, hints: []string{"not one of its allowedValues"}},
		{name: "no contentVersion", template: strings.Replace(good, `"contentVersion": "1.0.0.0",`, ``, 1), code: keyhold.CodeInvalidTemplate,
			hints: []string{"contentVersion"}},
		{name: "user functions", template: strings.Replace(good, `"parameters": {}`, `"functions": [], "parameters": {}`, 1), code: keyhold.CodeInvalidTemplate,
			hints: []string{"'functions' is not supported"}},
		{name: "copy loop", template: strings.Replace(good, `"kind": "Encryption"`, `"kind": "Encryption", "copy": {"name": "c", "count": 2}`, 1),
			code: keyhold.CodeInvalidTemplate, hints: []string{"'copy' is not supported"}},
		{name: "symbolic resources", template: strings.Replace(strings.Replace(good, `"resources": [`, `"resources": {"p": `, 1), "]\n   }", "}}", 1),
			code: keyhold.CodeInvalidTemplate, hints: []string{"must be an array"}},
		{name: "no apiVersion", template: strings.Replace(good, `"apiVersion": "2020-10-30",`, ``, 1), code: keyhold.CodeInvalidTemplate,
			hints: []string{"no \"apiVersion\""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" && tc.name != "no mode" {
				mode = "Incremental"
			}
			before := f.snapshot(t)
			req := keyhold.DeploymentRequest{Mode: mode, Template: json.RawMessage(tc.template)}
			if tc.params != "" {
				req.Parameters = json.RawMessage(tc.params)
			}
			_, _, err := f.s.Deploy(as(f.admin), f.sub, "rg", "d1", req)
			wantErr(t, err, tc.code, tc.hints...)
			f.unchanged(t, tc.name, before)
			if d := f.deployment(t, "d1"); d != nil {
				t.Fatalf("a refused template left a deployment record %+v", d)
			}
		})
	}
}

// TestDeployFailedResource: a resource its service refuses fails the
// deployment, which is stored as Failed with the resource's error.
func TestDeployFailedResource(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t), unregistered)
	before := f.snapshot(t)
	tmpl := specTemplate(t, "p1", "europe", f.vaultID("contoso-kv"), "cmk")
	d, created, err := f.s.Deploy(as(f.admin), f.sub, "rg", "d1", keyhold.DeploymentRequest{Mode: "Incremental", Template: tmpl})
	wantErr(t, err, keyhold.CodeMissingSubscriptionRegistration, "enterprisePolicies/p1", "Microsoft.PowerPlatform")
	if !created || d == nil || d.ProvisioningState != keyhold.DeploymentFailed || d.ErrorCode != keyhold.CodeMissingSubscriptionRegistration || len(d.OutputResources) != 0 {
		t.Fatalf("failed deployment = %+v, %v", d, created)
	}
	stored := f.deployment(t, "d1")
	if stored == nil || stored.ProvisioningState != keyhold.DeploymentFailed || !strings.Contains(stored.ErrorMessage, "Microsoft.PowerPlatform") {
		t.Fatalf("stored deployment = %+v", stored)
	}
	after := f.snapshot(t)
	if !slices.Equal(before.policies, after.policies) || !slices.Equal(before.identities, after.identities) || after.audit != before.audit+1 {
		t.Fatalf("the failed deployment changed more than its record:\nbefore %+v\nafter  %+v", before, after)
	}

	// A caller without deployments/write is refused before anything.
	reader := f.principal(t, "reader")
	f.grant(t, "/subscriptions/"+f.sub, keyhold.RoleReader, reader)
	_, _, err = f.s.Deploy(as(reader), f.sub, "rg", "d2", keyhold.DeploymentRequest{Mode: "Incremental", Template: tmpl})
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionDeploymentWrite)
	if got, err := f.s.Deployment(as(reader), f.sub, "rg", "d1"); err != nil || got.ProvisioningState != keyhold.DeploymentFailed {
		t.Fatalf("Deployment as a reader = %+v, %v", got, err)
	}
	_, err = f.s.Deployment(as(f.admin), f.sub, "rg", "d2")
	wantErr(t, err, keyhold.CodeNotFound, "'d2' could not be found")
}

// TestResourceGroupDeletion: deleting a group deletes its policies and
// deployment records.
func TestResourceGroupDeletion(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	p := f.put(t, "p1", f.spec())
	tmpl := specTemplate(t, "p2", "europe", f.vaultID("contoso-kv"), "cmk")
	if _, _, err := f.s.Deploy(as(f.admin), f.sub, "rg", "d1", keyhold.DeploymentRequest{Mode: "Incremental", Template: tmpl}); err != nil {
		t.Fatal(err)
	}
	if err := f.arm.DeleteResourceGroup(as(f.admin), f.sub, "rg"); err != nil {
		t.Fatalf("DeleteResourceGroup: %v", err)
	}
	s := f.snapshot(t)
	if len(s.policies) != 0 || len(s.identities) != 0 || slices.Contains(s.identities, p.PrincipalID) {
		t.Fatalf("after the group's deletion: %+v", s)
	}
	if d := f.deployment(t, "d1"); d != nil {
		t.Fatalf("the deployment record outlived its group: %+v", d)
	}
}
