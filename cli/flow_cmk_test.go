package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestFlowListProtectedByPlatform: `keyhold flow list --env E
// --protected-by platform`, through the real server and HTTP client,
// lists the HTTP-triggered flow and its parent with their categories and
// fixes, and not the flow that moves; a bad --protected-by or a doubly
// given environment is refused.
func TestFlowListProtectedByPlatform(t *testing.T) {
	s, _, env := envSession(t, startServer(t), "Flows CMK")
	dir := t.TempDir()
	write := func(name, kind, child string) string {
		actions := `"Compose": {"type": "Compose", "inputs": "x", "runAfter": {}}`
		if child != "" {
			actions = `"Call": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": "` + child + `"}, "body": {}}, "runAfter": {}}`
		}
		p := filepath.Join(dir, name+".json")
		def := `{"$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#", "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "` + kind + `", "inputs": {"schema": {"type": "object"}}}}, "actions": {` + actions + `}}`
		if err := os.WriteFile(p, []byte(def), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s.ok("flow", "create", env.ID, "hook", "--definition", write("hook", "Http", ""))
	s.ok("flow", "create", env.ID, "parent", "--definition", write("parent", "Button", "hook"))
	s.ok("flow", "create", env.ID, "button", "--definition", write("button", "Button", ""))

	out := s.ok("flow", "list", "--env", env.ID, "--protected-by", "platform")
	if !strings.Contains(out, "hook") || !strings.Contains(out, keyhold.FlowCategoryRequestURL) || !strings.Contains(out, keyhold.FlowCategoryParent) || strings.Contains(out, "button") {
		t.Fatalf("table: %q", out)
	}
	var fs []*keyhold.PlatformFlow
	if err := json.Unmarshal([]byte(s.ok("flow", "list", env.ID, "--protected-by", "platform", "-o", "json")), &fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].FlowID != "hook" || fs[1].FlowID != "parent" || fs[1].Via != "hook" || fs[0].Fix == "" {
		t.Fatalf("json: %+v", fs)
	}
	// --env alone lists every flow, as the argument does.
	if out := s.ok("flow", "list", "--env", env.ID); !strings.Contains(out, "button") {
		t.Fatalf("--env: %q", out)
	}
	s.fails(2, "the only value is platform", "flow", "list", env.ID, "--protected-by", "customer")
	s.fails(2, "not both", "flow", "list", env.ID, "--env", env.ID)
}
