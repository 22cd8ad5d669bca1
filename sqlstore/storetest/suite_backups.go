package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// backupStoreTests are the conformance tests of keyhold.BackupTx; Run runs
// them with the rest.
var backupStoreTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"BackupCopies", testBackupCopies},
	{"BackupRefusals", testBackupRefusals},
	{"DeleteBackup", testDeleteBackup},
	{"ClearEnvData", testClearEnvData},
	{"ClearEnvDataKeepsSharedGenerations", testClearEnvDataKeepsSharedGenerations},
	{"BackupEpochs", testBackupEpochs},
	{"ExpiredBackups", testExpiredBackups},
	{"ExpiredBackupsLimits", testExpiredBackupsLimits},
	{"DeleteEnvironmentDeletesBackups", testDeleteEnvironmentDeletesBackups},
	{"InsertRow", testInsertRow},
}

// far is later than any time the backup tests use.
var far = at(10000 * time.Hour)

func mkBackup(id, envID string, created, expires time.Time) *keyhold.Backup {
	return &keyhold.Backup{ID: id, EnvID: envID, TenantID: "t1", Label: "label of " + id, CreatedBy: "user-1",
		CreatedAt: created, ExpiresAt: expires}
}

// createBackup stores b and returns it as CreateBackup filled it in.
func createBackup(t *testing.T, s keyhold.Store, b *keyhold.Backup) *keyhold.Backup {
	t.Helper()
	update(t, s, func(tx keyhold.Tx) error { return tx.CreateBackup(context.Background(), b) })
	return b
}

// binRow is row with ciphertext that holds NUL and non-UTF-8 bytes, so
// that a copy that isn't byte-exact shows.
func binRow(envID, table, id string, version uint64, epoch uint32) *keyhold.RowRecord {
	r := row(envID, table, id, version, epoch)
	r.Ciphertext = append([]byte{0x00, 0xff, 0xfe, 0x80, 0x00}, r.Ciphertext...)
	return r
}

// chunkBytes is chunk seq of a generation: n bytes of every value, marked
// with the environment, generation and number.
func chunkBytes(envID, gen string, seq, n int) []byte {
	b := fmt.Appendf(nil, "%s/%s/%d:", envID, gen, seq)
	for i := len(b); i < n; i++ {
		b = append(b, byte(i*7+seq))
	}
	return b[:max(n, 0)]
}

// putFile writes a file of the given chunk sizes under generation gen the
// way the platform does (upload mark, chunks, swap), deletes the chunks of
// the generation it replaced, and returns its record.
func putFile(t *testing.T, s keyhold.Store, envID, name, gen string, version uint64, epoch uint32, sizes ...int) *keyhold.FileRecord {
	t.Helper()
	ctx := context.Background()
	f := &keyhold.FileRecord{EnvID: envID, Name: name, Generation: gen, Epoch: epoch, Version: version, Chunks: len(sizes),
		UpdatedAt: at(time.Duration(version) * time.Minute)}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: envID, Generation: gen, StartedAt: at(0)}); err != nil {
			return err
		}
		f.Size = 0
		for seq, n := range sizes {
			if err := tx.PutFileChunk(ctx, envID, gen, seq, chunkBytes(envID, gen, seq, n)); err != nil {
				return err
			}
			f.Size += int64(n)
		}
		replaced, err := tx.PutFile(ctx, f)
		if err != nil || replaced == nil {
			return err
		}
		return tx.DeleteFileChunks(ctx, envID, replaced.Generation)
	})
	return f
}

