package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestPrintPolicyExternal: keyhold policy show names an external vault,
// the customer's tenant and app and the authority (Entra ID's when the
// policy leaves it out), and a built-in policy's vault as before.
func TestPrintPolicyExternal(t *testing.T) {
	p := &keyhold.EnterprisePolicy{SubscriptionID: "s", ResourceGroup: "rg", Name: "ext", KeyName: "cmk",
		External: &keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: "t-guid", ClientID: "c-guid"}}
	var b bytes.Buffer
	if err := printPolicy(&b, FormatTable, p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"https://customer.example (external)", "t-guid", "c-guid", keyhold.DefaultAuthorityHost} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("policy show:\n%s\nlacks %q", b.String(), want)
		}
	}
	p.External, p.KeyVaultID = nil, "/subscriptions/s/resourceGroups/k/providers/Microsoft.KeyVault/vaults/kv"
	b.Reset()
	if err := printPolicy(&b, FormatTable, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), p.KeyVaultID) || strings.Contains(b.String(), "external") {
		t.Fatalf("built-in policy show:\n%s", b.String())
	}
}

// TestPrintPolicyLastUnwrap: policy show says when the policy's identity
// last unwrapped with its key, or "never"; create and update, whose
// answers don't carry it, say nothing of it.
func TestPrintPolicyLastUnwrap(t *testing.T) {
	p := &keyhold.EnterprisePolicy{SubscriptionID: "s", ResourceGroup: "rg", Name: "ext", KeyName: "cmk",
		External: &keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: "t-guid", ClientID: "c-guid"}}
	var b bytes.Buffer
	if err := printPolicyTable(&b, FormatTable, p, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(squash(b.String()), "Last successful unwrap: never") {
		t.Fatalf("policy show, never unwrapped:\n%s", b.String())
	}
	at := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	p.LastUnwrap = &at
	b.Reset()
	if err := printPolicyTable(&b, FormatTable, p, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(squash(b.String()), "Last successful unwrap: 2026-12-06T07:00:00Z") {
		t.Fatalf("policy show, unwrapped:\n%s", b.String())
	}
	b.Reset()
	if err := printPolicy(&b, FormatTable, p); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "unwrap") {
		t.Fatalf("policy create/update printed a last unwrap:\n%s", b.String())
	}
	b.Reset()
	if err := printPolicy(&b, FormatJSON, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"lastSuccessfulUnwrap": "2026-12-06T07:00:00Z"`) {
		t.Fatalf("policy show -o json:\n%s", b.String())
	}
}
