package flows_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// hookServer is a real HTTPS server that records the bodies posted to it:
// a tenant's webhook receiver.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// newHookedWorld is newWorld with a platform that may post events to a
// loopback webhook (hook's certificate trusted).
func newHookedWorld(t *testing.T, store keyhold.Store, hook *hookServer) *world {
	t.Helper()
	pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(hook.Certificate())
	return newWorldWith(t, store, func(c *platform.Config) {
		c.Egress, c.WebhookClient = pol, platform.NewWebhookClient(roots, pol)
	})
}

// failingDef echoes the trigger's secret (Echo), fails parsing it as a
// number (Parse: its error quotes the value), then terminates the run
// Failed with the secret as the run's error message.
const failingDef = `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {
    "Echo": {"type": "Compose", "inputs": "@triggerBody()?['secret']", "runAfter": {}},
    "Parse": {"type": "Compose", "inputs": "@int(triggerBody()?['secret'])", "runAfter": {"Echo": ["Succeeded"]}},
    "Stop": {"type": "Terminate", "inputs": {"runStatus": "Failed", "runError": {"code": "Bad", "message": "@{triggerBody()?['secret']}"}}, "runAfter": {"Parse": ["Failed"]}}
  }
}`

// TestAnalyticsExclusions: a flow run that fails in a customer-key
// environment, with a marker in its trigger input and in its failing
// action's error, leaves the marker out of the events list, the webhook
// body a real HTTPS receiver gets, the tenant-wide run report and the
// audit log; its notice names the flow and run and nothing of the
// definition. A platform-key environment's notice names the failed action
// (and still no content). The positive control: the marker is in the
// runs, readable through GetRun and RunActions.
func TestAnalyticsExclusions(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		hook := newHookServer(t)
		w := newHookedWorld(t, open(t), hook)
		url := hook.URL
		if _, err := w.p.UpdateTenantSettings(w.ctx, keyhold.TenantSettingsPatch{WebhookURL: &url}); err != nil {
			t.Fatal(err)
		}
		cmkEnv := w.env
		w.markLinked(t)
		mmkEnv := &keyhold.Environment{DisplayName: "platform key", Location: "europe", SKU: keyhold.SKUProduction}
		if err := w.p.CreateEnvironment(w.ctx, mmkEnv); err != nil {
			t.Fatal(err)
		}
		const cmkMarker, mmkMarker = "MARKER-cmk-7f3a9", "MARKER-mmk-2b81c"
		runs := map[string]string{}
		for _, c := range []struct{ env, marker string }{{cmkEnv.ID, cmkMarker}, {mmkEnv.ID, mmkMarker}} {
			name := "Nightly import"
			if _, err := w.fl.PutFlow(w.ctx, c.env, "import", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(failingDef)}); err != nil {
				t.Fatal(err)
			}
			run, err := w.fl.RunTrigger(w.ctx, c.env, "import", "manual", json.RawMessage(`{"secret":"`+c.marker+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			runs[c.env] = run.ID
		}
		for env, runID := range runs {
			marker := map[string]string{cmkEnv.ID: cmkMarker, mmkEnv.ID: mmkMarker}[env]
			got := w.waitIn(t, w.fl, env, "import", runID)
			if got.Status != keyhold.RunFailed || got.Error == nil || !strings.Contains(got.Error.Message, marker) {
				t.Fatalf("positive control: run %+v does not fail with the marker", got)
			}
			acts, err := w.fl.RunActions(w.ctx, env, "import", runID)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(acts)
			if !strings.Contains(string(raw), marker) || !strings.Contains(string(raw), "is not an integer") {
				t.Fatalf("positive control: the actions don't carry the marker: %s", raw)
			}
		}
		noMarker := func(what, s string) {
			t.Helper()
			if strings.Contains(s, cmkMarker) || strings.Contains(s, mmkMarker) || strings.Contains(s, "MARKER") {
				t.Errorf("%s carries a run's content: %s", what, s)
			}
		}

		// The events list: one FlowRunFailed per environment.
		var evs []*keyhold.Event
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if evs, err = w.p.ListEvents(w.ctx, 0, 100); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range evs {
				if e.Kind == keyhold.EventFlowRunFailed {
					n++
				}
			}
			if n == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d FlowRunFailed events, want 2: %+v", n, evs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, e := range evs {
			raw, _ := json.Marshal(e.View(true))
			noMarker("event "+e.Kind, string(raw))
			if e.Kind != keyhold.EventFlowRunFailed {
				continue
			}
			if !strings.Contains(e.Summary, runs[e.EnvID]) || !strings.Contains(e.Summary, "import") || !strings.Contains(e.Summary, "failed at") {
				t.Errorf("summary %q does not say which run of which flow failed, and when", e.Summary)
			}
			if names := strings.Contains(e.Summary, `"Parse"`); names != (e.EnvID == mmkEnv.ID) {
				t.Errorf("environment %s (customer key: %t): summary %q names the failed action: %t", e.EnvID, e.EnvID == cmkEnv.ID, e.Summary, names)
			}
		}

		// The webhook: a real HTTPS receiver.
		if _, err := w.p.DeliverEvents(context.Background()); err != nil {
			t.Fatal(err)
		}
		bodies := hook.received()
		delivered := 0
		for _, b := range bodies {
			noMarker("webhook body", b)
			if strings.Contains(b, keyhold.EventFlowRunFailed) && strings.Contains(b, cmkEnv.ID) {
				delivered++
			}
		}
		if delivered != 1 {
			t.Fatalf("the webhook received %d notices of the customer-key run, want 1: %q", delivered, bodies)
		}

		// The tenant-wide report.
		now := w.clock.Now()
		rep, err := w.fl.FlowRunReport(w.ctx, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(rep)
		noMarker("report", string(raw))
		if len(rep.Environments) != 2 {
			t.Fatalf("report rows: %s", raw)
		}
		for _, row := range rep.Environments {
			if row.Total != 1 || row.Runs[keyhold.RunFailed] != 1 {
				t.Errorf("row %+v: want 1 failed run", row)
			}
			if cmk := row.EnvID == cmkEnv.ID; row.CustomerManagedKey != cmk || (len(row.Flows) == 0) != cmk {
				t.Errorf("row %+v: a customer-key row has counts only, a platform-key row its flows", row)
			}
		}

		// The audit log, as its API lists it.
		entries, err := w.p.ListAudit(w.ctx, keyhold.AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, e := range entries {
			raw, _ := json.Marshal(e)
			noMarker("audit entry "+e.Action, string(raw))
			if e.Action == "flow.run.failed" {
				failed++
			}
		}
		if failed != 2 {
			t.Fatalf("%d audit entries of failed runs, want 2", failed)
		}
	})
}