// putRows writes each row at versions 1 to r.Version, the last one as
// given.
func putRows(t *testing.T, s keyhold.Store, rows ...*keyhold.RowRecord) {
	t.Helper()
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		for _, r := range rows {
			for v := uint64(1); v < r.Version; v++ {
				if err := tx.PutRow(ctx, binRow(r.EnvID, r.Table, r.ID, v, 1)); err != nil {
					return err
				}
			}
			if err := tx.PutRow(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// fillBackupEnv gives environment envID rows in two tables at several
// versions and epochs; a file of three large chunks that replaced an
// older generation, a small one and an empty one; and an upload in
// progress. Every environment uses the same generation names, so that a
// copy that mixes environments up shows.
func fillBackupEnv(t *testing.T, s keyhold.Store, envID string) {
	t.Helper()
	putRows(t, s,
		binRow(envID, "accounts", "a1", 3, 2),
		binRow(envID, "accounts", "a2", 1, 1),
		binRow(envID, "accounts", "a3", 2, 2),
		binRow(envID, "contacts", "c1", 1, 1),
		binRow(envID, "contacts", "c2", 4, 2),
	)
	putFile(t, s, envID, "big.bin", "g-old", 1, 1, 100)
	putFile(t, s, envID, "big.bin", "g-big", 2, 1, 70000, 70000, 12345)
	putFile(t, s, envID, "notes.txt", "g-notes", 1, 2, 40)
	putFile(t, s, envID, "empty.dat", "g-empty", 1, 2)
	update(t, s, func(tx keyhold.Tx) error {
		ctx := context.Background()
		if err := tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: envID, Generation: "g-upload", StartedAt: at(time.Hour)}); err != nil {
			return err
		}
		for seq := range 2 {
			if err := tx.PutFileChunk(ctx, envID, "g-upload", seq, chunkBytes(envID, "g-upload", seq, 500)); err != nil {
				return err
			}
		}
		return nil
	})
}

// chunksOf reads every chunk of a generation, from 0 to the first missing
// one.
func chunksOf(t *testing.T, tx keyhold.Tx, envID, gen string) [][]byte {
	t.Helper()
	out := [][]byte{}
	for seq := 0; ; seq++ {
		c, err := tx.FileChunk(context.Background(), envID, gen, seq)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return out
		}
		if err != nil {
			t.Fatalf("FileChunk(%s, %s, %d): %v", envID, gen, seq, err)
		}
		out = append(out, c)
	}
}

// envState is all that an environment holds, its backups included, as the
// store's interface shows it.
type envState struct {
	Rows         []*keyhold.RowRecord
	Files        []*keyhold.FileRecord
	FileChunks   map[string][][]byte // by live generation
	Uploads      []*keyhold.FileUpload
	UploadChunks map[string][][]byte
	Backups      []*keyhold.Backup
	BackupRows   map[string][]*keyhold.RowRecord  // by backup id
	BackupFiles  map[string][]*keyhold.FileRecord // by backup id
	BackupChunks map[string][][]byte              // by backup generation
	Epochs       []uint32
}

func readEnv(t *testing.T, s keyhold.Store, envID string) *envState {
	t.Helper()
	ctx := context.Background()
	st := &envState{FileChunks: map[string][][]byte{}, UploadChunks: map[string][][]byte{},
		BackupRows: map[string][]*keyhold.RowRecord{}, BackupFiles: map[string][]*keyhold.FileRecord{}, BackupChunks: map[string][][]byte{}}
	view(t, s, func(tx keyhold.Tx) error {
		var err error
		if st.Rows, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: envID, Limit: 10000}); err != nil {
			return err
		}
		if st.Files, err = tx.ListFiles(ctx, envID); err != nil {
			return err
		}
		for _, f := range st.Files {
			st.FileChunks[f.Generation] = chunksOf(t, tx, envID, f.Generation)
		}
		ups, err := tx.StaleUploads(ctx, far)
		if err != nil {
			return err
		}
		st.Uploads = []*keyhold.FileUpload{}
		for _, u := range ups {
			if u.EnvID == envID {
				st.Uploads = append(st.Uploads, u)
				st.UploadChunks[u.Generation] = chunksOf(t, tx, envID, u.Generation)
			}
		}
		if st.Backups, err = tx.ListBackups(ctx, envID); err != nil {
			return err
		}
		for _, b := range st.Backups {
			if st.BackupRows[b.ID], err = tx.BackupRows(ctx, b.ID, "", "", 10000); err != nil {
				return err
			}
			if st.BackupFiles[b.ID], err = tx.BackupFiles(ctx, b.ID); err != nil {
				return err
			}
			for _, f := range st.BackupFiles[b.ID] {
				st.BackupChunks[f.Generation] = chunksOf(t, tx, envID, f.Generation)
			}
		}
		st.Epochs, err = tx.BackupEpochs(ctx, envID)
		return err
	})
	return st
}

// without returns st less backup id, as DeleteBackup should leave it
// (BackupEpochs aside).
func (st *envState) without(id string) *envState {
	c := *st
	c.Backups = slices.DeleteFunc(slices.Clone(st.Backups), func(b *keyhold.Backup) bool { return b.ID == id })
	c.BackupRows, c.BackupFiles, c.BackupChunks = maps.Clone(st.BackupRows), maps.Clone(st.BackupFiles), maps.Clone(st.BackupChunks)
	for _, f := range st.BackupFiles[id] {
		delete(c.BackupChunks, f.Generation)
	}
	delete(c.BackupRows, id)
	delete(c.BackupFiles, id)
	return &c
}

