package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
)

// Page sizes of ListRows.
const (
	DefaultRowLimit = 1000
	MaxRowLimit     = 10000
)

// PutRow writes r if the stored version is r.Version-1: version 1 inserts a
// new row, and a later version replaces exactly its predecessor. Otherwise
// (the row exists, or is missing or at another version) it returns
// CodeConflict. An unknown environment is CodeEnvironmentNotFound.
func (t *tx) PutRow(ctx context.Context, r *keyhold.RowRecord) error {
	if r.Version == 0 {
		return fmt.Errorf("sqlstore: put row %q: version 0 is not a valid row version (they start at 1)", r.ID)
	}
	if err := checkTimes(r.UpdatedAt); err != nil {
		return err
	}
	version, err := u64Arg(r.Version)
	if err != nil {
		return err
	}
	if version == 1 {
		n, err := t.execN(ctx, `INSERT INTO data_rows (env_id, table_name, id, epoch, version, ciphertext, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT DO NOTHING`,
			r.EnvID, r.Table, r.ID, int64(r.Epoch), blob(r.Ciphertext), nanos(r.UpdatedAt))
		if err != nil {
			if t.class(err) == ErrForeignKey {
				return envNotFound(r.EnvID).WithCause(err)
			}
			return t.fail("put row", err)
		}
		if n == 0 {
			return keyhold.Errorf(keyhold.CodeConflict, "row %q in table %q was created by another request: read it again and retry", r.ID, r.Table)
		}
		return nil
	}
	n, err := t.execN(ctx, `UPDATE data_rows SET epoch = ?, version = ?, ciphertext = ?, updated_at = ? WHERE env_id = ? AND table_name = ? AND id = ? AND version = ?`,
		int64(r.Epoch), version, blob(r.Ciphertext), nanos(r.UpdatedAt), r.EnvID, r.Table, r.ID, version-1)
	if err != nil {
		return t.fail("put row", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "row %q in table %q was changed or deleted by another request since version %d was read: read it again and retry", r.ID, r.Table, version-1)
	}
	return nil
}

const rowCols = `env_id, table_name, id, epoch, version, ciphertext, updated_at`

func scanRow(sc scanner) (*keyhold.RowRecord, error) {
	r := &keyhold.RowRecord{}
	err := sc.Scan(&r.EnvID, &r.Table, &r.ID, u32Col{&r.Epoch}, u64Col{&r.Version}, &r.Ciphertext, timeCol{&r.UpdatedAt})
	return r, err
}

func rowNotFound(envID, table, id string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeRowNotFound, "row %q not found in table %q of environment %q", id, table, envID)
}

// Row returns a row, or CodeRowNotFound.
func (t *tx) Row(ctx context.Context, envID, table, id string) (*keyhold.RowRecord, error) {
	r, err := get(t, ctx, "get row", scanRow, rowQuery, envID, table, id)
	if err != nil {
		return nil, notFound(err, rowNotFound(envID, table, id))
	}
	return r, nil
}

// DeleteRow deletes a row, or returns CodeRowNotFound.
func (t *tx) DeleteRow(ctx context.Context, envID, table, id string) error {
	n, err := t.execN(ctx, `DELETE FROM data_rows WHERE env_id = ? AND table_name = ? AND id = ?`, envID, table, id)
	if err != nil {
		return t.fail("delete row", err)
	}
	if n == 0 {
		return rowNotFound(envID, table, id)
	}
	return nil
}

// ListRows returns one page of an environment's rows in (table, id) order:
// those after (f.AfterTable, f.AfterID) if either is set, of epoch f.Epoch
// if it is not 0, of table f.Table if it is set, at most f.Limit of them (DefaultRowLimit if 0, never more
// than MaxRowLimit).
func (t *tx) ListRows(ctx context.Context, f keyhold.RowFilter) ([]*keyhold.RowRecord, error) {
	q, args := listRowsQuery(f, t.s.d.Arrays)
	return list(t, ctx, "list rows", scanRow, q, args...)
}

