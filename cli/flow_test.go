package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestFlowCommands runs the flow and connection commands against a real
// server: create a flow from a definition file, run it with --wait (its
// actions' progress on stderr), list its runs, show one, get its callback
// URL (and a new one after --regenerate), connections, and delete; a bad
// definition fails naming its path.
func TestFlowCommands(t *testing.T) {
	bootstrap := startServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "Flows", "--location", "europe", "--sku", "Sandbox")

	dir := t.TempDir()
	def := filepath.Join(dir, "echo.json")
	if err := os.WriteFile(def, []byte(`{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {
    "Compose": {"type": "Compose", "inputs": "@concat('echo ', triggerBody()?['text'])", "runAfter": {}},
    "Response": {"type": "Response", "kind": "Http", "inputs": {"statusCode": 200, "body": "@outputs('Compose')"}, "runAfter": {"Compose": ["Succeeded"]}}
  }
}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := s.ok("flow", "create", env.ID, "echo", "--definition", def, "--name", "Echo"); !strings.Contains(out, `Saved flow echo (Request trigger "manual"), Started`) {
		t.Fatalf("create: %q", out)
	}
	if out := s.ok("flow", "list", env.ID); !strings.Contains(out, "echo") || !strings.Contains(out, "Started") {
		t.Fatalf("list: %q", out)
	}
	code, out, stderr := s.run("", "flow", "run", env.ID, "echo", "--body", `{"text":"hi"}`, "--wait")
	if code != 0 || !strings.Contains(out, ": Succeeded") || !strings.Contains(stderr, "Compose") {
		t.Fatalf("run --wait: exit %d, %q, %q", code, out, stderr)
	}
	runID := strings.TrimSpace(s.ok("flow", "runs", env.ID, "echo", "-o", "id"))
	if out := s.ok("flow", "run-show", env.ID, "echo", runID); !strings.Contains(out, "Response") || !strings.Contains(out, "Succeeded") {
		t.Fatalf("run-show: %q", out)
	}
	if out := s.ok("flow", "run-show", env.ID, "echo", runID, "-o", "json"); !strings.Contains(out, "echo hi") {
		t.Fatalf("run-show -o json: %q", out)
	}
	url1 := s.ok("flow", "callback-url", env.ID, "echo")
	url2 := s.ok("flow", "callback-url", env.ID, "echo", "--regenerate")
	if !strings.Contains(url1, "/triggers/manual/paths/invoke?") || url1 == url2 {
		t.Fatalf("callback URLs %q, %q", url1, url2)
	}
	s.ok("flow", "stop", env.ID, "echo")
	s.fails(1, "start it", "flow", "run", env.ID, "echo")
	s.ok("flow", "start", env.ID, "echo")

	bad := filepath.Join(dir, "bad.json")
	raw, _ := os.ReadFile(def)
	if err := os.WriteFile(bad, []byte(strings.Replace(string(raw), "@concat(", "@nosuch(", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.fails(1, "actions.Compose", "flow", "create", env.ID, "bad", "--definition", bad)

	if out := s.ok("connection", "create", env.ID, "shared_http", "api", "--kind", "nonoauth", "--param", "apiKey=k-123"); !strings.Contains(out, "encrypted with the platform key") || strings.Contains(out, "k-123") {
		t.Fatalf("connection create: %q", out)
	}
	if out := s.ok("connection", "list", env.ID); !strings.Contains(out, "shared_http") || strings.Contains(out, "k-123") {
		t.Fatalf("connection list: %q", out)
	}
	s.ok("connection", "show", env.ID, "shared_http", "api")
	// An OAuth connection acts as the caller, through a grant: show says
	// whom and its status.
	if out := s.ok("connection", "create", env.ID, "shared_commondataserviceforapps", "dv", "--kind", "oauth"); !strings.Contains(out, "Status: Connected") {
		t.Fatalf("connection create oauth: %q", out)
	}
	if out := s.ok("connection", "show", env.ID, "shared_commondataserviceforapps", "dv"); !strings.Contains(out, "Acts as: ") || !strings.Contains(out, "Status: Connected") {
		t.Fatalf("connection show oauth: %q", out)
	}
	if out := s.ok("connection", "list", env.ID); !strings.Contains(out, "STATUS") || !strings.Contains(out, "Connected") {
		t.Fatalf("connection list: %q", out)
	}
	s.ok("connection", "delete", env.ID, "shared_http", "api")
	s.fails(1, "ConnectionNotFound", "connection", "show", env.ID, "shared_http", "api")
	s.ok("flow", "delete", env.ID, "echo")
	s.fails(1, "FlowNotFound", "flow", "show", env.ID, "echo")
}

// TestPrintConnStatus: a connection whose grant no longer redeems shows
// its Error status with the code and the message saying what to do.
func TestPrintConnStatus(t *testing.T) {
	c := &keyhold.Connection{EnvID: "e1", API: "shared_commondataserviceforapps", Name: "dv", Kind: keyhold.ConnectionOAuth, PrincipalID: "p1", Root: "environment",
		Statuses: []keyhold.ConnectionStatus{{Status: keyhold.ConnectionError, Target: "token", Error: &keyhold.ConnectionStatusError{
			Code: keyhold.CodeConnectionUnauthenticated, Message: "its owner must re-authenticate it"}}}}
	var b strings.Builder
	if err := printConn(&b, FormatTable, c); err != nil {
		t.Fatal(err)
	}
	if want := "Status: Error (ConnectionUnauthenticated): its owner must re-authenticate it\n"; !strings.Contains(b.String(), want) {
		t.Fatalf("printConn = %q, want %q in it", b.String(), want)
	}
}
