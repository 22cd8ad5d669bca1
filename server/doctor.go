package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/vault"
)

// Finding is one result of Doctor: what was checked, whether it passed, and
// what was found or how to fix it.
type Finding struct {
	Check   string // "permissions", "database", "master key", "tls", "lock"
	OK      bool
	Message string
}

// String renders a finding as one line: "ok   check: message" or
// "FAIL check: message".
func (f Finding) String() string {
	mark := "ok  "
	if !f.OK {
		mark = "FAIL"
	}
	return mark + " " + f.Check + ": " + f.Message
}

// DoctorConfig configures Doctor.
type DoctorConfig struct {
	DataDir string
	// MasterKey, if set, is the base64 master key (KEYHOLD_MASTER_KEY); else
	// <DataDir>/master.key is read.
	MasterKey string
	// Now is the time certificates are checked against (time.Now if nil).
	Now func() time.Time
	// PKCS11Module, PKCS11Token and PKCS11PIN, if the module is set,
	// name the server's PKCS#11 token (as Config's do): Doctor then
	// compares each BYOK tenant's generation in the database with the
	// token's (platform/byok_anchor.go).
	PKCS11Module, PKCS11Token, PKCS11PIN string
}

// certWarning is how long before its expiry a certificate is reported.
const certWarning = 30 * 24 * time.Hour

// Doctor examines a SQLite data directory offline and reports every
// finding: the modes of the directory and its secret files, the database's
// integrity and schema version, whether the master key opens the sealed
// platform key, and whether the TLS files parse, are current, and match
// (key to certificate, certificate to CA). It writes nothing, so it may run
// beside a server, and it keeps going after a failure so that one run lists
// everything to fix.
func Doctor(ctx context.Context, cfg DoctorConfig) []Finding {
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	var out []Finding
	add := func(check string, ok bool, format string, args ...any) {
		out = append(out, Finding{Check: check, OK: ok, Message: fmt.Sprintf(format, args...)})
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		add("data directory", false, "%v", err)
		return out
	}
	fi, err := os.Stat(dir)
	if err != nil {
		add("data directory", false, "%s: %v: give the directory keyhold serve uses with --data", dir, errors.Unwrap(err))
		return out
	}
	if !fi.IsDir() {
		add("data directory", false, "%s is not a directory", dir)
		return out
	}
	doctorPermissions(dir, fi, add)
	doctorLock(dir, add)
	store := doctorDatabase(ctx, dir, add)
	if store != nil {
		defer store.Close()
		doctorMasterKey(ctx, dir, cfg.MasterKey, store, add)
		if cfg.PKCS11Module != "" {
			doctorBYOKGenerations(ctx, store, &hsm.PKCS11Config{Module: cfg.PKCS11Module, TokenLabel: cfg.PKCS11Token, PIN: cfg.PKCS11PIN}, add)
		}
	}
	doctorTLS(dir, now(), add)
	return out
}

type addFunc func(check string, ok bool, format string, args ...any)

func doctorPermissions(dir string, fi fs.FileInfo, add addFunc) {
	bad := 0
	if m := fi.Mode().Perm(); m != 0o700 {
		add("permissions", false, "%s has mode %04o, want 0700: run chmod 700 %s", dir, m, dir)
		bad++
	}
	for _, name := range []string{dbFile, dbFile + "-wal", dbFile + "-shm", masterKeyFile, bootstrapFile, lockFile,
		"tls/ca-key.pem", "tls/server-key.pem"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			continue // absence is another check's business
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			add("permissions", false, "%s has mode %04o, want 0600: run chmod 600 %s", p, m, p)
			bad++
		}
	}
	if bad == 0 {
		add("permissions", true, "%s is 0700 and its secret files are 0600", dir)
	}
}

func doctorLock(dir string, add addFunc) {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		add("lock", true, "no server holds %s", dir)
		return
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		// Not a failure: the checks below read a live database.
		add("lock", true, "%s", strings.TrimSuffix(errLocked(dir).Error(), ": stop it first, or give this server its own directory with --data")+
			"; the checks below read it as it runs")
		return
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	add("lock", true, "no server holds %s", dir)
}

// doctorDatabase checks keyhold.db and returns a read-only store over it,
// or nil when there is nothing to read.
func doctorDatabase(ctx context.Context, dir string, add addFunc) *sqlstore.Store {
	path := filepath.Join(dir, dbFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		what := "is missing"
		if err == nil {
			what = "is empty"
		}
		if _, kerr := os.Stat(filepath.Join(dir, masterKeyFile)); kerr == nil {
			add("database", false, "%s %s but master.key exists: restore it from a backup (keyhold serve refuses to start)", path, what)
		} else {
			add("database", false, "%s %s: no server has started on this directory (or it uses --postgres, which doctor does not check)", path, what)
		}
		return nil
	}
	in, err := sqlite.Inspect(ctx, path)
	if err != nil {
		add("database", false, "%s can't be read: %v: restore it from a backup", path, err)
		return nil
	}
	switch {
	case len(in.Integrity) > 0:
		const most = 5
		list := in.Integrity
		if len(list) > most {
			list = append(list[:most:most], fmt.Sprintf("and %d more", len(in.Integrity)-most))
		}
		add("database", false, "%s fails SQLite's integrity check: %s: restore it from a backup", path, strings.Join(list, "; "))
	default:
		add("database", true, "%s passes SQLite's integrity check", path)
	}
	switch {
	case in.Version > in.Expected:
		add("database", false, "the schema is at version %d, newer than this keyhold knows (%d): run a newer keyhold", in.Version, in.Expected)
	case in.Version < in.Expected:
		add("database", true, "the schema is at version %d; keyhold serve will migrate it to %d", in.Version, in.Expected)
	default:
		add("database", true, "the schema is at version %d, as expected", in.Version)
	}
	return in.Store
}

