package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
)

// Page sizes of ExpiredBackups.
const (
	DefaultBackupLimit = 100
	MaxBackupLimit     = 1000
)

// backupGenerationPrefix begins the chunk generation of every file of
// backup id: the file's content is stored under the prefix followed by the
// generation the live file had when the backup was taken. Live
// generations are UUIDs, so no data_files or file_uploads row ever names a
// backup's generation, and nothing that replaces, deletes or cleans up
// live files (PutFile's caller, DeleteFile, CleanStaleUploads) touches it.
func backupGenerationPrefix(id string) string { return "backup:" + id + ":" }

func backupNotFound(id string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeBackupNotFound, "backup %q not found: list the environment's backups for the ids it has", id)
}

const backupCols = `id, env_id, tenant_id, label, created_by, created_at, expires_at, row_count, file_count, byte_count`

func scanBackup(sc scanner) (*keyhold.Backup, error) {
	b := &keyhold.Backup{}
	err := sc.Scan(&b.ID, &b.EnvID, &b.TenantID, &b.Label, &b.CreatedBy, timeCol{&b.CreatedAt}, timeCol{&b.ExpiresAt}, &b.Rows, &b.Files, &b.Bytes)
	return b, err
}

// CreateBackup stores b with a copy of every row and file of environment
// b.EnvID, and fills in b.Rows, b.Files and b.Bytes. The copy runs in the
// database (INSERT … SELECT), inside the caller's transaction, so the
// backup is one consistent point in time and no ciphertext passes through
// the process: first the chunks of every live file, into the environment's
// file_chunks under the backup's generations (see backupGenerationPrefix);
// then the rows; then the file records, pointing at those generations.
//
// An unknown environment is CodeEnvironmentNotFound, and an id already in
// use CodeConflict; either way nothing is stored. An environment without
// data gets an empty backup.
func (t *tx) CreateBackup(ctx context.Context, b *keyhold.Backup) error {
	if b.ID == "" {
		return errors.New("sqlstore: create backup: the backup has no id")
	}
	if err := checkTimes(b.CreatedAt, b.ExpiresAt); err != nil {
		return err
	}
	// Checked first so that the answer doesn't depend on a foreign-key
	// error, which an INSERT … SELECT over no rows would never raise.
	ok, err := t.exists(ctx, `SELECT 1 FROM environments WHERE id = ?`, b.EnvID)
	if err != nil {
		return t.fail("create backup", err)
	}
	if !ok {
		return envNotFound(b.EnvID)
	}
	n, err := t.execN(ctx, `INSERT INTO backups (`+backupCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0) ON CONFLICT DO NOTHING`,
		b.ID, b.EnvID, b.TenantID, b.Label, b.CreatedBy, nanos(b.CreatedAt), nanos(b.ExpiresAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return envNotFound(b.EnvID).WithCause(err)
		}
		return t.fail("create backup", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "backup %q exists already: take the backup again with a new id", b.ID)
	}
	prefix := backupGenerationPrefix(b.ID)
	// The live generations are selected with IN rather than a join, so
	// that each chunk is copied once whatever names its generation.
	if _, err := t.exec(ctx, `INSERT INTO file_chunks (env_id, generation, seq, data)
		SELECT env_id, CAST(? AS TEXT) || generation, seq, data FROM file_chunks
		WHERE env_id = ? AND generation IN (SELECT generation FROM data_files WHERE env_id = ?)`,
		prefix, b.EnvID, b.EnvID); err != nil {
		return t.fail("create backup: copy file chunks", err)
	}
	rows, err := t.execN(ctx, `INSERT INTO backup_rows (backup_id, table_name, id, epoch, version, ciphertext, updated_at)
		SELECT CAST(? AS TEXT), table_name, id, epoch, version, ciphertext, updated_at FROM data_rows WHERE env_id = ?`,
		b.ID, b.EnvID)
	if err != nil {
		return t.fail("create backup: copy rows", err)
	}
	files, err := t.execN(ctx, `INSERT INTO backup_files (backup_id, name, generation, epoch, version, size, chunks, updated_at)
		SELECT CAST(? AS TEXT), name, CAST(? AS TEXT) || generation, epoch, version, size, chunks, updated_at FROM data_files WHERE env_id = ?`,
		b.ID, prefix, b.EnvID)
	if err != nil {
		return t.fail("create backup: copy files", err)
	}
	// SUM of a BIGINT is NUMERIC in PostgreSQL: cast it back.
	var size int64
	if err := t.queryRow(ctx, `SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM backup_files WHERE backup_id = ?`, b.ID).Scan(&size); err != nil {
		return t.fail("create backup: sum file sizes", err)
	}
	if _, err := t.exec(ctx, `UPDATE backups SET row_count = ?, file_count = ?, byte_count = ? WHERE id = ?`, rows, files, size, b.ID); err != nil {
		return t.fail("create backup", err)
	}
	b.Rows, b.Files, b.Bytes = rows, files, size
	return nil
}

// Backup returns one backup, or CodeBackupNotFound.
func (t *tx) Backup(ctx context.Context, id string) (*keyhold.Backup, error) {
	b, err := get(t, ctx, "get backup", scanBackup, `SELECT `+backupCols+` FROM backups WHERE id = ?`, id)
	if err != nil {
		return nil, notFound(err, backupNotFound(id))
	}
	return b, nil
}

// ListBackups lists an environment's backups, newest first (ties by id,
// descending); none for an unknown environment.
func (t *tx) ListBackups(ctx context.Context, envID string) ([]*keyhold.Backup, error) {
	return list(t, ctx, "list backups", scanBackup,
		`SELECT `+backupCols+` FROM backups WHERE env_id = ? ORDER BY created_at DESC, id DESC`, envID)
}

// DeleteBackup deletes a backup, its rows and files, and the chunks of its
// files' generations, or returns CodeBackupNotFound. The environment's live
// files and its other backups keep theirs: each backup's generations are
// its own.
func (t *tx) DeleteBackup(ctx context.Context, id string) error {
	envID, err := get(t, ctx, "delete backup", func(sc scanner) (string, error) {
		var s string
		err := sc.Scan(&s)
		return s, err
	}, `SELECT env_id FROM backups WHERE id = ?`, id)
	if err != nil {
		return notFound(err, backupNotFound(id))
	}
	if _, err := t.exec(ctx, `DELETE FROM file_chunks WHERE env_id = ? AND generation IN (SELECT generation FROM backup_files WHERE backup_id = ?)`, envID, id); err != nil {
		return t.fail("delete backup: delete file chunks", err)
	}
	// The foreign keys cascade; deleting explicitly as well keeps the
	// guarantee even on a database opened without foreign-key enforcement.
	for _, table := range []string{"backup_files", "backup_rows", "backup_flow_items"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE backup_id = ?`, id); err != nil {
			return t.fail("delete backup", err)
		}
	}
	if _, err := t.exec(ctx, `DELETE FROM backups WHERE id = ?`, id); err != nil {
		return t.fail("delete backup", err)
	}
	return nil
}

