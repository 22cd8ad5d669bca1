package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// The batch statements (a re-key's and a restore's pages); cmkStoreTests
// runs them.

// testResealRows: a page moves only the rows still at their version and
// old epoch, in one call whatever its size (past one statement's rows
// too), and leaves the others, and other environments, as they were.
func testResealRows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	const many = 1500 // more than one statement's rows
	update(t, s, func(tx keyhold.Tx) error {
		for _, r := range []*keyhold.RowRecord{row("e1", "T", "a", 1, 1), row("e1", "T", "a", 2, 1), row("e1", "T", "b", 1, 1),
			row("e1", "T", "c", 1, 2), row("e2", "T", "a", 1, 1)} {
			if err := tx.PutRow(ctx, r); err != nil {
				return err
			}
		}
		for i := range many {
			if err := tx.PutRow(ctx, row("e1", "M", fmt.Sprintf("m%05d", i), 1, 1)); err != nil {
				return err
			}
		}
		return nil
	})
	moved := func(r *keyhold.RowRecord) *keyhold.RowRecord {
		c := *r
		c.Epoch, c.Ciphertext = 2, append([]byte("resealed:"), r.Ciphertext...)
		return &c
	}
	page := []*keyhold.RowRecord{
		moved(row("e1", "T", "a", 2, 1)),    // moves
		moved(row("e1", "T", "b", 3, 1)),    // a version it is not at
		moved(row("e1", "T", "c", 1, 1)),    // on the new epoch already
		moved(row("e1", "T", "gone", 1, 1)), // never written
	}
	var n int64
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.ResealRows(ctx, "e1", page, 1); return err })
	if n != 1 {
		t.Fatalf("ResealRows moved %d rows, want 1", n)
	}
	view(t, s, func(tx keyhold.Tx) error {
		for _, want := range []*keyhold.RowRecord{page[0], row("e1", "T", "b", 1, 1), row("e1", "T", "c", 1, 2), row("e2", "T", "a", 1, 1)} {
			got, err := tx.Row(ctx, want.EnvID, want.Table, want.ID)
			if err != nil {
				return err
			}
			w := *want
			w.UpdatedAt = got.UpdatedAt // a reseal keeps the time; checked below
			equal(t, "row "+want.EnvID+"/"+want.ID, got, &w)
		}
		got, err := tx.Row(ctx, "e1", "T", "a")
		if err == nil && !got.UpdatedAt.Equal(row("e1", "T", "a", 2, 1).UpdatedAt) {
			t.Errorf("a reseal changed the update time to %v", got.UpdatedAt)
		}
		return err
	})

	var all []*keyhold.RowRecord
	for i := range many {
		all = append(all, moved(row("e1", "M", fmt.Sprintf("m%05d", i), 1, 1)))
	}
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.ResealRows(ctx, "e1", all, 1); return err })
	if n != many {
		t.Fatalf("ResealRows of %d rows moved %d", many, n)
	}
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.ResealRows(ctx, "e1", all, 1); return err })
	if n != 0 {
		t.Fatalf("ResealRows again from the old epoch moved %d rows", n)
	}
	var counts []keyhold.EpochCount
	view(t, s, func(tx keyhold.Tx) (err error) { counts, err = tx.EpochCounts(ctx, "e1"); return err })
	equal(t, "e1 per epoch", counts, []keyhold.EpochCount{{Epoch: 1, Rows: 1}, {Epoch: 2, Rows: many + 2}})

	// A row of another environment is refused, and nothing moves.
	before := readEnv(t, s, "e2")
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		_, err := tx.ResealRows(ctx, "e2", []*keyhold.RowRecord{moved(row("e2", "T", "a", 1, 1)), moved(row("e1", "T", "b", 1, 1))}, 1)
		return err
	})
	if err == nil {
		t.Fatal("ResealRows took a row of another environment")
	}
	equal(t, "e2 after a refused page", readEnv(t, s, "e2"), before)
}

