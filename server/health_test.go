package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestStoreHealth: /healthz's check passes on a working database, and
// fails with CodeServiceUnavailable and the reason when the database turns
// read-only (every read still working) or holds its write lock past the
// timeout. The probe commits nothing.
func TestStoreHealth(t *testing.T) {
	defer func(d time.Duration) { healthTimeout = d }(healthTimeout)
	healthTimeout = 500 * time.Millisecond
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		ctx := context.Background()
		expectFail := func(t *testing.T, s keyhold.Store, want string) {
			t.Helper()
			err := storeHealth(s)(ctx)
			if keyhold.ErrorCode(err) != keyhold.CodeServiceUnavailable || !strings.Contains(err.Error(), want) {
				t.Fatalf("health = %v, want %s saying %q", err, keyhold.CodeServiceUnavailable, want)
			}
		}
		t.Run("healthy, and nothing committed", func(t *testing.T) {
			s := open(t)
			for range 3 {
				if err := storeHealth(s)(ctx); err != nil {
					t.Fatalf("health of a working store: %v", err)
				}
			}
			var n int
			db := s.(*sqlstore.Store).DB()
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = 0`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("probe rows committed: %d, %v", n, err)
			}
		})
		t.Run("read-only", func(t *testing.T) {
			s := open(t)
			db := s.(*sqlstore.Store).DB()
			switch s.(*sqlstore.Store).Dialect().Name {
			case "sqlite": // one write connection: it turns read-only
				if _, err := db.ExecContext(ctx, `PRAGMA query_only = 1`); err != nil {
					t.Fatal(err)
				}
			default: // one connection, read-only by default, as on a standby
				db.SetMaxOpenConns(1)
				if _, err := db.ExecContext(ctx, `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.View(ctx, func(tx keyhold.Tx) error { _, err := tx.ListTenants(ctx); return err }); err != nil {
				t.Fatalf("reads fail too (%v): the test would not show a write probe is needed", err)
			}
			expectFail(t, s, "the database is read-only")
		})
		t.Run("write lock held", func(t *testing.T) {
			s := open(t)
			// Another writer holds the lock the probe needs.
			db := s.(*sqlstore.Store).DB()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			q := `INSERT INTO schema_migrations (version, name, applied_at) VALUES (0, 'held', 0)`
			if _, err := tx.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
			expectFail(t, s, "did not take a write within 500ms")
		})
	})
}