// ExpiredBackups lists, of every environment, up to limit backups
// (DefaultBackupLimit if 0, never more than MaxBackupLimit) whose
// ExpiresAt is not after before, oldest expiry first (ties by id).
func (t *tx) ExpiredBackups(ctx context.Context, before time.Time, limit int) ([]*keyhold.Backup, error) {
	if err := checkTimes(before); err != nil {
		return nil, err
	}
	return list(t, ctx, "list expired backups", scanBackup,
		`SELECT `+backupCols+` FROM backups WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?`,
		nanos(before), clampLimit(limit, DefaultBackupLimit, MaxBackupLimit))
}

// backupExists answers an empty listing: an empty page of a backup that
// exists, or CodeBackupNotFound.
func (t *tx) backupExists(ctx context.Context, op, id string) error {
	ok, err := t.exists(ctx, `SELECT 1 FROM backups WHERE id = ?`, id)
	if err != nil {
		return t.fail(op, err)
	}
	if !ok {
		return backupNotFound(id)
	}
	return nil
}

// BackupRows lists a backup's rows in (table, id) order: those after
// (afterTable, afterID) if either is set, at most limit of them
// (DefaultRowLimit if 0, never more than MaxRowLimit), each with the
// backup's environment as EnvID. An unknown backup is CodeBackupNotFound,
// so that a restore can't mistake a deleted backup for an empty one.
func (t *tx) BackupRows(ctx context.Context, backupID, afterTable, afterID string, limit int) ([]*keyhold.RowRecord, error) {
	conds := []string{"r.backup_id = ?"}
	args := []any{backupID}
	if afterTable != "" || afterID != "" {
		// A row-value comparison, a range of the primary key (see
		// ListRows).
		conds = append(conds, "(r.table_name, r.id) > (?, ?)")
		args = append(args, afterTable, afterID)
	}
	args = append(args, clampLimit(limit, DefaultRowLimit, MaxRowLimit))
	out, err := list(t, ctx, "list backup rows", scanRow,
		`SELECT b.env_id, r.table_name, r.id, r.epoch, r.version, r.ciphertext, r.updated_at
		FROM backup_rows r JOIN backups b ON b.id = r.backup_id`+where(conds)+` ORDER BY r.table_name, r.id LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		if err := t.backupExists(ctx, "list backup rows", backupID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// BackupFiles lists a backup's files in name order, each with the
// backup's environment as EnvID and the backup's own Generation, under
// which FileChunk reads its content. An unknown backup is
// CodeBackupNotFound.
func (t *tx) BackupFiles(ctx context.Context, backupID string) ([]*keyhold.FileRecord, error) {
	out, err := list(t, ctx, "list backup files", scanFile,
		`SELECT b.env_id, f.name, f.generation, f.epoch, f.version, f.size, f.chunks, f.updated_at
		FROM backup_files f JOIN backups b ON b.id = f.backup_id WHERE f.backup_id = ? ORDER BY f.name`, backupID)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		if err := t.backupExists(ctx, "list backup files", backupID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// BackupEpochs lists, ascending and once each, the epochs that the rows
// and files of an environment's backups are sealed under; none for an
// environment without backups.
func (t *tx) BackupEpochs(ctx context.Context, envID string) ([]uint32, error) {
	return list(t, ctx, "list backup epochs", func(sc scanner) (uint32, error) {
		var e uint32
		err := sc.Scan(u32Col{&e})
		return e, err
	}, `SELECT r.epoch FROM backup_rows r JOIN backups b ON b.id = r.backup_id WHERE b.env_id = ?
		UNION
		SELECT f.epoch FROM backup_files f JOIN backups b ON b.id = f.backup_id WHERE b.env_id = ?
		UNION
		SELECT i.epoch FROM backup_flow_items i JOIN backups b ON b.id = i.backup_id WHERE b.env_id = ? AND i.epoch <> 0
		ORDER BY 1`, envID, envID, envID)
}

// BackupEpochCounts counts an environment's backup items per epoch.
func (t *tx) BackupEpochCounts(ctx context.Context, envID string) ([]keyhold.BackupEpochCount, error) {
	return list(t, ctx, "count backup items by epoch", func(sc scanner) (keyhold.BackupEpochCount, error) {
		var c keyhold.BackupEpochCount
		err := sc.Scan(u32Col{&c.Epoch}, &c.Items, timeCol{&c.ExpiresAt})
		return c, err
	}, `SELECT x.epoch, COUNT(*), MAX(x.expires_at) FROM (
		SELECT r.epoch, b.expires_at FROM backup_rows r JOIN backups b ON b.id = r.backup_id WHERE b.env_id = ?
		UNION ALL
		SELECT f.epoch, b.expires_at FROM backup_files f JOIN backups b ON b.id = f.backup_id WHERE b.env_id = ?
		UNION ALL
		SELECT i.epoch, b.expires_at FROM backup_flow_items i JOIN backups b ON b.id = i.backup_id WHERE b.env_id = ? AND i.epoch <> 0
	) x GROUP BY x.epoch ORDER BY x.epoch`, envID, envID, envID)
}

// ClearEnvData deletes every row and file of an environment, and the
// chunks of the generations its files point at. The chunks of uploads in
// progress (generations in file_uploads) and of its backups stay, even
// were a file to name one of their generations. An unknown environment
// has nothing to clear.
func (t *tx) ClearEnvData(ctx context.Context, envID string) error {
	if _, err := t.exec(ctx, `DELETE FROM file_chunks WHERE env_id = ?
		AND generation IN (SELECT generation FROM data_files WHERE env_id = ?)
		AND generation NOT IN (SELECT generation FROM file_uploads WHERE env_id = ?)
		AND generation NOT IN (SELECT f.generation FROM backup_files f JOIN backups b ON b.id = f.backup_id WHERE b.env_id = ?)`,
		envID, envID, envID, envID); err != nil {
		return t.fail("clear environment data: delete file chunks", err)
	}
	for _, table := range []string{"data_files", "data_rows"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE env_id = ?`, envID); err != nil {
			return t.fail(fmt.Sprintf("clear environment data: delete %s", table), err)
		}
	}
	return nil
}

