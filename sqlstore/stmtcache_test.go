package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"

	"github.com/keyhold/keyhold/sqlstore"
)

// openCaching opens a one-connection SQLite pool through CachingConnector.
func openCaching(t *testing.T, size int) (*sql.DB, func() int64) {
	t.Helper()
	c, err := sqlite.NewConnector(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	cc := sqlstore.CachingConnector(c, size)
	db := sql.OpenDB(cc)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db, func() int64 { return sqlstore.PreparedStatements(cc) }
}

// TestStatementsPreparedOnce shows that a query run many times, in and out
// of transactions, is prepared once per connection, and that each run
// still binds its own arguments.
func TestStatementsPreparedOnce(t *testing.T) {
	ctx := context.Background()
	db, prepared := openCaching(t, 0)
	before := prepared()
	for i := range 50 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := tx.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = ?`, fmt.Sprint("k", i)).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("v", i); v != want {
			t.Fatalf("read %q for k%d, want %q: a reused statement kept another run's arguments", v, i, want)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if got := prepared() - before; got != 2 {
		t.Fatalf("prepared %d statements for 100 runs of 2 queries on one connection, want 2", got)
	}
	// A failing run (a duplicate key) leaves the statement usable.
	if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, "k0", "again"); err == nil {
		t.Fatal("a duplicate key was inserted")
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, "new", "v"); err != nil {
		t.Fatalf("the statement failed after a failed run: %v", err)
	}
}

// TestStatementInUseNotShared runs a query while rows of the same query are
// still open on the connection: the second run must not reuse (and reset)
// the first one's statement.
func TestStatementInUseNotShared(t *testing.T) {
	ctx := context.Background()
	db, _ := openCaching(t, 0)
	for i := range 3 {
		if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = `SELECT k, v FROM kv WHERE k >= ? ORDER BY k`
	outer, err := tx.QueryContext(ctx, q, "k0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var k, v string
		if err := outer.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		inner, err := tx.QueryContext(ctx, q, "k2")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for inner.Next() {
			n++
		}
		inner.Close()
		got = append(got, fmt.Sprint(k, ":", n))
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if want := "[k0:1 k1:1 k2:1]"; fmt.Sprint(got) != want {
		t.Fatalf("nested runs of one query gave %v, want %v", got, want)
	}
}

// TestStatementCacheFull shows that queries beyond the cache's size still
// run (unprepared) and give their results.
func TestStatementCacheFull(t *testing.T) {
	ctx := context.Background()
	db, prepared := openCaching(t, 2)
	before := prepared()
	for i := range 5 {
		var n int
		if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d + ?`, i), 1).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i+1 {
			t.Fatalf("query %d returned %d, want %d", i, n, i+1)
		}
	}
	// The CREATE TABLE of openCaching took one of the two places.
	if got := prepared() - before; got != 1 {
		t.Fatalf("prepared %d statements with 1 place left, want 1", got)
	}
}
