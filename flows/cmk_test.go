package flows_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// reqDef is a definition with a Request trigger of kind and, if child is
// set, a Workflow action calling it.
func reqDef(kind, child string) string {
	actions := `"Compose": {"type": "Compose", "inputs": "x", "runAfter": {}}`
	if child != "" {
		actions = `"Call": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": "` + child + `"}, "body": {}}, "runAfter": {}}`
	}
	return `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "` + kind + `", "inputs": {"schema": {"type": "object"}}}},
  "actions": {` + actions + `}
}`
}

// TestPlatformFlows: with every category present in a stored
// environment, the admin listing names exactly the flows that stay on the
// platform key, each with its category, reason and fix; moving the v1
// flow into a solution takes it (and its parent) off the list.
func TestPlatformFlows(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.putFlow(t, w.fl, "webhook", reqDef("Http", ""), "")
		w.putFlow(t, w.fl, "v1", reqDef("PowerApp", ""), "")
		w.putFlow(t, w.fl, "v2", reqDef("PowerAppV2", ""), "")
		w.putFlow(t, w.fl, "calls-webhook", reqDef("Button", "webhook"), "")
		w.putFlow(t, w.fl, "calls-caller", reqDef("Button", "calls-webhook"), "")
		w.putFlow(t, w.fl, "calls-v1", reqDef("Button", "v1"), "")
		w.putFlow(t, w.fl, "calls-v2", reqDef("Button", "v2"), "")
		sol := "sol-1"
		v1sol := "In a solution"
		if _, err := w.fl.PutFlow(w.ctx, w.env.ID, "v1-in-solution", &keyhold.FlowInput{DisplayName: &v1sol, SolutionID: &sol, Definition: json.RawMessage(reqDef("PowerApp", ""))}); err != nil {
			t.Fatal(err)
		}
		check := func(want map[string]string) {
			t.Helper()
			got, err := w.fl.PlatformFlows(w.ctx, w.env.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d flows staying, want %d: %+v", len(got), len(want), got)
			}
			for _, p := range got {
				if want[p.FlowID] != p.Category || p.Reason == "" || p.Fix == "" || p.DisplayName == "" {
					t.Errorf("%+v, want category %q with reason, fix and name", p, want[p.FlowID])
				}
			}
		}
		check(map[string]string{
			"webhook":       keyhold.FlowCategoryRequestURL,
			"v1":            keyhold.FlowCategoryPowerAppsV1,
			"calls-webhook": keyhold.FlowCategoryParent,
			"calls-caller":  keyhold.FlowCategoryParent,
			"calls-v1":      keyhold.FlowCategoryParent,
		})
		// The fix "move it into a solution" lifts the restriction, for
		// the flow and its parent.
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "v1", &keyhold.FlowInput{SolutionID: &sol}); err != nil {
			t.Fatal(err)
		}
		check(map[string]string{
			"webhook":       keyhold.FlowCategoryRequestURL,
			"calls-webhook": keyhold.FlowCategoryParent,
			"calls-caller":  keyhold.FlowCategoryParent,
		})
	})
}