// testInsertRows: a page of new rows is stored at the versions given,
// across statements; a page with a row that exists is CodeConflict and,
// its transaction rolled back, stores nothing; an unknown environment is
// CodeEnvironmentNotFound.
func testInsertRows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	const many = 1200
	var page []*keyhold.RowRecord
	for i := range many {
		page = append(page, binRow("e1", "T", fmt.Sprintf("r%05d", i), uint64(i%7+1), 3))
	}
	update(t, s, func(tx keyhold.Tx) error { return tx.InsertRows(ctx, page) })
	before := readEnv(t, s, "e1")
	equal(t, "rows after InsertRows", before.Rows, page)

	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.InsertRows(ctx, []*keyhold.RowRecord{binRow("e1", "U", "new", 1, 3), binRow("e1", "T", "r00005", 9, 3)})
	})
	wantCode(t, "InsertRows with an existing row", err, keyhold.CodeConflict)
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.InsertRows(ctx, []*keyhold.RowRecord{binRow("e1", "U", "new", 1, 3), binRow("e1", "U", "zero", 0, 3)})
	})
	if err == nil {
		t.Error("InsertRows(version 0) succeeded")
	}
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.InsertRows(ctx, []*keyhold.RowRecord{binRow("nope", "T", "a", 1, 1)})
	})
	wantCode(t, "InsertRows(unknown environment)", err, keyhold.CodeEnvironmentNotFound, "nope")
	equal(t, "e1 after refused pages", readEnv(t, s, "e1"), before)
	update(t, s, func(tx keyhold.Tx) error { return tx.InsertRows(ctx, nil) })
}

// testStagedBackupRows: a staging backup starts empty; pages of rows go
// into it with their count (across statements); a page with a row it
// holds is CodeConflict and stores nothing, as is an unknown backup
// (CodeBackupNotFound); MoveBackupRows copies every row, byte for byte,
// into an environment, and refuses (CodeConflict, nothing copied) when
// one of them is there already.
func testStagedBackupRows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	st := mkBackup("stage-1", "e1", at(time.Hour), at(2*time.Hour))
	update(t, s, func(tx keyhold.Tx) error { return tx.StageBackup(ctx, st) })
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.StageBackup(ctx, mkBackup("stage-1", "e1", at(time.Hour), at(2*time.Hour)))
	})
	wantCode(t, "StageBackup with an id in use", err, keyhold.CodeConflict)
	const many = 1200 // more than one statement's rows
	var page []*keyhold.RowRecord
	for i := range many {
		page = append(page, binRow("e1", "T", fmt.Sprintf("r%05d", i), uint64(i%5+1), 4))
	}
	update(t, s, func(tx keyhold.Tx) error { return tx.InsertBackupRows(ctx, "stage-1", page[:700]) })
	update(t, s, func(tx keyhold.Tx) error { return tx.InsertBackupRows(ctx, "stage-1", page[700:]) })
	count := func() int64 {
		var b *keyhold.Backup
		view(t, s, func(tx keyhold.Tx) (err error) { b, err = tx.Backup(ctx, "stage-1"); return err })
		return b.Rows
	}
	if n := count(); n != many {
		t.Fatalf("the staging backup counts %d rows, want %d", n, many)
	}
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.InsertBackupRows(ctx, "stage-1", []*keyhold.RowRecord{binRow("e1", "U", "new", 1, 4), binRow("e1", "T", "r00003", 1, 4)})
	})
	wantCode(t, "InsertBackupRows with a row it holds", err, keyhold.CodeConflict)
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.InsertBackupRows(ctx, "nope", page[:1]) })
	wantCode(t, "InsertBackupRows(unknown backup)", err, keyhold.CodeBackupNotFound)
	if n := count(); n != many {
		t.Fatalf("after refused pages the staging backup counts %d rows, want %d", n, many)
	}

	// e2 holds one of the rows: refused, nothing copied.
	update(t, s, func(tx keyhold.Tx) error {
		return tx.InsertRows(ctx, []*keyhold.RowRecord{binRow("e2", "T", "r00007", 1, 1)})
	})
	before := readEnv(t, s, "e2")
	err = tryUpdate(s, func(tx keyhold.Tx) error { _, err := tx.MoveBackupRows(ctx, "stage-1", "e2"); return err })
	wantCode(t, "MoveBackupRows over an existing row", err, keyhold.CodeConflict)
	equal(t, "e2 after a refused move", readEnv(t, s, "e2"), before)
	_, err = func() (int64, error) {
		var n int64
		err := tryUpdate(s, func(tx keyhold.Tx) (err error) { n, err = tx.MoveBackupRows(ctx, "nope", "e2"); return err })
		return n, err
	}()
	wantCode(t, "MoveBackupRows(unknown backup)", err, keyhold.CodeBackupNotFound)

	var n int64
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.MoveBackupRows(ctx, "stage-1", "e1"); return err })
	if n != many {
		t.Fatalf("MoveBackupRows copied %d rows, want %d", n, many)
	}
	equal(t, "e1 after the move", readEnv(t, s, "e1").Rows, page)
}