// backupPart is the part of st that belongs to its backups.
func (st *envState) backupPart() *envState {
	return &envState{Backups: st.Backups, BackupRows: st.BackupRows, BackupFiles: st.BackupFiles, BackupChunks: st.BackupChunks, Epochs: st.Epochs}
}

// testBackupCopies: a backup holds its environment's rows and files
// exactly as stored, reads back byte for byte (file contents through
// FileChunk under its own generations), pages in (table, id) order, and
// stays as it was when the environment's data changes.
func testBackupCopies(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	fillBackupEnv(t, s, "e1")
	fillBackupEnv(t, s, "e2")
	live := readEnv(t, s, "e1")
	other := readEnv(t, s, "e2")
	if len(live.Rows) != 5 || len(live.Files) != 3 || len(live.FileChunks["g-big"]) != 3 || len(live.FileChunks["g-old"]) != 0 || len(live.Uploads) != 1 {
		t.Fatalf("fixture: %d rows, %d files, %d chunks of g-big, %d of g-old, %d uploads; want 5, 3, 3, 0, 1",
			len(live.Rows), len(live.Files), len(live.FileChunks["g-big"]), len(live.FileChunks["g-old"]), len(live.Uploads))
	}
	var size int64
	for _, f := range live.Files {
		size += f.Size
	}

	b1 := createBackup(t, s, mkBackup("b1", "e1", at(time.Hour), at(time.Hour+7*24*time.Hour)))
	if b1.Rows != 5 || b1.Files != 3 || b1.Bytes != size {
		t.Errorf("CreateBackup filled in %d rows, %d files, %d bytes; want 5, 3, %d", b1.Rows, b1.Files, b1.Bytes, size)
	}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Backup(ctx, "b1")
		if err != nil {
			return err
		}
		equal(t, "Backup(b1)", got, b1)

		rows, err := tx.BackupRows(ctx, "b1", "", "", 0)
		if err != nil {
			return err
		}
		equal(t, "BackupRows(b1)", rows, live.Rows)
		for _, tc := range []struct {
			name                string
			afterTable, afterID string
			limit               int
			want                []*keyhold.RowRecord
		}{
			{"first page", "", "", 2, live.Rows[:2]},
			{"second page", live.Rows[1].Table, live.Rows[1].ID, 2, live.Rows[2:4]},
			{"last page", live.Rows[3].Table, live.Rows[3].ID, 2, live.Rows[4:]},
			{"after the last", live.Rows[4].Table, live.Rows[4].ID, 2, []*keyhold.RowRecord{}},
			{"after a table", "accounts", "~", 0, live.Rows[3:]},
			{"from a table", "contacts", "", 0, live.Rows[3:]},
		} {
			got, err := tx.BackupRows(ctx, "b1", tc.afterTable, tc.afterID, tc.limit)
			if err != nil {
				return err
			}
			equal(t, "BackupRows(b1, "+tc.name+")", got, tc.want)
		}

		files, err := tx.BackupFiles(ctx, "b1")
		if err != nil {
			return err
		}
		if len(files) != len(live.Files) {
			t.Fatalf("BackupFiles(b1) = %s, want %d files", show(files), len(live.Files))
		}
		gens := map[string]bool{}
		for i, f := range files {
			lf := live.Files[i]
			want := *lf
			want.Generation = f.Generation
			equal(t, "BackupFiles(b1)["+lf.Name+"]", f, &want)
			if _, used := live.FileChunks[f.Generation]; used || f.Generation == "g-upload" || f.Generation == "g-old" || gens[f.Generation] {
				t.Errorf("backup file %s has generation %q, which something else uses", f.Name, f.Generation)
			}
			gens[f.Generation] = true
			equal(t, "chunks of backup file "+f.Name, chunksOf(t, tx, "e1", f.Generation), live.FileChunks[lf.Generation])
			// The content is the environment's: another one can't read it.
			if f.Chunks > 0 {
				_, err := tx.FileChunk(ctx, "e2", f.Generation, 0)
				wantCode(t, "FileChunk of b1's generation in e2", err, keyhold.CodeNotFound)
			}
		}
		return nil
	})
	// The other environment is untouched, and has no backups.
	equal(t, "e2 after backing up e1", readEnv(t, s, "e2"), other)
	taken := readEnv(t, s, "e1").backupPart()

	// Overwrite, add and delete live rows and files: the backup stays.
	putRows(t, s, binRow("e1", "accounts", "a9", 1, 3))
	update(t, s, func(tx keyhold.Tx) error {
		r := binRow("e1", "accounts", "a1", 4, 3)
		r.Ciphertext = []byte("overwritten")
		if err := tx.PutRow(ctx, r); err != nil {
			return err
		}
		return tx.DeleteRow(ctx, "e1", "contacts", "c1")
	})
	newBig := putFile(t, s, "e1", "big.bin", "g-big2", 3, 3, 999, 1)
	if _, err := deleteFile(s, "e1", "notes.txt"); err != nil {
		t.Fatal(err)
	}
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.FileChunk(ctx, "e1", "g-big", 0)
		wantCode(t, "FileChunk of the replaced live generation", err, keyhold.CodeNotFound)
		return nil
	})
	equal(t, "backups after the live data changed", readEnv(t, s, "e1").backupPart(), taken)

	// Later backups: the current data; newest first, ties by id.
	b2 := createBackup(t, s, mkBackup("b2", "e1", at(2*time.Hour), at(time.Hour+7*24*time.Hour)))
	b3 := createBackup(t, s, mkBackup("b3", "e1", at(2*time.Hour), at(time.Hour+7*24*time.Hour)))
	if b2.Rows != 5 || b2.Files != 2 || b2.Bytes != newBig.Size {
		t.Errorf("second backup: %d rows, %d files, %d bytes; want 5, 2, %d", b2.Rows, b2.Files, b2.Bytes, newBig.Size)
	}
	after := readEnv(t, s, "e1")
	equal(t, "ListBackups(e1)", after.Backups, []*keyhold.Backup{b3, b2, b1})
	equal(t, "b2's rows", after.BackupRows["b2"], after.Rows)
	equal(t, "b3's rows", after.BackupRows["b3"], after.Rows)
	equal(t, "b1 after later backups", after.BackupRows["b1"], taken.BackupRows["b1"])
	for i, f := range after.BackupFiles["b2"] {
		equal(t, "chunks of b2's "+f.Name, after.BackupChunks[f.Generation], after.FileChunks[after.Files[i].Generation])
		if f.Generation == after.BackupFiles["b3"][i].Generation {
			t.Errorf("b2 and b3 share generation %q", f.Generation)
		}
	}
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListBackups(ctx, "e2")
		if err == nil && (l == nil || len(l) != 0) {
			t.Errorf("ListBackups(e2) = %s, want an empty, non-nil slice", show(l))
		}
		return err
	})
}