// TestEpochCounts: the flow stores' counts come from the store, by the
// epoch each item is sealed under: flows and runs under the
// environment's epoch, non-OAuth connections under the platform
// partition (0).
func TestEpochCounts(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		if got, err := w.fl.EpochCounts(w.ctx, w.env.ID); err != nil || len(got) != 0 {
			t.Fatalf("empty environment: %v, %v", got, err)
		}
		w.putFlow(t, w.fl, "a", reqDef("Button", ""), "")
		w.putFlow(t, w.fl, "b", reqDef("Button", ""), "")
		run, err := w.fl.RunTrigger(w.ctx, w.env.ID, "a", "manual", json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		w.wait(t, w.fl, "a", run.ID)
		if _, err := w.fl.PutConnection(w.ctx, w.env.ID, "shared_http", "basic", &keyhold.ConnectionInput{DisplayName: "basic", Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": "k"}}); err != nil {
			t.Fatal(err)
		}
		got, err := w.fl.EpochCounts(w.ctx, w.env.ID)
		if err != nil {
			t.Fatal(err)
		}
		var flowEpoch uint32
		counts := map[string]int{}
		for _, c := range got {
			counts[c.Store] += c.Count
			switch c.Store {
			case keyhold.FlowCountFlows:
				flowEpoch = c.Epoch
			case keyhold.FlowCountConnections:
				if c.Epoch != keyhold.PlatformEpoch {
					t.Errorf("non-OAuth connection counted under epoch %d", c.Epoch)
				}
			}
		}
		if flowEpoch == keyhold.PlatformEpoch || counts[keyhold.FlowCountFlows] != 2 || counts[keyhold.FlowCountRuns] != 1 || counts[keyhold.FlowCountConnections] != 1 {
			t.Fatalf("counts %+v", got)
		}
		// Another environment's items are not counted.
		other := &keyhold.Environment{DisplayName: "other", Location: "europe", SKU: keyhold.SKUProduction}
		if err := w.p.CreateEnvironment(w.ctx, other); err != nil {
			t.Fatal(err)
		}
		if got, err := w.fl.EpochCounts(w.ctx, other.ID); err != nil || len(got) != 0 {
			t.Fatalf("other environment: %v, %v", got, err)
		}
	})
}

var _ keyhold.FlowCMKService = (*flows.Service)(nil)

// markLinked records on the environment the policy link that platform's
// link writes (PolicyID, KeyManagedBy), as setState does for locks: the
// flows service reads nothing else of the link.
func (w *world) markLinked(t *testing.T) {
	t.Helper()
	if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error {
		e, err := tx.Environment(context.Background(), w.env.ID)
		if err != nil {
			return err
		}
		e.PolicyID, e.KeyManagedBy = "/subscriptions/s/resourceGroups/g/providers/Microsoft.PowerPlatform/enterprisePolicies/cmk", keyhold.KeyManagedByCustomer
		return tx.UpdateEnvironment(context.Background(), e)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCMKRefusesNonSolutionPowerAppsFlow: in an environment linked to a
// customer key, creating a flow outside any solution with a Power Apps
// trigger (v1 or v2) is refused with NotSupported saying how to add it to
// a solution, and nothing is stored; in a solution it is created; a v1
// flow created before the link can still be switched to v2 and saved.
func TestCMKRefusesNonSolutionPowerAppsFlow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.putFlow(t, w.fl, "old-v1", reqDef("PowerApp", ""), "")
		w.markLinked(t)
		w.setFlowsInSolutions(t, false) // else new flows go into the default solution
		name := "App flow"
		for _, kind := range []string{"PowerApp", "PowerAppV2"} {
			_, err := w.fl.PutFlow(w.ctx, w.env.ID, "app", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(reqDef(kind, ""))})
			if keyhold.ErrorCode(err) != keyhold.CodeNotSupported || !strings.Contains(err.Error(), "solutionId") || !strings.Contains(err.Error(), kind) ||
				!strings.Contains(err.Error(), "create new flows in solutions") {
				t.Fatalf("%s: %v", kind, err)
			}
			if _, err := w.fl.GetFlow(w.ctx, w.env.ID, "app"); keyhold.ErrorCode(err) != keyhold.CodeFlowNotFound {
				t.Fatalf("refused flow stored: %v", err)
			}
		}
		sol := "sol"
		if _, err := w.fl.PutFlow(w.ctx, w.env.ID, "app", &keyhold.FlowInput{DisplayName: &name, SolutionID: &sol, Definition: json.RawMessage(reqDef("PowerApp", ""))}); err != nil {
			t.Fatalf("in a solution: %v", err)
		}
		w.putFlow(t, w.fl, "button", reqDef("Button", ""), "")
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "old-v1", &keyhold.FlowInput{Definition: json.RawMessage(reqDef("PowerAppV2", ""))}); err != nil {
			t.Fatalf("v1 → v2 on an existing flow: %v", err)
		}
		ps, err := w.fl.PlatformFlows(w.ctx, w.env.ID)
		if err != nil || len(ps) != 0 {
			t.Fatalf("after the v2 fix: %+v, %v", ps, err)
		}
	})
}

