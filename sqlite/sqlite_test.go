package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.OpenSQLite)
}

func open(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "k.db"))
	ctx := context.Background()
	for _, tc := range []struct {
		db           string
		pragma, want string
	}{
		{"write", "journal_mode", "wal"},
		{"write", "foreign_keys", "1"},
		{"write", "synchronous", "2"}, // FULL
		{"write", "busy_timeout", "5000"},
		{"write", "secure_delete", "1"},
		{"write", "query_only", "0"},
		{"read", "journal_mode", "wal"},
		{"read", "foreign_keys", "1"},
		{"read", "busy_timeout", "5000"},
		{"read", "query_only", "1"},
	} {
		db := s.DB()
		if tc.db == "read" {
			db = s.ReadDB()
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", tc.db, tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s pool: PRAGMA %s = %s, want %s", tc.db, tc.pragma, got, tc.want)
		}
	}
	if n := s.DB().Stats().MaxOpenConnections; n != 1 {
		t.Errorf("write pool allows %d connections, want 1", n)
	}
	if s.ReadDB() == s.DB() {
		t.Errorf("reads and writes share a pool")
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	s := open(t, path)
	ctx := context.Background()
	applied := func(s *sqlstore.Store) string {
		rows, err := s.DB().QueryContext(ctx, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var v, at int64
			var name string
			if err := rows.Scan(&v, &name, &at); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d %s %d;", v, name, at)
		}
		return b.String()
	}
	first := applied(s)
	if !strings.HasPrefix(first, "1 0001_init ") {
		t.Fatalf("schema_migrations = %q, want 0001_init recorded", first)
	}
	s.Close()

	// Reopening applies nothing again.
	s = open(t, path)
	if again := applied(s); again != first {
		t.Errorf("after reopening, schema_migrations = %q, want %q", again, first)
	}
	// A database that a newer Keyhold migrated is refused.
	if _, err := s.DB().ExecContext(ctx, "INSERT INTO schema_migrations VALUES (9999, '9999_future', 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := sqlite.Open(path); err == nil {
		s.Close()
		t.Fatalf("Open of a database at a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: %v, want an error saying so", err)
	}
}

// TestMigrationVaultTenant: migration 0020 moves a vault that names a
// tenant other than its subscription's to the subscription's tenant.
func TestMigrationVaultTenant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	s := open(t, path)
	check := storetest.SeedVaultTenants(t, s)
	if _, err := s.DB().ExecContext(context.Background(), "DELETE FROM schema_migrations WHERE version = 20"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	check(t, open(t, path))
}

func TestOpenRefusesBadPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:k.db", "k.db?mode=ro", filepath.Join(t.TempDir(), "missing-dir", "k.db")} {
		if s, err := sqlite.Open(p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// TestTwoProcesses opens the same file twice, as two keyhold processes
// would, and writes from both at once: busy_timeout and Update's retries
// must let every write through.
func TestTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	a, b := open(t, path), open(t, path)
	ctx := context.Background()
	if err := a.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t"}); err != nil {
			return err
		}
		return tx.CreateEnvironment(ctx, &keyhold.Environment{ID: "e", TenantID: "t"})
	}); err != nil {
		t.Fatal(err)
	}
	const perWriter = 25
	var wg sync.WaitGroup
	errs := make(chan error, 4*perWriter)
	for w, s := range []*sqlstore.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				errs <- s.Update(ctx, func(tx keyhold.Tx) error {
					return tx.PutRow(ctx, &keyhold.RowRecord{EnvID: "e", Table: "t", ID: fmt.Sprintf("w%d-%d", w, i), Version: 1, Ciphertext: []byte("x")})
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := b.View(ctx, func(tx keyhold.Tx) error {
		rows, err := tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e"})
		if err == nil && len(rows) != 4*perWriter {
			t.Errorf("%d rows, want %d", len(rows), 4*perWriter)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDeletedBytesAreOverwritten checks secure_delete: once a row is
// replaced and deleted and the WAL is checkpointed, none of its old
// ciphertext remains in the database file.
func TestDeletedBytesAreOverwritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	s := open(t, path)
	ctx := context.Background()
	marker := func(v int) []byte { return bytes.Repeat(fmt.Appendf(nil, "OLD-CIPHERTEXT-%d|", v), 20) }
	err := s.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t"}); err != nil {
			return err
		}
		if err := tx.CreateEnvironment(ctx, &keyhold.Environment{ID: "e", TenantID: "t"}); err != nil {
			return err
		}
		return tx.PutRow(ctx, &keyhold.RowRecord{EnvID: "e", Table: "t", ID: "r", Version: 1, Ciphertext: marker(1), UpdatedAt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(tx keyhold.Tx) error{
		func(tx keyhold.Tx) error {
			return tx.PutRow(ctx, &keyhold.RowRecord{EnvID: "e", Table: "t", ID: "r", Version: 2, Ciphertext: marker(2), UpdatedAt: time.Now()})
		},
		func(tx keyhold.Tx) error { return tx.DeleteRow(ctx, "e", "t", "r") },
	} {
		if err := s.Update(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DB().ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for v := 1; v <= 2; v++ {
			if bytes.Contains(b, []byte(fmt.Sprintf("OLD-CIPHERTEXT-%d", v))) {
				t.Errorf("%s still holds version %d's ciphertext after delete and checkpoint", filepath.Base(f), v)
			}
		}
	}
}

// TestMigrationRekeyByKey: migration 0052 drops the index on data_rows'
// epoch from a database holding rows, which keep their contents, counts
// and re-key walk.
func TestMigrationRekeyByKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	s := open(t, path)
	ids := storetest.SeedRekeyRows(t, s, 2, 1500)
	// The schema as it was before 0052.
	for _, q := range []string{
		"CREATE INDEX data_rows_by_epoch ON data_rows (env_id, epoch, table_name, id)",
		"DELETE FROM schema_migrations WHERE version = 52",
	} {
		if _, err := s.DB().ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if got := storetest.EpochIndexes(t, s); len(got) != 1 {
		t.Fatalf("before the migration, indexes holding epoch: %v", got)
	}
	s.Close()
	s = open(t, path)
	if got := storetest.EpochIndexes(t, s); len(got) != 0 {
		t.Errorf("after the migration, indexes of data_rows holding epoch: %v, want none", got)
	}
	storetest.CheckRekeyRows(t, s, ids, 1500)
}
