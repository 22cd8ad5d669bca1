package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/keyhold/keyhold"
)

// The data directory's files that Run and the offline commands (doctor,
// admin reset-credentials) look for.
const (
	dbFile        = "keyhold.db"
	masterKeyFile = "master.key"
	lockFile      = "keyhold.lock"
	bootstrapFile = "bootstrap.json"
)

// dataDir is a data directory that Run (or an offline command) holds: it
// exists, only its owner can write it, and, on SQLite, the lock file is
// held until Close, so that a second server on the same directory refuses
// to start instead of serving beside the first with its own key cache.
type dataDir struct {
	path string
	lock *os.File // nil on PostgreSQL, where replicas share the database by design
}

// openDataDir prepares path for a server or an offline command. It creates
// the directory (0700) if needed and refuses, naming the fix, a directory
// that others can write (they could replace keyhold.db or master.key), one
// that is read-only, and, when lock is set (SQLite), one that another
// process holds. When guardDB is set it also refuses a directory whose
// master.key has lost its keyhold.db: starting would create a new, empty
// platform beside a master key that belongs to other data. A directory that
// others can merely read is narrowed to 0700. A refusal changes nothing in
// the directory.
func openDataDir(path string, lock, guardDB bool) (*dataDir, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, dataDirError(path, "creating", err)
		}
		if fi, err = os.Stat(path); err != nil {
			return nil, dataDirError(path, "reading", err)
		}
	case err != nil:
		return nil, dataDirError(path, "reading", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("the data directory %s is not a directory: give a directory with --data", path)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		return nil, fmt.Errorf("the data directory %s is writable by others (mode %04o), who could replace keyhold.db or master.key: "+
			"check its content, then run chmod 700 %s", path, perm, path)
	}
	if perm&0o200 == 0 {
		return nil, fmt.Errorf("the data directory %s is read-only (mode %04o): run chmod 700 %s, or give a writable directory with --data", path, perm, path)
	}
	if guardDB {
		if err := checkMasterKeyHasDB(path); err != nil {
			return nil, err
		}
	}
	if err := probeWritable(path); err != nil {
		return nil, err
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(path, 0o700); err != nil {
			return nil, dataDirError(path, "restricting", err)
		}
	}
	d := &dataDir{path: path}
	if lock {
		if d.lock, err = lockDataDir(path); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Close releases the directory's lock.
func (d *dataDir) Close() error {
	if d == nil || d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing the descriptor releases the flock
	d.lock = nil
	return err
}

// checkMasterKeyHasDB refuses a directory that holds master.key but no
// keyhold.db (or an empty one): the key belongs to data that is no longer
// here, and a start would make a new platform and overwrite bootstrap.json.
func checkMasterKeyHasDB(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, masterKeyFile)); err != nil {
		return nil // no master key: nothing to lose
	}
	fi, err := os.Stat(filepath.Join(dir, dbFile))
	if err == nil && fi.Size() > 0 {
		return nil
	}
	what := "is missing"
	if err == nil {
		what = "is empty"
	}
	return fmt.Errorf("%s holds master.key but %s %s: the master key belongs to a database that is not here. "+
		"Restore keyhold.db (with keyhold.db-wal, if any) from a backup; to start a new platform instead, move master.key and bootstrap.json out of %s",
		dir, dbFile, what, dir)
}

// probeWritable creates and removes a file in dir, so that a read-only file
// system or a directory owned by another user is refused at start with its
// fix, not at the first write with a raw error.
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return dataDirError(dir, "writing to", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return dataDirError(dir, "writing to", err)
	}
	return nil
}

// dataDirError turns a raw file system error on the data directory into
// one that says it is the data directory and how to fix it.
func dataDirError(dir, doing string, err error) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s the data directory %s: it is on a read-only file system: remount it read-write, or give a writable directory with --data", doing, dir)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s the data directory %s: permission denied: run keyhold as the user that owns it (chown -R that user %s, chmod 700 %s), "+
			"or give a directory of your own with --data", doing, dir, dir, dir)
	}
	return fmt.Errorf("%s the data directory %s: %w", doing, dir, err)
}

// lockDataDir takes an exclusive flock on <dir>/keyhold.lock and writes the
// process id into it, for the message a second server shows. The lock
// lasts as long as the returned file stays open; the kernel drops it when
// the process ends, so a crash leaves no stale lock.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, dataDirError(dir, "locking", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked(dir)
		}
		return nil, fmt.Errorf("locking the data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// errLocked says which process holds dir, as far as its lock file tells.
func errLocked(dir string) error {
	holder := "another process"
	if b, err := os.ReadFile(filepath.Join(dir, lockFile)); err == nil {
		if pid := strings.TrimSpace(string(b)); pid != "" {
			holder = "process " + pid
		}
	}
	return fmt.Errorf("the data directory %s is in use by %s (another keyhold serve, or an admin command): "+
		"stop it first, or give this server its own directory with --data", dir, holder)
}

// secureDBFiles makes keyhold.db and its -wal and -shm files 0600, whatever
// the umask or an earlier version left: they hold every wrapped key and
// every encrypted row. A file that doesn't exist yet is skipped.
func secureDBFiles(dir string) error {
	for _, name := range []string{dbFile, dbFile + "-wal", dbFile + "-shm"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return dataDirError(dir, "reading", err)
		}
		if fi.Mode().Perm() != 0o600 {
			if err := os.Chmod(p, 0o600); err != nil {
				return dataDirError(dir, "restricting "+name+" in", err)
			}
		}
	}
	return nil
}

// createDBFile creates an empty keyhold.db with mode 0600 if there is none,
// so that SQLite, which gives its -wal and -shm files the database's mode,
// never creates any of them readable by others.
func createDBFile(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, dbFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return dataDirError(dir, "creating keyhold.db in", err)
	}
	return f.Close()
}

// checkStoreHasPlatform refuses a store that holds no platform yet when
// <dir>/master.key exists: a new database (a keyhold.db replaced by an empty
// one, or a --postgres naming the wrong database) would otherwise start a
// new platform silently and overwrite bootstrap.json.
func checkStoreHasPlatform(store keyhold.Store, dir string) error {
	ctx := context.Background()
	var n int
	err := store.View(ctx, func(tx keyhold.Tx) error {
		ts, err := tx.ListTenants(ctx)
		n = len(ts)
		return err
	})
	if err != nil || n > 0 {
		return err
	}
	return fmt.Errorf("%s holds master.key but the database holds no platform: the master key belongs to other data. "+
		"Restore the database (or point --postgres at the right one); to start a new platform instead, move master.key and bootstrap.json out of %s",
		dir, dir)
}

// printCredentialsHint tells, on a start that did not bootstrap, where the
// first start's credentials are, but only if they are here: otherwise (a
// removed bootstrap.json, or a replica joining a platform that another
// server bootstrapped) it names no file, and says how to issue new ones.
func printCredentialsHint(w io.Writer, bootPath, dataDir string, shared bool) {
	if _, err := os.Stat(bootPath); err == nil {
		fmt.Fprintf(w, "Credentials of the first start are in %s\n", bootPath)
		return
	}
	if shared {
		fmt.Fprintf(w, "This platform was bootstrapped by an earlier start, perhaps of another replica: sign in with the credentials it wrote. "+
			"To issue new ones, stop the servers and run keyhold admin reset-credentials --postgres DSN --data %s\n", dataDir)
		return
	}
	fmt.Fprintf(w, "The first start's credentials are no longer in %s: to issue new ones, stop the server and run keyhold admin reset-credentials --data %s\n", dataDir, dataDir)
}
