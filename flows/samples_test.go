package flows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func sample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../docs/examples/flows/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const dvRefs = `{"shared_commondataserviceforapps":{"apiName":"shared_commondataserviceforapps","connectionName":"dv"},
 "shared_teams":{"apiName":"shared_teams","connectionName":"teams"}}`

func (w *world) connections(t *testing.T) {
	t.Helper()
	for api, name := range map[string]string{"shared_commondataserviceforapps": "dv", "shared_teams": "teams"} {
		if _, err := w.fl.PutConnection(w.ctx, w.env.ID, api, name, &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *world) runSample(t *testing.T, flowID, body string) (*keyhold.FlowRun, []*keyhold.FlowRunAction) {
	t.Helper()
	run, err := w.fl.RunTrigger(w.ctx, w.env.ID, flowID, mustTrigger(t, w, flowID), json.RawMessage(body))
	if err != nil {
		t.Fatal(err)
	}
	end := w.wait(t, w.fl, flowID, run.ID)
	acts, err := w.fl.RunActions(w.ctx, w.env.ID, flowID, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return end, acts
}

func mustTrigger(t *testing.T, w *world, flowID string) string {
	f, err := w.fl.GetFlow(w.ctx, w.env.ID, flowID)
	if err != nil {
		t.Fatal(err)
	}
	return f.TriggerName
}

func action(acts []*keyhold.FlowRunAction, path string) *keyhold.FlowRunAction {
	for _, a := range acts {
		if a.Path == path {
			return a
		}
	}
	return nil
}

// TestSamples runs the sample flows of docs/examples/flows end to end on
// both databases, through the real data plane, egress and child runs:
// every Request kind (Http, Button, PowerAppV2), the Teams webhook trigger
// through its test endpoint, a parent calling a child, and a foreach whose
// Http action retries against a loopback server.
func TestSamples(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.connections(t)
		row := func(table, id string) map[string]any {
			t.Helper()
			r, err := w.p.GetRow(w.ctx, w.env.ID, table, id)
			if err != nil {
				t.Fatalf("row %s/%s: %v", table, id, err)
			}
			m := map[string]any{}
			_ = json.Unmarshal(r.Data, &m)
			return m
		}

		w.putFlow(t, w.fl, "webhook", sample(t, "http-webhook-create-row.json"), dvRefs)
		end, acts := w.runSample(t, "webhook", `{"orderId":"A-17","customer":"Contoso","amount":12.5}`)
		if end.Status != keyhold.RunSucceeded || action(acts, "Response_failed").Status != "Skipped" {
			t.Fatalf("webhook: %+v", end)
		}
		id := outBody(action(acts, "Add_a_new_row"))["id"].(string)
		if got := row("orders", id); got["name"] != "Contoso / A-17" || got["amount"] != 12.5 {
			t.Fatalf("orders row %v", got)
		}

		w.putFlow(t, w.fl, "timesheet", sample(t, "powerapps-v2-button.json"), dvRefs)
		end, acts = w.runSample(t, "timesheet", `{"text":"Week 18","number":10}`)
		if end.Status != keyhold.RunSucceeded || !strings.Contains(fmt.Sprint(action(acts, "Respond_to_a_PowerApp_or_flow").Inputs), "needs review") {
			t.Fatalf("timesheet: %+v %+v", end, action(acts, "Respond_to_a_PowerApp_or_flow"))
		}

		w.putFlow(t, w.fl, "normalize-contact", sample(t, "child-normalize-contact.json"), "")
		w.putFlow(t, w.fl, "parent", sample(t, "parent-calls-child.json"), "")
		end, acts = w.runSample(t, "parent", `{"text":"  Ada@Example.COM "}`)
		if end.Status != keyhold.RunSucceeded || fmt.Sprint(outJSON(action(acts, "Use_the_answer"))["body"]) != "Normalized: ada@example.com (domain example.com)" {
			t.Fatalf("parent: %+v %+v", end, action(acts, "Use_the_answer"))
		}
		children, err := w.fl.ListRuns(w.ctx, w.env.ID, "normalize-contact")
		if err != nil || len(children) != 1 || children[0].ParentRunID != end.ID {
			t.Fatalf("child runs %+v, %v (parent %s)", children, err, end.ID)
		}
		end, _ = w.runSample(t, "parent", `{"text":"nobody"}`)
		if end.Status != keyhold.RunFailed {
			t.Fatalf("parent with a bad address: %+v", end)
		}

		var mu sync.Mutex
		calls := map[string]int{}
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			site := r.URL.Query().Get("site")
			mu.Lock()
			calls[site]++
			n := calls[site]
			mu.Unlock()
			if strings.HasPrefix(site, "down") || strings.HasPrefix(site, "flaky") && n <= 2 {
				rw.WriteHeader(503)
				return
			}
			rw.Header().Set("Content-Type", "application/json")
			fmt.Fprint(rw, `{"up":true}`)
		}))
		t.Cleanup(srv.Close)
		w.putFlow(t, w.fl, "sites", strings.Replace(sample(t, "foreach-http-retries.json"), "https://status.example.com/api/check", srv.URL+"/check", 1), "")
		end, acts = w.runSample(t, "sites", `{"sites":["ok.example","flaky.example","down.example"]}`)
		if end.Status != keyhold.RunSucceeded {
			t.Fatalf("sites: %+v", end)
		}
		mu.Lock()
		if calls["ok.example"] != 1 || calls["flaky.example"] != 3 || calls["down.example"] != 4 {
			t.Errorf("calls %v, want 1, 3 (two retries) and 4 (1 + 3 retries)", calls)
		}
		mu.Unlock()
		if a := action(acts, "For_each_site[2]/Check_site"); a == nil || a.Status != "Failed" || a.Attempts != 4 {
			t.Fatalf("down site: %+v", a)
		}

		w.putFlow(t, w.fl, "teams", sample(t, "teams-webhook.json"), dvRefs)
		end, acts = w.runSample(t, "teams", `{"from":{"user":{"displayName":"Grace"}},"body":{"plainTextContent":"#incident VPN is down"}}`)
		if end.Status != keyhold.RunSucceeded {
			t.Fatalf("teams: %+v", end)
		}
		if _, err := w.fl.CallbackURL(w.ctx, w.env.ID, "teams", mustTrigger(t, w, "teams"), false); keyhold.ErrorCode(err) != keyhold.CodeConflict {
			t.Fatalf("callback URL of a webhook trigger: %v", err)
		}
	})
}