// envFlowTables are the tables of an environment's flows, children
// first: ClearEnvFlows and DeleteEnvironment delete them.
var envFlowTables = []string{"flow_premigration_runs", "flow_premigration_keys", "flow_runs", "flow_schedules", "flow_keys", "flows", "flow_connections"}

// ClearEnvFlows deletes an environment's flows, runs, schedules, callback
// keys, connections and pre-migration partitions (keyhold.BackupTx).
func (t *tx) ClearEnvFlows(ctx context.Context, envID string) error {
	for _, table := range envFlowTables {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE env_id = ?`, envID); err != nil {
			return t.fail(fmt.Sprintf("clear environment flows: delete %s", table), err)
		}
	}
	return nil
}

// StageBackup stores b with no items and zero counts: a restore's staging
// area (platform/restore.go). An unknown environment is
// CodeEnvironmentNotFound, an id in use CodeConflict.
func (t *tx) StageBackup(ctx context.Context, b *keyhold.Backup) error {
	if b.ID == "" {
		return errors.New("sqlstore: stage backup: the backup has no id")
	}
	if err := checkTimes(b.CreatedAt, b.ExpiresAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO backups (`+backupCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0) ON CONFLICT DO NOTHING`,
		b.ID, b.EnvID, b.TenantID, b.Label, b.CreatedBy, nanos(b.CreatedAt), nanos(b.ExpiresAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return envNotFound(b.EnvID).WithCause(err)
		}
		return t.fail("stage backup", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "backup %q exists already: stage under a new id", b.ID)
	}
	b.Rows, b.Files, b.Bytes = 0, 0, 0
	return nil
}

// InsertBackupRows adds a page of rows to a backup with one INSERT (an
// unnest of arrays on PostgreSQL, a VALUES list on SQLite: batch.go) and
// counts them into its row_count, which is how a restore knows its
// staging is complete.
func (t *tx) InsertBackupRows(ctx context.Context, backupID string, rs []*keyhold.RowRecord) error {
	if err := t.backupExists(ctx, "insert backup rows", backupID); err != nil {
		return err
	}
	return batches(rs, func(rs []*keyhold.RowRecord) error {
		tables, ids := make([]string, len(rs)), make([]string, len(rs))
		epochs, versions, updated := make([]int64, len(rs)), make([]int64, len(rs)), make([]int64, len(rs))
		cts := make([][]byte, len(rs))
		for i, r := range rs {
			if r.Version == 0 {
				return fmt.Errorf("sqlstore: insert backup rows: version 0 of row %q is not a valid row version (they start at 1)", r.ID)
			}
			if err := checkTimes(r.UpdatedAt); err != nil {
				return err
			}
			v, err := u64Arg(r.Version)
			if err != nil {
				return err
			}
			tables[i], ids[i], epochs[i], versions[i], cts[i], updated[i] = r.Table, r.ID, int64(r.Epoch), v, blob(r.Ciphertext), nanos(r.UpdatedAt)
		}
		var n int64
		var err error
		if t.s.d.Arrays {
			n, err = t.execN(ctx, `INSERT INTO backup_rows (backup_id, table_name, id, epoch, version, ciphertext, updated_at)
				SELECT CAST(? AS TEXT), * FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BYTEA[]), CAST(? AS BIGINT[]))
				ON CONFLICT DO NOTHING`, backupID, tables, ids, epochs, versions, cts, updated)
		} else {
			args := make([]any, 0, 7*len(rs))
			for i := range rs {
				args = append(args, backupID, tables[i], ids[i], epochs[i], versions[i], cts[i], updated[i])
			}
			n, err = t.execN(ctx, `INSERT INTO backup_rows (backup_id, table_name, id, epoch, version, ciphertext, updated_at) VALUES `+
				valuesList(len(rs), 7)+` ON CONFLICT DO NOTHING`, args...)
		}
		if err != nil {
			return t.fail("insert backup rows", err)
		}
		if n != int64(len(rs)) {
			return keyhold.Errorf(keyhold.CodeConflict, "%d of %d rows are in backup %s already", int64(len(rs))-n, len(rs), backupID)
		}
		if _, err := t.exec(ctx, `UPDATE backups SET row_count = row_count + ? WHERE id = ?`, n, backupID); err != nil {
			return t.fail("insert backup rows", err)
		}
		return nil
	})
}

// MoveBackupRows copies a backup's rows into an environment with one
// INSERT … SELECT in the database: no ciphertext passes through the
// process, so a restore's swap holds the write lock only for this copy.
func (t *tx) MoveBackupRows(ctx context.Context, backupID, envID string) (int64, error) {
	if err := t.backupExists(ctx, "move backup rows", backupID); err != nil {
		return 0, err
	}
	var want int64
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM backup_rows WHERE backup_id = ?`, backupID).Scan(&want); err != nil {
		return 0, t.fail("move backup rows", err)
	}
	n, err := t.execN(ctx, `INSERT INTO data_rows (env_id, table_name, id, epoch, version, ciphertext, updated_at)
		SELECT CAST(? AS TEXT), table_name, id, epoch, version, ciphertext, updated_at FROM backup_rows WHERE backup_id = ?
		ON CONFLICT DO NOTHING`, envID, backupID)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return 0, envNotFound(envID).WithCause(err)
		}
		return 0, t.fail("move backup rows", err)
	}
	if n != want {
		return 0, keyhold.Errorf(keyhold.CodeConflict, "%d of the %d rows of backup %s exist in environment %s already", want-n, want, backupID, envID)
	}
	return n, nil
}