// TestCMKRefusesInvokerSkillsFlow: in an environment linked to a customer
// key, a Copilot Skills flow whose connection reference runs as the
// invoking user is refused (NotSupported, naming the reference and how to
// embed it), on create and on update, with nothing changed; with an
// embedded connection it saves. Before the link it saves.
func TestCMKRefusesInvokerSkillsFlow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		invoker := `{"dv":{"apiName":"shared_commondataserviceforapps","connectionName":"dv","runtimeSource":"invoker"}}`
		embedded := `{"dv":{"apiName":"shared_commondataserviceforapps","connectionName":"dv","runtimeSource":"embedded"}}`
		before := w.putFlow(t, w.fl, "skill", reqDef("Skills", ""), invoker)
		w.markLinked(t)
		w.clock.Advance(time.Minute) // a write now would move LastModifiedTime
		name := "Skill"
		for _, id := range []string{"skill", "new-skill"} {
			_, err := w.fl.PutFlow(w.ctx, w.env.ID, id, &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(reqDef("Skills", "")), ConnectionReferences: json.RawMessage(invoker)})
			if keyhold.ErrorCode(err) != keyhold.CodeNotSupported || !strings.Contains(err.Error(), `"dv"`) || !strings.Contains(err.Error(), "embed") {
				t.Fatalf("%s: %v", id, err)
			}
		}
		if _, err := w.fl.GetFlow(w.ctx, w.env.ID, "new-skill"); keyhold.ErrorCode(err) != keyhold.CodeFlowNotFound {
			t.Fatalf("refused flow stored: %v", err)
		}
		after, err := w.fl.GetFlow(w.ctx, w.env.ID, "skill")
		if err != nil || !after.LastModifiedTime.Equal(before.LastModifiedTime) || !strings.Contains(string(after.ConnectionReferences), "invoker") {
			t.Fatalf("refused update changed the flow: %+v, %v", after, err)
		}
		if _, err := w.fl.PatchFlow(w.ctx, w.env.ID, "skill", &keyhold.FlowInput{ConnectionReferences: json.RawMessage(embedded)}); err != nil {
			t.Fatalf("embedded: %v", err)
		}
	})
}

// TestPlatformFlowsAdminsOnly: a member of the environment who is not a
// platform administrator is refused the platform-key listing and the
// epoch counts (Forbidden, saying who may), though it may list the flows.
func TestPlatformFlowsAdminsOnly(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.putFlow(t, w.fl, "hook", reqDef("Http", ""), "")
		admin, _ := keyhold.Caller(w.ctx)
		member := &keyhold.Principal{ID: "member-1", TenantID: admin.TenantID, Type: keyhold.PrincipalServicePrincipal, DisplayName: "member", CreatedAt: w.clock.Now()}
		if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error {
			if err := tx.CreatePrincipal(context.Background(), member); err != nil {
				return err
			}
			return tx.AddEnvironmentMember(context.Background(), &keyhold.EnvironmentMember{EnvID: w.env.ID, PrincipalID: member.ID, AddedBy: admin.PrincipalID, AddedAt: w.clock.Now()})
		}); err != nil {
			t.Fatal(err)
		}
		ctx := keyhold.NewContext(context.Background(), &keyhold.Identity{TenantID: admin.TenantID, PrincipalID: member.ID, Type: member.Type, Audience: keyhold.AudienceFlow})
		if fs, err := w.fl.ListFlows(ctx, w.env.ID); err != nil || len(fs) != 1 {
			t.Fatalf("member lists flows: %v, %v", fs, err)
		}
		if _, err := w.fl.PlatformFlows(ctx, w.env.ID); keyhold.ErrorCode(err) != keyhold.CodeForbidden || !strings.Contains(err.Error(), "platform administrator") {
			t.Fatalf("PlatformFlows as a member: %v", err)
		}
		if _, err := w.fl.EpochCounts(ctx, w.env.ID); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("EpochCounts as a member: %v", err)
		}
	})
}
