package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

const cliVaultID = "/subscriptions/s1/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/kv"

func TestNewCmdPolicyCreate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    PolicyCreateOptions
		wantErr string
	}{
		{name: "short flags", args: []string{"-g", "rg", "-n", "p1", "-l", "europe", "--vault-id", cliVaultID, "--key", "cmk"},
			want: PolicyCreateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, Location: "europe", VaultID: cliVaultID, Key: "cmk", Format: FormatTable}},
		{name: "version, tags, subscription, json", args: []string{"--resource-group", "rg", "--name", "p1", "--location", "europe", "--vault-id", cliVaultID,
			"--key", "cmk", "--key-version", "0123", "--tag", "env=prod", "--subscription", "s1", "-o", "json"},
			want: PolicyCreateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1", Subscription: "s1"}, Location: "europe", VaultID: cliVaultID,
				Key: "cmk", KeyVersion: "0123", Tags: []string{"env=prod"}, Format: FormatJSON}},
		{name: "key missing", args: []string{"-g", "rg", "-n", "p1", "-l", "europe", "--vault-id", cliVaultID}, wantErr: "needs --key"},
		{name: "all missing", wantErr: "needs --resource-group and --name and --location and --vault-id and --key"},
		{name: "bad tag", args: []string{"-g", "rg", "-n", "p1", "-l", "europe", "--vault-id", cliVaultID, "--key", "cmk", "--tag", "x"}, wantErr: `--tag "x" is not valid`},
		{name: "positional", args: []string{"p1"}, wantErr: `got unexpected "p1"`},
		{name: "external vault", args: []string{"-g", "rg", "-n", "p1", "-l", "europe", "--vault-uri", "https://customer.example", "--customer-tenant", "t1",
			"--customer-app", "a1", "--authority-host", "https://login.example/", "--key", "cmk"},
			want: PolicyCreateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, Location: "europe", Key: "cmk", Format: FormatTable,
				External: keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: "t1", ClientID: "a1", AuthorityHost: "https://login.example/"}}},
		{name: "external vault without app", args: []string{"-g", "rg", "-n", "p1", "-l", "europe", "--vault-uri", "https://customer.example", "--customer-tenant", "t1", "--key", "cmk"},
			wantErr: "needs --customer-app"},
		{name: "both vaults", args: []string{"-g", "rg", "-n", "p1", "-l", "europe", "--vault-id", cliVaultID, "--vault-uri", "https://customer.example", "--key", "cmk"},
			wantErr: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdPolicyCreate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdPolicyUpdate(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name    string
		args    []string
		want    PolicyUpdateOptions
		wantErr string
	}{
		{name: "new key", args: []string{"-g", "rg", "-n", "p1", "--key", "cmk2"},
			want: PolicyUpdateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, Key: str("cmk2"), Format: FormatTable}},
		{name: "unpin the version", args: []string{"-g", "rg", "-n", "p1", "--key-version", ""},
			want: PolicyUpdateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, KeyVersion: str(""), Format: FormatTable}},
		{name: "vault and tags", args: []string{"-g", "rg", "-n", "p1", "--vault-id", cliVaultID, "--tag", "a=b"},
			want: PolicyUpdateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, VaultID: str(cliVaultID), Tags: []string{"a=b"}, Format: FormatTable}},
		{name: "clear tags", args: []string{"-g", "rg", "-n", "p1", "--clear-tags"},
			want: PolicyUpdateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, ClearTags: true, Format: FormatTable}},
		{name: "nothing to change", args: []string{"-g", "rg", "-n", "p1"}, wantErr: "nothing to change"},
		{name: "tags both ways", args: []string{"-g", "rg", "-n", "p1", "--tag", "a=b", "--clear-tags"}, wantErr: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdPolicyUpdate, tt.args...)
			if !checkParse(t, err, tt.wantErr) {
				return
			}
			for _, f := range []struct {
				name      string
				got, want *string
			}{{"VaultID", got.VaultID, tt.want.VaultID}, {"Key", got.Key, tt.want.Key}, {"KeyVersion", got.KeyVersion, tt.want.KeyVersion}} {
				if (f.got == nil) != (f.want == nil) || f.got != nil && *f.got != *f.want {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			got.VaultID, got.Key, got.KeyVersion = nil, nil, nil
			tt.want.VaultID, tt.want.Key, tt.want.KeyVersion = nil, nil, nil
			sameOptions(t, got, &tt.want)
		})
	}
}

