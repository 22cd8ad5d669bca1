package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	_ "modernc.org/sqlite" // a real database for the transaction tests

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
)

// errTransient is what the test dialect calls a retryable error.
var errTransient = errors.New("transient")

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := sqlstore.New(db, db, sqlstore.Dialect{
		Name: "test",
		Classify: func(err error) sqlstore.ErrorClass {
			if errors.Is(err, errTransient) {
				return sqlstore.ErrRetry
			}
			return sqlstore.ErrOther
		},
	})
	t.Cleanup(func() { s.Close() })
	return s
}

func TestUpdateRetries(t *testing.T) {
	s := openStore(t)
	boom := errors.New("boom")
	conflict := keyhold.Errorf(keyhold.CodeConflict, "lost")
	for _, tc := range []struct {
		name      string
		failures  int   // calls that fail before one succeeds
		fail      error // how they fail
		wantCalls int
		wantErr   error // nil: success
	}{
		{"no failure", 0, errTransient, 1, nil},
		{"transient twice", 2, errTransient, 3, nil},
		{"transient four times", 4, errTransient, 5, nil},
		{"transient always: gives up with a conflict", 100, errTransient, 5, errTransient},
		{"other error: no retry", 100, boom, 1, boom},
		{"conflict: no retry", 100, conflict, 1, conflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := s.Update(context.Background(), func(keyhold.Tx) error {
				calls++
				if calls <= tc.failures {
					return tc.fail
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Errorf("fn ran %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == nil && err != nil {
				t.Errorf("Update: %v, want success", err)
			} else if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Update: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == errTransient && keyhold.ErrorCode(err) != keyhold.CodeConflict {
				t.Errorf("Update after %d transient failures: code %s, want %s", calls, keyhold.ErrorCode(err), keyhold.CodeConflict)
			}
		})
	}
}

func TestUpdateRetryStopsWithContext(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	start := time.Now()
	err := s.Update(ctx, func(keyhold.Tx) error {
		calls++
		cancel()
		return errTransient
	})
	if calls != 1 {
		t.Errorf("fn ran %d times after the context was cancelled, want 1", calls)
	}
	if !errors.Is(err, errTransient) && !errors.Is(err, context.Canceled) {
		t.Errorf("Update: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Update took %v to notice the cancelled context", d)
	}
}

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"},
	} {
		if got := sqlstore.Rebind(tc.in); got != tc.want {
			t.Errorf("Rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoadMigrationsRefusesBadNames(t *testing.T) {
	for name, files := range map[string][]string{
		"no version":        {"init.sql"},
		"duplicate version": {"0001_a.sql", "0001_b.sql"},
		"none":              nil,
	} {
		fsys := mapFS(files)
		if _, err := sqlstore.LoadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: LoadMigrations succeeded", name)
		}
	}
	ms, err := sqlstore.LoadMigrations(mapFS([]string{"0010_c.sql", "0002_b.sql", "0001_a.sql"}), "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Version != 1 || ms[1].Version != 2 || ms[2].Version != 10 || ms[2].Name != "0010_c" {
		t.Errorf("LoadMigrations = %+v, want versions 1, 2, 10 in order", ms)
	}
}

func mapFS(names []string) fs.FS {
	m := fstest.MapFS{}
	for _, n := range names {
		m["m/"+n] = &fstest.MapFile{Data: []byte("SELECT 1;")}
	}
	return m
}
