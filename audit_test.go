package keyhold_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestAudit: the one audit helper stores the entry in the transaction, in
// UTC, with Succeeded as its default result and its detail bounded on a
// rune boundary; a rolled-back transaction leaves no entry.
func TestAudit(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		store := open(t)
		ctx := context.Background()
		at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.FixedZone("CET", 3600))
		long := strings.Repeat("x", keyhold.MaxAuditDetail-1) + "é" + "tail"
		if err := store.Update(ctx, func(tx keyhold.Tx) error {
			if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t1", DisplayName: "Contoso", CreatedAt: at}); err != nil {
				return err
			}
			e, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: at, TenantID: "t1", ActorID: "p1", Action: "thing.create", Target: "/things/1", Detail: long})
			if err != nil {
				return err
			}
			if e.ID == 0 {
				t.Errorf("Audit returned no ID")
			}
			_, err = keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: at, TenantID: "t1", ActorID: "p1", Action: "thing.delete", Target: "/things/1", Result: "Failed"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		errRollback := keyhold.Errorf(keyhold.CodeConflict, "roll back")
		if err := store.Update(ctx, func(tx keyhold.Tx) error {
			if _, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: at, TenantID: "t1", ActorID: "p1", Action: "thing.update", Target: "/things/1"}); err != nil {
				return err
			}
			return errRollback
		}); err != errRollback {
			t.Fatalf("Update = %v, want the rollback", err)
		}
		var got []*keyhold.AuditEntry
		if err := store.View(ctx, func(tx keyhold.Tx) (err error) {
			got, err = tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: "t1", Limit: 10})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d entries, want 2 (the rolled-back one not stored): %+v", len(got), got)
		}
		del, create := got[0], got[1] // newest first
		if create.Action != "thing.create" || create.Result != keyhold.AuditSucceeded || !create.At.Equal(at) || create.At.Location() != time.UTC {
			t.Errorf("create entry = %+v", create)
		}
		if want := strings.Repeat("x", keyhold.MaxAuditDetail-1); create.Detail != want || !utf8.ValidString(create.Detail) {
			t.Errorf("detail is %d bytes, want the %d before the split rune", len(create.Detail), len(want))
		}
		if del.Action != "thing.delete" || del.Result != "Failed" || del.Detail != "" {
			t.Errorf("delete entry = %+v", del)
		}
	})
}
