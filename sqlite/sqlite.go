// Package sqlite opens Keyhold's embedded store: one SQLite database file,
// through the pure-Go driver modernc.org/sqlite (no cgo, so keyhold stays a
// static binary that cross-compiles), behind the shared sqlstore
// implementation of keyhold.Store.
//
// The database is opened twice: a write pool of exactly one connection,
// whose transactions start with BEGIN IMMEDIATE, and a pool of read-only
// connections for View. SQLite allows one writer at a time anyway; queueing
// writers on one connection inside the process is fair and cheap, where
// several connections racing for the write lock would sleep and poll in
// SQLite's busy handler (and, with deferred transactions, fail with
// SQLITE_BUSY when a reader upgrades). In WAL mode readers never wait for the
// writer. See driver_bench_test.go for the measurements.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keyhold/keyhold/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Dialect is SQLite's sqlstore.Dialect.
var Dialect = sqlstore.Dialect{
	Name:     "sqlite",
	Classify: classify,
	ReadTx:   sql.TxOptions{ReadOnly: true},
	// One writer, one fsync per commit: grouping the data plane's
	// concurrent writes into one commit is what lets them scale.
	GroupCommit: true,
	// A point read is a primary-key lookup in a local file; its lock
	// waits end at busy_timeout (5 s): it needs no watcher goroutines.
	PointReadsUncancelled: true,
}

func classify(err error) sqlstore.ErrorClass {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return sqlstore.ErrOther
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return sqlstore.ErrUnique
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return sqlstore.ErrForeignKey
	}
	switch e.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return sqlstore.ErrRetry
	}
	return sqlstore.ErrOther
}

// options are Open's settings; the zero value is the production one. They
// exist for the benchmarks that justify the defaults.
type options struct {
	// synchronous overrides PRAGMA synchronous (default FULL).
	synchronous string
	// readConns is the size of the read pool (default: GOMAXPROCS, at
	// least 4).
	readConns int
	// singlePool runs reads and writes on one pool of readConns
	// connections, writers racing for the lock under busy_timeout.
	singlePool bool
}

// Open opens (creating it if needed) the SQLite database at path and brings
// its schema up to date. The path must name a file: an in-memory database
// can't be shared by the two pools. Close the store to release it.
func Open(path string) (*sqlstore.Store, error) {
	return open(path, options{})
}

func open(path string, o options) (*sqlstore.Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: database path %q is not usable: give a plain file path without '?' or '#'", path)
	}
	if o.synchronous == "" {
		// FULL: in WAL mode SQLite then syncs the WAL at every commit,
		// so a transaction acknowledged to a client survives power
		// loss. NORMAL syncs only at checkpoints and may lose the last
		// acknowledged transactions (never corrupting the file); for
		// customer data and key custody changes that isn't acceptable,
		// and FULL costs one fsync per commit (see the benchmarks).
		o.synchronous = "FULL"
	}
	if o.readConns <= 0 {
		o.readConns = max(4, runtime.GOMAXPROCS(0))
	}

	common := url.Values{}
	// busy_timeout: wait up to 5 s for a lock another connection (or
	// process) holds instead of failing at once with SQLITE_BUSY.
	common.Add("_pragma", "busy_timeout(5000)")
	// foreign_keys: SQLite ships with them off, per connection. The schema
	// relies on them to refuse orphans and cascade deletions.
	common.Add("_pragma", "foreign_keys(1)")
	// secure_delete: overwrite deleted content with zeros, so that a
	// deleted wrapped key or a re-encrypted row's old ciphertext doesn't
	// linger in the file's free space.
	common.Add("_pragma", "secure_delete(1)")

	w := cloneValues(common)
	// journal_mode WAL: readers see a snapshot and never block the writer,
	// nor it them. The setting is stored in the file.
	w.Add("_pragma", "journal_mode(WAL)")
	w.Add("_pragma", "synchronous("+o.synchronous+")")
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so
	// that it can't fail later with SQLITE_BUSY when a read turns into a
	// write.
	w.Set("_txlock", "immediate")

	write, err := openDB(path + "?" + w.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if o.singlePool {
		write.SetMaxOpenConns(o.readConns)
		write.SetMaxIdleConns(o.readConns)
	} else {
		write.SetMaxOpenConns(1)
		write.SetMaxIdleConns(1)
	}
	// Connections keep their pragmas; there is no reason to recycle them.
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	ctx := context.Background()
	if err := check(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	ms, err := sqlstore.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := sqlstore.Migrate(ctx, write, Dialect, ms); err != nil {
		write.Close()
		return nil, err
	}
	if o.singlePool {
		return sqlstore.New(write, write, Dialect), nil
	}

	r := cloneValues(common)
	// query_only: View transactions can't write, even by mistake.
	r.Add("_pragma", "query_only(1)")
	read, err := openDB(path + "?" + r.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(o.readConns)
	read.SetMaxIdleConns(o.readConns)
	read.SetConnMaxLifetime(0)
	read.SetConnMaxIdleTime(0)
	if err := read.PingContext(ctx); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return sqlstore.New(read, write, Dialect), nil
}

// openDB opens a pool whose connections keep their prepared statements
// (sqlstore.CachingConnector): the driver would otherwise parse and plan
// every statement of every transaction again.
func openDB(dsn string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(sqlstore.CachingConnector(c, 0)), nil
}

// check confirms that the pragmas the store relies on took effect.
func check(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not WAL: is the file on a file system without shared memory?", mode)
	}
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if fk != 1 {
		return errors.New("foreign keys are not enforced")
	}
	return nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}