// testBackupRefusals: an unknown environment, a taken id and an unknown
// backup are refused, change nothing, and leave the transaction usable;
// an environment without data gets an empty backup.
func testBackupRefusals(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e3")
	fillBackupEnv(t, s, "e1")
	b1 := createBackup(t, s, mkBackup("b1", "e1", at(time.Hour), at(2*time.Hour)))
	before := readEnv(t, s, "e1")

	// The refusals commit: whatever they wrote would stay.
	update(t, s, func(tx keyhold.Tx) error {
		wantCode(t, "CreateBackup(unknown environment)", tx.CreateBackup(ctx, mkBackup("bx", "nope", at(0), at(time.Hour))), keyhold.CodeEnvironmentNotFound, "nope")
		dup := mkBackup("b1", "e1", at(3*time.Hour), at(4*time.Hour))
		dup.Label = "another"
		wantCode(t, "CreateBackup(id in use)", tx.CreateBackup(ctx, dup), keyhold.CodeConflict, "b1")
		_, err := tx.Backup(ctx, "missing")
		wantCode(t, "Backup(unknown)", err, keyhold.CodeBackupNotFound, "missing")
		wantCode(t, "DeleteBackup(unknown)", tx.DeleteBackup(ctx, "missing"), keyhold.CodeBackupNotFound, "missing")
		_, err = tx.BackupRows(ctx, "missing", "", "", 0)
		wantCode(t, "BackupRows(unknown)", err, keyhold.CodeBackupNotFound, "missing")
		_, err = tx.BackupFiles(ctx, "missing")
		wantCode(t, "BackupFiles(unknown)", err, keyhold.CodeBackupNotFound, "missing")
		return nil
	})
	equal(t, "e1 after the refusals", readEnv(t, s, "e1"), before)
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Backup(ctx, "bx")
		wantCode(t, "Backup of the refused backup", err, keyhold.CodeBackupNotFound, "bx")
		all, err := tx.ExpiredBackups(ctx, far, 0)
		if err == nil {
			equal(t, "every backup after the refusals", all, []*keyhold.Backup{b1})
		}
		return err
	})

	// After a refusal the transaction goes on (a failed statement would
	// abort it on PostgreSQL). An environment without data gets an empty
	// backup.
	empty := mkBackup("b3", "e3", at(time.Hour), at(2*time.Hour))
	update(t, s, func(tx keyhold.Tx) error {
		wantCode(t, "CreateBackup(unknown environment)", tx.CreateBackup(ctx, mkBackup("bx", "nope", at(0), at(time.Hour))), keyhold.CodeEnvironmentNotFound)
		wantCode(t, "CreateBackup(id in use)", tx.CreateBackup(ctx, mkBackup("b1", "e3", at(0), at(time.Hour))), keyhold.CodeConflict)
		wantCode(t, "DeleteBackup(unknown)", tx.DeleteBackup(ctx, "missing"), keyhold.CodeBackupNotFound)
		return tx.CreateBackup(ctx, empty)
	})
	if empty.Rows != 0 || empty.Files != 0 || empty.Bytes != 0 {
		t.Errorf("backup of an empty environment: %d rows, %d files, %d bytes; want none", empty.Rows, empty.Files, empty.Bytes)
	}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Backup(ctx, "b3")
		if err != nil {
			return err
		}
		equal(t, "Backup(b3)", got, empty)
		rows, err := tx.BackupRows(ctx, "b3", "", "", 0)
		if err == nil && (rows == nil || len(rows) != 0) {
			t.Errorf("BackupRows(empty backup) = %s, want an empty, non-nil slice", show(rows))
		}
		files, err2 := tx.BackupFiles(ctx, "b3")
		if err2 == nil && (files == nil || len(files) != 0) {
			t.Errorf("BackupFiles(empty backup) = %s, want an empty, non-nil slice", show(files))
		}
		epochs, err3 := tx.BackupEpochs(ctx, "e3")
		if err3 == nil && (epochs == nil || len(epochs) != 0) {
			t.Errorf("BackupEpochs(environment with an empty backup) = %v, want an empty, non-nil slice", epochs)
		}
		return firstErr(err, err2, err3)
	})
	equal(t, "e1 after backing up e3", readEnv(t, s, "e1"), before)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// testDeleteBackup: deleting a backup removes its rows, files and chunks,
