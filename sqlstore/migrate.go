package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Migration is one step of a backend's schema, read from a file named
// NNNN_description.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads the *.sql files of dir in fsys (normally an embed.FS)
// in version order. Each file name starts with its version number and an
// underscore; versions must be unique.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q: name it NNNN_description.sql, with NNNN its version", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(base, ".sql"), SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %q and %q have the same version", ms[i-1].Name, ms[i].Name)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %q", dir)
	}
	return ms, nil
}

// Migrator is what Migrate runs on: a *sql.DB, or a *sql.Conn holding a
// lock.
type Migrator interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// Migrate applies the migrations not yet recorded in schema_migrations,
// each in its own transaction together with its record, so that a failure
// leaves the schema at the last complete step. It refuses a database that a
// newer Keyhold has migrated past the last migration it knows. Callers that
// may race another process (PostgreSQL replicas starting together) hold a
// lock around it.
func Migrate(ctx context.Context, db Migrator, d Dialect, ms []Migration) error {
	q := func(s string) string {
		if d.Numbered {
			return Rebind(s)
		}
		return s
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("%s: create schema_migrations: %w", d.Name, err)
	}
	applied, err := appliedVersions(ctx, db)
	if err != nil {
		return fmt.Errorf("%s: read schema_migrations: %w", d.Name, err)
	}
	if n := len(applied); n > 0 && len(ms) > 0 && applied[n-1] > ms[len(ms)-1].Version {
		return fmt.Errorf("%s: the database schema is at version %d, newer than this Keyhold knows (%d): run a newer Keyhold",
			d.Name, applied[n-1], ms[len(ms)-1].Version)
	}
	for _, m := range ms {
		if _, done := slices.BinarySearch(applied, m.Version); done {
			continue
		}
		if err := migrateOne(ctx, db, q, m); err != nil {
			return fmt.Errorf("%s: migration %s: %w", d.Name, m.Name, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, db Migrator) ([]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

func migrateOne(ctx context.Context, db Migrator, q func(string) string, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Another process may have applied it since appliedVersions read the
	// table: on SQLite the write transaction (BEGIN IMMEDIATE) serialises
	// this check with theirs.
	var one int
	err = tx.QueryRowContext(ctx, q(`SELECT 1 FROM schema_migrations WHERE version = ?`), m.Version).Scan(&one)
	if err == nil {
		return nil
	} else if err != sql.ErrNoRows {
		return err
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.Version, m.Name, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}
