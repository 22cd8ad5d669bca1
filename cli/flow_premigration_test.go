package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestFlowRunsPreMigration: `keyhold flow runs --env E --pre-migration`,
// through the real server and HTTP client, answers the environment's
// pre-migration runs (none: it was never linked) and the read is audited
// with its reader; the usual `flow runs <env> <flow>` is unchanged, and
// mixed forms are refused. (The runs a link puts there, their content and
// their 30 days are platform's TestPreMigrationRuns.)
func TestFlowRunsPreMigration(t *testing.T) {
	bootstrap := startServer(t)
	s := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	s.ok("login", "--bootstrap", bootstrap)
	var env keyhold.Environment
	s.okJSON(&env, "env", "create", "--name", "Pre-migration", "--location", "europe", "--sku", "Sandbox")
	if out := s.ok("flow", "runs", "--env", env.ID, "--pre-migration"); !strings.Contains(out, "EXPIRES") {
		t.Fatalf("table: %q", out)
	}
	var rs []*keyhold.PreMigrationRun
	if err := json.Unmarshal([]byte(s.ok("flow", "runs", env.ID, "--pre-migration", "-o", "json")), &rs); err != nil || len(rs) != 0 {
		t.Fatalf("json: %+v, %v", rs, err)
	}
	if out := s.ok("audit", "list", "--env", env.ID); !strings.Contains(out, "flow.preMigrationRuns.read") {
		t.Fatalf("no audit entry of the read: %q", out)
	}
	s.fails(2, "takes no arguments", "flow", "runs", env.ID, "--env", env.ID, "--pre-migration")
	s.fails(2, "--env is for --pre-migration", "flow", "runs", "--env", env.ID)
	s.fails(2, "", "flow", "runs", env.ID)
}