// testPagedBackup: CopyBackupRows copies an environment's rows into a
// staged backup a page at a time, in key order, returning each page's last
// key and "" after the last; FinishBackup then makes the backup exactly
// the environment's rows as they are (rows changed, deleted and added
// since their page caught), with its label, times and counts. Either on
// an unknown backup is CodeBackupNotFound and changes nothing.
func testPagedBackup(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	var rows []*keyhold.RowRecord
	for i := range 25 {
		rows = append(rows, binRow("e1", "T", fmt.Sprintf("r%05d", i), 2, 4))
	}
	update(t, s, func(tx keyhold.Tx) error { return tx.InsertRows(ctx, rows) })
	update(t, s, func(tx keyhold.Tx) error {
		return tx.StageBackup(ctx, mkBackup("p1", "e1", at(time.Hour), at(2*time.Hour)))
	})
	afterT, afterID := "", ""
	var got []int64
	for range 5 {
		var n int64
		update(t, s, func(tx keyhold.Tx) (err error) {
			n, afterT, afterID, err = tx.CopyBackupRows(ctx, "p1", afterT, afterID, 10)
			return err
		})
		got = append(got, n)
		if afterT == "" && afterID == "" {
			break
		}
	}
	equal(t, "page sizes", got, []int64{10, 10, 5})
	// Meanwhile: r00003 rewritten, r00004 deleted, one row added.
	changed := append([]*keyhold.RowRecord{}, rows[:3]...)
	changed = append(changed, binRow("e1", "T", "r00003", 3, 4))
	changed = append(changed, rows[5:]...)
	changed = append(changed, binRow("e1", "U", "new", 1, 4))
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.ClearEnvData(ctx, "e1"); err != nil {
			return err
		}
		return tx.InsertRows(ctx, changed)
	})
	before := readEnv(t, s, "e1")
	err := tryUpdate(s, func(tx keyhold.Tx) error { _, _, _, err := tx.CopyBackupRows(ctx, "nope", "", "", 10); return err })
	wantCode(t, "CopyBackupRows(unknown backup)", err, keyhold.CodeBackupNotFound)
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.FinishBackup(ctx, mkBackup("nope", "e1", at(3*time.Hour), at(4*time.Hour)))
	})
	wantCode(t, "FinishBackup(unknown backup)", err, keyhold.CodeBackupNotFound)
	equal(t, "e1 after refused calls", readEnv(t, s, "e1"), before)

	fin := mkBackup("p1", "e1", at(3*time.Hour), at(4*time.Hour))
	fin.Label = "finished"
	update(t, s, func(tx keyhold.Tx) error { return tx.FinishBackup(ctx, fin) })
	if fin.Rows != 25 {
		t.Errorf("FinishBackup counts %d rows, want 25", fin.Rows)
	}
	st := readEnv(t, s, "e1")
	equal(t, "the finished backup's rows", st.BackupRows["p1"], st.Rows)
	var b *keyhold.Backup
	view(t, s, func(tx keyhold.Tx) (err error) { b, err = tx.Backup(ctx, "p1"); return err })
	if b.Label != "finished" || !b.CreatedAt.Equal(at(3*time.Hour)) || !b.ExpiresAt.Equal(at(4*time.Hour)) || b.Rows != 25 {
		t.Errorf("the finished backup %+v: want label finished, created at +3h, expiring at +4h, 25 rows", b)
	}
}
