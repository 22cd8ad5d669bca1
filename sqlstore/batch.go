package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold"
)

// Batch statements: a page of rows (a re-key's, a restore's) is written
// with one statement, not one per row. With a dialect that has Arrays
// (PostgreSQL) the statement sends one array per column and unnests them,
// so its text is the same for every page size and a page costs one round
// trip. On SQLite an insert lists the page as a VALUES table, one
// placeholder per value; a re-seal runs one prepared statement per row
// (resealEach says why).

// MaxBatchRows bounds the rows of one statement, so that a SQLite
// statement stays under its limit of 32766 placeholders (seven a row).
// It is exported for the dialects' re-key page (Dialect.ResealPage).
const MaxBatchRows = 1000

// batches calls fn with consecutive slices of rs of at most MaxBatchRows.
func batches[T any](rs []T, fn func([]T) error) error {
	for len(rs) > 0 {
		n := min(len(rs), MaxBatchRows)
		if err := fn(rs[:n]); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// valuesList returns "(?, ?, …), (?, ?, …), …": rows tuples of cols
// placeholders.
func valuesList(rows, cols int) string {
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(tuple+", ", rows), ", ")
}

// ResealRows moves a page of rows to their new epoch and ciphertext, each
// only while it is at its version and fromEpoch, with one UPDATE for the
// page (PostgreSQL) or one prepared statement run per row (SQLite).
func (t *tx) ResealRows(ctx context.Context, envID string, rs []*keyhold.RowRecord, fromEpoch uint32) (int64, error) {
	var moved int64
	err := batches(rs, func(rs []*keyhold.RowRecord) error {
		tables, ids := make([]string, len(rs)), make([]string, len(rs))
		versions, epochs := make([]int64, len(rs)), make([]int64, len(rs))
		cts := make([][]byte, len(rs))
		for i, r := range rs {
			if r.EnvID != envID {
				return fmt.Errorf("sqlstore: reseal rows: row %q is of environment %q, not %q", r.ID, r.EnvID, envID)
			}
			v, err := u64Arg(r.Version)
			if err != nil {
				return err
			}
			tables[i], ids[i], versions[i], epochs[i], cts[i] = r.Table, r.ID, v, int64(r.Epoch), blob(r.Ciphertext)
		}
		var n int64
		var err error
		if t.s.d.Arrays {
			n, err = t.execN(ctx, resealRowsArrays, tables, ids, versions, epochs, cts, envID, int64(fromEpoch))
		} else {
			n, err = t.resealEach(ctx, envID, tables, ids, versions, epochs, cts, fromEpoch)
		}
		if err != nil {
			return t.fail("reseal rows", err)
		}
		moved += n
		return nil
	})
	return moved, err
}

// ResealPageRows is the dialect's re-key page, in rows.
func (t *tx) ResealPageRows() int { return t.s.d.ResealPage }

// resealRowsArrays is ResealRows on PostgreSQL, one statement per page.
// Each row is found by its key in a LATERAL subquery (which the planner
// can't turn into a join of its choosing) and then updated by its ctid. A
// plain UPDATE … FROM unnest(…) joined on the key was planned from
// data_rows' statistics: on a table not yet analyzed (rows just written or
// restored) as a scan of the whole epoch for every page
// (TestResealRowsPlan). This form is one index probe per row, with or
// without them. A row updated meanwhile has another ctid and is left
// alone.
const resealRowsArrays = `UPDATE data_rows AS d SET epoch = m.epoch, ciphertext = m.ciphertext
	FROM (SELECT x.tid, v.epoch, v.ciphertext
		FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BYTEA[]))
			AS v(table_name, id, version, epoch, ciphertext)
		CROSS JOIN LATERAL (SELECT r.ctid AS tid FROM data_rows AS r
			WHERE r.env_id = ? AND r.table_name = v.table_name AND r.id = v.id AND r.version = v.version AND r.epoch = ?
			LIMIT 1) AS x) AS m
	WHERE d.ctid = m.tid`

// resealEach is ResealRows on SQLite: one statement, prepared once for the
// page and run for each row. The multi-row forms measured slower there:
// SQLite plans an UPDATE … FROM with the target table in the outer loop
// (a scan of the environment's rows for every page, so a re-key goes
// quadratic), and an UPDATE whose new values are correlated subqueries
// over a VALUES list took four times as long as this. SQLite has no round
// trip to save; what a row costs is preparing its statement.
func (t *tx) resealEach(ctx context.Context, envID string, tables, ids []string, versions, epochs []int64, cts [][]byte, fromEpoch uint32) (int64, error) {
	stmt, err := t.tx.PrepareContext(ctx, t.s.q(`UPDATE data_rows SET epoch = ?, ciphertext = ? WHERE env_id = ? AND table_name = ? AND id = ? AND version = ? AND epoch = ?`))
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	var moved int64
	for i := range tables {
		res, err := stmt.ExecContext(ctx, epochs[i], cts[i], envID, tables[i], ids[i], versions[i], int64(fromEpoch))
		if err != nil {
			return moved, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return moved, err
		}
		moved += n
	}
	return moved, nil
}

// InsertRows stores a page of new rows with one INSERT; a row that exists
// already makes it CodeConflict.
func (t *tx) InsertRows(ctx context.Context, rs []*keyhold.RowRecord) error {
	return batches(rs, func(rs []*keyhold.RowRecord) error {
		envs, tables, ids := make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs))
		epochs, versions, updated := make([]int64, len(rs)), make([]int64, len(rs)), make([]int64, len(rs))
		cts := make([][]byte, len(rs))
		for i, r := range rs {
			if r.Version == 0 {
				return fmt.Errorf("sqlstore: insert rows: version 0 of row %q is not a valid row version (they start at 1)", r.ID)
			}
			if err := checkTimes(r.UpdatedAt); err != nil {
				return err
			}
			v, err := u64Arg(r.Version)
			if err != nil {
				return err
			}
			envs[i], tables[i], ids[i], epochs[i], versions[i], cts[i], updated[i] = r.EnvID, r.Table, r.ID, int64(r.Epoch), v, blob(r.Ciphertext), nanos(r.UpdatedAt)
		}
		var n int64
		var err error
		if t.s.d.Arrays {
			n, err = t.execN(ctx, `INSERT INTO data_rows (env_id, table_name, id, epoch, version, ciphertext, updated_at)
				SELECT * FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BYTEA[]), CAST(? AS BIGINT[]))
				ON CONFLICT DO NOTHING`, envs, tables, ids, epochs, versions, cts, updated)
		} else {
			args := make([]any, 0, 7*len(rs))
			for i := range rs {
				args = append(args, envs[i], tables[i], ids[i], epochs[i], versions[i], cts[i], updated[i])
			}
			n, err = t.execN(ctx, `INSERT INTO data_rows (env_id, table_name, id, epoch, version, ciphertext, updated_at) VALUES `+
				valuesList(len(rs), 7)+` ON CONFLICT DO NOTHING`, args...)
		}
		if err != nil {
			if t.class(err) == ErrForeignKey {
				return envNotFound(rs[0].EnvID).WithCause(err)
			}
			return t.fail("insert rows", err)
		}
		if n != int64(len(rs)) {
			return keyhold.Errorf(keyhold.CodeConflict, "%d of %d rows exist already", int64(len(rs))-n, len(rs))
		}
		return nil
	})
}
