package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestRestartOnPostgres: on PostgreSQL too, what was written before a
// restart reads back after it, and a wrong master key refuses to start and
// changes nothing in the database.
func TestRestartOnPostgres(t *testing.T) {
	db := storetest.NewPostgresDatabase(t) // skips without PostgreSQL, fails with KEYHOLD_REQUIRE_POSTGRES=1
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir, PostgresDSN: db.DSN})
	if err != nil {
		t.Fatal(err)
	}
	bs := readBootstrap(t, dataDir)
	c := client(t, srv.url, bs)
	ctx := context.Background()
	env := &keyhold.Environment{DisplayName: "survives", Location: "uk", SKU: keyhold.SKUSandbox}
	if err := c.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRow(ctx, env.ID, "t", "r1", json.RawMessage(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	file := make([]byte, 1<<20+3)
	rand.Read(file)
	if _, err := c.PutFile(ctx, env.ID, "f.bin", bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)

	// What a refused start must leave alone: every tenant, environment and
	// audit entry (a start that got far enough would bootstrap or audit).
	state := func() string {
		s, err := postgres.Open(ctx, db.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var b strings.Builder
		if err := s.View(ctx, func(tx keyhold.Tx) error {
			ts, err := tx.ListTenants(ctx)
			if err != nil {
				return err
			}
			envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{})
			if err != nil {
				return err
			}
			audit, err := tx.ListAudit(ctx, keyhold.AuditFilter{Limit: 1})
			if err != nil {
				return err
			}
			for _, x := range ts {
				b.WriteString("tenant " + x.ID + "\n")
			}
			for _, e := range envs {
				b.WriteString("env " + e.ID + " " + string(e.State) + "\n")
			}
			for _, a := range audit {
				b.WriteString("newest audit " + a.Action + "\n")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	before := state()
	if _, err := start(t, Config{DataDir: dataDir, PostgresDSN: db.DSN, MasterKey: base64Key(t)}); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("start with a wrong master key: %v, want a refusal naming the master key", err)
	}
	if after := state(); after != before {
		t.Fatalf("a refused start changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	srv2, err := start(t, Config{DataDir: dataDir, PostgresDSN: db.DSN})
	if err != nil {
		t.Fatal(err)
	}
	c2 := client(t, srv2.url, bs)
	row, err := c2.GetRow(ctx, env.ID, "t", "r1")
	if err != nil || string(row.Data) != `{"a":1}` {
		t.Fatalf("row after restart = %+v, %v", row, err)
	}
	_, rc, err := c2.OpenFile(ctx, env.ID, "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("file after restart: %d bytes, err %v", len(got), err)
	}
}
