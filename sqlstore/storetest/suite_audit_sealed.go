package storetest

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// testAuditSealed: an entry appended in clear is listed by Plain until it
// is sealed; SealAudit moves it once from the epoch it names (a second
// call from the same epoch does nothing), clears its target and detail,
// and keeps the seal; Epoch selects the entries sealed under an epoch, and
// EpochCounts counts them. Entries outside AuditSealedActions, and
// entries of no environment, are never Plain.
func testAuditSealed(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var plain, other, tenant keyhold.AuditEntry
	update(t, s, func(tx keyhold.Tx) error {
		plain = keyhold.AuditEntry{At: at(0), TenantID: "t1", ActorID: "u1", Action: "row.put", Target: "/environments/e1/tables/T/rows/secret", EnvID: "e1", Result: "Succeeded", Detail: "d"}
		other = keyhold.AuditEntry{At: at(0), TenantID: "t1", ActorID: "u1", Action: "environment.lock", Target: "/e1", EnvID: "e1", Result: "Succeeded"}
		tenant = keyhold.AuditEntry{At: at(0), TenantID: "t1", ActorID: "u1", Action: "row.put", Target: "/x", Result: "Succeeded"}
		for _, e := range []*keyhold.AuditEntry{&plain, &other, &tenant} {
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	var got []*keyhold.AuditEntry
	view(t, s, func(tx keyhold.Tx) (err error) {
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{Plain: true, AfterID: -1})
		return err
	})
	if len(got) != 1 || got[0].ID != plain.ID || got[0].Sealed != nil || got[0].Epoch != 0 {
		t.Fatalf("Plain = %+v, want only entry %d, in clear", got, plain.ID)
	}
	sealed := plain
	sealed.Epoch, sealed.Version, sealed.Sealed = 2, 1, []byte("sealed-bytes")
	var ok bool
	update(t, s, func(tx keyhold.Tx) (err error) { ok, err = tx.SealAudit(ctx, &sealed, 0); return err })
	if !ok {
		t.Fatal("SealAudit from clear: not sealed")
	}
	again := sealed
	again.Epoch, again.Sealed = 5, []byte("other")
	update(t, s, func(tx keyhold.Tx) (err error) { ok, err = tx.SealAudit(ctx, &again, 0); return err })
	if ok {
		t.Fatal("SealAudit from clear of an entry sealed already: moved it again")
	}
	view(t, s, func(tx keyhold.Tx) (err error) {
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{EnvID: "e1", Epoch: 2})
		return err
	})
	if len(got) != 1 || got[0].ID != plain.ID || got[0].Target != "" || got[0].Detail != "" ||
		string(got[0].Sealed) != "sealed-bytes" || got[0].Epoch != 2 || got[0].Version != 1 || got[0].Action != "row.put" {
		t.Fatalf("Epoch 2 = %+v, want entry %d sealed, target and detail cleared", got, plain.ID)
	}
	view(t, s, func(tx keyhold.Tx) (err error) {
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{Plain: true, AfterID: -1})
		return err
	})
	equal(t, "Plain after sealing", len(got), 0)
	// A re-seal moves it from its epoch, and only from there.
	moved := sealed
	moved.Epoch, moved.Version, moved.Sealed = 3, 2, []byte("resealed")
	update(t, s, func(tx keyhold.Tx) (err error) { ok, err = tx.SealAudit(ctx, &moved, 1); return err })
	if ok {
		t.Fatal("SealAudit from epoch 1 of an entry under epoch 2: moved it")
	}
	update(t, s, func(tx keyhold.Tx) (err error) { ok, err = tx.SealAudit(ctx, &moved, 2); return err })
	if !ok {
		t.Fatal("SealAudit from epoch 2: not moved")
	}
	var counts []keyhold.EpochCount
	view(t, s, func(tx keyhold.Tx) (err error) { counts, err = tx.EpochCounts(ctx, "e1"); return err })
	equal(t, "e1 per epoch", counts, []keyhold.EpochCount{{Epoch: 3, Audit: 1}})
	// A reset's shred: the seals under other epochs than the one kept go,
	// and a shredded entry is not in clear (nothing to seal again).
	var n int64
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.ShredAudit(ctx, "e1", 3); return err })
	equal(t, "shredded keeping epoch 3", n, int64(0))
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.ShredAudit(ctx, "e1", 4); return err })
	equal(t, "shredded keeping epoch 4", n, int64(1))
	view(t, s, func(tx keyhold.Tx) (err error) { counts, err = tx.EpochCounts(ctx, "e1"); return err })
	equal(t, "e1 per epoch after the shred", len(counts), 0)
	view(t, s, func(tx keyhold.Tx) (err error) {
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{EnvID: "e1", AfterID: -1})
		return err
	})
	if len(got) != 2 || got[0].ID != plain.ID || got[0].Sealed != nil || got[0].Target != "" || got[0].Action != "row.put" || got[1].Target != "/e1" {
		t.Fatalf("e1 after the shred = %+v, want entry %d without seal or target, and the lock entry as it was", got, plain.ID)
	}
	view(t, s, func(tx keyhold.Tx) (err error) {
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{Plain: true, AfterID: -1})
		return err
	})
	equal(t, "Plain after the shred", len(got), 0)
	update(t, s, func(tx keyhold.Tx) error {
		if _, err := tx.SealAudit(ctx, &keyhold.AuditEntry{ID: other.ID}, 0); err == nil {
			t.Error("SealAudit without an epoch or a seal: no error")
		}
		return nil
	})
}
