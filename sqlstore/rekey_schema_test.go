package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestRekeyReadPlans: with no index on epoch (migration 0052), the re-key's
// walk of an old epoch and the counts by epoch (the coverage report, the
// destroy step's and the key retention's "is anything left under epoch
// N") read one environment's rows by the primary key's env_id prefix,
// never the whole table, and the walk's page is read in key order, never
// sorted: a sort would read the environment's rows for every page and make
// the re-key quadratic. The table is never analyzed (rows just written, as
// after a restore or an import); on PostgreSQL the generic plan a
// prepared statement may switch to is checked too.
func TestRekeyReadPlans(t *testing.T) {
	const envs, rows, page = 3, 3000, 256
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		s := open(t).(*sqlstore.Store)
		ids := storetest.SeedRekeyRows(t, s, envs, rows)
		if got := storetest.EpochIndexes(t, s); len(got) != 0 {
			t.Fatalf("indexes of data_rows holding epoch: %v, want none", got)
		}
		pg := s.Dialect().Numbered
		walk, walkArgs := sqlstore.ListRowsQuery(keyhold.RowFilter{EnvID: ids[1], Epoch: 1, AfterTable: "T", AfterID: "r001000", Limit: page}, pg)
		first, firstArgs := sqlstore.ListRowsQuery(keyhold.RowFilter{EnvID: ids[1], Epoch: 1, Limit: page}, pg)
		for _, c := range []struct {
			name string
			q    string
			args []any
			// want is how many rows the statement returns
			want int
			// sorted says SQLite may sort the rows it reads (a GROUP
			// BY's, over the environment's rows).
			sorted bool
			// fetch is at most how many rows of data_rows it may read
			// (PostgreSQL): the page and the rows of the other epoch
			// between the page's, or the environment's rows.
			fetch int64
		}{
			{"re-key page", walk, walkArgs, page, false, 2*page + 1},
			{"re-key first page", first, firstArgs, page, false, 2*page + 1},
			{"counts by epoch", sqlstore.EpochCountsRows, []any{ids[1]}, 2, true, rows},
		} {
			t.Run(c.name, func(t *testing.T) {
				if s.Dialect().Numbered {
					for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
						checkPostgresReads(t, s, mode, sqlstore.Rebind(c.q), c.args, c.fetch)
					}
				} else {
					checkSQLitePlan(t, s, c.q, c.args, c.sorted)
				}
				// And the statement gives what it should.
				n := 0
				rs, err := s.DB().QueryContext(context.Background(), rebind(s, c.q), c.args...)
				if err != nil {
					t.Fatal(err)
				}
				for rs.Next() {
					n++
				}
				if err := rs.Err(); err != nil {
					t.Fatal(err)
				}
				rs.Close()
				if n != c.want {
					t.Fatalf("%d rows, want %d", n, c.want)
				}
			})
		}
	})
}

func rebind(s *sqlstore.Store, q string) string {
	if s.Dialect().Numbered {
		return sqlstore.Rebind(q)
	}
	return q
}

// checkSQLitePlan fails unless SQLite answers q by searching the primary
// key's index by env_id, with no scan of data_rows and (unless sorted) no
// temporary B-tree.
func checkSQLitePlan(t *testing.T, s *sqlstore.Store, q string, args []any, sorted bool) {
	t.Helper()
	rs, err := s.DB().QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var plan []string
	for rs.Next() {
		var id, parent, unused int
		var detail string
		if err := rs.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(plan, "\n")
	if !strings.Contains(all, "SEARCH data_rows USING INDEX sqlite_autoindex_data_rows_1 (env_id=?") {
		t.Fatalf("not a search of the primary key by env_id:\n%s", all)
	}
	if strings.Contains(all, "SCAN data_rows") {
		t.Fatalf("a scan of data_rows:\n%s", all)
	}
	if !sorted && strings.Contains(all, "TEMP B-TREE") {
		t.Fatalf("the page is sorted, not read in key order:\n%s", all)
	}
}

// checkPostgresReads runs q with plan_cache_mode set to mode and fails
// unless it reads data_rows by index only (no sequential scan), fetching
// at most maxFetch rows. The counts are the server's own for the
// transaction (pg_stat_xact_user_tables, before and after), whatever the
// plan's shape: a plan that reads the environment's rows after the cursor
// and sorts them fetches all of them.
func checkPostgresReads(t *testing.T, s *sqlstore.Store, mode, q string, args []any, maxFetch int64) {
	t.Helper()
	ctx := context.Background()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
		t.Fatal(err)
	}
	stats := func() (seq, fetched int64) {
		t.Helper()
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(seq_scan, 0), COALESCE(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE relname = 'data_rows'`).Scan(&seq, &fetched); err != nil {
			t.Fatal(err)
		}
		return seq, fetched
	}
	seq0, fetched0 := stats()
	// Twice: pgx prepares the statement, and a generic plan would be
	// the second run's.
	for range 2 {
		rs, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		rs.Close()
	}
	seq1, fetched1 := stats()
	if seq1 != seq0 {
		t.Fatalf("%s: %d sequential scans of data_rows, want none", mode, seq1-seq0)
	}
	if got := (fetched1 - fetched0) / 2; got > maxFetch {
		t.Fatalf("%s: %d rows of data_rows fetched a run, want at most %d", mode, got, maxFetch)
	}
}

// TestResealRowsHOT: on PostgreSQL a re-key page's UPDATE is HOT for every
// row, the new version written in the row's own heap page and no index
// entry added, because no index holds epoch and data_rows leaves room in
// its pages (migration 0052: fillfactor 50). With the former index on
// epoch none was.
func TestResealRowsHOT(t *testing.T) {
	s := storetest.OpenPostgres(t).(*sqlstore.Store)
	const rows, page = 4000, 1000
	ids := storetest.SeedRekeyRows(t, s, 1, rows)
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	tables, rids := make([]string, page), make([]string, page)
	versions, epochs := make([]int64, page), make([]int64, page)
	cts := make([][]byte, page)
	for i := range page {
		// The page of epoch-1 rows from the middle of the environment.
		tables[i], rids[i], versions[i], epochs[i], cts[i] = "T", fmt.Sprintf("r%06d", rows/4+2*i), 1, 2, make([]byte, 1024)
	}
	// The transaction's own counts, before and after (counts of earlier
	// transactions not yet flushed are in the view too).
	counts := func() (upd, hot int64) {
		t.Helper()
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(n_tup_upd, 0), COALESCE(n_tup_hot_upd, 0) FROM pg_stat_xact_user_tables WHERE relname = 'data_rows'`).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		return upd, hot
	}
	upd0, hot0 := counts()
	res, err := tx.ExecContext(ctx, sqlstore.Rebind(sqlstore.ResealRowsArrays), tables, rids, versions, epochs, cts, ids[0], int64(1))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != page {
		t.Fatalf("the page moved %d rows (%v), want %d", n, err, page)
	}
	upd, hot := counts()
	upd, hot = upd-upd0, hot-hot0
	if upd != page || hot != page {
		t.Fatalf("the page updated %d rows, %d of them HOT: want all %d HOT", upd, hot, page)
	}
}
