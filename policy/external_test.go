package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

const (
	extTenant = "6f1d2c3b-0a9e-4d8c-b7a6-5e4f3d2c1b0a"
	extClient = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)

// extSpec is a valid policy spec naming key cmk of an external vault.
func (f *fixture) extSpec() keyhold.PolicySpec {
	s := f.spec()
	s.KeyVaultID = ""
	s.External = &keyhold.ExternalKeyVault{URI: "https://Customer.Example:8443/", TenantID: strings.ToUpper(extTenant), ClientID: extClient,
		AuthorityHost: "https://Login.Customer.Example:8443"}
	return s
}

// TestExternalPolicyPutAndMove: a policy naming an external vault is
// stored with its vault URI, tenant, app and authority normalized (and no
// vault resource id), reads back the same on both backends, and its key
// moves to a built-in vault and back, the version cleared on each move.
func TestExternalPolicyPutAndMove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		p := f.put(t, "ext", f.extSpec())
		want := keyhold.ExternalKeyVault{URI: "https://customer.example:8443", TenantID: extTenant, ClientID: extClient,
			AuthorityHost: "https://login.customer.example:8443/"}
		if p.External == nil || *p.External != want || p.KeyVaultID != "" || p.KeyName != "cmk" {
			t.Fatalf("Put stored %+v (external %+v)", p, p.External)
		}
		got, err := f.s.Get(as(f.admin), f.sub, "rg", "ext")
		if err != nil || got.External == nil || *got.External != want || got.KeyVaultID != "" {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		// Entra ID's authority is stored as the default ("").
		spec := f.extSpec()
		spec.External.AuthorityHost = keyhold.DefaultAuthorityHost
		if p := f.put(t, "ext-entra", spec); p.External.AuthorityHost != "" {
			t.Fatalf("Entra ID's authority stored as %q", p.External.AuthorityHost)
		}

		// A version of the external key, then a move to the built-in vault
		// clears it and the external vault.
		v := strings.Repeat("ab", 16)
		p, err = f.s.Patch(as(f.admin), f.sub, "rg", "ext", keyhold.PolicyPatch{KeyVersion: &v})
		if err != nil || p.KeyVersion != v || p.External == nil {
			t.Fatalf("Patch version = %+v, %v", p, err)
		}
		id := f.vaultID("contoso-kv")
		p, err = f.s.Patch(as(f.admin), f.sub, "rg", "ext", keyhold.PolicyPatch{KeyVaultID: &id})
		if err != nil || p.External != nil || p.KeyVaultID != id || p.KeyVersion != "" || p.HealthStatus != keyhold.HealthUndetermined {
			t.Fatalf("Patch to built-in = %+v, %v", p, err)
		}
		p, err = f.s.Patch(as(f.admin), f.sub, "rg", "ext", keyhold.PolicyPatch{External: f.extSpec().External})
		if err != nil || p.External == nil || *p.External != want || p.KeyVaultID != "" {
			t.Fatalf("Patch back to external = %+v, %v", p, err)
		}
		got, err = f.s.Get(as(f.admin), f.sub, "rg", "ext")
		if err != nil || got.External == nil || *got.External != want || got.KeyVaultID != "" {
			t.Fatalf("Get after the moves = %+v, %v", got, err)
		}
	})
}

