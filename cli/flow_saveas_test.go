package cli

import (
	"crypto/tls"
	"crypto/x509"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestFlowSaveAs: `keyhold flow save-as`, through the real server and
// HTTP client, copies an HTTP-triggered flow under a new id; the copy's
// callback URL differs from the original's, and both URLs start a run
// over HTTPS. Missing flags are usage errors, a missing flow is
// FlowNotFound, and no refusal adds a flow.
func TestFlowSaveAs(t *testing.T) {
	bootstrap := startServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "Save as", "--location", "europe", "--sku", "Sandbox")
	def := filepath.Join(t.TempDir(), "hook.json")
	if err := os.WriteFile(def, []byte(`{"$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#", "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Http", "inputs": {"schema": {"type": "object"}}}},
  "actions": {"Response": {"type": "Response", "kind": "Http", "inputs": {"statusCode": 200, "body": "ok"}, "runAfter": {}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ok("flow", "create", env.ID, "hook", "--definition", def)
	url1 := strings.TrimSpace(s.ok("flow", "callback-url", env.ID, "hook"))

	s.fails(2, "--name", "flow", "save-as", "--env", env.ID, "--flow", "hook")
	s.fails(2, "--env ENV --flow FLOW", "flow", "save-as", "--flow", "hook", "--name", "x")
	s.fails(1, "FlowNotFound", "flow", "save-as", "--env", env.ID, "--flow", "nope", "--name", "x")
	if ids := strings.Fields(s.ok("flow", "list", env.ID, "-o", "id")); len(ids) != 1 {
		t.Fatalf("flows after the refusals: %v", ids)
	}

	out := s.ok("flow", "save-as", "--env", env.ID, "--flow", "hook", "--name", "Hook (CMK)")
	if !strings.Contains(out, "Saved hook as flow ") || !strings.Contains(out, "callback-url") {
		t.Fatalf("save-as: %q", out)
	}
	ids := strings.Fields(s.ok("flow", "list", env.ID, "-o", "id"))
	if len(ids) != 2 {
		t.Fatalf("flows after Save as: %v", ids)
	}
	copyID := ids[0]
	if copyID == "hook" {
		copyID = ids[1]
	}
	url2 := strings.TrimSpace(s.ok("flow", "callback-url", env.ID, copyID))
	if url1 == url2 || !strings.Contains(url2, "/flows/"+copyID+"/") {
		t.Fatalf("callback URLs %q and %q", url1, url2)
	}

	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(hc.CloseIdleConnections)
	for _, u := range []string{url1, url2} {
		resp, err := hc.Post(u, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d", u, resp.StatusCode)
		}
	}
}
