package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpecFlowCLI walks the spec's whole flow through the commands only,
// against a real server: the bootstrap administrator is the key vault
// administrator, and a service principal it makes, a Power Platform
// Administrator logged in with its own KEYHOLD_HOME, is the platform
// administrator.
func TestSpecFlowCLI(t *testing.T) {
	bootstrap := startServer(t)
	kvAdmin := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	kvAdmin.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	sub := "/subscriptions/" + b.SubscriptionID

	// The key vault administrator's own object id.
	var sps []struct {
		ObjectID string `json:"objectId"`
		AppID    string `json:"appId"`
	}
	kvAdmin.okJSON(&sps, "identity", "sp", "list")
	me := ""
	for _, p := range sps {
		if p.AppID == b.ClientID {
			me = p.ObjectID
		}
	}
	if me == "" {
		t.Fatalf("identity sp list shows no principal with app id %s: %+v", b.ClientID, sps)
	}

	// The platform administrator: a service principal with the Power
	// Platform Administrator directory role, logged in on its own.
	var sp newSPJSON
	kvAdmin.okJSON(&sp, "identity", "sp", "create", "--name", "platform-admin")
	if sp.AppID == "" || sp.ObjectID == "" || sp.ObjectID == me || sp.ClientSecret == "" || sp.TenantID != b.TenantID {
		t.Fatalf("sp create printed %+v", sp)
	}
	if out := kvAdmin.ok("identity", "role", "assign", "--role", "Power Platform Administrator", "--assignee", sp.ObjectID); !strings.HasPrefix(out, "Gave "+sp.ObjectID+" the Power Platform Administrator role") {
		t.Fatalf("identity role assign printed %q", out)
	}
	pa := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	pa.ok("login", "--url", b.URL, "--ca-file", b.CAFile, "--tenant", sp.TenantID, "--client-id", sp.AppID, "--client-secret", sp.ClientSecret,
		"--subscription", b.SubscriptionID)

	// Step 1 (key vault admin): a vault with purge protection and a key.
	if out := kvAdmin.ok("provider", "register", "Microsoft.KeyVault"); out != "Microsoft.KeyVault: Registered in subscription "+b.SubscriptionID+"\n" {
		t.Fatalf("provider register printed %q", out)
	}
	if out := kvAdmin.ok("group", "create", "-n", "cmk", "-l", "westeurope"); out != "Created resource group cmk in westeurope\n" {
		t.Fatalf("group create printed %q", out)
	}
	makeVaultAndKey := func(vault, key string) string {
		t.Helper()
		var v struct {
			ID         string
			Properties struct{ EnablePurgeProtection, EnableSoftDelete bool }
		}
		kvAdmin.okJSON(&v, "keyvault", "create", "-n", vault, "-g", "cmk", "-l", "westeurope", "--enable-purge-protection")
		if v.ID != sub+"/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/"+vault || !v.Properties.EnablePurgeProtection || !v.Properties.EnableSoftDelete {
			t.Fatalf("keyvault create printed %+v", v)
		}
		// Neither the Owner nor the platform administrator may make keys
		// until granted.
		pa.fails(1, "Error: Forbidden", "key", "create", "--vault", vault, "-n", key)
		kvAdmin.fails(1, "Error: Forbidden", "key", "create", "--vault", vault, "-n", key)
		kvAdmin.ok("role", "assign", "--role", "Key Vault Crypto Officer", "--assignee", me, "--scope", v.ID)
		var k struct{ Key struct{ Kid, Kty string } }
		kvAdmin.okJSON(&k, "key", "create", "--vault", vault, "-n", key)
		if k.Key.Kty != "RSA" || !strings.HasPrefix(k.Key.Kid, "https://"+vault+".vault.localhost:") || !strings.Contains(k.Key.Kid, "/keys/"+key+"/") {
			t.Fatalf("key create printed %+v", k)
		}
		return v.ID
	}

	// Step 2 (key vault admin): register the provider, deploy the template.
	type policyJSON struct {
		ID         string
		Name       string
		Kind       string
		Identity   struct{ PrincipalID string }
		Properties struct {
			SystemID   string
			Encryption struct {
				KeyVault struct {
					ID  string
					Key struct{ Name string }
				}
			}
		}
	}
	deployPolicy := func(name, deployment, vault, vaultID, key string) *policyJSON {
		t.Helper()
		var d struct {
			ProvisioningState string
			OutputResources   []string
			ErrorCode         string
		}
		kvAdmin.okJSON(&d, "deployment", "create", "-g", "cmk", "-n", deployment, "--template-file", "../docs/examples/enterprise-policy.json",
			"-p", "policyName="+name, "-p", "keyVaultName="+vault, "-p", "keyName="+key)
		policyID := sub + "/resourceGroups/cmk/providers/Microsoft.PowerPlatform/enterprisePolicies/" + name
		if d.ProvisioningState != "Succeeded" || len(d.OutputResources) != 1 || d.OutputResources[0] != policyID || d.ErrorCode != "" {
			t.Fatalf("deployment create printed %+v", d)
		}
		var p policyJSON
		kvAdmin.okJSON(&p, "policy", "show", "-g", "cmk", "-n", name)
		if p.ID != policyID || p.Kind != "Encryption" || p.Identity.PrincipalID == "" || p.Properties.Encryption.KeyVault.ID != vaultID ||
			p.Properties.Encryption.KeyVault.Key.Name != key || !strings.HasPrefix(p.Properties.SystemID, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/") {
			t.Fatalf("policy show printed %+v", p)
		}
		return &p
	}
	// Step 3 (key vault admin): the policy's identity may use the key.
	grantIdentity := func(p *policyJSON) {
		t.Helper()
		out := kvAdmin.ok("role", "assign", "--role", "Key Vault Crypto Service Encryption User", "--assignee", p.Identity.PrincipalID,
			"--scope", p.Properties.Encryption.KeyVault.ID)
		if !strings.Contains(out, p.Identity.PrincipalID+` the role "Key Vault Crypto Service Encryption User" at `+p.Properties.Encryption.KeyVault.ID) {
			t.Fatalf("role assign printed %q", out)
		}
	}
	// Step 4 (key vault admin): the platform administrator gets Reader on
	// the policy, and may read it only then.
	grantReader := func(p *policyJSON) {
		t.Helper()
		pa.fails(1, "Error: AuthorizationFailed", "policy", "show", "-g", "cmk", "-n", p.Name)
		out := kvAdmin.ok("role", "assign", "--role", "Reader", "--assignee", sp.ObjectID, "--scope", p.ID)
		if !strings.HasPrefix(out, "Gave ServicePrincipal "+sp.ObjectID+` the role "Reader" at `+p.ID+" (assignment ") {
			t.Fatalf("role assign printed %q", out)
		}
		var got policyJSON
		pa.okJSON(&got, "policy", "show", "-g", "cmk", "-n", p.Name)
		if got.Properties.SystemID != p.Properties.SystemID {
			t.Fatalf("policy show as the platform administrator printed %+v", got)
		}
	}

	vault1 := makeVaultAndKey("contoso-kv", "cmk")
	if out := kvAdmin.ok("provider", "register", "Microsoft.PowerPlatform"); out != "Microsoft.PowerPlatform: Registered in subscription "+b.SubscriptionID+"\n" {
		t.Fatalf("provider register printed %q", out)
	}
	pol1 := deployPolicy("contoso-cmk", "cmk-policy", "contoso-kv", vault1, "cmk")
	grantIdentity(pol1)
	grantReader(pol1)

	// Step 5 (platform admin): a Managed Environment with data, linked.
	var env struct {
		ID           string
		Managed      bool
		KeyManagedBy string
	}
	pa.okJSON(&env, "env", "create", "--name", "Contoso", "--location", "europe")
	if env.ID == "" || env.KeyManagedBy != "Microsoft" {
		t.Fatalf("env create printed %+v", env)
	}
	pa.ok("env", "enable-managed", env.ID)
	rows := map[string]string{"a1": `{"name":"Fabrikam"}`, "a2": `{"name":"Northwind","city":"Seattle"}`, "a3": `{"n":[1,2,3]}`}
	for id, data := range rows {
		pa.ok("row", "put", env.ID, "accounts", id, "--data", data)
	}
	dir := t.TempDir()
	blob := make([]byte, 5<<19) // 2.5 MiB: three chunks
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	wantSum := sha256.Sum256(blob)
	src := filepath.Join(dir, "contracts.bin")
	if err := os.WriteFile(src, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	pa.ok("file", "put", env.ID, "contracts.bin", src)

	checkData := func(when string) {
		t.Helper()
		for id, data := range rows {
			out := pa.ok("row", "get", env.ID, "accounts", id)
			var got bytes.Buffer
			if err := json.Compact(&got, []byte(out)); err != nil || got.String() != data {
				t.Fatalf("%s: row get %s printed %q (%v); want %s", when, id, out, err, data)
			}
		}
		dst := filepath.Join(dir, "copy.bin")
		os.Remove(dst)
		pa.ok("file", "get", env.ID, "contracts.bin", "--out", dst)
		got, err := os.ReadFile(dst)
		if err != nil || sha256.Sum256(got) != wantSum || !bytes.Equal(got, blob) {
			t.Fatalf("%s: file get wrote %d bytes, %v; want the %d bytes written", when, len(got), err, len(blob))
		}
	}
	type shownEnv struct {
		KeyManagedBy   string
		PolicyID       string
		PolicySystemID string
		LinkStatus     string
		State          string
		Managed        bool
	}
	show := func() shownEnv {
		t.Helper()
		var e shownEnv
		pa.okJSON(&e, "env", "show", env.ID)
		return e
	}
	wantLinked := func(when string, p *policyJSON) {
		t.Helper()
		e := show()
		if e.KeyManagedBy != "Customer" || e.PolicySystemID != p.Properties.SystemID || !strings.EqualFold(e.PolicyID, p.ID) ||
			e.LinkStatus != "Linked" || e.State != "Enabled" || !e.Managed {
			t.Fatalf("%s: env show printed %+v; want Customer, linked to %s", when, e, p.Properties.SystemID)
		}
	}
	link := func(what, policy string) {
		t.Helper()
		code, stdout, stderr := pa.run("", "env", "link", env.ID, "--policy", policy, "-g", "cmk")
		if code != 0 || !strings.Contains(squash(stdout), "State: Succeeded") {
			t.Fatalf("%s: env link exit %d\n%s\n%s", what, code, stdout, stderr)
		}
	}

	if e := show(); e.KeyManagedBy != "Microsoft" || e.PolicySystemID != "" || !e.Managed {
		t.Fatalf("before the link env show printed %+v", e)
	}
	checkData("before the link")
	link("link", "contoso-cmk")
	wantLinked("after the link", pol1)

	// Step 6 (platform admin): read, swap, unlink, read again.
	checkData("after the link")

	vault2 := makeVaultAndKey("fabrikam-kv", "cmk2")
	pol2 := deployPolicy("fabrikam-cmk", "cmk-policy-2", "fabrikam-kv", vault2, "cmk2")
	if pol2.Properties.SystemID == pol1.Properties.SystemID || pol2.Identity.PrincipalID == pol1.Identity.PrincipalID {
		t.Fatalf("the second policy shares the first's systemId or identity: %+v", pol2)
	}
	grantIdentity(pol2)
	pa.fails(1, "Error: Forbidden", "env", "link", env.ID, "--policy", pol2.Properties.SystemID)
	wantLinked("after refusing the swap without Reader", pol1)
	grantReader(pol2)
	link("swap", "fabrikam-cmk")
	wantLinked("after the swap", pol2)
	checkData("after the swap")

	code, stdout, stderr := pa.run("", "env", "unlink", env.ID)
	if code != 0 || !strings.Contains(squash(stdout), "State: Succeeded") {
		t.Fatalf("env unlink: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "Warning: keep key cmk2 of key vault fabrikam-kv") || !strings.Contains(stderr, "for 30 days, until ") {
		t.Errorf("env unlink did not warn to keep the key 30 days:\n%s", stderr)
	}
	if e := show(); e.KeyManagedBy != "Microsoft" || e.PolicyID != "" || e.PolicySystemID != "" || e.LinkStatus != "" || e.State != "Enabled" {
		t.Fatalf("after the unlink env show printed %+v", e)
	}
	checkData("after the unlink")
}
