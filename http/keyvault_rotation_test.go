package http

import (
	"encoding/json"
	nethttp "net/http"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestRotationPolicyStrict: a PUT of a rotation policy replaces the whole
// policy, so a body with an unknown or misspelt field, a value of the
// wrong type or a duration that is not ISO 8601 is refused with
// BadParameter naming the field, and the stored policy stays as it was.
// A policy read back (with the server's id, created and updated) can be
// put again as it is.
func TestRotationPolicyStrict(t *testing.T) {
	forEachKVBackend(t, func(t *testing.T, kf *kvFixture) {
		kf.newRBACVault(t, "strict-kv")
		tok := kf.token(t, kvTokenScope)
		const path = "/vaults/strict-kv/keys/k/rotationpolicy?api-version=7.5"
		if a := kf.jsonCall(t, "POST", "/vaults/strict-kv/keys/k/create?api-version=7.5", tok, `{"kty":"RSA","key_size":2048}`); a.status != nethttp.StatusOK {
			t.Fatalf("create: %d %s", a.status, a.body)
		}
		const policy = `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}},{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Notify"}}],"attributes":{"expiryTime":"P1Y"}}`
		if a := kf.jsonCall(t, "PUT", path, tok, policy); a.status != nethttp.StatusOK {
			t.Fatalf("set policy: %d %s", a.status, a.body)
		}
		stored := func(t *testing.T) string {
			t.Helper()
			a := kf.call(t, "GET", path, tok, "", nil)
			if a.status != nethttp.StatusOK {
				t.Fatalf("GET the policy: %d %s", a.status, a.body)
			}
			return string(a.body)
		}
		before := stored(t)

		for _, tt := range []struct {
			name, body string
			hints      []string
		}{
			{"only an unknown field", `{"garbage":1}`, []string{`"garbage"`, "attributes, id, lifetimeActions"}},
			{"an unknown field beside good ones", `{"lifetimeActions":[],"attributes":{"expiryTime":"P1Y"},"rotate":true}`, []string{`"rotate"`}},
			{"a field in another case", `{"LifetimeActions":[]}`, []string{`"LifetimeActions"`, "lifetimeActions"}},
			{"a misspelt trigger", `{"lifetimeActions":[{"trigger":{"timeAfterCreat":"P90D"},"action":{"type":"Rotate"}}]}`,
				[]string{`"lifetimeActions[0].trigger.timeAfterCreat"`, "timeAfterCreate, timeBeforeExpiry"}},
			{"an unknown action field", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate","when":"now"}}]}`,
				[]string{`"lifetimeActions[0].action.when"`}},
			{"an unknown attribute", `{"attributes":{"expiryTime":"P1Y","enabled":true}}`, []string{`"attributes.enabled"`, "created, expiryTime, updated"}},
			{"actions not an array", `{"lifetimeActions":{"trigger":{"timeAfterCreate":"P90D"}}}`, []string{`"lifetimeActions"`, "an array"}},
			{"a duration as a number", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":90},"action":{"type":"Rotate"}}]}`,
				[]string{"timeAfterCreate", "a string"}},
			{"attributes a string", `{"attributes":"P1Y"}`, []string{`"attributes"`, "an object"}},
			{"expiry not ISO 8601", `{"attributes":{"expiryTime":"1 year"}}`, []string{"attributes.expiryTime", `"1 year"`, "ISO 8601"}},
			{"a negative duration", `{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P-30D"},"action":{"type":"Notify"}}]}`,
				[]string{"lifetimeActions[0].trigger.timeBeforeExpiry", `"P-30D"`}},
			{"a duration with a fraction", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90.5D"},"action":{"type":"Rotate"}}]}`,
				[]string{"lifetimeActions[0].trigger.timeAfterCreate", `"P90.5D"`}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				a := kf.jsonCall(t, "PUT", path, tok, tt.body)
				a.wantError(t, nethttp.StatusBadRequest, keyhold.CodeBadParameter, tt.hints...)
				if after := stored(t); after != before {
					t.Fatalf("the refused PUT changed the policy:\nbefore %s\nafter  %s", before, after)
				}
			})
		}

		// The policy as read, with the server's fields, goes back as it is.
		a := kf.jsonCall(t, "PUT", path, tok, before)
		if a.status != nethttp.StatusOK {
			t.Fatalf("putting back the policy as read: %d %s", a.status, a.body)
		}
		var got struct {
			LifetimeActions []json.RawMessage
			Attributes      struct{ ExpiryTime string }
		}
		if err := json.Unmarshal(a.body, &got); err != nil || len(got.LifetimeActions) != 2 || got.Attributes.ExpiryTime != "P1Y" {
			t.Fatalf("the policy put back: %s (%v)", a.body, err)
		}
	})
}