// listRowsQuery is ListRows' statement and arguments on SQLite, or on
// PostgreSQL (pg). Every form walks the primary key (env_id, table_name,
// id) from the cursor. No index holds epoch (migration 0052), so a
// re-key's walk of an old epoch (f.Epoch) reads the environment's rows in
// key order from the cursor and skips those on other epochs, bounded by
// the environment's key prefix and never sorted: SQLite plans it so by
// itself; on PostgreSQL it is the function data_rows_of_epoch, whose
// settings leave the planner no other plan (TestRekeyReadPlans). Table
// names start with a letter, so no row is at or before ("", "").
func listRowsQuery(f keyhold.RowFilter, pg bool) (string, []any) {
	limit := clampLimit(f.Limit, DefaultRowLimit, MaxRowLimit)
	if pg && f.Epoch != 0 && f.Table == "" {
		return `SELECT ` + rowCols + ` FROM data_rows_of_epoch(?, ?, ?, ?, ?)`,
			[]any{f.EnvID, int64(f.Epoch), f.AfterTable, f.AfterID, limit}
	}
	conds := []string{"env_id = ?"}
	args := []any{f.EnvID}
	if f.Epoch != 0 {
		conds, args = append(conds, "epoch = ?"), append(args, int64(f.Epoch))
	}
	if f.Table != "" {
		conds, args = append(conds, "table_name = ?"), append(args, f.Table)
	}
	if f.AfterTable != "" || f.AfterID != "" {
		// A row-value comparison: both SQLite and PostgreSQL turn it
		// into a range of the index, so that resuming a walk costs the
		// same on its last page as on its first (an equivalent OR of
		// comparisons becomes a filter over every earlier row).
		conds = append(conds, "(table_name, id) > (?, ?)")
		args = append(args, f.AfterTable, f.AfterID)
	}
	args = append(args, limit)
	return `SELECT ` + rowCols + ` FROM data_rows` + where(conds) + ` ORDER BY table_name, id LIMIT ?`, args
}

// BeginFileUpload marks a generation as being written. An unknown
// environment is CodeEnvironmentNotFound; an existing mark, CodeConflict.
func (t *tx) BeginFileUpload(ctx context.Context, u *keyhold.FileUpload) error {
	if err := checkTimes(u.StartedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO file_uploads (env_id, generation, started_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		u.EnvID, u.Generation, nanos(u.StartedAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return envNotFound(u.EnvID).WithCause(err)
		}
		return t.fail("begin file upload", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "upload of generation %q in environment %q already started", u.Generation, u.EnvID)
	}
	return nil
}

// PutFileChunk writes (or rewrites, so that a retried upload step is
// harmless) chunk seq of a generation.
func (t *tx) PutFileChunk(ctx context.Context, envID, generation string, seq int, data []byte) error {
	if seq < 0 {
		return fmt.Errorf("sqlstore: put file chunk: negative chunk number %d", seq)
	}
	_, err := t.exec(ctx, `INSERT INTO file_chunks (env_id, generation, seq, data) VALUES (?, ?, ?, ?)
		ON CONFLICT (env_id, generation, seq) DO UPDATE SET data = excluded.data`,
		envID, generation, int64(seq), blob(data))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return envNotFound(envID).WithCause(err)
		}
		return t.fail("put file chunk", err)
	}
	return nil
}

// FileChunk returns chunk seq of a generation, or CodeNotFound.
func (t *tx) FileChunk(ctx context.Context, envID, generation string, seq int) ([]byte, error) {
	data, err := get(t, ctx, "get file chunk", func(sc scanner) ([]byte, error) {
		var b []byte
		err := sc.Scan(&b)
		return b, err
	}, `SELECT data FROM file_chunks WHERE env_id = ? AND generation = ? AND seq = ?`, envID, generation, int64(seq))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "chunk %d of file generation %q in environment %q not found", seq, generation, envID))
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// DeleteFileChunks deletes every chunk of a generation; none is not an
// error.
func (t *tx) DeleteFileChunks(ctx context.Context, envID, generation string) error {
	if _, err := t.exec(ctx, `DELETE FROM file_chunks WHERE env_id = ? AND generation = ?`, envID, generation); err != nil {
		return t.fail("delete file chunks", err)
	}
	return nil
}

const fileCols = `env_id, name, generation, epoch, version, size, chunks, updated_at`

func scanFile(sc scanner) (*keyhold.FileRecord, error) {
	f := &keyhold.FileRecord{}
	var chunks int64
	err := sc.Scan(&f.EnvID, &f.Name, &f.Generation, u32Col{&f.Epoch}, u64Col{&f.Version}, &f.Size, &chunks, timeCol{&f.UpdatedAt})
	f.Chunks = int(chunks)
	return f, err
}

func fileNotFound(envID, name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeFileNotFound, "file %q not found in environment %q", name, envID)
}

