package platform

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// flowTableCounts counts, by raw SQL, every flow-related row an
// environment has in the store, by table.
func flowTableCounts(t *testing.T, f *cmkFixture, envID string) map[string]int {
	t.Helper()
	db := sqlDB(f.store)
	out := map[string]int{}
	for _, table := range []string{"flows", "flow_runs", "flow_schedules", "flow_keys", "flow_connections", "flow_premigration_keys", "flow_premigration_runs"} {
		var n int
		if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM `+table+` WHERE env_id = '`+envID+`'`).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM backup_flow_items i JOIN backups b ON b.id = i.backup_id WHERE b.env_id = '`+envID+`'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	out["backup_flow_items"] = n
	return out
}

// TestResetClearsFlows: a linked Sandbox with flows (one kept on the
// platform partition), a finished run from before the link in its
// pre-migration partition, a later run, a recurrence schedule, a callback
// key, an OAuth and a non-OAuth connection and a backup holding flows is
// reset: the store then holds none of them (raw SQL, every table), the
// coverage report counts zero in every flow store, and the environment
// takes new flows. Another environment's flows are untouched. Deleting
// an environment leaves none either. Without ClearEnvFlows the reset
// leaves every flow table as it was.
func TestResetClearsFlows(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newMigWorld(t, f)
		other := w.env
		w.put(t, "keep", migDef("Button", ""), "")
		w.env = f.sandboxEnv(t, "reset-flows")
		w.put(t, "v1", migDef("PowerApp", ""), "")
		w.put(t, "mover", migDef("Button", ""), "")
		w.run(t, "mover", "before")
		tick := "Tick"
		tickDef := `{"triggers":{"every":{"type":"Recurrence","recurrence":{"frequency":"Day","interval":1}}},"actions":{"C":{"type":"Compose","inputs":1}}}`
		if _, err := w.fl.PutFlow(w.ctx, w.env.ID, "tick", &keyhold.FlowInput{DisplayName: &tick, Definition: []byte(tickDef)}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.fl.CallbackURL(w.ctx, w.env.ID, "v1", "manual", false); err != nil {
			t.Fatal(err)
		}
		if _, err := w.fl.PutConnection(w.ctx, w.env.ID, "shared_commondataserviceforapps", "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.fl.PutConnection(w.ctx, w.env.ID, "shared_http", "api", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": "k"}}); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(w.admin, w.env.ID, w.pol.SystemID) })
		w.run(t, "mover", "after")
		if _, err := f.p.CreateBackup(f.ctx, w.env.ID, "with flows"); err != nil {
			t.Fatal(err)
		}
		before := flowTableCounts(t, f, w.env.ID)
		for table, n := range before {
			if n == 0 {
				t.Fatalf("before the reset, %s holds nothing of the environment: the test proves nothing (%v)", table, before)
			}
		}
		otherBefore := flowTableCounts(t, f, other.ID)

		f.succeed(t, "reset", func() (*keyhold.Operation, error) { return f.p.ResetEnvironment(f.ctx, w.env.ID) })
		for table, n := range flowTableCounts(t, f, w.env.ID) {
			if n != 0 {
				t.Errorf("after the reset, %s holds %d of the environment's items", table, n)
			}
		}
		cov, err := f.p.EncryptionCoverage(f.ctx, w.env.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cov.Stores {
			switch s.Store {
			case "flows", "runHistory", "oauthConnections", "connections", "preMigrationRuns", "backups", "rows", "files":
				if s.Items != 0 {
					t.Errorf("coverage after the reset: store %s has %d items", s.Store, s.Items)
				}
			}
		}
		if got := flowTableCounts(t, f, other.ID); !sameCounts(got, otherBefore) {
			t.Errorf("the other environment's flows changed: %v, then %v", otherBefore, got)
		}
		w.put(t, "fresh", migDef("Button", ""), "")
		if _, err := w.fl.GetFlow(w.ctx, w.env.ID, "fresh"); err != nil {
			t.Fatalf("a new flow after the reset: %v", err)
		}

		if err := f.p.DeleteEnvironment(f.ctx, other.ID); err != nil {
			t.Fatal(err)
		}
		for table, n := range flowTableCounts(t, f, other.ID) {
			if n != 0 {
				t.Errorf("after the delete, %s holds %d of the environment's items", table, n)
			}
		}
	})
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
