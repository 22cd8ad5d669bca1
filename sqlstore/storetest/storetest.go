// Package storetest is the conformance suite of keyhold.Store, and the
// helpers that give other packages' tests a real, throwaway store.
//
// Run checks a Store against the contract. OpenSQLite opens a fresh SQLite
// database in a temporary directory; OpenPostgres creates a fresh database
// in the PostgreSQL server that KEYHOLD_TEST_POSTGRES names (a URL of a
// superuser connection, as scripts/test.sh exports) and drops it when the
// test ends. Without KEYHOLD_TEST_POSTGRES the PostgreSQL tests skip, unless
// KEYHOLD_REQUIRE_POSTGRES=1, when they fail. ForEachBackend runs a test
// against both.
//
// The *At variants also say where the data lives, for tests that scan the
// files for plaintext: the SQLite database path (its WAL is path+"-wal"),
// and the PostgreSQL database's name and data directory
// (KEYHOLD_TEST_POSTGRES_DATADIR).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the admin connection

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlite"
)

// Environment variables that configure the PostgreSQL tests.
const (
	// EnvPostgres holds the URL of a PostgreSQL superuser connection.
	EnvPostgres = "KEYHOLD_TEST_POSTGRES"
	// EnvPostgresDataDir holds the server's data directory.
	EnvPostgresDataDir = "KEYHOLD_TEST_POSTGRES_DATADIR"
	// EnvRequirePostgres, set to 1, turns a missing EnvPostgres from a
	// skip into a failure (scripts/test.sh and CI set it).
	EnvRequirePostgres = "KEYHOLD_REQUIRE_POSTGRES"
)

// Backend is a storage backend that tests and benchmarks can open. Open
// returns a fresh, empty store, closed when the test ends; it skips or
// fails the test as OpenPostgres does when the backend isn't available.
type Backend struct {
	Name string
	Open func(t testing.TB) keyhold.Store
}

// Backends returns every backend: sqlite and postgres.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Open: OpenSQLite[testing.TB]},
		{Name: "postgres", Open: OpenPostgres[testing.TB]},
	}
}

// ForEachBackend runs fn as a subtest per backend, named after it. open
// returns a fresh, empty store each time it is called.
func ForEachBackend(t *testing.T, fn func(t *testing.T, open func(t *testing.T) keyhold.Store)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, func(t *testing.T) keyhold.Store { return b.Open(t) })
		})
	}
}

// OpenSQLite returns a fresh SQLite store in a temporary directory, closed
// when the test ends. It is generic over testing.TB so that benchmarks can
// call it, and tests can still pass it where a
// func(*testing.T) keyhold.Store is wanted (Run, fixtures).
func OpenSQLite[T testing.TB](t T) keyhold.Store {
	t.Helper()
	s, _ := OpenSQLiteAt(t)
	return s
}

// OpenSQLiteAt is OpenSQLite that also returns the database file's path
// (SQLite keeps recent writes in path+"-wal" until a checkpoint). It takes
// a testing.TB, so benchmarks can use it too.
func OpenSQLiteAt(t testing.TB) (keyhold.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyhold.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sqlite store: %v", err)
		}
	})
	return s, path
}

// OpenPostgres returns a store in a fresh PostgreSQL database, closed and
// dropped when the test ends. It skips the test if KEYHOLD_TEST_POSTGRES is
// unset (fails if KEYHOLD_REQUIRE_POSTGRES=1). Like OpenSQLite, it is
// generic over testing.TB.
func OpenPostgres[T testing.TB](t T) keyhold.Store {
	t.Helper()
	s, _ := OpenPostgresAt(t)
	return s
}

// PostgresDB describes a test database.
type PostgresDB struct {
	// DSN connects to the database.
	DSN string
	// Name is the database's name.
	Name string
	// DataDir is the server's data directory, from
	// KEYHOLD_TEST_POSTGRES_DATADIR ("" if unset).
	DataDir string
}

// OpenPostgresAt is OpenPostgres that also describes the database. It
// takes a testing.TB, so benchmarks can use it too.
func OpenPostgresAt(t testing.TB) (keyhold.Store, PostgresDB) {
	t.Helper()
	db := NewPostgresDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := postgres.Open(ctx, db.DSN)
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	// Registered after the database's cleanup, so it runs before it.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close postgres store: %v", err)
		}
	})
	return s, db
}

// NewPostgresDatabase creates an empty database, without Keyhold's schema,
// and drops it (closing any connection still open to it) when the test
// ends. It skips or fails the test as OpenPostgres does.
func NewPostgresDatabase(t testing.TB) PostgresDB {
	t.Helper()
	dsn := os.Getenv(EnvPostgres)
	if dsn == "" {
		if os.Getenv(EnvRequirePostgres) == "1" {
			t.Fatalf("%s is not set but %s=1: run the tests with scripts/test.sh, which starts a PostgreSQL server", EnvPostgres, EnvRequirePostgres)
		}
		t.Skipf("%s is not set: skipping the PostgreSQL tests (scripts/test.sh starts a server and sets it)", EnvPostgres)
	}
	admin, err := adminDB(dsn)
	if err != nil {
		t.Fatalf("connect to the PostgreSQL test server: %v", err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "keyhold_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return PostgresDB{DSN: withDatabase(dsn, name), Name: name, DataDir: os.Getenv(EnvPostgresDataDir)}
}

var admin struct {
	sync.Mutex
	dsn string
	db  *sql.DB
}

// adminDB returns the process's connection to the server's maintenance
// database, used to create and drop test databases. It stays open until
// the test binary exits.
func adminDB(dsn string) (*sql.DB, error) {
	admin.Lock()
	defer admin.Unlock()
	if admin.db != nil && admin.dsn == dsn {
		return admin.db, nil
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	admin.dsn, admin.db = dsn, db
	return db, nil
}

// withDatabase returns dsn naming database name instead.
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path = "/" + name
			return u.String()
		}
	}
	return dsn + " dbname=" + name
}
