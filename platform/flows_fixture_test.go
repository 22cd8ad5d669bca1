package platform

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
)

// The fixtures the platform's flows tests share (the link, re-key,
// backup, copy and migration tests): a customer key ready to link, a
// flows engine over the fixture's store, a small manual flow, and a run
// of it to its end. flows/flows_test.go has the flows package's own.

// cmkReady makes a customer key ready to link: a vault "kv-"+name with a
// key "env-key", a policy "policy-"+name on it with the key granted, and
// a Power Platform administrator who may read the policy.
func cmkReady(t *testing.T, f *cmkFixture, name string) (*keyhold.EnterprisePolicy, context.Context) {
	t.Helper()
	v := f.newVault(t, "kv-"+name, true)
	f.newKey(t, v, "env-key")
	pol := f.newPolicy(t, "policy-"+name, v, "env-key", nil)
	f.grantKey(t, pol, v, "env-key")
	admin, adminID := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
	f.grant(t, adminID, keyhold.RoleReader, pol.ID())
	return pol, admin
}

// startFlows starts a flows engine over the fixture's store and sealer,
// polling every 20 ms, closed when the test ends.
func startFlows(t *testing.T, f *cmkFixture) *flows.Service {
	t.Helper()
	return startFlowsWith(t, f, f.p.Sealer)
}

// startFlowsWith is startFlows with sealer in place of the platform's.
func startFlowsWith(t *testing.T, f *cmkFixture, sealer keyhold.EnvironmentSealer) *flows.Service {
	t.Helper()
	fl, err := flows.New(flows.Config{Store: f.store, Sealer: sealer, Data: f.p, Clock: f.clock, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fl.Start()
	t.Cleanup(fl.Close)
	return fl
}

// echoFlow is a manual (Button) flow that answers "echo " and the
// trigger's text.
const echoFlow = `{"$schema":"https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#","contentVersion":"1.0.0.0",
 "triggers":{"manual":{"type":"Request","kind":"Button","inputs":{"schema":{"type":"object"}}}},
 "actions":{"Compose":{"type":"Compose","inputs":"@concat('echo ', triggerBody()?['text'])","runAfter":{}},
  "Response":{"type":"Response","kind":"Http","inputs":{"statusCode":200,"body":"@outputs('Compose')"},"runAfter":{"Compose":["Succeeded"]}}}}`

// putFlow creates flow id in envID with def, displayed as name.
func putFlow(t *testing.T, fl *flows.Service, ctx context.Context, envID, id, name, def string) {
	t.Helper()
	if _, err := fl.PutFlow(ctx, envID, id, &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(def)}); err != nil {
		t.Fatalf("put flow %s: %v", id, err)
	}
}

// runFlow runs flowID's manual trigger with {"text": text}, waits for the
// run to succeed and returns its id.
func runFlow(t *testing.T, fl *flows.Service, ctx context.Context, envID, flowID, text string) string {
	t.Helper()
	run, err := fl.RunTrigger(ctx, envID, flowID, "manual", json.RawMessage(`{"text":"`+text+`"}`))
	if err != nil {
		t.Fatalf("run %s: %v", flowID, err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := fl.GetRun(ctx, envID, flowID, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == keyhold.RunSucceeded {
			return run.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("run of %s: %+v", flowID, r)
		}
	}
}

// invokeAt invokes flowID's manual trigger at its callback URL (the value
// CallbackURL answered) with body.
func invokeAt(ctx context.Context, fl *flows.Service, callback, envID, flowID, body string) (*keyhold.FlowResponse, error) {
	u, err := url.Parse(callback)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	return fl.InvokeTrigger(ctx, envID, flowID, "manual", keyhold.FlowSignature{APIVersion: q.Get("api-version"), SP: q.Get("sp"), SV: q.Get("sv"), Sig: q.Get("sig")}, json.RawMessage(body))
}
