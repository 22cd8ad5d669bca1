package http

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

const kvTokenScope = "https://vault.azure.net/.default"

// TestKeyVaultChallenge: the data plane answers a request without a good
// token as Key Vault does, with a bearer challenge that names the vault's
// tenant and the vault resource, which the SDKs' challenge policy parses.
func TestKeyVaultChallenge(t *testing.T) {
	kf := newKVFixture(t)
	kf.newRBACVault(t, "challenge-kv")
	want := `Bearer authorization="` + kf.url + "/" + kf.creds.TenantID + `", resource="https://vault.azure.net"`

	t.Run("no token", func(t *testing.T) {
		a := kf.call(t, "GET", "/vaults/challenge-kv/keys?api-version=7.5", "", "", nil)
		a.wantError(t, nethttp.StatusUnauthorized, keyhold.CodeUnauthorized, "bearer token")
		if got := a.header.Get("WWW-Authenticate"); got != want {
			t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
		}
	})
	t.Run("no token, POST without its body", func(t *testing.T) {
		// The SDKs send their first request without its body.
		a := kf.call(t, "POST", "/vaults/challenge-kv/keys/k/wrapkey?api-version=2025-07-01", "", "", nil)
		a.wantError(t, nethttp.StatusUnauthorized, keyhold.CodeUnauthorized)
		if got := a.header.Get("WWW-Authenticate"); got != want {
			t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
		}
	})
	t.Run("management token", func(t *testing.T) {
		a := kf.call(t, "GET", "/vaults/challenge-kv/keys?api-version=7.5", kf.token(t, "https://management.azure.com/.default"), "", nil)
		a.wantError(t, nethttp.StatusUnauthorized, keyhold.CodeInvalidToken, "https://vault.azure.net")
		if got := a.header.Get("WWW-Authenticate"); got != want {
			t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
		}
	})
	t.Run("vault token on the resource manager", func(t *testing.T) {
		a := kf.call(t, "GET", "/subscriptions/"+kf.creds.SubscriptionID+"/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/challenge-kv?api-version=2024-11-01",
			kf.token(t, kvTokenScope), "", nil)
		a.wantError(t, nethttp.StatusUnauthorized, keyhold.CodeInvalidToken, "https://management.azure.com")
		if got := a.header.Get("WWW-Authenticate"); strings.Contains(got, "resource=") {
			t.Fatalf("the resource manager answered Key Vault's challenge: %q", got)
		}
	})
	t.Run("vault token", func(t *testing.T) {
		a := kf.call(t, "GET", "/vaults/challenge-kv/keys?api-version=7.5", kf.token(t, kvTokenScope), "", nil)
		if a.status != nethttp.StatusOK || !json.Valid(a.body) || !bytes.Contains(a.body, []byte(`"value":[]`)) {
			t.Fatalf("list = %d %s", a.status, a.body)
		}
	})
	t.Run("unknown vault", func(t *testing.T) {
		a := kf.call(t, "GET", "/vaults/no-such-kv/keys?api-version=7.5", "", "", nil)
		a.wantError(t, nethttp.StatusNotFound, keyhold.CodeVaultNotFound, "no-such-kv")
	})
	t.Run("unsupported api-version", func(t *testing.T) {
		a := kf.call(t, "GET", "/vaults/challenge-kv/keys?api-version=2016-10-01", "", "", nil)
		a.wantError(t, nethttp.StatusBadRequest, keyhold.CodeBadParameter, `"2016-10-01"`, "7.4", "7.5")
	})
	t.Run("missing api-version", func(t *testing.T) {
		a := kf.call(t, "GET", "/vaults/challenge-kv/keys", kf.token(t, kvTokenScope), "", nil)
		a.wantError(t, nethttp.StatusBadRequest, keyhold.CodeBadParameter, "api-version", "7.5")
	})
}