// and nothing of the live data or of other backups, which may hold the
// same files; deleting it again is CodeBackupNotFound and changes nothing.
func testDeleteBackup(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	fillBackupEnv(t, s, "e1")
	fillBackupEnv(t, s, "e2")
	createBackup(t, s, mkBackup("b1", "e1", at(time.Hour), at(2*time.Hour)))
	createBackup(t, s, mkBackup("b2", "e1", at(2*time.Hour), at(3*time.Hour)))
	createBackup(t, s, mkBackup("b3", "e2", at(time.Hour), at(2*time.Hour)))
	before1, before2 := readEnv(t, s, "e1"), readEnv(t, s, "e2")
	if len(before1.BackupChunks) != 6 {
		t.Fatalf("fixture: e1's backups have %d file generations, want 6 (three files in each of b1 and b2)", len(before1.BackupChunks))
	}

	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteBackup(ctx, "b1") })
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Backup(ctx, "b1")
		wantCode(t, "Backup(deleted)", err, keyhold.CodeBackupNotFound, "b1")
		for _, f := range before1.BackupFiles["b1"] {
			_, err := tx.FileChunk(ctx, "e1", f.Generation, 0)
			wantCode(t, "FileChunk of a deleted backup's file "+f.Name, err, keyhold.CodeNotFound)
		}
		return nil
	})
	want := before1.without("b1")
	got := readEnv(t, s, "e1")
	want.Epochs = got.Epochs // testBackupEpochs checks them
	equal(t, "e1 after DeleteBackup(b1)", got, want)
	equal(t, "e2 after DeleteBackup(b1)", readEnv(t, s, "e2"), before2)

	update(t, s, func(tx keyhold.Tx) error {
		wantCode(t, "DeleteBackup(deleted)", tx.DeleteBackup(ctx, "b1"), keyhold.CodeBackupNotFound, "b1")
		return nil
	})
	equal(t, "e1 after deleting b1 again", readEnv(t, s, "e1"), got)
}

