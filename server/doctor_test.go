package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/vault"
)

// failures returns the failed findings, one a line.
func failures(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		if !f.OK {
			b.WriteString(f.String() + "\n")
		}
	}
	return b.String()
}

// TestDoctorHealthy: on the data directory of a server that ran (and while
// it runs), every check passes, and doctor writes nothing.
func TestDoctorHealthy(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	running := Doctor(ctx, DoctorConfig{DataDir: dataDir})
	if f := failures(running); f != "" {
		t.Fatalf("doctor beside a running server:\n%s", f)
	}
	if !strings.Contains(findings(running), "is in use by process") {
		t.Fatalf("doctor does not say a server holds the directory:\n%s", findings(running))
	}
	srv.stop(t)
	before := dirState(t, dataDir)
	got := Doctor(ctx, DoctorConfig{DataDir: dataDir})
	if f := failures(got); f != "" {
		t.Fatalf("doctor on a healthy directory:\n%s", f)
	}
	for _, check := range []string{"permissions", "lock", "database", "master key", "tls"} {
		if !strings.Contains(findings(got), "ok   "+check+": ") {
			t.Fatalf("no passing %q finding in\n%s", check, findings(got))
		}
	}
	sameDir(t, dataDir, before)
}

func findings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// TestDoctorFindings: each kind of damage is reported as a failure that
// says what is wrong and how to fix it, and doctor lists them all in one
// run.
func TestDoctorFindings(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	ctx := context.Background()

	os.Chmod(dataDir, 0o755)
	os.Chmod(filepath.Join(dataDir, "master.key"), 0o644)
	other, err := crypt.GenerateMasterKeyFile(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	other.Destroy()
	// A server key that is not the certificate's.
	_, otherKey, err := crypt.GenerateConstrainedCA("other", []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dataDir, "tls", "server-key.pem"), otherKey, 0o600)

	got := failures(Doctor(ctx, DoctorConfig{DataDir: dataDir, MasterKey: base64Key(t)}))
	for _, want := range []string{
		"FAIL permissions: " + dataDir + " has mode 0755, want 0700: run chmod 700",
		"master.key has mode 0644, want 0600: run chmod 600",
		"FAIL master key: KEYHOLD_MASTER_KEY: the master key does not open this database's platform key",
		"FAIL tls: ",
		"do not form a key pair",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("findings do not say %q:\n%s", want, got)
		}
	}

	// An expired certificate, a missing master key.
	got = failures(Doctor(ctx, DoctorConfig{DataDir: dataDir, Now: func() time.Time { return time.Now().AddDate(50, 0, 0) }}))
	if !strings.Contains(got, "FAIL tls: ") {
		t.Fatalf("no TLS failure in 50 years:\n%s", got)
	}
	os.Remove(filepath.Join(dataDir, "master.key"))
	got = failures(Doctor(ctx, DoctorConfig{DataDir: dataDir}))
	if !strings.Contains(got, "FAIL master key: ") || !strings.Contains(got, "master.key is missing: restore it") {
		t.Fatalf("no master key failure:\n%s", got)
	}
}

// TestDoctorCorruptDatabase: a keyhold.db whose pages were overwritten fails
// the database check, with the fix; a missing one beside master.key too.
func TestDoctorCorruptDatabase(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	db := filepath.Join(dataDir, "keyhold.db")
	// Move what the WAL still holds into the file, so that the damage
	// below hits the tables.
	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	b, err := os.ReadFile(db)
	if err != nil || len(b) < 8*4096 {
		t.Fatalf("keyhold.db: %d bytes, %v", len(b), err)
	}
	for i := 2 * 4096; i < len(b)-4096; i += 4096 { // every page but the first and last: their b-tree headers
		copy(b[i:i+64], strings.Repeat("\xff", 64))
	}
	os.WriteFile(db, b, 0o600)
	got := failures(Doctor(context.Background(), DoctorConfig{DataDir: dataDir}))
	if !strings.Contains(got, "FAIL database: ") || !strings.Contains(got, "restore it from a backup") {
		t.Fatalf("no database failure:\n%s", got)
	}
	os.Remove(db)
	got = failures(Doctor(context.Background(), DoctorConfig{DataDir: dataDir}))
	if !strings.Contains(got, "keyhold.db is missing but master.key exists") {
		t.Fatalf("no missing-database failure:\n%s", got)
	}
}

// TestDoctorBYOKGenerations: with the server's PKCS#11 token named,
// doctor compares each BYOK tenant's generation in the database with the
// one the token recorded: a tenant the token is ahead of (a database
// restored from an older copy) fails, named with both generations and
// the command that accepts the older state; a token behind (a raise the
// server will make at the key's next use) does not. Without the token,
// there is no such check. Doctor writes nothing either way.
func TestDoctorBYOKGenerations(t *testing.T) {
	dataDir := t.TempDir()
	cfg := Config{DataDir: dataDir, PKCS11Module: hsmtest.Module(t), PKCS11Token: hsmtest.Label, PKCS11PIN: hsmtest.PIN}
	srv, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(dataDir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	var tenant string
	if err := store.Update(ctx, func(tx keyhold.Tx) error {
		ts, err := tx.ListTenants(ctx)
		if err != nil || len(ts) == 0 {
			return fmt.Errorf("tenants %v, %v", ts, err)
		}
		tenant = ts[0].ID
		return tx.PutBYOKTenant(ctx, &keyhold.BYOKTenant{TenantID: tenant, Generation: 5})
	}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	dcfg := DoctorConfig{DataDir: dataDir, PKCS11Module: cfg.PKCS11Module, PKCS11Token: cfg.PKCS11Token, PKCS11PIN: cfg.PKCS11PIN}
	before := dirState(t, dataDir)

	if got := findings(Doctor(ctx, dcfg)); !strings.Contains(got, "ok   byok generations: 1 BYOK tenants, none behind") {
		t.Fatalf("the token behind the database:\n%s", got)
	}
	if got := findings(Doctor(ctx, DoctorConfig{DataDir: dataDir})); strings.Contains(got, "byok generations") {
		t.Fatalf("a BYOK check without a token:\n%s", got)
	}
	tok, err := hsm.Open(hsmtest.Token(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	label := vault.BYOKGenerationLabel(tenant)
	defer hsmtest.RemoveLabelled(tok, label)
	if _, err := tok.RaiseCounter(label, 7); err != nil {
		t.Fatal(err)
	}
	got := failures(Doctor(ctx, dcfg))
	for _, want := range []string{"FAIL byok generations: 1 BYOK tenants", "tenant " + tenant + " (database 5, token 7)", "pkcs11-tool --module " + cfg.PKCS11Module, "--label keyhold-byok-generation/{tenantId}"} {
		if !strings.Contains(got, want) {
			t.Fatalf("the token ahead of the database: no %q in\n%s", want, got)
		}
	}
	sameDir(t, dataDir, before)
}
