package platform

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// storeCoverage recounts, straight from the database, what the coverage
// report must say: per store, "root key epoch items[ expiry]" lines.
func storeCoverage(t *testing.T, f *cmkFixture, envID string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	db := sqlDB(f.store)
	root := func(epoch uint32) string {
		var kind, kid string
		// The customer's copy first, as unwrapEnvKey decides.
		err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT root_kind, key_id FROM wrapped_keys WHERE env_id = '%s' AND epoch = %d ORDER BY CASE root_kind WHEN '%s' THEN 0 ELSE 1 END LIMIT 1`, envID, epoch, keyhold.RootCMK)).Scan(&kind, &kid)
		switch {
		case err != nil:
			return "none -"
		case kind == string(keyhold.RootMMK):
			return "platform -"
		case kind == string(keyhold.RootCMK):
			return "customer " + kid
		default:
			return "byok " + kid
		}
	}
	count := func(store, q string, expiry bool) {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		type got struct {
			epoch  uint32
			n, exp int64
		}
		var all []got
		for rows.Next() {
			var g got
			dest := []any{&g.epoch, &g.n}
			if expiry {
				dest = append(dest, &g.exp)
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatal(err)
			}
			all = append(all, g)
		}
		rows.Close() // SQLite's one connection: root queries after
		for _, g := range all {
			line := fmt.Sprintf("%s %d %d", root(g.epoch), g.epoch, g.n)
			if expiry {
				line += " " + time.Unix(0, g.exp).UTC().Format(time.RFC3339)
			}
			out[store] = append(out[store], line)
		}
	}
	count("rows", `SELECT epoch, COUNT(*) FROM data_rows WHERE env_id = '`+envID+`' GROUP BY epoch ORDER BY epoch`, false)
	count("files", `SELECT epoch, COUNT(*) FROM data_files WHERE env_id = '`+envID+`' GROUP BY epoch ORDER BY epoch`, false)
	count("backups", `SELECT epoch, COUNT(*), MAX(expires_at) FROM (SELECT r.epoch, b.expires_at FROM backup_rows r JOIN backups b ON b.id = r.backup_id WHERE b.env_id = '`+envID+`'
		UNION ALL SELECT f.epoch, b.expires_at FROM backup_files f JOIN backups b ON b.id = f.backup_id WHERE b.env_id = '`+envID+`') x GROUP BY epoch ORDER BY epoch`, true)
	count("audit", `SELECT epoch, COUNT(*) FROM audit_log WHERE env_id = '`+envID+`' AND epoch <> 0 GROUP BY epoch ORDER BY epoch`, false)
	count("flows", `SELECT epoch, COUNT(*) FROM flows WHERE env_id = '`+envID+`' GROUP BY epoch ORDER BY epoch`, false)
	count("runHistory", `SELECT epoch, COUNT(*) FROM flow_runs WHERE env_id = '`+envID+`' GROUP BY epoch ORDER BY epoch`, false)
	count("oauthConnections", `SELECT epoch, COUNT(*) FROM flow_connections WHERE env_id = '`+envID+`' AND epoch <> 0 GROUP BY epoch ORDER BY epoch`, false)
	count("connections", `SELECT epoch, COUNT(*) FROM flow_connections WHERE env_id = '`+envID+`' AND epoch = 0 GROUP BY epoch ORDER BY epoch`, false)
	// Epoch 0 is the platform key's partition, not an environment key.
	for _, s := range []string{"flows", "runHistory", "connections"} {
		for i, line := range out[s] {
			if strings.HasPrefix(line, "none - 0 ") {
				out[s][i] = "platform - 0 " + strings.TrimPrefix(line, "none - 0 ")
			}
		}
	}
	return out
}

func sqlDB(s keyhold.Store) *sql.DB { return s.(interface{ DB() *sql.DB }).DB() }

// reportCoverage is the report in the same lines.
func reportCoverage(t *testing.T, f *cmkFixture, envID string) map[string][]string {
	t.Helper()
	cov, err := f.p.EncryptionCoverage(f.ctx, envID)
	if err != nil {
		t.Fatalf("EncryptionCoverage: %v", err)
	}
	out := map[string][]string{}
	var stores []string
	for _, s := range cov.Stores {
		stores = append(stores, s.Store)
		var sum int64
		for _, r := range s.Roots {
			sum += r.Items
			if r.Root == keyhold.CoverageRootNone && r.Items == 0 {
				out[s.Store+" (empty)"] = append(out[s.Store+" (empty)"], "none")
				continue
			}
			kid := r.KeyID
			if kid == "" {
				kid = "-"
			}
			line := fmt.Sprintf("%s %s %d %d", r.Root, kid, r.Epoch, r.Items)
			if r.ExpiresAt != nil {
				line += " " + r.ExpiresAt.Format(time.RFC3339)
			}
			out[s.Store] = append(out[s.Store], line)
		}
		if sum != s.Items {
			t.Errorf("store %s: %d items, its roots sum to %d", s.Store, s.Items, sum)
		}
	}
	want := "rows files backups audit flows runHistory oauthConnections connections preMigrationRuns"
	if strings.Join(stores, " ") != want {
		t.Errorf("stores %v, want %s", stores, want)
	}
	return out
}

// TestEncryptionCoverage checks the report against the store after each
// custody step: on the platform key with a backup, after the link, after
// a rotation, and after the unlink (day 7), both databases.
func TestEncryptionCoverage(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-cov", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-cov", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "cov")
		f.fill(t, env.ID, 5, 100, 200)
		if _, err := f.p.CreateBackup(f.ctx, env.ID, "before"); err != nil {
			t.Fatal(err)
		}
		step := func(name string, want map[string]string) {
			t.Helper()
			got, store := reportCoverage(t, f, env.ID), storeCoverage(t, f, env.ID)
			for _, s := range []string{"rows", "files", "backups", "audit", "flows", "runHistory", "oauthConnections", "connections"} {
				if strings.Join(got[s], "; ") != strings.Join(store[s], "; ") {
					t.Errorf("%s: %s: report %q, store %q", name, s, got[s], store[s])
				}
				if w, ok := want[s]; ok && !strings.HasPrefix(strings.Join(got[s], "; "), w) {
					t.Errorf("%s: %s: report %q, want it to start %q", name, s, got[s], w)
				}
			}
			if len(got["preMigrationRuns"]) != 0 || len(got["preMigrationRuns (empty)"]) != 1 {
				t.Errorf("%s: preMigrationRuns: %v, want no items and root none (not built)", name, got)
			}
		}
		step("on the platform key", map[string]string{"rows": "platform - 1 5", "files": "platform - 1 2", "backups": "platform - 1 7 ", "audit": "platform - 1 9"})
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		step("linked", map[string]string{"rows": "customer ", "files": "customer ", "audit": "customer "})
		f.clock.Advance(time.Hour)
		if _, err := f.kv.RotateKey(f.ctx, v.Name, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PickUpRotations(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, op := range f.operations(t, pol.ID()) {
			f.wait(t, op)
		}
		step("rotated", map[string]string{"rows": "customer ", "audit": "customer "})
		f.clock.Advance(8 * 24 * time.Hour)
		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(f.ctx, env.ID, pol.SystemID) })
		step("unlinked", map[string]string{"rows": "platform ", "files": "platform ", "audit": "platform "})
		if _, err := f.p.EncryptionCoverage(f.ctx, "00000000-0000-0000-0000-000000000000"); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentNotFound {
			t.Errorf("EncryptionCoverage of an unknown environment: %v, want EnvironmentNotFound", err)
		}
	})
}