// testClearEnvData: clearing an environment deletes its rows, files and
// their chunks; its backups, its uploads in progress and other
// environments keep everything.
func testClearEnvData(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	fillBackupEnv(t, s, "e1")
	fillBackupEnv(t, s, "e2")
	createBackup(t, s, mkBackup("b1", "e1", at(time.Hour), at(2*time.Hour)))
	before1, before2 := readEnv(t, s, "e1"), readEnv(t, s, "e2")

	update(t, s, func(tx keyhold.Tx) error { return tx.ClearEnvData(ctx, "e1") })
	got := readEnv(t, s, "e1")
	want := *before1
	want.Rows, want.Files, want.FileChunks = []*keyhold.RowRecord{}, []*keyhold.FileRecord{}, map[string][][]byte{}
	equal(t, "e1 after ClearEnvData", got, &want)
	view(t, s, func(tx keyhold.Tx) error {
		for _, f := range before1.Files {
			if f.Chunks > 0 {
				_, err := tx.FileChunk(ctx, "e1", f.Generation, 0)
				wantCode(t, "FileChunk of cleared file "+f.Name, err, keyhold.CodeNotFound)
			}
		}
		_, err := tx.File(ctx, "e1", "big.bin")
		wantCode(t, "File after ClearEnvData", err, keyhold.CodeFileNotFound)
		return nil
	})
	equal(t, "e2 after clearing e1", readEnv(t, s, "e2"), before2)

	// Again, and of an unknown environment: nothing to do.
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.ClearEnvData(ctx, "e1"); err != nil {
			return err
		}
		return tx.ClearEnvData(ctx, "nope")
	})
	equal(t, "e1 cleared twice", readEnv(t, s, "e1"), got)
	equal(t, "e2 after clearing e1 twice", readEnv(t, s, "e2"), before2)
}

// testClearEnvDataKeepsSharedGenerations: should a live file name the
// generation of an upload in progress or of a backup's file, clearing the
// environment still leaves that generation's chunks to the upload or the
// backup.
func testClearEnvDataKeepsSharedGenerations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	putFile(t, s, "e1", "doc", "g-doc", 1, 1, 300, 20)
	createBackup(t, s, mkBackup("b1", "e1", at(time.Hour), at(2*time.Hour)))
	var backupGen string
	view(t, s, func(tx keyhold.Tx) error {
		fs, err := tx.BackupFiles(ctx, "b1")
		if err == nil && len(fs) != 1 {
			t.Fatalf("BackupFiles(b1) = %s, want one file", show(fs))
		}
		if err == nil {
			backupGen = fs[0].Generation
		}
		return err
	})
	update(t, s, func(tx keyhold.Tx) error {
		// The live file's generation is also being uploaded again …
		if err := tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: "e1", Generation: "g-doc", StartedAt: at(time.Hour)}); err != nil {
			return err
		}
		// … and another live file points at the backup's generation.
		_, err := tx.PutFile(ctx, &keyhold.FileRecord{EnvID: "e1", Name: "alias", Generation: backupGen, Epoch: 1, Version: 1, Size: 320, Chunks: 2, UpdatedAt: at(time.Hour)})
		return err
	})
	before := readEnv(t, s, "e1")
	if len(before.Uploads) != 1 || len(before.UploadChunks["g-doc"]) != 2 || len(before.BackupChunks[backupGen]) != 2 {
		t.Fatalf("fixture: %s", show(before))
	}
	update(t, s, func(tx keyhold.Tx) error { return tx.ClearEnvData(ctx, "e1") })
	want := *before
	want.Rows, want.Files, want.FileChunks = []*keyhold.RowRecord{}, []*keyhold.FileRecord{}, map[string][][]byte{}
	equal(t, "e1 after ClearEnvData", readEnv(t, s, "e1"), &want)
}

