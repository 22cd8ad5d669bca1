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

// TestEnvCoverageCustomerVaults: under the table, each vault holding a
// customer key is named once, external or built-in, with the policy
// identity's last successful unwrap, or "never".
func TestEnvCoverageCustomerVaults(t *testing.T) {
	last := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	ext := keyhold.CoverageRoot{Root: "customer", KeyID: "https://customer.example/keys/k/v2", Epoch: 3, Items: 2,
		Vault: "https://customer.example", External: true, LastUnwrap: &last}
	old := keyhold.CoverageRoot{Root: "customer", KeyID: "/vaults/kv/keys/k/v1", Epoch: 2, Items: 1, Vault: "https://kv.vault.example"}
	c := &fakeClient{coverage: &keyhold.EncryptionCoverage{EnvID: "e1", KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 3, Stores: []keyhold.CoverageStore{
		{Store: "rows", Items: 3, Roots: []keyhold.CoverageRoot{ext, old}},
		{Store: "audit", Items: 2, Roots: []keyhold.CoverageRoot{ext}},
	}}}
	streams, out, _ := testIO("")
	if err := envCoverageRun(&EnvCoverageOptions{IO: streams, Ctx: context.Background(), Client: c.services(), Format: FormatTable, ID: "e1"}); err != nil {
		t.Fatal(err)
	}
	want := "Customer key vault https://customer.example (external): last successful unwrap 2026-12-06T07:00:00Z\n" +
		"Customer key vault https://kv.vault.example (built-in): last successful unwrap never\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("output:\n%s\nwant it to end with:\n%s", out, want)
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
