package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestLockedEnvironmentEnable locks a linked environment by taking its
// policy's access to the key away, and re-enables it over HTTPS: refused
// (nothing changes) until access is restored, then 202 with an operation.
func TestLockedEnvironmentEnable(t *testing.T) {
	s := newCMKStack(t)
	ctx := context.Background()
	c := s.client
	pol := s.setUpPolicy(t)
	vaultID := "/subscriptions/" + s.creds.SubscriptionID + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-kv"

	env := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction, Managed: true}
	if err := c.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRow(ctx, env.ID, "accounts", "a1", json.RawMessage(`{"name":"Fabrikam"}`)); err != nil {
		t.Fatal(err)
	}
	op, err := c.LinkPolicy(ctx, env.ID, pol.Properties.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if done, err := c.WaitOperation(wctx, op.ID, 0, nil); err != nil || done.State != keyhold.OperationSucceeded {
		t.Fatalf("link: %+v, %v", done, err)
	}
	enablePath := "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + env.ID + "/enable"
	rowPath := "/environments/" + env.ID + "/tables/accounts/rows/a1"
	wantState := func(t *testing.T, want keyhold.RuntimeState) {
		t.Helper()
		if got, err := c.FindEnvironment(ctx, env.ID); err != nil || got.State != want {
			t.Fatalf("environment = %+v, %v; want %s", got, err, want)
		}
	}
	wantLocked := func(t *testing.T) {
		t.Helper()
		wantState(t, keyhold.StateLocked)
		status, b := s.call(t, "GET", rowPath, keyhold.AudiencePowerApps, "")
		if status != 403 || !bytes.Contains(b, []byte(`"code":"`+keyhold.CodeEnvironmentLocked+`"`)) || !bytes.Contains(b, []byte(pol.ID)) {
			t.Fatalf("GET row of a locked environment: %d %s; want 403 %s naming the policy", status, b, keyhold.CodeEnvironmentLocked)
		}
	}
	health := func(t *testing.T, want keyhold.HealthStatus) {
		t.Helper()
		if got, err := s.p.CheckPolicyHealth(ctx, pol.ID); err != nil || got != want {
			t.Fatalf("CheckPolicyHealth = %s, %v; want %s", got, err, want)
		}
	}
	revoke := func(t *testing.T) {
		t.Helper()
		as, err := c.ListRoleAssignments(ctx, vaultID, keyhold.AssignmentFilter{PrincipalID: pol.Identity.PrincipalID})
		if err != nil || len(as) == 0 {
			t.Fatalf("the policy identity's assignments: %v, %v", as, err)
		}
		for _, a := range as {
			if _, err := c.DeleteRoleAssignment(ctx, a.Scope, a.ID); err != nil {
				t.Fatal(err)
			}
		}
		health(t, keyhold.HealthUnhealthy)
		wantLocked(t)
	}
	restore := func(t *testing.T) {
		t.Helper()
		s.grant(t, vaultID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, pol.Identity.PrincipalID)
		health(t, keyhold.HealthHealthy)
		wantLocked(t) // restored access unlocks nothing by itself
	}

	// An Enabled environment is not re-enabled: 409, nothing changes.
	if status, b := s.call(t, "POST", enablePath, keyhold.AudiencePowerApps, ""); status != 409 || !bytes.Contains(b, []byte("not Locked")) {
		t.Fatalf("enable an Enabled environment: %d %s; want 409", status, b)
	}
	wantState(t, keyhold.StateEnabled)

	revoke(t)

	// Enabling before access is restored is refused; it stays locked.
	status, b := s.call(t, "POST", enablePath, keyhold.AudienceManagement, "")
	if status != 403 || !bytes.Contains(b, []byte("stays locked")) {
		t.Fatalf("enable before restore: %d %s; want 403, stays locked", status, b)
	}
	_, err = c.EnableEnvironmentOp(ctx, env.ID)
	wantErrorCode(t, err, keyhold.CodeForbidden)
	wantLocked(t)

	restore(t)

	// Enable: 202, operation-location, Retry-After; the operation reads
	// Succeeded and the data is served again.
	resp := s.post(t, enablePath+"?api-version=2019-10-01", keyhold.AudienceManagement)
	loc := resp.Header.Get("operation-location")
	if resp.StatusCode != 202 || loc == "" || resp.Header.Get("Location") != loc || resp.Header.Get("Retry-After") != "1" ||
		!strings.HasPrefix(loc, s.url+"/providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/") {
		t.Fatalf("enable: %d, operation-location %q, Location %q, Retry-After %q; want 202 with where to poll",
			resp.StatusCode, loc, resp.Header.Get("Location"), resp.Header.Get("Retry-After"))
	}
	var accepted struct {
		Name   string
		Kind   string
		Status string
	}
	if err := json.NewDecoder(resp.Body).Decode(&accepted); err != nil || accepted.Kind != "enable" || accepted.Status != "Succeeded" {
		t.Fatalf("enable body: %+v, %v", accepted, err)
	}
	status, b = s.call(t, "GET", strings.TrimPrefix(loc, s.url), keyhold.AudiencePowerApps, "")
	var polled struct{ Name, Kind, Status, EnvironmentID string }
	if status != 200 || json.Unmarshal(b, &polled) != nil || polled.Name != accepted.Name || polled.Kind != "enable" ||
		polled.Status != "Succeeded" || polled.EnvironmentID != env.ID {
		t.Fatalf("GET operation-location: %d %s", status, b)
	}
	wantState(t, keyhold.StateEnabled)
	if row, err := c.GetRow(ctx, env.ID, "accounts", "a1"); err != nil || string(row.Data) != `{"name":"Fabrikam"}` {
		t.Fatalf("row after enable: %v, %v", row, err)
	}

	// Once more through the Go client.
	revoke(t)
	restore(t)
	got, err := c.EnableEnvironmentOp(ctx, env.ID)
	if err != nil || got.Kind != "enable" || got.State != keyhold.OperationSucceeded || got.Target != env.ID || got.FinishedAt.IsZero() {
		t.Fatalf("EnableEnvironmentOp = %+v, %v", got, err)
	}
	if polledOp, err := c.GetOperation(ctx, got.ID); err != nil || polledOp.State != keyhold.OperationSucceeded {
		t.Fatalf("GetOperation = %+v, %v", polledOp, err)
	}
	wantState(t, keyhold.StateEnabled)
	_, err = c.EnableEnvironmentOp(ctx, env.ID)
	wantErrorCode(t, err, keyhold.CodeConflict)
	wantState(t, keyhold.StateEnabled)
}

// post sends a POST without a body and returns the response, whose body is
// closed at the test's end.
func (s *cmkStack) post(t *testing.T, path string, audience keyhold.Audience) *nethttp.Response {
	t.Helper()
	req, err := nethttp.NewRequest("POST", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token(t, audience))
	resp, err := s.raw.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
