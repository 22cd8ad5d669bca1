package http

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestEncryptionCoverageRoute: the report over HTTPS through the Go
// client, counted from the store; an unknown environment is 404
// EnvironmentNotFound; without Server.Coverage there is no route.
func TestEncryptionCoverageRoute(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.srv.Coverage = f.p })
	ctx := context.Background()
	env := f.createEnv(t, "coverage")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := f.client.PutRow(ctx, env.ID, "accounts", id, json.RawMessage(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	cov, err := f.client.EncryptionCoverage(ctx, env.ID)
	if err != nil {
		t.Fatalf("EncryptionCoverage: %v", err)
	}
	got := map[string]string{}
	for _, s := range cov.Stores {
		var roots []string
		for _, r := range s.Roots {
			roots = append(roots, r.Root)
		}
		got[s.Store] = strings.Join(roots, ",") + " " + itoa(s.Items)
	}
	for store, want := range map[string]string{"rows": "platform 3", "files": " 0", "backups": " 0", "audit": "platform 3", "flows": " 0", "runHistory": " 0", "connections": " 0", "preMigrationRuns": "none 0"} {
		if got[store] != want {
			t.Errorf("store %s: %q, want %q (report %+v)", store, got[store], want, cov)
		}
	}
	if cov.EnvID != env.ID || cov.KeyManagedBy != keyhold.KeyManagedByMicrosoft || len(cov.Stores) != 9 {
		t.Errorf("report %+v", cov)
	}
	a := f.call(t, "GET", bapPrefix+"/environments/00000000-0000-0000-0000-000000000000/encryptionCoverage", f.adminToken(t), "", nil)
	if a.status != 404 || !strings.Contains(string(a.body), `"EnvironmentNotFound"`) {
		t.Errorf("unknown environment: %d %s, want 404 EnvironmentNotFound", a.status, a.body)
	}
	off := newFixture(t)
	if _, err := off.client.EncryptionCoverage(ctx, env.ID); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
		t.Errorf("without Server.Coverage: %v, want NotFound (no route)", err)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
