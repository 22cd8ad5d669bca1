package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// canSignIn tells whether bs's credentials get a token from the server.
func canSignIn(t *testing.T, url string, bs Bootstrap) bool {
	t.Helper()
	_, err := client(t, url, bs).ListEnvironments(context.Background())
	return err == nil
}

// TestResetCredentials: on both backends, reset-credentials writes a new
// bootstrap.json (0600) for the same administrator; the new secret signs
// in, the old one no longer does, and the reset is in the audit log.
func TestResetCredentials(t *testing.T) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir()}
			if b == "postgres" {
				cfg.PostgresDSN = storetest.NewPostgresDatabase(t).DSN
			}
			srv, err := start(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			old := readBootstrap(t, cfg.DataDir)
			srv.stop(t)
			os.Remove(filepath.Join(cfg.DataDir, "bootstrap.json")) // lost

			path, err := ResetCredentials(context.Background(), ResetConfig{DataDir: cfg.DataDir, PostgresDSN: cfg.PostgresDSN, URL: "https://example.test:8443"})
			if err != nil {
				t.Fatal(err)
			}
			if path != filepath.Join(cfg.DataDir, "bootstrap.json") || mode(t, path) != 0o600 {
				t.Fatalf("bootstrap file %s, mode %04o; want %s/bootstrap.json, 0600", path, mode(t, path), cfg.DataDir)
			}
			nb := readBootstrap(t, cfg.DataDir)
			if nb.ClientSecret == old.ClientSecret || nb.ClientID != old.ClientID || nb.TenantID != old.TenantID ||
				nb.SubscriptionID != old.SubscriptionID || nb.URL != "https://example.test:8443" || nb.CAFile != old.CAFile {
				t.Fatalf("new bootstrap %+v, old %+v: want a new secret for the same administrator", nb, old)
			}

			srv, err = start(t, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.stop(t)
			if canSignIn(t, srv.url, old) {
				t.Fatal("the old secret still signs in")
			}
			if !canSignIn(t, srv.url, nb) {
				t.Fatal("the new secret does not sign in")
			}
			entries, err := client(t, srv.url, nb).ListAudit(context.Background(), keyhold.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range entries {
				found = found || e.Action == "principal.credentials.reset"
			}
			if !found {
				t.Fatal("the reset is not in the audit log")
			}
		})
	}
}

// TestResetCredentialsRefusals: reset-credentials refuses while a server
// holds the directory, without the master key, and with a wrong one; each
// refusal leaves bootstrap.json and the database as they were, and the old
// secret keeps working.
func TestResetCredentialsRefusals(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	bs := readBootstrap(t, dataDir)
	ctx := context.Background()
	boot, _ := os.ReadFile(filepath.Join(dataDir, "bootstrap.json"))

	_, err = ResetCredentials(ctx, ResetConfig{DataDir: dataDir})
	if err == nil || !strings.Contains(err.Error(), "is in use by process") {
		t.Fatalf("reset while a server runs: %v, want a refusal naming the holder", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dataDir, "bootstrap.json")); !bytes.Equal(now, boot) || !canSignIn(t, srv.url, bs) {
		t.Fatal("the refused reset changed the credentials")
	}
	srv.stop(t)

	keyPath := filepath.Join(dataDir, "master.key")
	key, _ := os.ReadFile(keyPath)
	tests := []struct {
		name    string
		prepare func()
		cfg     ResetConfig
		want    string
	}{
		{name: "no master key", prepare: func() { os.Remove(keyPath) }, cfg: ResetConfig{DataDir: dataDir},
			want: "master.key is missing: restore it, or set KEYHOLD_MASTER_KEY"},
		{name: "wrong master key", prepare: func() { os.Remove(keyPath) }, cfg: ResetConfig{DataDir: dataDir, MasterKey: base64Key(t)},
			want: "the master key does not open this database's platform key"},
		{name: "not a data directory", cfg: ResetConfig{DataDir: filepath.Join(dataDir, "nowhere")}, want: "is not a Keyhold data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prepare != nil {
				tt.prepare()
			}
			defer os.WriteFile(keyPath, key, 0o600)
			before := dirState(t, dataDir)
			_, err := ResetCredentials(ctx, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("reset: %v, want %q", err, tt.want)
			}
			sameDir(t, dataDir, before)
		})
	}
	srv, err = start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if !canSignIn(t, srv.url, bs) {
		t.Fatal("after the refused resets the old secret no longer signs in")
	}
}
