package platform

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestBYOKFileCap: a BYOK environment stores files up to the cap (size
// -1 and exactly the cap) and refuses one byte more with 413, pointing to
// the migration, leaving the file's earlier content in place and nothing
// of the refused upload; a platform-key environment of the same tenant
// stores the larger file.
func TestBYOKFileCap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		const limit = 100_000
		f.p.core.byokCap = limit
		byok, plain := f.createEnv(t, "byok"), f.createEnv(t, "plain")
		f.byokTenant(t) // after the environments: plain stays under the platform key
		if _, err := f.p.ApplyBYOK(f.ctx, byok.ID); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{limit - 1, limit} {
			data := randomBytes(t, n)
			if _, err := f.p.PutFile(f.ctx, byok.ID, "doc", bytes.NewReader(data)); err != nil {
				t.Fatalf("a file of %d bytes (cap %d): %v", n, limit, err)
			}
			if got, err := readAllFile(t, f, byok.ID, "doc"); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("reading the file of %d bytes: %v", n, err)
			}
		}
		kept, _ := readAllFile(t, f, byok.ID, "doc")
		before := f.byokState(t)
		big := randomBytes(t, limit+1)
		_, err := f.p.PutFile(f.ctx, byok.ID, "doc", bytes.NewReader(big))
		if keyhold.ErrorCode(err) != keyhold.CodeRequestTooLarge {
			t.Fatalf("a file one byte over the cap: %v, want %s", err, keyhold.CodeRequestTooLarge)
		}
		for _, m := range []string{"legacy BYOK key", "100000 bytes", "migrate it to a customer-managed key", "keyhold env link " + byok.ID} {
			if !strings.Contains(keyhold.ErrorMessage(err), m) {
				t.Errorf("refusal %q does not mention %q", keyhold.ErrorMessage(err), m)
			}
		}
		if got, err := readAllFile(t, f, byok.ID, "doc"); err != nil || !bytes.Equal(got, kept) {
			t.Fatalf("the refused upload changed the file: %v", err)
		}
		if _, err := f.p.PutFile(f.ctx, byok.ID, "new", bytes.NewReader(big)); keyhold.ErrorCode(err) != keyhold.CodeRequestTooLarge {
			t.Fatalf("a new file over the cap: %v", err)
		}
		if _, err := readAllFile(t, f, byok.ID, "new"); keyhold.ErrorCode(err) != keyhold.CodeFileNotFound {
			t.Fatalf("the refused new file exists: %v", err)
		}
		if after := f.byokState(t); after != before {
			t.Fatalf("refused uploads were audited or changed keys:\n%s\n%s", before, after)
		}
		var uploads int
		if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
			us, err := tx.StaleUploads(f.ctx, f.clock.Now().Add(1<<40))
			uploads = len(us)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if uploads != 0 {
			t.Fatalf("%d upload marks left after the refusals", uploads)
		}
		if _, err := f.p.PutFile(f.ctx, plain.ID, "doc", bytes.NewReader(big)); err != nil {
			t.Fatalf("a platform-key environment over the BYOK cap: %v", err)
		}
	})
}

// TestBYOKRefusalHook: the services that keep data outside the database
// (flows, audit outside it, search) refuse a BYOK environment through
// refuseBYOK, naming the service and the migration; other environments
// pass.
func TestBYOKRefusalHook(t *testing.T) {
	byok := &keyhold.Environment{ID: "e1", KeyManagedBy: keyhold.KeyManagedByCustomerViaMicrosoft}
	for _, s := range []string{byokFlows, byokAuditExport, byokSearch} {
		err := refuseBYOK(byok, s)
		if keyhold.ErrorCode(err) != keyhold.CodeNotSupported || !strings.Contains(keyhold.ErrorMessage(err), "can't use "+s) || !strings.Contains(keyhold.ErrorMessage(err), "customer-managed key") {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, m := range []keyhold.KeyManagedBy{keyhold.KeyManagedByMicrosoft, keyhold.KeyManagedByCustomer} {
		if err := refuseBYOK(&keyhold.Environment{ID: "e2", KeyManagedBy: m}, byokFlows); err != nil {
			t.Errorf("%s environment refused: %v", m, err)
		}
	}
}