func TestNewCmdPolicyShowListDelete(t *testing.T) {
	show, err := parseOpts(t, nil, newCmdPolicyShow, "-g", "rg", "-n", "p1", "-o", "id")
	if checkParse(t, err, "") {
		sameOptions(t, show, &PolicyShowOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, Format: FormatID})
	}
	_, err = parseOpts(t, nil, newCmdPolicyShow, "-n", "p1")
	checkParse(t, err, "needs --resource-group")
	list, err := parseOpts(t, nil, newCmdPolicyList, "-g", "rg")
	if checkParse(t, err, "") {
		sameOptions(t, list, &PolicyListOptions{ResourceGroup: "rg", Format: FormatTable})
	}
	del, err := parseOpts(t, nil, newCmdPolicyDelete, "-g", "rg", "-n", "p1", "--yes")
	if checkParse(t, err, "") {
		sameOptions(t, del, &PolicyShowOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}, Confirmed: true})
	}
	// Without --yes it parses: the run warns, naming what would lock, and
	// refuses (TestPolicyDeleteLinkedStack).
	del, err = parseOpts(t, nil, newCmdPolicyDelete, "-g", "rg", "-n", "p1")
	if checkParse(t, err, "") {
		sameOptions(t, del, &PolicyShowOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "p1"}})
	}
}

func TestNewCmdDeployment(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    DeploymentCreateOptions
		wantErr string
	}{
		{name: "template only", args: []string{"-g", "rg", "-n", "d1", "--template-file", "t.json"},
			want: DeploymentCreateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "d1"}, TemplateFile: "t.json", Format: FormatTable}},
		{name: "parameters both ways", args: []string{"-g", "rg", "-n", "d1", "-f", "-", "--parameters", "name=contoso", "-p", "@params.json", "--parameters", "empty="},
			want: DeploymentCreateOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "d1"}, TemplateFile: "-",
				Parameters: []string{"name=contoso", "@params.json", "empty="}, Format: FormatTable}},
		{name: "template missing", args: []string{"-g", "rg", "-n", "d1"}, wantErr: "needs --template-file"},
		{name: "bad parameter", args: []string{"-g", "rg", "-n", "d1", "-f", "t.json", "--parameters", "novalue"}, wantErr: `--parameters "novalue" is not valid`},
		{name: "bare @", args: []string{"-g", "rg", "-n", "d1", "-f", "t.json", "--parameters", "@"}, wantErr: "needs a file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdDeploymentCreate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
	show, err := parseOpts(t, nil, newCmdDeploymentShow, "-g", "rg", "-n", "d1", "-o", "json")
	if checkParse(t, err, "") {
		sameOptions(t, show, &DeploymentShowOptions{PolicyTarget: PolicyTarget{ResourceGroup: "rg", Name: "d1"}, Format: FormatJSON})
	}
}

