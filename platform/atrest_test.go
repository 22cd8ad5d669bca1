package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// scanFiles reports every file under the given paths (files or
// directories) holding marker, or any of the keys.
func scanFiles(t *testing.T, paths []string, marker []byte, keys []*crypt.Key) (found []string, scanned int) {
	t.Helper()
	check := func(path string) {
		data, err := os.ReadFile(path)
		if err != nil {
			return // files come and go under a live server (temp files)
		}
		scanned++
		if bytes.Contains(data, marker) {
			found = append(found, path+": marker")
		}
		for _, k := range keys {
			if k.OccursIn(data) {
				found = append(found, path+": environment key bytes")
			}
		}
	}
	for _, p := range paths {
		filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				check(path)
			}
			return nil
		})
	}
	return found, scanned
}

// writeMarked writes rows and a multi-chunk file that carry marker, and
// returns the environment's EK.
func writeMarked(t *testing.T, f *fixture, marker []byte) *crypt.Key {
	t.Helper()
	e := f.createEnv(t, "at rest")
	doc, _ := json.Marshal(map[string]string{"secret": string(marker)})
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := f.p.PutRow(f.ctx, e.ID, "accounts", id, doc); err != nil {
			t.Fatal(err)
		}
	}
	content := bytes.Repeat(append([]byte("file body "), marker...), 3*ChunkSize/len(marker))
	if _, err := f.p.PutFile(f.ctx, e.ID, "marked.txt", bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	ek, err := f.p.envKey(context.Background(), e.ID, e.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ek.Destroy)
	return ek
}

func newMarker(t *testing.T) []byte {
	var b [12]byte
	rand.Read(b[:])
	return []byte("PLAINTEXT-MARKER-" + hex.EncodeToString(b[:]))
}

// TestNoPlaintextAtRestSQLite scans the SQLite database and its WAL.
func TestNoPlaintextAtRestSQLite(t *testing.T) {
	store, path := storetest.OpenSQLiteAt(t)
	f := newFixture(t, store)
	marker := newMarker(t)
	ek := writeMarked(t, f, marker)
	dir := filepath.Dir(path)
	found, scanned := scanFiles(t, []string{dir}, marker, []*crypt.Key{ek})
	if len(found) > 0 {
		t.Fatalf("plaintext at rest: %v", found)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL file to scan: %v", err)
	}
	// The scan must be able to fail: the marker written in the clear is found.
	if err := os.WriteFile(filepath.Join(dir, "canary"), marker, 0o600); err != nil {
		t.Fatal(err)
	}
	if found, _ := scanFiles(t, []string{dir}, marker, nil); len(found) != 1 {
		t.Fatalf("the scan does not find a planted marker: %v", found)
	}
	t.Logf("scanned %d files", scanned)
}

// TestNoPlaintextAtRestPostgres scans the PostgreSQL server's whole data
// directory, WAL included, after a checkpoint.
func TestNoPlaintextAtRestPostgres(t *testing.T) {
	store, db := storetest.OpenPostgresAt(t)
	if db.DataDir == "" {
		if os.Getenv(storetest.EnvRequirePostgres) == "1" {
			t.Fatalf("%s is not set: cannot scan the data directory", storetest.EnvPostgresDataDir)
		}
		t.Skipf("%s is not set", storetest.EnvPostgresDataDir)
	}
	f := newFixture(t, store)
	marker := newMarker(t)
	ek := writeMarked(t, f, marker)
	if _, err := store.(interface{ DB() *sql.DB }).DB().ExecContext(context.Background(), "CHECKPOINT"); err != nil {
		t.Fatalf("CHECKPOINT: %v", err)
	}
	found, scanned := scanFiles(t, []string{db.DataDir}, marker, []*crypt.Key{ek})
	if len(found) > 0 {
		t.Fatalf("plaintext at rest: %v", found)
	}
	if scanned < 100 {
		t.Fatalf("scanned only %d files: is %s the server's data directory?", scanned, db.DataDir)
	}
	t.Logf("scanned %d files", scanned)
}
