package sqlstore

import (
	"context"
	"fmt"
)

// Probe checks, cheaply, that the database still reads and takes writes:
// it reads the schema version on the read pool, then starts a write
// transaction on the write pool, inserts a placeholder migration record
// (version 0, which no migration has) and rolls it back. A database that
// went read-only (a file system remounted read-only, a file made
// read-only under SQLite, a PostgreSQL standby or default_transaction_read_only)
// fails the insert although every read still works; nothing is ever
// committed. The caller bounds it with ctx.
func (s *Store) Probe(ctx context.Context) error {
	var v int64
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("%s: reading: %w", s.d.Name, err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: starting a write: %w", s.d.Name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (0, ?, 0) ON CONFLICT DO NOTHING`),
		"health probe, never committed"); err != nil {
		return fmt.Errorf("%s: writing: %w", s.d.Name, err)
	}
	return nil
}