// CopyBackupRows copies, with one INSERT … SELECT in the database, the
// next page of backup backupID's environment's live rows: up to limit of
// them (DefaultRowLimit if 0, never more than MaxRowLimit) after
// (afterTable, afterID) in (table, id) order. It adds them to the
// backup's row_count and returns how many it copied and the key of the
// last (the next page begins after it). A creating backup's page
// (platform/backups.go); no ciphertext passes through the process.
func (t *tx) CopyBackupRows(ctx context.Context, backupID, afterTable, afterID string, limit int) (int64, string, string, error) {
	envID, err := get(t, ctx, "copy backup rows", func(sc scanner) (string, error) {
		var s string
		err := sc.Scan(&s)
		return s, err
	}, `SELECT env_id FROM backups WHERE id = ?`, backupID)
	if err != nil {
		return 0, "", "", notFound(err, backupNotFound(backupID))
	}
	limit = clampLimit(limit, DefaultRowLimit, MaxRowLimit)
	// The page's last key first: the page is then a range of the primary
	// key, (after, last], copied by one statement.
	var lastTable, lastID string
	err = t.queryRow(ctx, `SELECT table_name, id FROM data_rows WHERE env_id = ? AND (table_name, id) > (?, ?)
		ORDER BY table_name, id LIMIT 1 OFFSET ?`, envID, afterTable, afterID, limit-1).Scan(&lastTable, &lastID)
	upper, args := "", []any{backupID, envID, afterTable, afterID}
	switch {
	case err == nil:
		upper = ` AND (table_name, id) <= (?, ?)`
		args = append(args, lastTable, lastID)
	case errors.Is(err, sql.ErrNoRows):
	default:
		return 0, "", "", t.fail("copy backup rows", err)
	}
	n, err := t.execN(ctx, `INSERT INTO backup_rows (backup_id, table_name, id, epoch, version, ciphertext, updated_at)
		SELECT CAST(? AS TEXT), table_name, id, epoch, version, ciphertext, updated_at FROM data_rows
		WHERE env_id = ? AND (table_name, id) > (?, ?)`+upper+` ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return 0, "", "", t.fail("copy backup rows", err)
	}
	if _, err := t.exec(ctx, `UPDATE backups SET row_count = row_count + ? WHERE id = ?`, n, backupID); err != nil {
		return 0, "", "", t.fail("copy backup rows", err)
	}
	if lastTable == "" && lastID == "" {
		return n, "", "", nil
	}
	return n, lastTable, lastID, nil
}

// FinishBackup completes backup b (b.ID's record, filled page by page by
// CopyBackupRows) as an image of its environment as of the caller's
// transaction, and stores b's Label, CreatedAt and ExpiresAt. Rows
// changed or deleted since their page was copied are caught by comparing
// every copied row with the live one (version, epoch, updated_at and
// ciphertext, all of which a write, a re-key or a restore changes): the
// backup's rows the environment no longer holds as they are are deleted,
// then the live rows the backup doesn't hold (new, changed, or in a page
// not copied) are copied. Files are copied here, as CreateBackup does.
// It fills in b.Rows, b.Files and b.Bytes; an unknown backup is
// CodeBackupNotFound.
func (t *tx) FinishBackup(ctx context.Context, b *keyhold.Backup) error {
	if err := checkTimes(b.CreatedAt, b.ExpiresAt); err != nil {
		return err
	}
	if err := t.backupExists(ctx, "finish backup", b.ID); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM backup_rows WHERE backup_id = ? AND NOT EXISTS (SELECT 1 FROM data_rows d
		WHERE d.env_id = ? AND d.table_name = backup_rows.table_name AND d.id = backup_rows.id AND d.epoch = backup_rows.epoch
		AND d.version = backup_rows.version AND d.updated_at = backup_rows.updated_at AND d.ciphertext = backup_rows.ciphertext)`,
		b.ID, b.EnvID); err != nil {
		return t.fail("finish backup: drop changed rows", err)
	}
	if _, err := t.exec(ctx, `INSERT INTO backup_rows (backup_id, table_name, id, epoch, version, ciphertext, updated_at)
		SELECT CAST(? AS TEXT), d.table_name, d.id, d.epoch, d.version, d.ciphertext, d.updated_at FROM data_rows d
		WHERE d.env_id = ? AND NOT EXISTS (SELECT 1 FROM backup_rows r WHERE r.backup_id = ? AND r.table_name = d.table_name AND r.id = d.id)`,
		b.ID, b.EnvID, b.ID); err != nil {
		return t.fail("finish backup: copy changed rows", err)
	}
	prefix := backupGenerationPrefix(b.ID)
	if _, err := t.exec(ctx, `INSERT INTO file_chunks (env_id, generation, seq, data)
		SELECT env_id, CAST(? AS TEXT) || generation, seq, data FROM file_chunks
		WHERE env_id = ? AND generation IN (SELECT generation FROM data_files WHERE env_id = ?)`,
		prefix, b.EnvID, b.EnvID); err != nil {
		return t.fail("finish backup: copy file chunks", err)
	}
	files, err := t.execN(ctx, `INSERT INTO backup_files (backup_id, name, generation, epoch, version, size, chunks, updated_at)
		SELECT CAST(? AS TEXT), name, CAST(? AS TEXT) || generation, epoch, version, size, chunks, updated_at FROM data_files WHERE env_id = ?`,
		b.ID, prefix, b.EnvID)
	if err != nil {
		return t.fail("finish backup: copy files", err)
	}
	var rows, size int64
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM backup_rows WHERE backup_id = ?`, b.ID).Scan(&rows); err != nil {
		return t.fail("finish backup: count rows", err)
	}
	if err := t.queryRow(ctx, `SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM backup_files WHERE backup_id = ?`, b.ID).Scan(&size); err != nil {
		return t.fail("finish backup: sum file sizes", err)
	}
	if _, err := t.exec(ctx, `UPDATE backups SET label = ?, created_at = ?, expires_at = ?, row_count = ?, file_count = ?, byte_count = ? WHERE id = ?`,
		b.Label, nanos(b.CreatedAt), nanos(b.ExpiresAt), rows, files, size, b.ID); err != nil {
		return t.fail("finish backup", err)
	}
	b.Rows, b.Files, b.Bytes = rows, files, size
	return nil
}
