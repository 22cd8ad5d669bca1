package wdl

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const samplesDir = "../../docs/examples/flows"

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, def string) *Definition {
	t.Helper()
	d, err := Parse([]byte(def))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

// run executes d to the end on h, failing the test on an error that
// leaves the run unfinished.
func run(t *testing.T, d *Definition, h *testHost, trigger any) *RunState {
	t.Helper()
	st := NewRun(Outputs{Body: trigger})
	if err := Execute(context.Background(), d, st, nil, h, func(*RunState) error { return nil }); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return st
}

// TestSamplesParse parses every sample definition: they all use only the
// supported subset.
func TestSamplesParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	if err != nil || len(files) < 6 {
		t.Fatalf("want at least 6 samples in %s, found %d (%v)", samplesDir, len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

// TestSamplesRun runs each sample with the test host and checks what it
// did.
func TestSamplesRun(t *testing.T) {
	t.Run("http-webhook-create-row", func(t *testing.T) {
		d := mustParse(t, string(readSample(t, "http-webhook-create-row.json")))
		if got := d.Trigger(); got.Type != "Request" || got.Kind != "Http" || got.Method != "POST" || len(got.Schema) == 0 {
			t.Fatalf("trigger = %+v", got)
		}
		if got := d.ConnectionRefs(); !slices.Equal(got, []string{"shared_commondataserviceforapps"}) {
			t.Fatalf("ConnectionRefs = %v", got)
		}
		h := newHost()
		st := run(t, d, h, map[string]any{"orderId": "A-17", "customer": "Contoso", "amount": 12.5})
		if st.Status != StatusSucceeded {
			t.Fatalf("status %s, error %+v", st.Status, st.Error)
		}
		row := h.rows["orders"]["row-1"]
		if row["name"] != "Contoso / A-17" || row["amount"] != 12.5 || row["receivedon"] != "2024-05-01T09:30:00.0000000Z" {
			t.Fatalf("row = %v", row)
		}
		if st.Response == nil || st.Response.StatusCode != 201 || st.Response.Body.(map[string]any)["id"] != "row-1" {
			t.Fatalf("response = %+v", st.Response)
		}
		if st.Actions["Response_failed"].Status != StatusSkipped {
			t.Fatalf("Response_failed = %s, want Skipped", st.Actions["Response_failed"].Status)
		}
	})
	t.Run("http-webhook-create-row fails over to the 502 answer", func(t *testing.T) {
		d := mustParse(t, string(readSample(t, "http-webhook-create-row.json")))
		h := newHost()
		h.hook = func(c Call) error {
			if c.Type == "OpenApiConnection" {
				return &ActionError{Code: "EnvironmentDisabled", Message: "the table is read-only", StatusCode: 409}
			}
			return nil
		}
		st := run(t, d, h, map[string]any{"orderId": "A-18", "customer": "Contoso"})
		if st.Response == nil || st.Response.StatusCode != 502 || st.Response.Body.(map[string]any)["error"] != "the table is read-only" {
			t.Fatalf("response = %+v", st.Response)
		}
		// The failure was handled by Response_failed, a last action that
		// succeeded; Response, the other last action, was skipped because
		// of the failure: the run fails, as in Logic Apps.
		if st.Status != StatusFailed {
			t.Fatalf("status = %s", st.Status)
		}
	})
	t.Run("scheduled-cleanup", func(t *testing.T) {
		d := mustParse(t, string(readSample(t, "scheduled-cleanup.json")))
		r := d.Trigger().Recurrence
		if r == nil || r.Frequency != "Day" || r.TimeZone != "W. Europe Standard Time" {
			t.Fatalf("recurrence = %+v", r)
		}
		h := newHost()
		h.rows["tasks"] = map[string]map[string]any{"t1": {"id": "t1"}, "t2": {"id": "t2"}, "t3": {"id": "t3"}}
		st := run(t, d, h, nil)
		if st.Status != StatusSucceeded {
			t.Fatalf("status %s, error %+v", st.Status, st.Error)
		}
		if len(h.rows["tasks"]) != 0 || st.Variables["deleted"] != 3.0 {
			t.Fatalf("rows left %v, deleted %v", h.rows["tasks"], st.Variables["deleted"])
		}
		if got := st.Actions["Summary"].Outputs.Body; got != "Deleted 3 tasks closed before 2024-04-01" {
			t.Fatalf("summary = %q", got)
		}
		if st.Actions["Apply_to_each[2]/Delete_a_row"] == nil {
			t.Fatalf("no record of iteration 2: %v", keys(st.Actions))
		}
	})
	t.Run("powerapps-v2-button", func(t *testing.T) {
		d := mustParse(t, string(readSample(t, "powerapps-v2-button.json")))
		if d.Trigger().Kind != "PowerAppV2" {
			t.Fatalf("kind = %q", d.Trigger().Kind)
		}
		for hours, want := range map[float64]string{10: "needs review", 6: "approved"} {
			h := newHost()
			st := run(t, d, h, map[string]any{"text": "Week 18", "number": hours})
			if st.Status != StatusSucceeded || st.Response == nil {
				t.Fatalf("status %s, error %+v", st.Status, st.Error)
			}
			if got := st.Response.Body.(map[string]any)["status"]; got != want {
				t.Fatalf("%v hours: status %v, want %v", hours, got, want)
			}
		}
	})
	t.Run("parent-calls-child", func(t *testing.T) {
		parent := mustParse(t, string(readSample(t, "parent-calls-child.json")))
		child := mustParse(t, string(readSample(t, "child-normalize-contact.json")))
		if got := parent.ChildFlows(); !slices.Equal(got, []string{"normalize-contact"}) {
			t.Fatalf("ChildFlows = %v", got)
		}
		h := newHost()
		h.children["normalize-contact"] = child
		st := run(t, parent, h, map[string]any{"text": "  Ada@Example.COM "})
		if st.Status != StatusSucceeded {
			t.Fatalf("status %s, error %+v", st.Status, st.Error)
		}
		if got := st.Actions["Use_the_answer"].Outputs.Body; got != "Normalized: ada@example.com (domain example.com)" {
			t.Fatalf("answer = %q", got)
		}
		// The child terminates a bad address as Failed: the parent's
		// Workflow action fails with the child's error.
		st = run(t, parent, h, map[string]any{"text": "nobody"})
		if st.Status != StatusFailed || st.Error == nil || st.Error.Code != "NotAnEmail" {
			t.Fatalf("status %s, error %+v", st.Status, st.Error)
		}
	})
	t.Run("foreach-http-retries", func(t *testing.T) {
		d := mustParse(t, string(readSample(t, "foreach-http-retries.json")))
		h := newHost()
		h.httpFail["flaky"] = 2 // two 503s, then up
		h.httpFail["down"] = -1 // never up
		st := run(t, d, h, map[string]any{"sites": []any{"ok.example", "flaky.example", "down.example"}})
		if st.Status != StatusSucceeded {
			t.Fatalf("status %s, error %+v", st.Status, st.Error)
		}
		res := st.Response.Body.(map[string]any)["results"].([]any)
		ups := []any{}
		for _, r := range res {
			ups = append(ups, r.(map[string]any)["up"])
		}
		if !slices.Equal(ups, []any{true, true, false}) {
			t.Fatalf("results = %v", res)
		}
		if got := h.callsTo("For_each_site[1]/Check_site"); got != 3 {
			t.Fatalf("flaky site: %d calls, want 3", got)
		}
		if got := h.callsTo("For_each_site[2]/Check_site"); got != 4 {
			t.Fatalf("down site: %d calls, want 1 + 3 retries", got)
		}
		if a := st.Actions["For_each_site[2]/Check_site"]; a.Status != StatusFailed || a.Attempts != 4 {
			t.Fatalf("down site: %+v", a)
		}
	})
	t.Run("teams-webhook", func(t *testing.T) {
		d := mustParse(t, string(readSample(t, "teams-webhook.json")))
		tr := d.Trigger()
		if tr.Type != "OpenApiConnectionWebhook" || tr.API != "shared_teams" || tr.Connection != "shared_teams" || tr.Operation != "WebhookNewMessageTrigger" {
			t.Fatalf("trigger = %+v", tr)
		}
		if got := d.ConnectionRefs(); !slices.Equal(got, []string{"shared_teams", "shared_commondataserviceforapps"}) {
			t.Fatalf("ConnectionRefs = %v", got)
		}
		h := newHost()
		msg := map[string]any{"from": map[string]any{"user": map[string]any{"displayName": "Grace"}},
			"body": map[string]any{"plainTextContent": "#incident VPN is down"}}
		st := run(t, d, h, msg)
		if st.Status != StatusSucceeded {
			t.Fatalf("status %s, error %+v", st.Status, st.Error)
		}
		if row := h.rows["incidents"]["row-1"]; row["title"] != "VPN is down" || row["reportedby"] != "Grace" {
			t.Fatalf("row = %v", row)
		}
		if st.Actions["Ignore"].Status != StatusSkipped {
			t.Fatalf("Ignore = %s", st.Actions["Ignore"].Status)
		}
		msg["body"] = map[string]any{"plainTextContent": "lunch?"}
		st = run(t, d, newHost(), msg)
		if st.Status != StatusSucceeded || st.Actions["Log_incident"].Status != StatusSkipped || st.Actions["Ignore"].Status != StatusSucceeded {
			t.Fatalf("status %s: %v", st.Status, keys(st.Actions))
		}
	})
}

func keys(m map[string]*ActionState) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v.Status)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
