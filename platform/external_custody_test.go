package platform

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// readEach tries every row and file of c through p, and returns those it
// could read.
func readEach(ctx context.Context, p *Platform, envID string, c *content) (read []string, errs []error) {
	keys := make([]string, 0, len(c.rows))
	for k := range c.rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		table, id, _ := strings.Cut(k, "/")
		if _, err := p.GetRow(ctx, envID, table, id); err == nil {
			read = append(read, "row "+k)
		} else {
			errs = append(errs, err)
		}
	}
	for name := range c.files {
		_, rc, err := p.OpenFile(ctx, envID, name)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if err == nil {
			read = append(read, "file "+name)
		} else {
			errs = append(errs, err)
		}
	}
	return read, errs
}

// copyDir copies the regular files of dir into a new directory.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// TestExternalCustodyProof: with the customer's grant revoked, everything
// the operator holds of the platform (its database: on SQLite, a copy of
// its directory, WAL included; on PostgreSQL, the database itself and the
// server's data directory) and its master key, given to a fresh server
// that reaches the customer's vault as the platform does, opens none of
// the CMK environment's rows or files, and the copied files hold no byte
// string of the environment's key; the platform itself, once its key
// cache's TTL has passed, can't read them either. (The same environment's
// data is read back before the revocation, so the reads can succeed.)
func TestExternalCustodyProof(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		store, path := storetest.OpenSQLiteAt(t)
		custodyProof(t, store, func(t *testing.T) (keyhold.Store, []string) {
			if _, err := store.(interface{ DB() *sql.DB }).DB().ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
				t.Fatal(err)
			}
			copied := copyDir(t, filepath.Dir(path))
			s2, err := sqlite.Open(filepath.Join(copied, filepath.Base(path)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s2.Close() })
			return s2, []string{copied}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		store, db := storetest.OpenPostgresAt(t)
		custodyProof(t, store, func(t *testing.T) (keyhold.Store, []string) {
			if _, err := store.(interface{ DB() *sql.DB }).DB().ExecContext(context.Background(), "CHECKPOINT"); err != nil {
				t.Fatalf("CHECKPOINT: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s2, err := postgres.Open(ctx, db.DSN)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s2.Close() })
			if db.DataDir == "" {
				t.Logf("%s is not set: the server's data directory is not scanned", storetest.EnvPostgresDataDir)
				return s2, nil
			}
			return s2, []string{db.DataDir}
		})
	})
}

// custodyProof runs the proof over store; takeAway gives, once the grant
// is revoked, a second store holding the platform's data and the files
// to scan for the environment's key.
func custodyProof(t *testing.T, store keyhold.Store, takeAway func(t *testing.T) (keyhold.Store, []string)) {
	ctx := context.Background()
	f := newCMKFixture(t, store, false)
	w := newExtWorld(t, f)
	stop := f.runRunner()
	assignment := w.c.grant(t)
	pol := w.policy(t, "custody", "", "cmk", "", "", "")
	env := f.managedEnv(t, "e")
	data := f.fill(t, env.ID, 12, 100, 3*ChunkSize+7)
	f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
	f.check(t, env.ID, data)
	e := f.env(t, env.ID)
	ek, err := f.p.envKey(ctx, env.ID, e.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	defer ek.Destroy()
	stop()

	// The customer revokes; the operator takes everything it holds.
	w.c.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(ctx, assignment) })
	s2, paths := takeAway(t)
	if len(paths) > 0 {
		found, scanned := scanFiles(t, paths, []byte("no marker: "+uuid.NewString()), []*crypt.Key{ek})
		if len(found) > 0 {
			t.Fatalf("the environment's key at rest: %v", found)
		}
		if scanned == 0 {
			t.Fatal("nothing to scan")
		}
		t.Logf("scanned %d files", scanned)
	}
	runner2, err := ops.New(ops.Config{Store: s2, Owner: "copy-" + uuid.NewString()[:8], LeaseTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p2, kv2, err := openCMK(ctx, s2, f.master, runner2, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p2.Close(); kv2.Close() }()
	useExternal(p2.core, w.ext)
	read, errs := readEach(f.ctx, p2, env.ID, data)
	if len(read) > 0 {
		t.Fatalf("the fresh server read %v of the CMK environment", read)
	}
	t.Logf("the fresh server read none of %d rows and files; first refusal: %s", len(errs), keyhold.ErrorCode(errs[0]))

	// The platform: its cached key serves until the TTL, then nothing.
	f.clock.Advance(DefaultKeyCacheTTL + time.Minute)
	if read, _ := readEach(f.ctx, f.p, env.ID, data); len(read) > 0 {
		t.Fatalf("the platform read %v after the key cache's TTL with the grant revoked", read)
	}
}
