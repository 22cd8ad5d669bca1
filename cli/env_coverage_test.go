package cli

import (
	"context"
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
