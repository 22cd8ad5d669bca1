// Package postgres opens Keyhold's scale-out store: a PostgreSQL database
// shared by several keyhold replicas, through pgx's database/sql driver,
// behind the shared sqlstore implementation of keyhold.Store.
//
// Transactions run at REPEATABLE READ. Each one then reads one snapshot, as
// on SQLite, and a write to a row that another transaction changed after
// that snapshot fails with a serialization failure (40001), which Update
// answers by running the transaction again. Together with the store's
// version checks, two replicas can't both win a read-modify-write race.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keyhold/keyhold/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Dialect is PostgreSQL's sqlstore.Dialect.
var Dialect = sqlstore.Dialect{
	Name:       "postgres",
	Numbered:   true,
	SkipLocked: " FOR UPDATE SKIP LOCKED",
	ForShare:   " FOR SHARE",
	Arrays:     true,
	// A re-key page locks only its own rows, and most of a small page's
	// write was round trips (BEGIN, the lock check, COMMIT): one
	// statement's worth of rows (docs/benchmarks.md, issue 12).
	ResealPage: sqlstore.MaxBatchRows,
	Classify:   classify,
	ReadTx:     sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	WriteTx:    sql.TxOptions{Isolation: sql.LevelRepeatableRead},
}

func classify(err error) sqlstore.ErrorClass {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return sqlstore.ErrOther
	}
	switch e.Code {
	case "23505": // unique_violation
		return sqlstore.ErrUnique
	case "23503": // foreign_key_violation
		return sqlstore.ErrForeignKey
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return sqlstore.ErrRetry
	}
	return sqlstore.ErrOther
}

// migrationLock is the pg_advisory_lock key that serialises migrations
// across replicas: the first 8 bytes of "keyhold-migrate".
const migrationLock int64 = 0x6b6579686f6c642d

// poolConns bounds a store's connections, and every one of them is kept
// while idle (until ConnMaxIdleTime). With fewer kept idle than opened,
// each burst of more concurrent requests than that closed the extra
// connections as it ended, and the next burst connected again and, since
// pgx prepares statements per connection, prepared every statement again.
const poolConns = 20

// Open connects to the database that dsn names (a postgres:// URL or a
// key=value string, as pgx accepts) and brings its schema up to date. It
// holds a PostgreSQL advisory lock while migrating, so replicas that start
// together migrate one after the other. Close the store to release it.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	cfg, err := pgxConfig(dsn)
	if err != nil {
		return nil, err
	}
	// Statements are prepared once per connection and reused: pgx's
	// default query mode (cache_statement, 512 per connection) does that
	// for database/sql's ExecContext and QueryContext, so the store needs
	// no cache of its own here, as it does on SQLite
	// (sqlstore.CachingConnector). A DSN may still choose another
	// default_query_exec_mode, e.g. for a pooler in transaction mode.
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(poolConns)
	db.SetMaxIdleConns(poolConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", redact(cfg), err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return sqlstore.New(db, db, Dialect), nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := sqlstore.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	// A session lock, on one connection kept for the whole run: each
	// migration then still commits in its own transaction.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("postgres: migrate: take lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	return sqlstore.Migrate(ctx, conn, Dialect, ms)
}

func pgxConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, errors.New("postgres: the connection string is not valid: use postgres://user:password@host:port/database?sslmode=… or host=… user=… dbname=…")
	}
	return cfg, nil
}

// redact names the server and database without the password.
func redact(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