// TestRecursionCapped: a flow that calls itself stops at depth
// keyhold.MaxFlowDepth: the deepest call fails with
// WorkflowRecursionLimit and so, in turn, does every run above it.
func TestRecursionCapped(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		def := `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {
    "Again": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": "loop"}, "body": {}}, "runAfter": {}}
  }
}`
		w.putFlow(t, w.fl, "loop", def, "")
		end, _ := w.runSample(t, "loop", `{}`)
		if end.Status != keyhold.RunFailed {
			t.Fatalf("top run %+v", end)
		}
		runs, err := w.fl.ListRuns(w.ctx, w.env.ID, "loop")
		if err != nil || len(runs) != keyhold.MaxFlowDepth {
			t.Fatalf("%d runs, want %d: %v", len(runs), keyhold.MaxFlowDepth, err)
		}
		found := false
		for _, r := range runs {
			acts, _ := w.fl.RunActions(w.ctx, w.env.ID, "loop", r.ID)
			if a := action(acts, "Again"); a != nil && a.Error != nil && a.Error.Code == "WorkflowRecursionLimit" {
				found = true
			}
		}
		if !found {
			t.Fatal("no run failed with WorkflowRecursionLimit")
		}
	})
}

// TestRecurrence: a Recurrence flow fires each slot once across two
// engines; after downtime only the latest missed slot fires (Logic Apps'
// catch-up); while the environment is locked the slot is recorded as a
// Skipped run.
func TestRecurrence(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.connections(t)
		b := w.engine(t, "engine-2", nil)
		w.putFlow(t, w.fl, "cleanup", sample(t, "scheduled-cleanup.json"), dvRefs)
		runs := func() []*keyhold.FlowRun {
			rs, err := w.fl.ListRuns(w.ctx, w.env.ID, "cleanup")
			if err != nil {
				t.Fatal(err)
			}
			return rs
		}
		tick := func() {
			for range 3 {
				w.fl.Tick(context.Background())
				b.Tick(context.Background())
			}
			time.Sleep(200 * time.Millisecond)
		}
		tick()
		if n := len(runs()); n != 0 {
			t.Fatalf("%d runs before the first slot", n)
		}
		w.clock.Advance(25 * time.Hour)
		tick()
		if n := len(runs()); n != 1 {
			t.Fatalf("%d runs after one slot on two engines, want 1", n)
		}
		w.clock.Advance(4 * 24 * time.Hour) // four slots missed
		tick()
		if n := len(runs()); n != 2 {
			t.Fatalf("%d runs after downtime, want 2 (only the latest missed slot fires)", n)
		}
		w.setState(t, keyhold.StateLocked)
		w.clock.Advance(25 * time.Hour)
		tick()
		rs := runs()
		if len(rs) != 3 || rs[0].Status != keyhold.RunSkipped {
			t.Fatalf("runs after a locked slot: %+v", rs)
		}
	})
}

// outJSON is an action's outputs as JSON values.
func outJSON(a *keyhold.FlowRunAction) map[string]any {
	m := map[string]any{}
	if a == nil {
		return m
	}
	b, _ := json.Marshal(a.Outputs)
	_ = json.Unmarshal(b, &m)
	return m
}

func outBody(a *keyhold.FlowRunAction) map[string]any {
	m, _ := outJSON(a)["body"].(map[string]any)
	return m
}