// TestKeyVaultBadInput: a request the data plane can't use gets
// BadParameter, a message that says what to fix, and changes nothing.
func TestKeyVaultBadInput(t *testing.T) {
	kf := newKVFixture(t)
	kf.newRBACVault(t, "input-kv")
	tok := kf.token(t, kvTokenScope)
	const q = "?api-version=7.5"
	send := func(t *testing.T, method, path, body string) answer {
		t.Helper()
		if body == "" {
			return kf.call(t, method, "/vaults/input-kv"+path+q, tok, "", nil)
		}
		return kf.jsonCall(t, method, "/vaults/input-kv"+path+q, tok, body)
	}
	if a := send(t, "POST", "/keys/k/create", `{"kty":"RSA","key_size":2048}`); a.status != nethttp.StatusOK {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	policy := `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P1Y"}}`
	if a := send(t, "PUT", "/keys/k/rotationpolicy", policy); a.status != nethttp.StatusOK {
		t.Fatalf("set policy: %d %s", a.status, a.body)
	}
	// state is what must not change: the keys, k's versions and policy.
	state := func(t *testing.T) string {
		t.Helper()
		var b strings.Builder
		for _, p := range []string{"/keys", "/keys/k/versions", "/keys/k/rotationpolicy", "/deletedkeys"} {
			a := send(t, "GET", p, "")
			if a.status != nethttp.StatusOK {
				t.Fatalf("GET %s: %d %s", p, a.status, a.body)
			}
			b.Write(a.body)
		}
		return b.String()
	}
	before := state(t)

	k := testRSAKey()
	b64 := base64.RawURLEncoding.EncodeToString
	goodN, goodD, goodP := b64(k.N.Bytes()), b64(k.D.Bytes()), b64(k.Primes[0].Bytes())
	long := b64(make([]byte, 191)) // RSA-OAEP-256 under 2048 bits wraps at most 190 bytes
	tests := []struct {
		name, method, path, body string
		hints                    []string
	}{
		{"body not JSON", "POST", "/keys/new/create", `{"kty":`, []string{"not valid JSON", `"kty"`}},
		{"body a JSON array", "POST", "/keys/new/create", `[1]`, []string{"JSON array"}},
		{"kty missing", "POST", "/keys/new/create", `{"key_size":2048}`, []string{"kty is missing", "RSA"}},
		{"kty unsupported", "POST", "/keys/new/create", `{"kty":"EC"}`, []string{`"EC"`, "RSA or RSA-HSM"}},
		{"key size too small", "POST", "/keys/new/create", `{"kty":"RSA","key_size":1024}`, []string{"1024", "2048, 3072 or 4096"}},
		{"key size off by one", "POST", "/keys/new/create", `{"kty":"RSA","key_size":2049}`, []string{"2049", "2048, 3072 or 4096"}},
		{"key size a string", "POST", "/keys/new/create", `{"kty":"RSA","key_size":"2048"}`, []string{`"key_size"`, "a number"}},
		{"unknown key operation", "POST", "/keys/new/create", `{"kty":"RSA","key_ops":["fly"]}`, []string{`"fly"`, "wrapKey"}},
		{"public exponent", "POST", "/keys/new/create", `{"kty":"RSA","public_exponent":3}`, []string{"65537"}},
		{"JWK n not base64url", "PUT", "/keys/new", `{"key":{"kty":"RSA","n":"!!","e":"AQAB","d":"` + goodD + `","p":"` + goodP + `","q":"` + goodP + `"}}`, []string{"key.n is not base64url"}},
		{"JWK without d", "PUT", "/keys/new", `{"key":{"kty":"RSA","n":"` + goodN + `","e":"AQAB"}}`, []string{"key.d is missing", "n, e, d, p and q"}},
		{"JWK inconsistent", "PUT", "/keys/new", `{"key":{"kty":"RSA","n":"` + goodN + `","e":"AQAB","d":"` + goodD + `","p":"` + goodP + `","q":"` + goodP + `"}}`, []string{"can't be imported"}},
		{"JWK missing", "PUT", "/keys/new", `{"Hsm":false}`, []string{"no key", "JSON web key"}},
		{"JWK of a symmetric key", "PUT", "/keys/new", `{"key":{"kty":"oct","k":"AAAA"}}`, []string{"not an RSA key"}},
		{"key_hsm beside plaintext fields", "PUT", "/keys/new", `{"key":{"kty":"RSA-HSM","key_hsm":"e30","n":"` + goodN + `","d":"` + goodD + `"}}`, []string{"key_hsm and also", "key_hsm alone"}},
		{"key_hsm not base64url", "PUT", "/keys/new", `{"key":{"kty":"RSA-HSM","key_hsm":"{!}"}}`, []string{"key.key_hsm is not base64url"}},
		{"key_hsm not a transfer blob", "PUT", "/keys/new", `{"key":{"kty":"RSA-HSM","key_hsm":"` + b64([]byte("BYOK")) + `"}}`, []string{"key_hsm", "not JSON"}},
		{"unknown algorithm", "POST", "/keys/k/wrapkey", `{"alg":"RSA1_5","value":"AAAA"}`, []string{`"RSA1_5"`, "RSA-OAEP-256"}},
		{"algorithm missing", "POST", "/keys/k/wrapkey", `{"value":"AAAA"}`, []string{"alg is missing"}},
		{"value missing", "POST", "/keys/k/wrapkey", `{"alg":"RSA-OAEP-256"}`, []string{"value is missing"}},
		{"value not base64url", "POST", "/keys/k/wrapkey", `{"alg":"RSA-OAEP-256","value":"***"}`, []string{"value is not base64url"}},
		{"value too long to wrap", "POST", "/keys/k/wrapkey", `{"alg":"RSA-OAEP-256","value":"` + long + `"}`, []string{"191 bytes", "at most 190"}},
		{"value that does not unwrap", "POST", "/keys/k/unwrapkey", `{"alg":"RSA-OAEP-256","value":"` + b64(make([]byte, 256)) + `"}`, []string{"does not decrypt"}},
		{"rotation too early", "PUT", "/keys/k/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P1D"},"action":{"type":"Rotate"}}]}`, []string{"P1D"}},
		{"rotation duration not ISO 8601", "PUT", "/keys/k/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"90 days"},"action":{"type":"Rotate"}}]}`, []string{`"90 days"`}},
		{"rotation action unknown", "PUT", "/keys/k/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Explode"}}]}`, []string{`"Explode"`}},
		{"rotation action missing", "PUT", "/keys/k/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"}}]}`, []string{"action.type is missing"}},
		{"expiry too short", "PUT", "/keys/k/rotationpolicy", `{"lifetimeActions":[],"attributes":{"expiryTime":"P7D"}}`, []string{"P7D"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, tt.method, tt.path, tt.body)
			a.wantError(t, nethttp.StatusBadRequest, keyhold.CodeBadParameter, tt.hints...)
			if after := state(t); after != before {
				t.Fatalf("the refused request changed the vault:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// The largest value that fits wraps.
	if a := send(t, "POST", "/keys/k/wrapkey", `{"alg":"RSA-OAEP-256","value":"`+b64(make([]byte, 190))+`"}`); a.status != nethttp.StatusOK {
		t.Fatalf("wrapping 190 bytes: %d %s", a.status, a.body)
	}
	if a := send(t, "POST", "/keys/k/wrapkey", `{"alg":"RSA-OAEP","value":"`+b64(make([]byte, 215))+`"}`); a.status != nethttp.StatusBadRequest {
		t.Fatalf("wrapping 215 bytes with RSA-OAEP (max 214): %d %s", a.status, a.body)
	}
}

// TestKeyVaultErrors: refusals carry Key Vault's and ARM's codes, and
// inner codes.
func TestKeyVaultErrors(t *testing.T) {
	kf := newKVFixture(t)
	kf.newRBACVault(t, "errors-kv")
	tok := kf.token(t, kvTokenScope)
	mgmt := kf.token(t, "https://management.azure.com/.default")
	sub := "/subscriptions/" + kf.creds.SubscriptionID
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code, inner                     string
	}{
		{"missing key", "GET", "/vaults/errors-kv/keys/nope?api-version=7.5", tok, "", 404, keyhold.CodeKeyNotFound, ""},
		{"missing deleted key", "GET", "/vaults/errors-kv/deletedkeys/nope?api-version=7.5", tok, "", 404, keyhold.CodeKeyNotFound, ""},
		{"missing vault resource", "GET", sub + "/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/nope?api-version=2024-11-01", mgmt, "", 404, keyhold.CodeResourceNotFound, ""},
		{"missing resource group", "PUT", sub + "/resourceGroups/nope/providers/Microsoft.KeyVault/vaults/kv2?api-version=2024-11-01", mgmt,
			`{"location":"westeurope","properties":{"sku":{"family":"A","name":"standard"}}}`, 404, keyhold.CodeResourceGroupNotFound, ""},
		{"retention out of range", "PUT", sub + "/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/kv2?api-version=2024-11-01", mgmt,
			`{"location":"westeurope","properties":{"softDeleteRetentionInDays":3}}`, 400, keyhold.CodeBadRequest, ""},
		{"soft delete off", "PUT", sub + "/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/kv2?api-version=2024-11-01", mgmt,
			`{"location":"westeurope","properties":{"enableSoftDelete":false}}`, 400, keyhold.CodeBadRequest, ""},
		{"bad access policy kind", "PUT", sub + "/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/errors-kv/accessPolicies/merge?api-version=2024-11-01", mgmt,
			`{"properties":{"accessPolicies":[]}}`, 400, keyhold.CodeBadRequest, ""},
		{"purge of a live vault", "POST", sub + "/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/errors-kv/purge?api-version=2024-11-01", mgmt, "", 404, keyhold.CodeResourceNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a answer
			if tt.body == "" {
				a = kf.call(t, tt.method, tt.path, tt.token, "", nil)
			} else {
				a = kf.jsonCall(t, tt.method, tt.path, tt.token, tt.body)
			}
			a.wantError(t, tt.status, tt.code)
			if e := a.azureError(t); tt.inner != "" && (e.InnerError == nil || e.InnerError.Code != tt.inner) {
				t.Fatalf("innererror = %+v, want %s", e.InnerError, tt.inner)
			}
		})
	}

	// The vault's firewall sees the client's address: 127.0.0.1 is not in
	// the allowed range, and a service principal is not a trusted service.
	t.Run("firewall", func(t *testing.T) {
		v := &keyhold.Vault{SubscriptionID: kf.creds.SubscriptionID, ResourceGroup: kf.rg, Name: "walled-kv", Location: "westeurope",
			EnableRbacAuthorization: true, NetworkACLs: keyhold.NetworkACLs{DefaultAction: keyhold.NetworkDeny, IPRules: []string{"203.0.113.0/24"}}}
		if _, err := kf.v.PutVault(kf.admin(), v); err != nil {
			t.Fatal(err)
		}
		a := kf.call(t, "GET", "/vaults/walled-kv/keys?api-version=7.5", tok, "", nil)
		a.wantError(t, nethttp.StatusForbidden, keyhold.CodeForbidden, "127.0.0.1")
		if e := a.azureError(t); e.InnerError == nil || e.InnerError.Code != keyhold.InnerForbiddenByFirewall {
			t.Fatalf("innererror = %+v", e.InnerError)
		}
		v.NetworkACLs.IPRules = []string{"127.0.0.0/8"}
		if _, err := kf.v.PutVault(kf.admin(), v); err != nil {
			t.Fatal(err)
		}
		if a := kf.call(t, "GET", "/vaults/walled-kv/keys?api-version=7.5", tok, "", nil); a.status != nethttp.StatusOK {
			t.Fatalf("with 127.0.0.0/8 allowed: %d %s", a.status, a.body)
		}
	})

	// A principal without a data role: Forbidden, ForbiddenByRbac.
	t.Run("no role", func(t *testing.T) {
		// The administrator loses Key Vault Administrator.
		ctx := kf.admin()
		err := kf.store.Update(ctx, func(tx keyhold.Tx) error {
			as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: kf.adminID})
			if err != nil {
				return err
			}
			for _, a := range as {
				if r, _ := keyhold.FindRoleDefinition(a.RoleDefinitionID); r.Name == keyhold.RoleKeyVaultAdministrator {
					return tx.DeleteRoleAssignment(ctx, a.ID)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		a := kf.jsonCall(t, "POST", "/vaults/errors-kv/keys/k/create?api-version=7.5", tok, `{"kty":"RSA"}`)
		a.wantError(t, nethttp.StatusForbidden, keyhold.CodeForbidden, "Microsoft.KeyVault/vaults/keys/create/action")
		if e := a.azureError(t); e.InnerError == nil || e.InnerError.Code != keyhold.InnerForbiddenByRbac {
			t.Fatalf("innererror = %+v", e.InnerError)
		}
	})
}
