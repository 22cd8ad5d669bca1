package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

func TestNewCmdKeyVaultCreate(t *testing.T) {
	base := []string{"-n", "kv1", "-g", "keys", "-l", "westeurope"}
	def := KeyVaultCreateOptions{VaultTarget: VaultTarget{Name: "kv1", ResourceGroup: "keys"}, Location: "westeurope", SKU: "standard",
		RetentionDays: 90, PublicNetworkAccess: "Enabled", Bypass: "AzureServices", DefaultAction: "Allow", Format: FormatTable}
	all := def
	all.Subscription, all.SKU, all.RetentionDays, all.PurgeProtection, all.AccessPolicies = "sub1", "premium", 7, true, true
	all.PublicNetworkAccess, all.Bypass, all.DefaultAction, all.IPRules = "Disabled", "None", "Deny", []string{"203.0.113.7", "198.51.100.0/24"}
	tests := []struct {
		name    string
		args    []string
		want    KeyVaultCreateOptions
		wantErr string
	}{
		{name: "defaults: RBAC, open network", args: base, want: def},
		{name: "every flag, values in any case", args: append(append([]string{}, base...), "--subscription", "sub1", "--sku", "Premium", "--retention-days", "7",
			"--enable-purge-protection", "--access-policies", "--public-network-access", "disabled", "--bypass", "none", "--default-action", "deny",
			"--ip-rule", "203.0.113.7", "--ip-rule", "198.51.100.0/24"), want: all},
		{name: "rbac explicitly", args: append(append([]string{}, base...), "--rbac"), want: def},
		{name: "both models", args: append(append([]string{}, base...), "--rbac", "--access-policies"), wantErr: "give --rbac or --access-policies, not both"},
		{name: "missing group and location", args: []string{"-n", "kv1"}, wantErr: "needs --resource-group and --location"},
		{name: "retention too short", args: append(append([]string{}, base...), "--retention-days", "6"), wantErr: "--retention-days 6 is not valid: use 7 to 90"},
		{name: "retention too long", args: append(append([]string{}, base...), "--retention-days", "91"), wantErr: "use 7 to 90"},
		{name: "bad bypass", args: append(append([]string{}, base...), "--bypass", "Everyone"), wantErr: `--bypass "Everyone" is not valid: use AzureServices or None`},
		{name: "bad default action", args: append(append([]string{}, base...), "--default-action", "Block"), wantErr: "use Allow or Deny"},
		{name: "bad public network access", args: append(append([]string{}, base...), "--public-network-access", "On"), wantErr: "use Enabled or Disabled"},
		{name: "bad ip rule", args: append(append([]string{}, base...), "--ip-rule", "10.0.0.0/33"), wantErr: `--ip-rule "10.0.0.0/33" is not an IP address or CIDR range`},
		{name: "bad sku", args: append(append([]string{}, base...), "--sku", "gold"), wantErr: "use standard or premium"},
		{name: "positional argument", args: append(append([]string{}, base...), "extra"), wantErr: `got unexpected "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdKeyVaultCreate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdKeyVaultSetPolicy(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    KeyVaultSetPolicyOptions
		wantErr string
	}{
		{name: "permissions spelt as Azure does", args: []string{"-n", "kv1", "--object-id", "o1", "--key-permissions", "GET, wrapkey,unwrapKey,get"},
			want: KeyVaultSetPolicyOptions{VaultTarget: VaultTarget{Name: "kv1"}, ObjectID: "o1", KeyPermissions: []string{"get", "wrapKey", "unwrapKey"}, Format: FormatTable}},
		{name: "unknown permission", args: []string{"-n", "kv1", "--object-id", "o1", "--key-permissions", "get,fly"}, wantErr: `"fly" is not a key permission`},
		{name: "empty permissions", args: []string{"-n", "kv1", "--object-id", "o1", "--key-permissions", ","}, wantErr: "--key-permissions is empty"},
		{name: "missing object id", args: []string{"-n", "kv1", "--key-permissions", "get"}, wantErr: "needs --object-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdKeyVaultSetPolicy, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdKeyVaultPurge(t *testing.T) {
	_, err := parseOpts(t, nil, newCmdKeyVaultPurge, "-n", "kv1")
	checkParse(t, err, `purging vault "kv1" destroys its keys for good: pass --yes to confirm`)
	got, err := parseOpts(t, nil, newCmdKeyVaultPurge, "-n", "kv1", "--yes")
	if checkParse(t, err, "") {
		sameOptions(t, got, &KeyVaultPurgeOptions{Name: "kv1", Confirmed: true})
	}
}

func TestNewCmdKeyCreate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    KeyCreateOptions
		wantErr string
	}{
		{name: "defaults", args: []string{"--vault", "kv1", "-n", "cmk"},
			want: KeyCreateOptions{KeyTarget: KeyTarget{VaultFlags{Vault: "kv1"}, "cmk"}, Kty: "RSA", Size: 2048, Format: FormatTable}},
		{name: "hsm, size, operations", args: []string{"--vault-uri", "https://h/vaults/kv1", "-n", "cmk", "--kty", "rsa-hsm", "--size", "4096", "--ops", "wrapkey,UNWRAPKEY"},
			want: KeyCreateOptions{KeyTarget: KeyTarget{VaultFlags{VaultURI: "https://h/vaults/kv1"}, "cmk"}, Kty: "RSA-HSM", Size: 4096, Ops: []string{"wrapKey", "unwrapKey"}, Format: FormatTable}},
		{name: "no vault", args: []string{"-n", "cmk"}, wantErr: "give --vault NAME"},
		{name: "both vault flags", args: []string{"--vault", "kv1", "--vault-uri", "https://h/vaults/kv1", "-n", "cmk"}, wantErr: "not both"},
		{name: "vault uri not https", args: []string{"--vault-uri", "http://h/vaults/kv1", "-n", "cmk"}, wantErr: "use the vault's https URI"},
		{name: "no name", args: []string{"--vault", "kv1"}, wantErr: "needs --name"},
		{name: "bad size", args: []string{"--vault", "kv1", "-n", "cmk", "--size", "1024"}, wantErr: "--size 1024 is not valid: use 2048, 3072 or 4096"},
		{name: "bad type", args: []string{"--vault", "kv1", "-n", "cmk", "--kty", "EC"}, wantErr: `--kty "EC" is not valid: use RSA or RSA-HSM`},
		{name: "bad operation", args: []string{"--vault", "kv1", "-n", "cmk", "--ops", "wrapKey,fly"}, wantErr: `"fly" is not a key operation`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdKeyCreate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdKeyPurgeAndDisable(t *testing.T) {
	_, err := parseOpts(t, nil, newCmdKeyPurge, "--vault", "kv1", "-n", "cmk")
	checkParse(t, err, `purging key "cmk" destroys it and all its versions for good: pass --yes to confirm`)
	disable := func(f *Factory, runF func(*KeyNameOptions) error) *cobra.Command {
		return newCmdKeySetEnabled(f, runF, false)
	}
	got, err := parseOpts(t, nil, disable, "--vault", "kv1", "-n", "cmk", "--version", "v1")
	if checkParse(t, err, "") {
		sameOptions(t, got, &KeyNameOptions{KeyTarget: KeyTarget{VaultFlags{Vault: "kv1"}, "cmk"}, Version: "v1", Format: FormatTable})
	}
}

func TestTokenObjectID(t *testing.T) {
	// header.{"oid":"o1","tid":"t1"}.signature
	if oid, err := tokenObjectID("e30.eyJvaWQiOiJvMSIsInRpZCI6InQxIn0.c2ln"); err != nil || oid != "o1" {
		t.Fatalf("tokenObjectID = %q, %v", oid, err)
	}
	for _, bad := range []string{"", "a.b", "e30.!!.c2ln", "e30.e30.c2ln"} {
		if _, err := tokenObjectID(bad); err == nil {
			t.Errorf("tokenObjectID(%q) succeeded", bad)
		}
	}
}

// TestKeyVaultStack runs the key vault commands against a real server:
// they use the official armkeyvault and azkeys clients, so this is also a
// wire-compatibility test of the server's key vault APIs.
func TestKeyVaultStack(t *testing.T) {
	bootstrap := startServer(t)
	home := t.TempDir()
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": home}}
	s.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	sub := []string{"--subscription", b.SubscriptionID}
	createGroup(t, b, "keys")

	var vault map[string]any
	t.Run("keyvault create and show", func(t *testing.T) {
		s.okJSON(&vault, append([]string{"keyvault", "create", "-n", "cli-kv", "-g", "keys", "-l", "West Europe", "--access-policies",
			"--enable-purge-protection", "--retention-days", "7", "--default-action", "Deny", "--ip-rule", "127.0.0.1"}, sub...)...)
		props, _ := vault["properties"].(map[string]any)
		if vault["name"] != "cli-kv" || vault["location"] != "westeurope" || props["enablePurgeProtection"] != true ||
			props["enableRbacAuthorization"] != false || props["softDeleteRetentionInDays"] != float64(7) {
			t.Fatalf("created %v", vault)
		}
		out := s.ok(append([]string{"keyvault", "show", "-n", "cli-kv"}, sub...)...)
		for _, want := range []string{"access policies", "7 days", "Purge protection: yes", "default Deny, bypass AzureServices, allow 127.0.0.1/32", "https://cli-kv.vault.localhost:"} {
			if !strings.Contains(squash(out), want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		if out := s.ok(append([]string{"keyvault", "list"}, sub...)...); !strings.Contains(out, "cli-kv") || !strings.Contains(out, "access policies") {
			t.Errorf("list:\n%s", out)
		}
		s.fails(1, "Error: ResourceNotFound: no vault called \"nope\"", append([]string{"keyvault", "show", "-n", "nope"}, sub...)...)
	})

	var kid string
	t.Run("key lifecycle", func(t *testing.T) {
		var k struct {
			Key struct {
				KID    string   `json:"kid"`
				KeyOps []string `json:"key_ops"`
			} `json:"key"`
			Attributes struct {
				Enabled       bool   `json:"enabled"`
				RecoveryLevel string `json:"recoveryLevel"`
			} `json:"attributes"`
		}
		s.okJSON(&k, "key", "create", "--vault", "cli-kv", "-n", "cmk", "--ops", "wrapKey,unwrapKey")
		kid = k.Key.KID
		// By host, through the CLI's dialer: no hosts-file line here.
		if !strings.HasPrefix(kid, "https://cli-kv.vault.localhost:") || !strings.Contains(kid, "/keys/cmk/") || len(k.Key.KeyOps) != 2 || !k.Attributes.Enabled || k.Attributes.RecoveryLevel != "CustomizedRecoverable" {
			t.Fatalf("created %+v", k)
		}
		if out := s.ok("key", "list", "--vault", "cli-kv"); !strings.Contains(out, "https://cli-kv.vault.localhost:") || !strings.Contains(out, "/keys/cmk") {
			t.Errorf("list:\n%s", out)
		}
		if out := s.ok("key", "show", "--vault", "cli-kv", "-n", "cmk", "-o", "id"); out != kid+"\n" {
			t.Errorf("show -o id = %q, want %q", out, kid)
		}
		// The path form is an alias, and answers the same id.
		if out := s.ok("key", "show", "--vault-uri", b.URL+"/vaults/cli-kv", "-n", "cmk", "-o", "id"); out != kid+"\n" {
			t.Errorf("show --vault-uri <server>/vaults/cli-kv -o id = %q, want %q", out, kid)
		}
		s.ok("key", "rotate", "--vault", "cli-kv", "-n", "cmk")
		if out := s.ok("key", "versions", "--vault", "cli-kv", "-n", "cmk"); strings.Count(out, "/keys/cmk/") != 2 {
			t.Errorf("versions:\n%s", out)
		}
		s.ok("key", "disable", "--vault", "cli-kv", "-n", "cmk")
		if out := s.ok("key", "show", "--vault", "cli-kv", "-n", "cmk"); !strings.Contains(squash(out), "Enabled: no") {
			t.Errorf("show after disable:\n%s", out)
		}
		s.ok("key", "enable", "--vault", "cli-kv", "-n", "cmk")
		// The first version is still there, and still enabled.
		version := kid[strings.LastIndex(kid, "/")+1:]
		if out := s.ok("key", "show", "--vault", "cli-kv", "-n", "cmk", "--version", version); !strings.Contains(out, kid) || !strings.Contains(squash(out), "Enabled: yes") {
			t.Errorf("show --version:\n%s", out)
		}

		policy := filepath.Join(t.TempDir(), "policy.json")
		os.WriteFile(policy, []byte(`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P1Y"}}`), 0o600)
		s.ok("key", "rotation-policy", "set", "--vault", "cli-kv", "-n", "cmk", "--file", policy)
		if out := s.ok("key", "rotation-policy", "show", "--vault", "cli-kv", "-n", "cmk"); !strings.Contains(out, "P1Y") || !strings.Contains(squash(out), "Rotate: P90D after creation") {
			t.Errorf("rotation-policy show:\n%s", out)
		}
		code, _, stderr := s.run(`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P1D"},"action":{"type":"Rotate"}}]}`,
			"key", "rotation-policy", "set", "--vault", "cli-kv", "-n", "cmk", "--file", "-")
		if code != 1 || !strings.Contains(stderr, "Error: BadParameter: ") {
			t.Errorf("a bad policy: exit %d, %q", code, stderr)
		}
		// A misspelt field, which the SDK would drop, is refused before
		// anything is sent, and the policy stays.
		code, _, stderr = s.run(`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"atributes":{"expiryTime":"P2Y"}}`,
			"key", "rotation-policy", "set", "--vault", "cli-kv", "-n", "cmk", "--file", "-")
		if code != 1 || !strings.Contains(stderr, `field "atributes" is not a field of a key rotation policy`) {
			t.Errorf("a misspelt policy: exit %d, %q", code, stderr)
		}
		if out := s.ok("key", "rotation-policy", "show", "--vault", "cli-kv", "-n", "cmk"); !strings.Contains(out, "P1Y") || !strings.Contains(squash(out), "Rotate: P90D after creation") {
			t.Errorf("rotation-policy show after the refusals:\n%s", out)
		}

		if out := s.ok("key", "delete", "--vault", "cli-kv", "-n", "cmk"); !strings.Contains(out, "recoverable until") {
			t.Errorf("delete: %q", out)
		}
		if out := s.ok("key", "list", "--vault", "cli-kv", "--deleted"); !strings.Contains(out, "/keys/cmk") {
			t.Errorf("list --deleted:\n%s", out)
		}
		s.fails(1, "Error: Forbidden: ", "key", "purge", "--vault", "cli-kv", "-n", "cmk", "--yes") // purge protection
		s.ok("key", "recover", "--vault", "cli-kv", "-n", "cmk")
		s.fails(1, "Error: KeyNotFound: ", "key", "show", "--vault", "cli-kv", "-n", "nope")
	})

	t.Run("set-policy", func(t *testing.T) {
		out := s.ok(append([]string{"keyvault", "set-policy", "-n", "cli-kv", "--object-id", "5f0ad3a4-7a6e-4c1b-9b8a-000000000001",
			"--key-permissions", "get,wrapKey,unwrapKey"}, sub...)...)
		if !strings.Contains(out, "5f0ad3a4-7a6e-4c1b-9b8a-000000000001") || !strings.Contains(out, "get,wrapKey,unwrapKey") {
			t.Errorf("set-policy:\n%s", out)
		}
	})

	t.Run("delete, recover, purge", func(t *testing.T) {
		s.ok(append([]string{"keyvault", "create", "-n", "tmp-kv", "-g", "keys", "-l", "westeurope"}, sub...)...)
		if out := s.ok(append([]string{"keyvault", "delete", "-n", "tmp-kv"}, sub...)...); !strings.Contains(out, "recoverable until") {
			t.Errorf("delete: %q", out)
		}
		if out := s.ok(append([]string{"keyvault", "list", "--deleted"}, sub...)...); !strings.Contains(out, "tmp-kv") {
			t.Errorf("list --deleted:\n%s", out)
		}
		s.ok(append([]string{"keyvault", "recover", "-n", "tmp-kv"}, sub...)...)
		s.ok(append([]string{"keyvault", "delete", "-n", "tmp-kv"}, sub...)...)
		s.fails(2, "pass --yes", append([]string{"keyvault", "purge", "-n", "tmp-kv"}, sub...)...)
		if out := s.ok(append([]string{"keyvault", "purge", "-n", "tmp-kv", "--yes"}, sub...)...); out != "Purged vault tmp-kv\n" {
			t.Errorf("purge: %q", out)
		}
		s.fails(1, "Error: ResourceNotFound: no deleted vault called \"tmp-kv\"", append([]string{"keyvault", "purge", "-n", "tmp-kv", "--yes"}, sub...)...)
		// Purge protection refuses to purge cli-kv.
		s.ok(append([]string{"keyvault", "delete", "-n", "cli-kv"}, sub...)...)
		s.fails(1, "Error: Conflict: ", append([]string{"keyvault", "purge", "-n", "cli-kv", "--yes"}, sub...)...)
	})
}