// TestExternalPolicyRefusals: a bad external vault is refused, quoting it
// and saying what to send, at create and at update, and nothing changes.
func TestExternalPolicyRefusals(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	f.put(t, "existing", f.extSpec())
	tests := []struct {
		name  string
		edit  func(s *keyhold.PolicySpec)
		hints []string
	}{
		{"http", func(s *keyhold.PolicySpec) { s.External.URI = "http://customer.example" }, []string{"'http://customer.example' is not https", "https://customer.example"}},
		{"other scheme", func(s *keyhold.PolicySpec) { s.External.URI = "ftp://customer.example" }, []string{"is not https"}},
		{"query", func(s *keyhold.PolicySpec) { s.External.URI = "https://customer.example/?api-version=7.4" }, []string{"not a key vault's URI", "without a path"}},
		{"key url", func(s *keyhold.PolicySpec) { s.External.URI = "https://customer.example/keys/cmk" }, []string{"https://customer.example/keys/cmk", "keyVault.key"}},
		{"fragment", func(s *keyhold.PolicySpec) { s.External.URI = "https://customer.example/#x" }, []string{"not a key vault's URI"}},
		{"user", func(s *keyhold.PolicySpec) { s.External.URI = "https://me:pw@customer.example" }, []string{"not a key vault's URI"}},
		{"not a url", func(s *keyhold.PolicySpec) { s.External.URI = "customer vault" }, []string{"'customer vault' is not a URL"}},
		{"missing uri", func(s *keyhold.PolicySpec) { s.External.URI = "" }, []string{"keyVault.uri is missing"}},
		{"both", func(s *keyhold.PolicySpec) { s.KeyVaultID = f.vaultID("contoso-kv") }, []string{"names both", "give one of them"}},
		{"tenant", func(s *keyhold.PolicySpec) { s.External.TenantID = "contoso.example" }, []string{"tenantId 'contoso.example' is not a GUID"}},
		{"no client", func(s *keyhold.PolicySpec) { s.External.ClientID = "" }, []string{"clientId is missing", "federated credential"}},
		{"authority http", func(s *keyhold.PolicySpec) { s.External.AuthorityHost = "http://login.example" }, []string{"'http://login.example' is not an https authority"}},
		{"authority path", func(s *keyhold.PolicySpec) { s.External.AuthorityHost = "https://login.example/tenant" }, []string{"not an https authority"}},
		{"key name", func(s *keyhold.PolicySpec) { s.KeyName = "c m k" }, []string{"'c m k' is not a key name"}},
		{"key version", func(s *keyhold.PolicySpec) { s.KeyVersion = "v1" }, []string{"'v1' is not a key version"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"new", "existing"} {
				spec := f.extSpec()
				tc.edit(&spec)
				before := f.snapshot(t)
				_, _, err := f.s.Put(as(f.admin), f.sub, "rg", name, spec)
				wantErr(t, err, keyhold.CodeBadRequest, tc.hints...)
				f.unchanged(t, "refused "+name, before)
			}
		})
	}
}

// TestExternalPolicyResourceJSON: the ARM body's keyVault.uri and
// keyVault.federatedIdentity reach the spec and the patch, and the policy
// answers them back; a built-in policy answers neither.
func TestExternalPolicyResourceJSON(t *testing.T) {
	body := `{"location":"europe","kind":"Encryption","identity":{"type":"SystemAssigned"},"properties":{"encryption":{"keyVault":{` +
		`"uri":"https://customer.example","federatedIdentity":{"tenantId":"` + extTenant + `","clientId":"` + extClient + `","authorityHost":"https://login.example/"},` +
		`"key":{"name":"cmk"}}}}}`
	var in keyhold.PolicyResourceInput
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	want := keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: extTenant, ClientID: extClient, AuthorityHost: "https://login.example/"}
	spec, err := in.Spec()
	if err != nil || spec.External == nil || *spec.External != want || spec.KeyVaultID != "" || spec.KeyName != "cmk" {
		t.Fatalf("Spec = %+v, %v", spec, err)
	}
	c, err := in.Patch()
	if err != nil || c.External == nil || *c.External != want || c.KeyVaultID != nil {
		t.Fatalf("Patch = %+v, %v", c, err)
	}
	p := &keyhold.EnterprisePolicy{SubscriptionID: "s", ResourceGroup: "rg", Name: "ext", KeyName: "cmk", External: &want}
	out, err := json.Marshal(keyhold.ToPolicyResource(p))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"uri":"https://customer.example"`, `"federatedIdentity":{"tenantId":"` + extTenant + `","clientId":"` + extClient + `","authorityHost":"https://login.example/"}`} {
		if !strings.Contains(string(out), w) {
			t.Fatalf("resource %s lacks %s", out, w)
		}
	}
	var r keyhold.PolicyResource
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	if back := r.Policy(); back.External == nil || *back.External != want {
		t.Fatalf("read back %+v", back.External)
	}
	p.External, p.KeyVaultID = nil, "/subscriptions/s/resourceGroups/k/providers/Microsoft.KeyVault/vaults/kv"
	if out, _ := json.Marshal(keyhold.ToPolicyResource(p)); strings.Contains(string(out), "uri") || strings.Contains(string(out), "federatedIdentity") {
		t.Fatalf("a built-in policy answers %s", out)
	}
}