// testBackupEpochs: the epochs of the rows and files of an environment's
// backups, once each, ascending; not those of its live data or of other
// environments' backups.
func testBackupEpochs(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	putRows(t, s, binRow("e1", "T", "a", 1, 3), binRow("e1", "T", "b", 1, 1), binRow("e2", "T", "a", 1, 9))
	putFile(t, s, "e1", "f1", "g1", 1, 5, 10)
	putFile(t, s, "e1", "f2", "g2", 1, 3, 10)
	createBackup(t, s, mkBackup("b1", "e1", at(time.Hour), at(2*time.Hour)))
	// b2 holds only epoch 7; the live data is then under 11.
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutRow(ctx, binRow("e1", "T", "a", 2, 7)); err != nil {
			return err
		}
		return tx.DeleteRow(ctx, "e1", "T", "b")
	})
	for _, name := range []string{"f1", "f2"} {
		if _, err := deleteFile(s, "e1", name); err != nil {
			t.Fatal(err)
		}
	}
	createBackup(t, s, mkBackup("b2", "e1", at(2*time.Hour), at(3*time.Hour)))
	createBackup(t, s, mkBackup("b3", "e2", at(2*time.Hour), at(3*time.Hour)))
	putRows(t, s, binRow("e1", "T", "c", 1, 11))
	putFile(t, s, "e1", "f3", "g3", 1, 11, 10)

	epochs := func(envID string) []uint32 {
		t.Helper()
		var got []uint32
		view(t, s, func(tx keyhold.Tx) (err error) {
			got, err = tx.BackupEpochs(ctx, envID)
			return err
		})
		return got
	}
	equal(t, "BackupEpochs(e1)", epochs("e1"), []uint32{1, 3, 5, 7})
	equal(t, "BackupEpochs(e2)", epochs("e2"), []uint32{9})
	equal(t, "BackupEpochs(unknown)", epochs("nope"), []uint32{})
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteBackup(ctx, "b1") })
	equal(t, "BackupEpochs(e1) without b1", epochs("e1"), []uint32{7})
	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteBackup(ctx, "b2") })
	equal(t, "BackupEpochs(e1) without backups", epochs("e1"), []uint32{})
	equal(t, "BackupEpochs(e2) at the end", epochs("e2"), []uint32{9})
}

// testExpiredBackups: backups of every environment whose expiry is not
// after the given time, oldest expiry first (ties by id), up to the limit.
func testExpiredBackups(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	putRows(t, s, binRow("e1", "T", "a", 2, 1))
	bD := createBackup(t, s, mkBackup("bD", "e1", at(0), at(3*time.Hour)))
	bC := createBackup(t, s, mkBackup("bC", "e2", at(0), at(2*time.Hour)))
	bB := createBackup(t, s, mkBackup("bB", "e1", at(time.Minute), at(2*time.Hour)))
	bA := createBackup(t, s, mkBackup("bA", "e1", at(2*time.Minute), at(time.Hour)))
	for _, tc := range []struct {
		name   string
		before time.Time
		limit  int
		want   []*keyhold.Backup
	}{
		{"at the tie", at(2 * time.Hour), 0, []*keyhold.Backup{bA, bB, bC}},
		{"just before the tie", at(2*time.Hour - time.Nanosecond), 0, []*keyhold.Backup{bA}},
		{"just before the first", at(time.Hour - time.Nanosecond), 0, []*keyhold.Backup{}},
		{"limited", at(2 * time.Hour), 2, []*keyhold.Backup{bA, bB}},
		{"all", far, 0, []*keyhold.Backup{bA, bB, bC, bD}},
		{"negative limit means the default", far, -1, []*keyhold.Backup{bA, bB, bC, bD}},
	} {
		view(t, s, func(tx keyhold.Tx) error {
			got, err := tx.ExpiredBackups(ctx, tc.before, tc.limit)
			if err == nil {
				equal(t, "ExpiredBackups("+tc.name+")", got, tc.want)
			}
			return err
		})
	}
}

