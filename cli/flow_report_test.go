package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestFlowReport: `keyhold flow report --tenant`, through the real server
// and HTTP client, counts a failed run under its environment and flow;
// without --tenant, with a time that doesn't parse, or with a window the
// server refuses, it fails saying why.
func TestFlowReport(t *testing.T) {
	s, _, env := envSession(t, startServer(t), "Report")
	def := filepath.Join(t.TempDir(), "fail.json")
	if err := os.WriteFile(def, []byte(`{"$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#", "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {"Parse": {"type": "Compose", "inputs": "@int(triggerBody()?['n'])", "runAfter": {}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ok("flow", "create", env.ID, "parse", "--definition", def)
	s.ok("flow", "run", env.ID, "parse", "--body", `{"n":"SECRET-x"}`, "--wait")

	out := s.ok("flow", "report", "--tenant")
	if !strings.Contains(out, env.ID) || !strings.Contains(out, "parse") || !strings.Contains(out, "Failed=1") || strings.Contains(out, "SECRET") {
		t.Fatalf("table: %q", out)
	}
	var rep keyhold.FlowRunReport
	if err := json.Unmarshal([]byte(s.ok("flow", "report", "--tenant", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Environments) != 1 || rep.Environments[0].Runs[keyhold.RunFailed] != 1 || rep.Environments[0].CustomerManagedKey || len(rep.Environments[0].Flows) != 1 {
		t.Fatalf("json: %+v", rep)
	}
	s.fails(2, "--tenant", "flow", "report")
	s.fails(2, `"yesterday" is not an RFC 3339 time`, "flow", "report", "--tenant", "--from", "yesterday")
	s.fails(1, "longer than 90 days", "flow", "report", "--tenant", "--from", "2024-01-01T00:00:00Z", "--to", "2024-06-01T00:00:00Z")
	s.fails(1, "is empty", "flow", "report", "--tenant", "--from", "2024-06-01T00:00:00Z", "--to", "2024-01-01T00:00:00Z")
}