// createGroup creates a resource group through the resource manager.
func createGroup(t *testing.T, b *bootstrapFile, name string) {
	t.Helper()
	ca, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := khttp.NewClient(b.URL, ca, b.TenantID, b.ClientID, b.ClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.Token(context.Background(), string(keyhold.AudienceManagement)+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"location": "westeurope"})
	req, err := http.NewRequest("PUT", b.URL+"/subscriptions/"+b.SubscriptionID+"/resourcegroups/"+name+"?api-version=2021-04-01", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("creating resource group %s: %s", name, resp.Status)
	}
}

// squash collapses runs of spaces, so that checks don't depend on a
// table's column widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// TestHostsHint: keyvault create prints the hosts-file line of a vault
// whose host name doesn't resolve, naming the server's address, and
// nothing for one that resolves.
func TestHostsHint(t *testing.T) {
	ctx := context.Background()
	none := func(context.Context, string) ([]string, error) { return nil, errors.New("no such host") }
	var w bytes.Buffer
	hostsHint(ctx, &w, none, "https://127.0.0.2:8443", "https://contoso-kv.vault.localhost:8443/")
	if !strings.Contains(w.String(), "\n127.0.0.2 contoso-kv.vault.localhost\n") || !strings.Contains(w.String(), "does not resolve") {
		t.Errorf("unresolved: %q", w.String())
	}
	w.Reset()
	server := func(_ context.Context, h string) ([]string, error) {
		if h == "keyhold.example.com" {
			return []string{"192.0.2.10"}, nil
		}
		return nil, errors.New("no such host")
	}
	hostsHint(ctx, &w, server, "https://keyhold.example.com", "https://contoso-kv.vault.example.com/")
	if !strings.HasSuffix(w.String(), "\n192.0.2.10 contoso-kv.vault.example.com\n") {
		t.Errorf("unresolved, server by name: %q", w.String())
	}
	w.Reset()
	all := func(context.Context, string) ([]string, error) { return []string{"192.0.2.10"}, nil }
	hostsHint(ctx, &w, all, "https://keyhold.example.com", "https://contoso-kv.vault.example.com/")
	if w.Len() != 0 {
		t.Errorf("resolved: %q; want nothing", w.String())
	}
}