// testExpiredBackupsLimits: ExpiredBackups lists 100 by default and never
// more than 1000.
func testExpiredBackupsLimits(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	const n = 1001
	update(t, s, func(tx keyhold.Tx) error {
		for i := range n {
			if err := tx.CreateBackup(ctx, mkBackup(fmt.Sprintf("b%04d", i), "e1", at(0), at(time.Duration(i)*time.Second))); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		for _, tc := range []struct {
			limit, want int
		}{{0, 100}, {7, 7}, {1000, 1000}, {5000, 1000}} {
			got, err := tx.ExpiredBackups(ctx, far, tc.limit)
			if err != nil {
				return err
			}
			if len(got) != tc.want {
				t.Errorf("ExpiredBackups(limit %d) = %d backups, want %d", tc.limit, len(got), tc.want)
			}
			if len(got) > 0 && (got[0].ID != "b0000" || got[len(got)-1].ID != fmt.Sprintf("b%04d", len(got)-1)) {
				t.Errorf("ExpiredBackups(limit %d) = %s … %s, want the first in order", tc.limit, got[0].ID, got[len(got)-1].ID)
			}
		}
		return nil
	})
}

// testDeleteEnvironmentDeletesBackups: an environment's backups go with
// it, rows, files and chunks included (an environment created again under
// its id finds none of them); other environments' backups stay.
func testDeleteEnvironmentDeletesBackups(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	fillBackupEnv(t, s, "e1")
	fillBackupEnv(t, s, "e2")
	createBackup(t, s, mkBackup("b1", "e1", at(time.Hour), at(2*time.Hour)))
	b2 := createBackup(t, s, mkBackup("b2", "e2", at(time.Hour), at(2*time.Hour)))
	gone := readEnv(t, s, "e1")
	before2 := readEnv(t, s, "e2")

	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteEnvironment(ctx, "e1") })
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Backup(ctx, "b1")
		wantCode(t, "Backup of a deleted environment", err, keyhold.CodeBackupNotFound, "b1")
		for _, f := range gone.BackupFiles["b1"] {
			_, err := tx.FileChunk(ctx, "e1", f.Generation, 0)
			wantCode(t, "FileChunk of a deleted environment's backup", err, keyhold.CodeNotFound)
		}
		all, err := tx.ExpiredBackups(ctx, far, 0)
		if err == nil {
			equal(t, "every backup after deleting e1", all, []*keyhold.Backup{b2})
		}
		return err
	})
	equal(t, "e2 after deleting e1", readEnv(t, s, "e2"), before2)

	// Created again, e1 has nothing, and backup id b1 is free and empty.
	seedEnv(t, s, "t1", "e1")
	again := createBackup(t, s, mkBackup("b1", "e1", at(3*time.Hour), at(4*time.Hour)))
	if again.Rows != 0 || again.Files != 0 || again.Bytes != 0 {
		t.Errorf("backup of the recreated environment: %d rows, %d files, %d bytes; want none", again.Rows, again.Files, again.Bytes)
	}
	st := readEnv(t, s, "e1")
	if len(st.BackupRows["b1"]) != 0 || len(st.BackupFiles["b1"]) != 0 || len(st.BackupChunks) != 0 || len(st.Epochs) != 0 {
		t.Errorf("the recreated environment's backup holds what the deleted one had: %s", show(st))
	}
}

// testInsertRow: a restore's insert keeps the given version; an existing
// row is CodeConflict (which doesn't end the transaction) and an unknown
// environment CodeEnvironmentNotFound, neither changing anything.
func testInsertRow(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	r := binRow("e1", "T", "a", 5, 2)
	update(t, s, func(tx keyhold.Tx) error { return tx.InsertRow(ctx, r) })
	before := readEnv(t, s, "e1")
	equal(t, "rows after InsertRow", before.Rows, []*keyhold.RowRecord{r})

	update(t, s, func(tx keyhold.Tx) error {
		dup := binRow("e1", "T", "a", 1, 3)
		wantCode(t, "InsertRow(existing)", tx.InsertRow(ctx, dup), keyhold.CodeConflict, `"a"`)
		if err := tx.InsertRow(ctx, binRow("e1", "T", "z", 0, 1)); err == nil {
			t.Errorf("InsertRow(version 0) succeeded")
		}
		return nil
	})
	// An unknown environment is a foreign-key violation, which ends the
	// transaction on PostgreSQL: the caller returns the error.
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.InsertRow(ctx, binRow("nope", "T", "a", 1, 1)) })
	wantCode(t, "InsertRow(unknown environment)", err, keyhold.CodeEnvironmentNotFound, "nope")
	equal(t, "e1 after refused inserts", readEnv(t, s, "e1"), before)
	// Writes go on from the inserted version.
	putRowsAt := binRow("e1", "T", "a", 6, 2)
	update(t, s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, putRowsAt) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Row(ctx, "e1", "T", "a")
		if err == nil {
			equal(t, "row after the next write", got, putRowsAt)
		}
		rows, err2 := tx.ListRows(ctx, keyhold.RowFilter{EnvID: "nope"})
		if err2 == nil && len(rows) != 0 {
			t.Errorf("rows of an unknown environment: %s", show(rows))
		}
		return firstErr(err, err2)
	})
}
