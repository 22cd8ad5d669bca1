package server

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// mode returns the permission bits of path.
func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// sameDir fails unless dir holds exactly the files of before, unchanged.
func sameDir(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := dirState(t, dir)
	if len(after) != len(before) {
		t.Fatalf("a refused start changed the files of %s: %d before, %d after", dir, len(before), len(after))
	}
	for p, v := range before {
		if after[p] != v {
			t.Fatalf("a refused start changed %s", p)
		}
	}
}

// TestDataDirPermissions: a data directory that already existed with a
// loose mode is narrowed to 0700, and keyhold.db, -wal and -shm are 0600
// whatever the umask; files an earlier version left readable are narrowed
// on the next start.
func TestDataDirPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if m := mode(t, dataDir); m != 0o700 {
			t.Fatalf("data directory mode %04o, want 0700", m)
		}
		for _, name := range []string{"keyhold.db", "keyhold.db-wal", "keyhold.db-shm"} {
			if m := mode(t, filepath.Join(dataDir, name)); m != 0o600 {
				t.Fatalf("%s mode %04o, want 0600", name, m)
			}
		}
	}
	srv, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	check()
	srv.stop(t)

	// An earlier version's loose modes are narrowed at the next start.
	os.Chmod(dataDir, 0o755)
	os.Chmod(filepath.Join(dataDir, "keyhold.db"), 0o644)
	srv, err = start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	check()
	srv.stop(t)
}

// TestDataDirRefusals: a data directory that others can write, or that is
// read-only, is refused with a message naming the fix, and the refused
// start changes nothing in it: no file is created, no mode changed.
func TestDataDirRefusals(t *testing.T) {
	tests := []struct {
		name string
		mode fs.FileMode
		want []string
	}{
		{name: "writable by others", mode: 0o777, want: []string{"writable by others", "mode 0777", "chmod 700"}},
		{name: "writable by the group", mode: 0o770, want: []string{"writable by others", "mode 0770", "chmod 700"}},
		{name: "read-only", mode: 0o500, want: []string{"is read-only", "mode 0500", "chmod 700", "--data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dataDir, "note"), []byte("kept"), 0o600)
			if err := os.Chmod(dataDir, tt.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(dataDir, 0o700) // so TempDir can clean up
			before := dirState(t, dataDir)
			_, err := start(t, Config{DataDir: dataDir})
			if err == nil {
				t.Fatal("the server started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), dataDir) {
					t.Fatalf("error %q does not name the directory and %q", err, w)
				}
			}
			sameDir(t, dataDir, before)
			if m := mode(t, dataDir); m != tt.mode {
				t.Fatalf("mode changed to %04o", m)
			}
		})
	}
}

// TestDataDirLocked: a second server on the SQLite directory of a running
// one refuses to start, naming the holder and the fix, and writes nothing;
// once the first stops, the directory is free again.
func TestDataDirLocked(t *testing.T) {
	dataDir := t.TempDir()
	first, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := os.ReadFile(filepath.Join(dataDir, "bootstrap.json"))
	key, _ := os.ReadFile(filepath.Join(dataDir, "master.key"))
	_, err = start(t, Config{DataDir: dataDir})
	if err == nil {
		t.Fatal("a second server started on the same data directory")
	}
	for _, w := range []string{"is in use by process", "stop it first", "--data", dataDir} {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not say %q", err, w)
		}
	}
	boot2, _ := os.ReadFile(filepath.Join(dataDir, "bootstrap.json"))
	key2, _ := os.ReadFile(filepath.Join(dataDir, "master.key"))
	if !bytes.Equal(boot, boot2) || !bytes.Equal(key, key2) {
		t.Fatal("the refused server changed bootstrap.json or master.key")
	}
	first.stop(t)
	again, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatalf("start after the first server stopped: %v", err)
	}
	again.stop(t)
}

// TestMasterKeyWithoutDatabase: a master.key whose keyhold.db is missing or
// empty (or, on PostgreSQL, whose database holds no platform) refuses to
// start; no new platform is made and bootstrap.json is not overwritten.
func TestMasterKeyWithoutDatabase(t *testing.T) {
	prepare := func(t *testing.T, cfg Config) {
		t.Helper()
		srv, err := start(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv.stop(t)
	}
	refused := func(t *testing.T, cfg Config, want string) {
		t.Helper()
		before := dirState(t, cfg.DataDir)
		_, err := start(t, cfg)
		if err == nil {
			t.Fatal("the server started a new platform beside an old master key")
		}
		for _, w := range []string{want, "move master.key and bootstrap.json out of"} {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q does not say %q", err, w)
			}
		}
		sameDir(t, cfg.DataDir, before)
	}
	t.Run("sqlite: keyhold.db missing", func(t *testing.T) {
		cfg := Config{DataDir: t.TempDir()}
		prepare(t, cfg)
		for _, name := range []string{"keyhold.db", "keyhold.db-wal", "keyhold.db-shm"} {
			os.Remove(filepath.Join(cfg.DataDir, name))
		}
		refused(t, cfg, "keyhold.db is missing")
	})
	t.Run("sqlite: keyhold.db empty", func(t *testing.T) {
		cfg := Config{DataDir: t.TempDir()}
		prepare(t, cfg)
		for _, name := range []string{"keyhold.db-wal", "keyhold.db-shm"} {
			os.Remove(filepath.Join(cfg.DataDir, name))
		}
		os.Truncate(filepath.Join(cfg.DataDir, "keyhold.db"), 0)
		refused(t, cfg, "keyhold.db is empty")
	})
	t.Run("postgres: a database without the platform", func(t *testing.T) {
		cfg := Config{DataDir: t.TempDir(), PostgresDSN: storetest.NewPostgresDatabase(t).DSN}
		prepare(t, cfg)
		cfg.PostgresDSN = storetest.NewPostgresDatabase(t).DSN // another, new database
		refused(t, cfg, "the database holds no platform")
	})
}

// TestRestartWithoutBootstrapFile: a restart says where the credentials are
// only while bootstrap.json exists; without it, it names the command that
// issues new ones.
func TestRestartWithoutBootstrapFile(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	var out bytes.Buffer
	srv, err = start(t, Config{DataDir: dataDir, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	if !strings.Contains(out.String(), "Credentials of the first start are in") {
		t.Fatalf("output %q does not point at bootstrap.json", out.String())
	}
	os.Remove(filepath.Join(dataDir, "bootstrap.json"))
	out.Reset()
	srv, err = start(t, Config{DataDir: dataDir, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	if strings.Contains(out.String(), "Credentials of the first start are in") || !strings.Contains(out.String(), "keyhold admin reset-credentials --data") {
		t.Fatalf("output %q, want no pointer at a missing bootstrap.json and the command that issues new credentials", out.String())
	}
}

// TestDataDirErrorMessages: raw permission and read-only errors from the
// file system say that it is the data directory, and how to fix it.
func TestDataDirErrorMessages(t *testing.T) {
	dir := "/srv/keyhold"
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{name: "permission denied", err: &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.EACCES},
			want: []string{"creating the data directory /srv/keyhold: permission denied", "chown", "chmod 700", "--data"}},
		{name: "read-only file system", err: &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.EROFS},
			want: []string{"read-only file system", "remount", "--data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := dataDirError(dir, "creating", tt.err).Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("%q does not say %q", msg, w)
				}
			}
			if strings.Contains(msg, "mkdir ") {
				t.Fatalf("%q still shows the raw error", msg)
			}
		})
	}
	if !errors.Is(syscall.EACCES, fs.ErrPermission) {
		t.Fatal("EACCES is not fs.ErrPermission")
	}
}