func TestDeploymentParameters(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.json")
	wrapped := filepath.Join(dir, "wrapped.json")
	os.WriteFile(plain, []byte(`{"location":{"value":"europe"},"count":{"value":3}}`), 0o600)
	os.WriteFile(wrapped, []byte(`{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#","contentVersion":"1.0.0.0","parameters":{"location":{"value":"asia"}}}`), 0o600)
	tmpl := []byte(`{"parameters":{"Count":{"type":"int"},"flags":{"type":"object"},"name":{"type":"string"}}}`)
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "none", want: "null"},
		{name: "a string", args: []string{"name=contoso=1"}, want: `{"name":{"value":"contoso=1"}}`},
		{name: "a number that is a string", args: []string{"name=42"}, want: `{"name":{"value":"42"}}`},
		{name: "typed as the template declares", args: []string{"count=3", `flags={"a":true}`}, want: `{"count":{"value":3},"flags":{"value":{"a":true}}}`},
		{name: "a file", args: []string{"@" + plain}, want: `{"count":{"value":3},"location":{"value":"europe"}}`},
		{name: "a deploymentParameters file, then a pair", args: []string{"@" + wrapped, "name=x"}, want: `{"location":{"value":"asia"},"name":{"value":"x"}}`},
		{name: "later wins", args: []string{"@" + plain, "@" + wrapped}, want: `{"count":{"value":3},"location":{"value":"asia"}}`},
		{name: "not JSON for an int", args: []string{"count=three"}, wantErr: "give its value as JSON"},
		{name: "missing file", args: []string{"@" + filepath.Join(dir, "nope.json")}, wantErr: "reading the parameters file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deploymentParameters(tmpl, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				got = json.RawMessage("null")
			}
			if string(got) != tt.want {
				t.Fatalf("parameters = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestPolicyStack runs the spec's steps with the CLI against a real
// server: register the providers, create a vault with purge protection and
// a key, deploy the spec's template (filled in) from a file, and show the
// policy; then update, refuse and delete.
func TestPolicyStack(t *testing.T) {
	bootstrap := startServer(t)
	admin := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	admin.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	admin.ok("provider", "register", "Microsoft.KeyVault")
	admin.ok("group", "create", "-n", "keys", "-l", "westeurope")
	admin.ok("group", "create", "-n", "contoso-rg", "-l", "westeurope")
	admin.ok("keyvault", "create", "-n", "cmk-kv", "-g", "keys", "-l", "westeurope", "--access-policies", "--enable-purge-protection")
	admin.ok("keyvault", "create", "-n", "plain-kv", "-g", "keys", "-l", "westeurope", "--access-policies")
	admin.ok("key", "create", "--vault", "cmk-kv", "-n", "cmk")
	admin.ok("key", "create", "--vault", "plain-kv", "-n", "cmk")
	vaultID := "/subscriptions/" + b.SubscriptionID + "/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/cmk-kv"

	// The spec's template, as printed, with its four values filled in.
	raw, err := os.ReadFile("../deploy/testdata/spec-template.txt")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := strings.NewReplacer("{EnterprisePolicyName}", `"contoso-cmk"`, "{location where EnterprisePolicy needs to be created}", `"europe"`,
		"{keyVaultId}", `"`+vaultID+`"`, "{keyName}", `"cmk"`).Replace(string(raw))
	file := filepath.Join(t.TempDir(), "enterprise-policy.json")
	if err := os.WriteFile(file, []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}

	admin.fails(1, "Error: MissingSubscriptionRegistration: ", "deployment", "create", "-g", "contoso-rg", "-n", "cmk-policy", "--template-file", file)
	if out := admin.ok("deployment", "show", "-g", "contoso-rg", "-n", "cmk-policy"); !strings.Contains(squash(out), "State: Failed") ||
		!strings.Contains(out, "MissingSubscriptionRegistration") {
		t.Fatalf("deployment show after the failure printed\n%s", out)
	}
	admin.ok("provider", "register", "Microsoft.PowerPlatform")
	policyID := "/subscriptions/" + b.SubscriptionID + "/resourceGroups/contoso-rg/providers/Microsoft.PowerPlatform/enterprisePolicies/contoso-cmk"
	out := admin.ok("deployment", "create", "-g", "contoso-rg", "-n", "cmk-policy", "--template-file", file)
	if !strings.Contains(squash(out), "State: Succeeded") || !strings.Contains(out, policyID) {
		t.Fatalf("deployment create printed\n%s", out)
	}

	var p struct {
		ID       string `json:"id"`
		Identity struct {
			Type        string `json:"type"`
			PrincipalID string `json:"principalId"`
		} `json:"identity"`
		Properties struct {
			SystemID   string `json:"systemId"`
			Encryption struct {
				KeyVault struct {
					ID string `json:"id"`
				} `json:"keyVault"`
			} `json:"encryption"`
		} `json:"properties"`
	}
	admin.okJSON(&p, "policy", "show", "-g", "contoso-rg", "-n", "contoso-cmk")
	if p.ID != policyID || p.Identity.Type != "SystemAssigned" || p.Identity.PrincipalID == "" || p.Properties.Encryption.KeyVault.ID != vaultID ||
		!regexp.MustCompile(`^/regions/europe/providers/Microsoft\.PowerPlatform/enterprisePolicies/[0-9a-f-]{36}$`).MatchString(p.Properties.SystemID) {
		t.Fatalf("policy show -o json printed %+v", p)
	}
	out = admin.ok("policy", "show", "-g", "contoso-rg", "-n", "contoso-cmk")
	for _, want := range []string{"System ID: " + p.Properties.SystemID, "Principal ID: " + p.Identity.PrincipalID, "Key: cmk", "Health: Undetermined",
		"Key version: current"} {
		if !strings.Contains(squash(out), want) {
			t.Errorf("policy show lacks %q:\n%s", want, out)
		}
	}
	// Deploying again changes nothing.
	admin.ok("deployment", "create", "-g", "contoso-rg", "-n", "cmk-policy", "--template-file", file)
	if out := admin.ok("policy", "list", "-o", "id"); out != policyID+"\n" {
		t.Fatalf("policy list -o id printed %q", out)
	}
	if out := admin.ok("policy", "list", "-g", "contoso-rg"); !strings.Contains(out, "contoso-cmk") || !strings.Contains(out, p.Properties.SystemID) {
		t.Fatalf("policy list printed\n%s", out)
	}

	if out := admin.ok("policy", "update", "-g", "contoso-rg", "-n", "contoso-cmk", "--tag", "owner=keys"); !strings.Contains(out, "owner=keys") {
		t.Fatalf("policy update printed\n%s", out)
	}
	admin.fails(1, "Error: BadRequest: key vault 'plain-kv' does not have purge protection: enable purge protection on the vault",
		"policy", "update", "-g", "contoso-rg", "-n", "contoso-cmk", "--vault-id", strings.Replace(vaultID, "cmk-kv", "plain-kv", 1))
	admin.fails(1, "Error: LocationNotAvailableForResourceType: ",
		"policy", "create", "-g", "contoso-rg", "-n", "other", "-l", "westeurope", "--vault-id", vaultID, "--key", "cmk")
	if out := admin.ok("policy", "create", "-g", "contoso-rg", "-n", "second", "-l", "uk", "--vault-id", vaultID, "--key", "cmk", "-o", "id"); !strings.HasSuffix(out, "/enterprisePolicies/second\n") {
		t.Fatalf("policy create -o id printed %q", out)
	}
	admin.ok("policy", "delete", "-g", "contoso-rg", "-n", "second", "--yes")
	admin.fails(1, "Error: ResourceNotFound: ", "policy", "show", "-g", "contoso-rg", "-n", "second")
}
