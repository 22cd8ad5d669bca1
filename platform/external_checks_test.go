package platform

import (
	"bytes"
	"encoding/json"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// rewriteKeyAnswer makes the customer's vault's answers to get key say
// what mod makes of their JSON (the customer's Keyhold holds only RSA
// keys: another type can't be created there).
func rewriteKeyAnswer(mod func(m map[string]any)) func(*nethttp.Response) {
	return func(resp *nethttp.Response) {
		if resp.Request.Method != nethttp.MethodGet || resp.StatusCode != nethttp.StatusOK {
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			if _, ok := m["key"].(map[string]any); ok {
				mod(m)
				body, _ = json.Marshal(m)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
}

// garbage makes every answer of the customer's vault a 200 whose body is
// not Key Vault's JSON.
func garbage(resp *nethttp.Response) {
	resp.Body.Close()
	body := []byte("<html>hello from a captive portal</html>")
	resp.StatusCode, resp.Status = nethttp.StatusOK, "200 OK"
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header = nethttp.Header{"Content-Type": {"text/html"}, "Content-Length": {strconv.Itoa(len(body))}}
}

// TestExternalLinkChecks: a link to a policy whose key is in the
// customer's Keyhold checks, over the network and before anything
// changes, what the customer's vault says of the key, and the sign-in
// across the boundary: each bad case is refused with an Azure-shape error
// that quotes the bad value and names the fix, and the environment stays
// on the platform's key (the same JSON, wrapped keys and data, no
// operation).
func TestExternalLinkChecks(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		w := newExtWorld(t, f)
		defer f.runRunner()()
		w.c.grant(t)
		w.customerKey(t, w.c.vaultName, "signonly", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048, KeyOps: []string{"sign", "verify"}})
		noPurge := w.customerVault(t, "kvnopurge", false)
		w.customerKey(t, "kvnopurge", "cmk", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048})
		w.grantOn(t, "kvnopurge")

		good := w.policy(t, "good", "", "cmk", "", "", "")
		signOnly := w.policy(t, "signonly", "", "signonly", "", "", "")
		purgeable := w.policy(t, "purgeable", noPurge, "cmk", "", "", "")
		otherIssuer := w.policy(t, "other-issuer", "", "cmk", "", "https://other-issuer.example/"+f.creds.TenantID+"/v2.0", "")
		otherAudience := w.policy(t, "other-audience", "", "cmk", "", "", "api://SomeOtherExchange")
		env := f.managedEnv(t, "e")
		link := func(pol *keyhold.EnterprisePolicy) func(string) error {
			return func(envID string) error {
				_, err := f.p.LinkPolicy(f.ctx, envID, pol.SystemID)
				return err
			}
		}
		bent := func(fn func(*nethttp.Response), pol *keyhold.EnterprisePolicy) func(string) error {
			return func(envID string) error {
				w.setBend(fn)
				defer w.setBend(nil)
				return link(pol)(envID)
			}
		}
		on := func() string { return env.ID }
		f.runRefusals(t, []refusal{
			{name: "not RSA", env: on, code: keyhold.CodeBadRequest, mention: []string{"of type 'EC'", "must be an RSA key"},
				do: bent(rewriteKeyAnswer(func(m map[string]any) { m["key"].(map[string]any)["kty"] = "EC" }), good)},
			{name: "RSA 1024", env: on, code: keyhold.CodeBadRequest, mention: []string{"RSA key of 1024 bits", "at least 2048"},
				do: bent(rewriteKeyAnswer(func(m map[string]any) {
					k := m["key"].(map[string]any)
					k["n"] = k["n"].(string)[:171] // 128 bytes of modulus, base64url
				}), good)},
			{name: "no wrapKey", env: on, code: keyhold.CodeBadRequest, mention: []string{"[sign, verify]", "wrapKey and unwrapKey"}, do: link(signOnly)},
			{name: "no purge protection", env: on, code: keyhold.CodeBadRequest, mention: []string{"Recoverable+Purgeable", noPurge, "enable purge protection"}, do: link(purgeable)},
			{name: "vault answers garbage", env: on, code: keyhold.CodeKeyVaultUnavailable, mention: []string{"not the Key Vault API", "invalid character '<'", "check the vault URI"}, do: bent(garbage, good)},
			{name: "issuer mismatch", env: on, code: keyhold.CodeForbidden, mention: []string{"issuer " + w.issuer(), w.c.app.AppID, "AADSTS70021", "assertion subject"}, do: link(otherIssuer)},
			{name: "wrong audience", env: on, code: keyhold.CodeForbidden, mention: []string{"audience " + keyhold.FederatedAudience, w.c.app.AppID, "AADSTS70021", "assertion audience"}, do: link(otherAudience)},
		})
		// The same world links a good policy: the refusals were the checks'.
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, good.SystemID) })
		if e := f.env(t, env.ID); e.PolicyID != good.ID() || !strings.EqualFold(e.PolicyID, good.ID()) {
			t.Fatalf("after the good link: %+v", e)
		}
	})
}
