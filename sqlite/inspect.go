package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

	"github.com/keyhold/keyhold/sqlstore"
)

// Inspection is what Inspect found in a database file.
type Inspection struct {
	// Integrity holds what PRAGMA integrity_check reported; it is empty
	// when the check answered "ok".
	Integrity []string
	// Version is the schema's last applied migration, Expected the last
	// one this build knows.
	Version, Expected int
	// Store reads the database (read-only) for further checks. Close it.
	Store *sqlstore.Store
}

// Inspect opens the database at path read-only, without migrating it, and
// runs SQLite's integrity check and a schema version check: the offline
// examination of "keyhold doctor". It never writes to the database, so it
// may run while a server uses it.
func Inspect(ctx context.Context, path string) (*Inspection, error) {
	v := url.Values{}
	v.Set("mode", "ro")
	if _, err := os.Stat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		// Cleanly closed: everything is in the file, and no process has it
		// open in WAL mode. immutable keeps SQLite from creating the -wal
		// and -shm files that reading a WAL database otherwise needs, so
		// the examination leaves the directory as it was.
		v.Set("immutable", "1")
	}
	v.Add("_pragma", "busy_timeout(5000)")
	v.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s read-only: %w", path, err)
	}
	in := &Inspection{}
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: integrity check of %s: %w", path, err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			db.Close()
			return nil, err
		}
		if s != "ok" {
			in.Integrity = append(in.Integrity, s)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: integrity check of %s: %w", path, err)
	}
	ms, err := sqlstore.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	in.Expected = ms[len(ms)-1].Version
	var version sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: reading the schema version of %s: %w", path, err)
	}
	in.Version = int(version.Int64)
	in.Store = sqlstore.New(db, db, Dialect)
	return in, nil
}