// PutFile points a file at f.Generation, deletes that generation's upload
// mark, and returns the record it replaced (nil if the file is new or
// already at f.Generation) so that the caller can delete the old chunks.
//
// The write is conditional on the record read first, so that of two
// uploads racing to replace the same file the loser gets CodeConflict
// (and keeps its upload mark, so its chunks are cleaned up) instead of
// silently orphaning the winner's chunks. An unknown environment is
// CodeEnvironmentNotFound.
func (t *tx) PutFile(ctx context.Context, f *keyhold.FileRecord) (*keyhold.FileRecord, error) {
	if err := checkTimes(f.UpdatedAt); err != nil {
		return nil, err
	}
	version, err := u64Arg(f.Version)
	if err != nil {
		return nil, err
	}
	old, err := t.File(ctx, f.EnvID, f.Name)
	if err != nil && keyhold.ErrorCode(err) != keyhold.CodeFileNotFound {
		return nil, err
	}
	var n int64
	if old == nil {
		n, err = t.execN(ctx, `INSERT INTO data_files (env_id, name, generation, epoch, version, size, chunks, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			f.EnvID, f.Name, f.Generation, int64(f.Epoch), version, f.Size, int64(f.Chunks), nanos(f.UpdatedAt))
	} else {
		n, err = t.execN(ctx, `UPDATE data_files SET generation = ?, epoch = ?, version = ?, size = ?, chunks = ?, updated_at = ? WHERE env_id = ? AND name = ? AND generation = ?`,
			f.Generation, int64(f.Epoch), version, f.Size, int64(f.Chunks), nanos(f.UpdatedAt), f.EnvID, f.Name, old.Generation)
	}
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return nil, envNotFound(f.EnvID).WithCause(err)
		}
		return nil, t.fail("put file", err)
	}
	if n == 0 {
		return nil, keyhold.Errorf(keyhold.CodeConflict, "file %q in environment %q was written by another request at the same time: retry", f.Name, f.EnvID)
	}
	if err := t.DeleteFileUpload(ctx, f.EnvID, f.Generation); err != nil {
		return nil, err
	}
	if old != nil && old.Generation == f.Generation {
		return nil, nil
	}
	return old, nil
}

// File returns a file's record, or CodeFileNotFound.
func (t *tx) File(ctx context.Context, envID, name string) (*keyhold.FileRecord, error) {
	f, err := get(t, ctx, "get file", scanFile, `SELECT `+fileCols+` FROM data_files WHERE env_id = ? AND name = ?`, envID, name)
	if err != nil {
		return nil, notFound(err, fileNotFound(envID, name))
	}
	return f, nil
}

// DeleteFile deletes a file's record and its chunks, and returns the
// record; CodeFileNotFound if there is none.
func (t *tx) DeleteFile(ctx context.Context, envID, name string) (*keyhold.FileRecord, error) {
	old, err := t.File(ctx, envID, name)
	if err != nil {
		return nil, err
	}
	n, err := t.execN(ctx, `DELETE FROM data_files WHERE env_id = ? AND name = ? AND generation = ?`, envID, name, old.Generation)
	if err != nil {
		return nil, t.fail("delete file", err)
	}
	if n == 0 {
		return nil, keyhold.Errorf(keyhold.CodeConflict, "file %q in environment %q was written by another request at the same time: retry", name, envID)
	}
	if err := t.DeleteFileChunks(ctx, envID, old.Generation); err != nil {
		return nil, err
	}
	return old, nil
}

// ListFiles returns an environment's files in name order.
func (t *tx) ListFiles(ctx context.Context, envID string) ([]*keyhold.FileRecord, error) {
	return list(t, ctx, "list files", scanFile, `SELECT `+fileCols+` FROM data_files WHERE env_id = ? ORDER BY name`, envID)
}

// StaleUploads returns the upload marks, of every environment, started
// before the given time, oldest first.
func (t *tx) StaleUploads(ctx context.Context, before time.Time) ([]*keyhold.FileUpload, error) {
	if err := checkTimes(before); err != nil {
		return nil, err
	}
	return list(t, ctx, "list stale uploads", func(sc scanner) (*keyhold.FileUpload, error) {
		u := &keyhold.FileUpload{}
		err := sc.Scan(&u.EnvID, &u.Generation, timeCol{&u.StartedAt})
		return u, err
	}, `SELECT env_id, generation, started_at FROM file_uploads WHERE started_at < ? ORDER BY started_at, env_id, generation`, nanos(before))
}

// DeleteFileUpload deletes an upload mark; none is not an error, so that
// cleaning up an abandoned upload can be retried.
func (t *tx) DeleteFileUpload(ctx context.Context, envID, generation string) error {
	if _, err := t.exec(ctx, `DELETE FROM file_uploads WHERE env_id = ? AND generation = ?`, envID, generation); err != nil {
		return t.fail("delete file upload", err)
	}
	return nil
}

// InsertRow stores a new row at r.Version, whatever it is: a restore
// writes each row at the version its backup holds. A row that exists is
// CodeConflict; an unknown environment is CodeEnvironmentNotFound.
func (t *tx) InsertRow(ctx context.Context, r *keyhold.RowRecord) error {
	if r.Version == 0 {
		return fmt.Errorf("sqlstore: insert row %q: version 0 is not a valid row version (they start at 1)", r.ID)
	}
	if err := checkTimes(r.UpdatedAt); err != nil {
		return err
	}
	version, err := u64Arg(r.Version)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO data_rows (env_id, table_name, id, epoch, version, ciphertext, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		r.EnvID, r.Table, r.ID, int64(r.Epoch), version, blob(r.Ciphertext), nanos(r.UpdatedAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return envNotFound(r.EnvID).WithCause(err)
		}
		return t.fail("insert row", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "row %q in table %q exists already", r.ID, r.Table)
	}
	return nil
}