func doctorMasterKey(ctx context.Context, dir, env string, store keyhold.Store, add addFunc) {
	master, src, err := readMasterKey(dir, env)
	if err != nil {
		add("master key", false, "%v", err)
		return
	}
	defer master.Destroy()
	if err := platform.CheckMasterKey(ctx, store, master); err != nil {
		msg := err.Error()
		if ke, ok := errors.AsType[*keyhold.Error](err); ok {
			msg = ke.Message // without the code and the cipher's words
		}
		add("master key", false, "%s: %s", src, msg)
		return
	}
	add("master key", true, "%s opens the sealed platform key and token-signing key", src)
}

// doctorBYOKGenerations reports the BYOK tenants whose generation in the
// database is below the one the token recorded: the database (or their
// rows) came back from an older copy, and the server wraps and unwraps
// nothing under their BYOK keys until the operator accepts it.
func doctorBYOKGenerations(ctx context.Context, store keyhold.Store, cfg *hsm.PKCS11Config, add addFunc) {
	const check = "byok generations"
	tok, err := hsm.Open(cfg)
	if err != nil {
		add(check, false, "%v", err)
		return
	}
	defer tok.Close()
	var behind []string
	tenants := 0
	err = store.View(ctx, func(tx keyhold.Tx) error {
		ts, err := tx.ListTenants(ctx)
		if err != nil {
			return err
		}
		for _, t := range ts {
			st, err := tx.BYOKTenant(ctx, t.ID)
			if err != nil {
				return err
			}
			if st.Generation == 0 {
				continue // no BYOK
			}
			tenants++
			v, err := tok.Counter(vault.BYOKGenerationLabel(t.ID))
			if err != nil {
				return err
			}
			if v > uint64(st.Generation) {
				behind = append(behind, fmt.Sprintf("tenant %s (database %d, token %d)", t.ID, st.Generation, v))
			}
		}
		return nil
	})
	switch {
	case err != nil:
		add(check, false, "%v", err)
	case len(behind) > 0:
		add(check, false, "%d BYOK tenants are at an older generation than the PKCS#11 token recorded, so their BYOK keys wrap and unwrap nothing: %s. The database, or their BYOK rows, came back from an older copy. Restore the latest copy; or, to accept this one, delete each tenant's counter from the token: pkcs11-tool --module %s --token-label %s --login --delete-object --type data --label %s",
			len(behind), strings.Join(behind, ", "), cfg.Module, cfg.TokenLabel, vault.BYOKGenerationLabel("{tenantId}"))
	default:
		add(check, true, "%d BYOK tenants, none behind the generation the PKCS#11 token recorded", tenants)
	}
}

// readMasterKey reads the master key from env (KEYHOLD_MASTER_KEY) or
// <dir>/master.key, and says which. It never creates one.
func readMasterKey(dir, env string) (*crypt.Key, string, error) {
	if env != "" {
		k, err := crypt.ParseMasterKey([]byte(env))
		if err != nil {
			return nil, "KEYHOLD_MASTER_KEY", fmt.Errorf("KEYHOLD_MASTER_KEY: %w", err)
		}
		return k, "KEYHOLD_MASTER_KEY", nil
	}
	path := filepath.Join(dir, masterKeyFile)
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, fmt.Errorf("%s is missing: restore it, or set KEYHOLD_MASTER_KEY to the key the data was created with", path)
	}
	if err != nil {
		return nil, path, fmt.Errorf("reading %s: %w", path, err)
	}
	defer clear(text)
	k, err := crypt.ParseMasterKey(text)
	if err != nil {
		return nil, path, fmt.Errorf("%s: %w", path, err)
	}
	return k, path, nil
}

func doctorTLS(dir string, now time.Time, add addFunc) {
	tdir := filepath.Join(dir, "tls")
	caPath, certPath, keyPath := filepath.Join(tdir, "ca.pem"), filepath.Join(tdir, "server.pem"), filepath.Join(tdir, "server-key.pem")
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		add("tls", false, "%s: %v: move the tls directory aside and keyhold serve makes a new CA and certificate (clients must then trust the new ca.pem)", certPath, errors.Unwrap(err))
		return
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		add("tls", false, "%s: %v: restore it, or move the tls directory aside for a new one", keyPath, errors.Unwrap(err))
		return
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		add("tls", false, "%s and %s do not form a key pair: %v", certPath, keyPath, err)
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		add("tls", false, "%s: %v", certPath, err)
		return
	}
	ok := true
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		add("tls", false, "%s expired on %s: move the tls directory aside for a new one", certPath, leaf.NotAfter.UTC().Format(time.DateOnly))
		ok = false
	case left < certWarning:
		add("tls", false, "%s expires on %s, in %d days: replace it soon", certPath, leaf.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24))
		ok = false
	}
	if now.Before(leaf.NotBefore) {
		add("tls", false, "%s is not valid before %s: check the system clock", certPath, leaf.NotBefore.UTC())
		ok = false
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		add("tls", false, "%s: %v: clients need it to trust the server", caPath, errors.Unwrap(err))
		return
	}
	roots := x509.NewCertPool()
	if b, _ := pem.Decode(caPEM); b == nil || !roots.AppendCertsFromPEM(caPEM) {
		add("tls", false, "%s holds no PEM certificate", caPath)
		return
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: leaf.NotBefore.Add(time.Second)}); err != nil {
		add("tls", false, "%s is not signed by %s: %v", certPath, caPath, err)
		ok = false
	}
	if ok {
		add("tls", true, "%s matches its key, is signed by ca.pem and is valid until %s", certPath, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
}
