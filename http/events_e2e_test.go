package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestEventsAndSettingsAPI drives the events list, the tenant settings and
// the signing key set over HTTPS: a revocation's events list what changed
// in the vault and who changed it; bad settings are refused with what to
// fix and change nothing.
func TestEventsAndSettingsAPI(t *testing.T) {
	s := newCMKStack(t)
	ctx := context.Background()
	c := s.client
	pol := s.setUpPolicy(t)
	vaultID := "/subscriptions/" + s.creds.SubscriptionID + "/resourceGroups/cmk/providers/Microsoft.KeyVault/vaults/contoso-kv"

	// Settings: defaults, refusals, a change.
	got, err := c.TenantSettings(ctx)
	if err != nil || got.AutoReenable || got.WebhookURL != "" || got.TenantID != s.creds.TenantID {
		t.Fatalf("default settings %+v, %v", got, err)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"customerManagedKeys":{"autoReenable":true}}`, "autoReenableEnvironments"},
		{`{"customerManagedKeys":{"eventWebhookUrl":"http://hooks.contoso.com/x"}}`, "https"},
		{`{"customerManagedKeys":{"autoReenableEnvironments":"yes"}}`, "true or false"},
		{`{"tenantSettings":{}}`, "customerManagedKeys"},
		{`[]`, "JSON object"},
	} {
		status, b := s.call(t, "POST", "/providers/Microsoft.BusinessAppPlatform/updateTenantSettings?api-version=2020-10-01", keyhold.AudiencePowerApps, tc.body)
		if status != 400 || !bytes.Contains(b, []byte(tc.want)) || !bytes.Contains(b, []byte(`"error"`)) {
			t.Errorf("update %s: %d %s; want 400 naming %q", tc.body, status, b, tc.want)
		}
	}
	if after, err := c.TenantSettings(ctx); err != nil || *after != *got {
		t.Fatalf("settings after refusals %+v, %v; want unchanged", after, err)
	}
	set, err := c.UpdateTenantSettings(ctx, keyhold.TenantSettingsPatch{WebhookURL: new("https://hooks.contoso.com/keyhold")})
	if err != nil || set.WebhookURL != "https://hooks.contoso.com/keyhold" || set.AutoReenable || set.UpdatedAt.IsZero() {
		t.Fatalf("update: %+v, %v", set, err)
	}

	// A revocation and its events.
	env := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUSandbox, Managed: true}
	if err := c.CreateEnvironment(ctx, env); err != nil {
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
	if _, err := s.p.CheckPolicyHealth(ctx, pol.ID); err != nil {
		t.Fatal(err)
	}
	as, err := c.ListRoleAssignments(ctx, vaultID, keyhold.AssignmentFilter{PrincipalID: pol.Identity.PrincipalID})
	if err != nil || len(as) != 1 {
		t.Fatalf("the policy identity's assignments: %v, %v", as, err)
	}
	if _, err := c.DeleteRoleAssignment(ctx, as[0].Scope, as[0].ID); err != nil {
		t.Fatal(err)
	}
	if h, err := s.p.CheckPolicyHealth(ctx, pol.ID); err != nil || h != keyhold.HealthUnhealthy {
		t.Fatalf("health after the revocation: %s, %v", h, err)
	}
	events, err := c.ListEventViews(ctx, 0, 2)
	if err != nil || len(events) != 2 {
		t.Fatalf("events: %+v, %v", events, err)
	}
	lock := events[0]
	if lock.Kind != keyhold.EventEnvironmentLocked || lock.EnvironmentID != env.ID || !strings.EqualFold(lock.PolicyID, pol.ID) ||
		lock.Delivery == nil || lock.Delivery.State != keyhold.DeliveryPending || lock.Delivery.NextAttemptAt == nil {
		t.Fatalf("newest event %+v; want EnvironmentLocked of %s, its webhook delivery Pending", lock, env.ID)
	}
	if len(lock.Changes) != 1 || lock.Changes[0].Action != "roleAssignment.delete" || lock.Changes[0].ActorName == "" ||
		!strings.Contains(lock.Changes[0].Target, as[0].ID) {
		t.Fatalf("lock event changes %+v; want the role assignment %s deletion, by whom", lock.Changes, as[0].ID)
	}
	// Paging: the next page starts below the last id.
	status, b := s.call(t, "GET", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/events?top=1", keyhold.AudienceManagement, "")
	var page struct {
		Value    []keyhold.EventView
		NextLink string
	}
	if status != 200 || json.Unmarshal(b, &page) != nil || len(page.Value) != 1 || !strings.Contains(page.NextLink, "before="+lock.ID) {
		t.Fatalf("events?top=1: %d %s; want one event and a nextLink before %s", status, b, lock.ID)
	}
	if status, b := s.call(t, "GET", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/events?top=0", keyhold.AudienceManagement, ""); status != 400 || !bytes.Contains(b, []byte("1 to 1000")) {
		t.Errorf("events?top=0: %d %s; want 400 saying the range", status, b)
	}

	// The key set is public and holds the platform's signing key.
	resp, err := s.raw.Get(s.url + "/common/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var jwks struct{ Keys []keyhold.JWK }
	if resp.StatusCode != 200 || json.Unmarshal(body, &jwks) != nil || len(jwks.Keys) != 1 || jwks.Keys[0] != s.p.SigningKeys()[0] ||
		jwks.Keys[0].Alg != "ES256" || jwks.Keys[0].Kid == "" {
		t.Fatalf("GET discovery/v2.0/keys: %d %s", resp.StatusCode, body)
	}
}
