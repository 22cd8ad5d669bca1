package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
)

// The data_rows schema a re-key needs (migration 0052): no index holds
// epoch, so that re-sealing a row rewrites its record and nothing else.

// SeedRekeyRows stores envs environments ("rk0", "rk1", …) of rows rows
// each, of 1 KiB ciphertexts: the even rows under epoch 1, the odd under
// epoch 2, as in an environment whose re-key has just begun. It returns
// the environments' ids.
func SeedRekeyRows(t testing.TB, s keyhold.Store, envs, rows int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for e := range envs {
		id := fmt.Sprintf("rk%d", e)
		ids = append(ids, id)
		if err := s.Update(ctx, func(tx keyhold.Tx) error {
			if e == 0 {
				if err := tx.CreateTenant(ctx, tenant("t-rk")); err != nil {
					return err
				}
			}
			en := env(id, "t-rk")
			en.Epoch = 2
			if err := tx.CreateEnvironment(ctx, en); err != nil {
				return err
			}
			rs := make([]*keyhold.RowRecord, rows)
			for i := range rs {
				ct := make([]byte, 1024)
				ct[0], ct[1], ct[2] = byte(e), byte(i), byte(i>>8)
				rs[i] = &keyhold.RowRecord{EnvID: id, Table: "T", ID: fmt.Sprintf("r%06d", i), Epoch: uint32(1 + i%2), Version: 1,
					Ciphertext: ct, UpdatedAt: at(0)}
			}
			return tx.InsertRows(ctx, rs)
		}); err != nil {
			t.Fatalf("seed rows: %v", err)
		}
	}
	return ids
}

// CheckRekeyRows checks that the environments SeedRekeyRows stored still
// hold exactly what it stored, and that a re-key's walk of epoch 1, in
// pages, finds exactly its rows.
func CheckRekeyRows(t testing.TB, s keyhold.Store, ids []string, rows int) {
	t.Helper()
	ctx := context.Background()
	for e, id := range ids {
		var got []*keyhold.RowRecord
		var counts []keyhold.EpochCount
		if err := s.View(ctx, func(tx keyhold.Tx) (err error) {
			if got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: id, Limit: sqlstore.MaxRowLimit}); err != nil {
				return err
			}
			counts, err = tx.EpochCounts(ctx, id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != rows {
			t.Fatalf("environment %s holds %d rows, want %d", id, len(got), rows)
		}
		for i, r := range got {
			if r.ID != fmt.Sprintf("r%06d", i) || r.Epoch != uint32(1+i%2) || r.Version != 1 || len(r.Ciphertext) != 1024 ||
				r.Ciphertext[0] != byte(e) || r.Ciphertext[1] != byte(i) || r.Ciphertext[2] != byte(i>>8) {
				t.Fatalf("environment %s, row %d: %s epoch %d version %d, ciphertext of %d bytes: not as stored", id, i, r.ID, r.Epoch, r.Version, len(r.Ciphertext))
			}
		}
		want := []keyhold.EpochCount{{Epoch: 1, Rows: int64((rows + 1) / 2)}, {Epoch: 2, Rows: int64(rows / 2)}}
		if !slices.Equal(counts, want) {
			t.Fatalf("environment %s: counts by epoch %v, want %v", id, counts, want)
		}
		var walked []string
		f := keyhold.RowFilter{EnvID: id, Epoch: 1, Limit: 100}
		for {
			var page []*keyhold.RowRecord
			if err := s.View(ctx, func(tx keyhold.Tx) (err error) { page, err = tx.ListRows(ctx, f); return err }); err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				if r.Epoch != 1 {
					t.Fatalf("environment %s: the walk of epoch 1 gave row %s of epoch %d", id, r.ID, r.Epoch)
				}
				walked = append(walked, r.ID)
			}
			if len(page) < f.Limit {
				break
			}
			f.AfterTable, f.AfterID = page[len(page)-1].Table, page[len(page)-1].ID
		}
		if len(walked) != (rows+1)/2 {
			t.Fatalf("environment %s: the walk of epoch 1 gave %d rows, want %d", id, len(walked), (rows+1)/2)
		}
		for i, w := range walked {
			if want := fmt.Sprintf("r%06d", 2*i); w != want {
				t.Fatalf("environment %s: the walk of epoch 1 gave %s as its row %d, want %s", id, w, i, want)
			}
		}
	}
}

// EpochIndexes names the indexes of data_rows that hold its epoch column:
// none, since migration 0052.
func EpochIndexes(t testing.TB, s keyhold.Store) []string {
	t.Helper()
	ss, ok := s.(*sqlstore.Store)
	if !ok {
		t.Fatalf("storetest.EpochIndexes: %T is not a *sqlstore.Store", s)
	}
	q := `SELECT DISTINCT il.name FROM pragma_index_list('data_rows') AS il, pragma_index_info(il.name) AS ii WHERE ii.name = 'epoch'`
	if ss.Dialect().Numbered {
		q = `SELECT DISTINCT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_attribute a ON a.attrelid = x.indrelid
			WHERE x.indrelid = 'data_rows'::regclass AND a.attname = 'epoch' AND a.attnum = ANY(x.indkey)`
	}
	rows, err := ss.DB().QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
