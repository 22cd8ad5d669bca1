package http

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/flows"
)

// withFlows serves the flows API from a real engine on the fixture's
// store, sealing through the fixture's platform.
func withFlows(t *testing.T) option {
	return func(f *fixture) {
		pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		fl, err := flows.New(flows.Config{Store: f.store, Sealer: f.p.Sealer, Data: f.p, Clock: f.clock, Egress: pol,
			PollInterval: 50 * time.Millisecond, InvokeWait: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		fl.Start()
		t.Cleanup(fl.Close)
		f.srv.Flows = fl
	}
}

const echoFlow = `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {
    "Compose": {"type": "Compose", "inputs": "@concat('echo ', triggerBody()?['text'])", "runAfter": {}},
    "Response": {"type": "Response", "kind": "Http", "inputs": {"statusCode": 200, "body": "@outputs('Compose')"}, "runAfter": {"Compose": ["Succeeded"]}}
  }
}`

// TestFlowsOverHTTPS: a request-trigger flow saved over HTTPS with the Go
// client, invoked at its signed URL without a token, writes a row through
// its OAuth connection and answers the flow's Response; a wrong signature
// is 401 and a huge body 413, in the Azure error shape; a manual trigger
// runs and its run and actions read back; a bad definition is 400 naming
// its path; the admin view lists the flows. Both databases.
func TestFlowsOverHTTPS(t *testing.T) {
	flowsForEach(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		env := f.createEnv(t, "flows")
		def, err := os.ReadFile("../docs/examples/flows/http-webhook-create-row.json")
		if err != nil {
			t.Fatal(err)
		}
		name := "Orders webhook"
		refs := json.RawMessage(`{"shared_commondataserviceforapps":{"apiName":"shared_commondataserviceforapps","connectionName":"dv"}}`)
		if _, err := f.client.PutConnection(ctx, env.ID, "shared_commondataserviceforapps", "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		fl, err := f.client.PutFlow(ctx, env.ID, "orders", &keyhold.FlowInput{DisplayName: &name, Definition: def, ConnectionReferences: refs})
		if err != nil {
			t.Fatal(err)
		}
		if fl.TriggerType != "Request" || fl.TriggerKind != "Http" || fl.State != keyhold.FlowStarted {
			t.Fatalf("flow = %+v", fl)
		}
		cb, err := f.client.CallbackURL(ctx, env.ID, "orders", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cb.Value, f.url+"/providers/Microsoft.ProcessSimple/environments/") || !strings.Contains(cb.Value, "sig=") {
			t.Fatalf("callback URL %s", cb.Value)
		}
		u := strings.TrimPrefix(cb.Value, f.url)
		a := f.jsonCall(t, "POST", u, "", `{"orderId":"A-1","customer":"Contoso","amount":3}`)
		if a.status != 201 {
			t.Fatalf("invoke: %d %s", a.status, a.body)
		}
		var got struct{ ID, Message string }
		if err := json.Unmarshal(a.body, &got); err != nil || got.ID == "" || got.Message != "Order A-1 recorded" {
			t.Fatalf("invoke answered %s", a.body)
		}
		row, err := f.p.GetRow(f.adminCtx(t), env.ID, "orders", got.ID)
		if err != nil || !strings.Contains(string(row.Data), "Contoso / A-1") {
			t.Fatalf("row %v, %v", row, err)
		}
		pu, _ := url.Parse(u)
		q := pu.Query()
		q.Set("sig", "AAAA"+q.Get("sig")[4:])
		pu.RawQuery = q.Encode()
		f.jsonCall(t, "POST", pu.String(), "", `{}`).wantError(t, 401, keyhold.CodeUnauthorized, "listCallbackUrl")
		f.jsonCall(t, "POST", u, "", `"`+strings.Repeat("x", keyhold.MaxTriggerBodyBytes)+`"`).wantError(t, 413, keyhold.CodeRequestTooLarge)

		// A manual trigger, the run and its actions.
		echo := "Echo"
		if _, err := f.client.PutFlow(ctx, env.ID, "echo", &keyhold.FlowInput{DisplayName: &echo, Definition: json.RawMessage(echoFlow)}); err != nil {
			t.Fatal(err)
		}
		run, err := f.client.RunTrigger(ctx, env.ID, "echo", "manual", json.RawMessage(`{"text":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for run.Status != keyhold.RunSucceeded && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			if run, err = f.client.GetRun(ctx, env.ID, "echo", run.ID); err != nil {
				t.Fatal(err)
			}
		}
		acts, err := f.client.RunActions(ctx, env.ID, "echo", run.ID)
		if err != nil || run.Status != keyhold.RunSucceeded || len(acts) != 2 {
			t.Fatalf("run %+v, actions %+v, %v", run, acts, err)
		}
		if b, _ := json.Marshal(acts); !strings.Contains(string(b), "echo hi") {
			t.Fatalf("actions %s", b)
		}

		// A bad definition: 400, naming the path; nothing saved.
		bad := strings.Replace(echoFlow, "@concat(", "@nosuch(", 1)
		a = f.jsonCall(t, "PUT", "/providers/Microsoft.ProcessSimple/environments/"+env.ID+"/flows/bad", f.token(t, "https://service.flow.microsoft.com//.default"),
			`{"properties":{"displayName":"bad","definition":`+bad+`}}`)
		a.wantError(t, 400, keyhold.CodeInvalidFlowDefinition, "actions.Compose")

		// The admin view, with a Power Automate token.
		a = f.call(t, "GET", "/providers/Microsoft.ProcessSimple/scopes/admin/environments/"+env.ID+"/flows", f.token(t, "https://service.flow.microsoft.com/.default"), "", nil)
		if a.status != 200 || !strings.Contains(string(a.body), `"name":"echo"`) || !strings.Contains(string(a.body), `"name":"orders"`) || strings.Contains(string(a.body), "workflowdefinition") {
			t.Fatalf("admin list: %d %s", a.status, a.body)
		}
		// Connections need the environment in $filter.
		f.call(t, "GET", "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps/connections/dv", f.adminToken(t), "", nil).
			wantError(t, 400, keyhold.CodeInvalidRequestContent, "$filter")
		cs, err := f.client.ListConnections(ctx, env.ID)
		if err != nil || len(cs) != 1 || cs[0].Name != "dv" || cs[0].Root != "environment" {
			t.Fatalf("connections %+v, %v", cs, err)
		}
	})
}

// TestFlowsLockedOverHTTPS: a locked environment's triggers answer 403
// EnvironmentLocked, manual and invoked, and start no run.
func TestFlowsLockedOverHTTPS(t *testing.T) {
	flowsForEach(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		env := f.createEnv(t, "locked")
		echo := "Echo"
		if _, err := f.client.PutFlow(ctx, env.ID, "echo", &keyhold.FlowInput{DisplayName: &echo, Definition: json.RawMessage(echoFlow)}); err != nil {
			t.Fatal(err)
		}
		cb, err := f.client.CallbackURL(ctx, env.ID, "echo", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			e, err := tx.Environment(ctx, env.ID)
			if err != nil {
				return err
			}
			e.State = keyhold.StateLocked
			return tx.UpdateEnvironment(ctx, e)
		}); err != nil {
			t.Fatal(err)
		}
		f.p.DropKeys(env.ID)
		_, err = f.client.RunTrigger(ctx, env.ID, "echo", "manual", nil)
		wantCode(t, err, keyhold.CodeEnvironmentLocked)
		f.jsonCall(t, "POST", strings.TrimPrefix(cb.Value, f.url), "", `{}`).wantError(t, 403, keyhold.CodeEnvironmentLocked)
		runs, err := f.client.ListRuns(ctx, env.ID, "echo")
		if err != nil || len(runs) != 0 {
			t.Fatalf("runs %v, %v", runs, err)
		}
	})
}

// flowsForEach is forEachBackend with the flows API served.
func flowsForEach(t *testing.T, fn func(t *testing.T, f *fixture)) {
	forEachBackendWith(t, fn, withFlows(t))
}

func (f *fixture) adminCtx(t *testing.T) context.Context {
	t.Helper()
	id, err := f.p.Authenticate(context.Background(), f.adminToken(t))
	if err != nil {
		t.Fatal(err)
	}
	return keyhold.NewContext(context.Background(), id)
}
