package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestEnvCoverageRun: one line per root of each store, and a store with
// no items as "0 none".
func TestEnvCoverageRun(t *testing.T) {
	exp := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	c := &fakeClient{coverage: &keyhold.EncryptionCoverage{EnvID: "e1", KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 2, Stores: []keyhold.CoverageStore{
		{Store: "rows", Items: 3, Roots: []keyhold.CoverageRoot{{Root: "customer", KeyID: "https://kv/keys/k/v1", Epoch: 2, Items: 3}}},
		{Store: "backups", Items: 5, Roots: []keyhold.CoverageRoot{{Root: "platform", Epoch: 1, Items: 5, ExpiresAt: &exp}}},
		{Store: "files", Roots: []keyhold.CoverageRoot{}},
		{Store: "flows", Roots: []keyhold.CoverageRoot{{Root: "none"}}},
	}}}
	streams, out, _ := testIO("")
	if err := envCoverageRun(&EnvCoverageOptions{IO: streams, Ctx: context.Background(), Client: c.services(), Format: FormatTable, ID: "e1"}); err != nil {
		t.Fatal(err)
	}
	want := "Environment e1: key managed by Customer, epoch 2\n" +
		"STORE    ITEMS  ROOT      KEY                   EPOCH  EXPIRES\n" +
		"rows     3      customer  https://kv/keys/k/v1  2      -\n" +
		"backups  5      platform  -                     1      2026-12-24T00:00:00Z\n" +
		"files    0      none      -                     -      -\n" +
		"flows    0      none      -                     -      -\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

// TestEnvCoverageRetainedBYOK: a migrated environment's report ends with
// the retained BYOK key, what it is kept for and until when.
func TestEnvCoverageRetainedBYOK(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := &fakeClient{coverage: &keyhold.EncryptionCoverage{EnvID: "e1", KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 2,
		Stores:       []keyhold.CoverageStore{{Store: "rows", Roots: []keyhold.CoverageRoot{}}},
		RetainedBYOK: &keyhold.RetainedBYOKKey{KeyID: "byok/k1", Thumbprint: "th", MigratedAt: at, PreMigrationBackups: 1, ShredAfter: at.Add(keyhold.BYOKKeyRetention)}}}
	streams, out, _ := testIO("")
	if err := envCoverageRun(&EnvCoverageOptions{IO: streams, Ctx: context.Background(), Client: c.services(), Format: FormatTable, ID: "e1"}); err != nil {
		t.Fatal(err)
	}
	want := "Retained BYOK key byok/k1 (thumbprint th): migrated off at 2026-11-23T12:00:00Z, kept for 1 pre-migration backups until 2026-12-21T12:00:00Z; deleted then once BYOK is removed (keyhold byok remove)\n"
	if got := out.String(); !strings.HasSuffix(got, want) {
		t.Errorf("output:\n%s\nwant it to end with:\n%s", got, want)
	}
}
