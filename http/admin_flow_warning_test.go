package http

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/policy"
)

// TestAdminEnvironmentFlowWarning: the admin center's environment page
// gives spec 004's warning, with the count and how to list the flows,
// once the environment is linked and has a flow on the platform key, and
// not before; so does its row of the "Environments with policies" tab.
func TestAdminEnvironmentFlowWarning(t *testing.T) {
	var am *arm.Service
	f := newFixture(t, withARM(&am), func(f *fixture) {
		f.srv.CMK = f.p
		f.srv.Policies = PolicyAPI{Service: policy.New(policy.Config{Store: f.store, Clock: f.clock, ARM: am})}
	})
	app := f.adminApp(t)
	pw := f.adminUser(t, "pat@contoso.example", true)
	ctx := context.Background()
	env := &keyhold.Environment{DisplayName: "Flows", Location: "europe", SKU: keyhold.SKUProduction}
	if err := f.client.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	// A flow sealed under the platform key's partition, as a link leaves
	// one it can't move.
	pt, _ := json.Marshal(map[string]string{"definition": "{}"})
	sealed, err := f.p.Sealer.SealPlatform(ctx, env.ID, keyhold.StoreFlows, keyhold.FlowItemID("legacy"), 1, pt)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
		return tx.PutFlow(ctx, &keyhold.FlowRecord{EnvID: env.ID, ID: "legacy", DisplayName: "Legacy", State: keyhold.FlowStarted, TriggerName: "manual",
			TriggerType: "Request", TriggerKind: "Http", CreatedBy: "p", Epoch: keyhold.PlatformEpoch, Version: 1, Sealed: sealed, CreatedAt: now, UpdatedAt: now})
	}); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	b.location(b.adminSignIn(app, "pat@contoso.example", pw), 303)
	page := b.do("GET", "/admin/environments/"+env.ID, nil)
	wantAdminPage(t, page, 200, "Environment encryption")
	if strings.Contains(string(page.body), "flow-warning") {
		t.Fatalf("an environment without a policy shows the flow warning: %s", page.body)
	}
	if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, env.ID)
		if err != nil {
			return err
		}
		e.PolicyID, e.KeyManagedBy = "/subscriptions/s/resourceGroups/g/providers/Microsoft.PowerPlatform/enterprisePolicies/cmk", keyhold.KeyManagedByCustomer
		e.PolicySystemID, e.LinkStatus = "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/00000000-0000-0000-0000-000000000001", "Linked"
		return tx.UpdateEnvironment(ctx, e)
	}); err != nil {
		t.Fatal(err)
	}
	page = b.do("GET", "/admin/environments/"+env.ID, nil)
	wantAdminPage(t, page, 200, `id="flow-warning"`, keyhold.FlowWarningMessage, "1 of this environment", "--protected-by platform")
	// The "Environments with policies" tab says it on the environment's row.
	tab := b.do("GET", "/admin/cmk?tab=environments", nil)
	wantAdminPage(t, tab, 200, `id="flow-warning-`+env.ID+`"`, keyhold.FlowWarningMessage+" (1)")
}
