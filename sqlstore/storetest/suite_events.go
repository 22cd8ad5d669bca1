package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// eventStoreTests are the conformance tests of keyhold.EventTx and of
// following the audit log (AuditFilter.AfterID); Run runs them with the
// rest.
var eventStoreTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"Events", testEvents},
	{"ClaimEventDelivery", testClaimEventDelivery},
	{"TenantSettings", testTenantSettings},
	{"AuditAfterID", testAuditAfterID},
}

func event(tenant string, i int, d keyhold.DeliveryState) *keyhold.Event {
	e := &keyhold.Event{TenantID: tenant, At: at(time.Duration(i) * time.Second), Kind: keyhold.EventEnvironmentLocked,
		PolicyID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/p", EnvID: fmt.Sprintf("e%d", i),
		AuditID: int64(100 + i), Summary: fmt.Sprintf("event %d", i), Delivery: d, Changes: []keyhold.VaultChange{}}
	if d == keyhold.DeliveryPending {
		e.NextAttemptAt = at(time.Duration(i) * time.Second)
	}
	return e
}

// testEvents: events come back as written, per tenant, newest first, paged;
// an empty delivery is stored as None and no changes as an empty list.
func testEvents(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var written []*keyhold.Event
	update(t, s, func(tx keyhold.Tx) error {
		for i := range 6 {
			e := event([]string{"t1", "t2"}[i%2], i, keyhold.DeliveryNone)
			if i == 2 {
				e.Changes = []keyhold.VaultChange{{At: at(time.Second), ActorID: "u1", ActorName: "Ada", Action: "roleAssignment.delete",
					Target: "/subscriptions/s/resourceGroups/kv/providers/Microsoft.KeyVault/vaults/v/providers/Microsoft.Authorization/roleAssignments/r",
					Detail: "removed Key Vault Crypto Service Encryption User from mi"}}
			}
			if i == 4 {
				e.Delivery, e.Changes = "", nil
			}
			if err := tx.AppendEvent(ctx, e); err != nil {
				return err
			}
			if e.ID <= 0 || (i > 0 && e.ID <= written[i-1].ID) {
				t.Fatalf("AppendEvent set ID %d, want a growing positive id", e.ID)
			}
			written = append(written, e)
		}
		return nil
	})
	if written[4].Delivery != keyhold.DeliveryNone || written[4].Changes == nil {
		t.Fatalf("AppendEvent with no delivery and no changes stored %q, %v; want None and []", written[4].Delivery, written[4].Changes)
	}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ListEvents(ctx, keyhold.EventFilter{TenantID: "t1"})
		if err != nil {
			return err
		}
		equal(t, "ListEvents(t1)", got, []*keyhold.Event{written[4], written[2], written[0]})
		got, err = tx.ListEvents(ctx, keyhold.EventFilter{TenantID: "t1", BeforeID: written[4].ID, Limit: 1})
		if err != nil {
			return err
		}
		equal(t, "ListEvents(t1, page 2 of size 1)", got, []*keyhold.Event{written[2]})
		got, err = tx.ListEvents(ctx, keyhold.EventFilter{TenantID: "nobody"})
		if err != nil {
			return err
		}
		if got == nil || len(got) != 0 {
			t.Errorf("ListEvents(unknown tenant) = %#v, want an empty non-nil list", got)
		}
		return nil
	})
}

// testClaimEventDelivery: the oldest due Pending event is claimed, an
// attempt counted and its next attempt moved to the lease's end, so a
// second claim takes the next one; events not due, not Pending, or leased
// are not claimed; the delivery fields are stored.
func testClaimEventDelivery(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var es []*keyhold.Event
	update(t, s, func(tx keyhold.Tx) error {
		for i, d := range []keyhold.DeliveryState{keyhold.DeliveryPending, keyhold.DeliveryNone, keyhold.DeliveryPending, keyhold.DeliveryDelivered, keyhold.DeliveryPending} {
			e := event("t1", i, d)
			if err := tx.AppendEvent(ctx, e); err != nil {
				return err
			}
			es = append(es, e)
		}
		return nil
	})
	now, lease := at(3*time.Second), at(time.Minute)
	var first, second *keyhold.Event
	update(t, s, func(tx keyhold.Tx) error {
		var err error
		first, err = tx.ClaimEventDelivery(ctx, now, lease)
		return err
	})
	update(t, s, func(tx keyhold.Tx) error {
		var err error
		second, err = tx.ClaimEventDelivery(ctx, now, lease)
		return err
	})
	if first.ID != es[0].ID || second.ID != es[2].ID {
		t.Fatalf("claimed events %d then %d, want %d then %d (oldest due Pending first)", first.ID, second.ID, es[0].ID, es[2].ID)
	}
	if first.Attempts != 1 || !first.NextAttemptAt.Equal(lease) {
		t.Errorf("claimed event has attempts %d, next attempt %v; want 1 and the lease's end %v", first.Attempts, first.NextAttemptAt, lease)
	}
	// es[4] is not due until 4s; es[0] and es[2] are leased.
	err := tryUpdate(s, func(tx keyhold.Tx) error { _, err := tx.ClaimEventDelivery(ctx, now, lease); return err })
	wantCode(t, "ClaimEventDelivery with nothing due", err, keyhold.CodeNotFound)

	first.Delivery, first.DeliveredAt, first.LastError = keyhold.DeliveryDelivered, at(4*time.Second), ""
	second.Delivery, second.LastError, second.NextAttemptAt = keyhold.DeliveryPending, "503 Service Unavailable", at(10*time.Second)
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.UpdateEventDelivery(ctx, first); err != nil {
			return err
		}
		return tx.UpdateEventDelivery(ctx, second)
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ListEvents(ctx, keyhold.EventFilter{TenantID: "t1"})
		if err != nil {
			return err
		}
		equal(t, "event after delivery", got[len(got)-1], first)
		equal(t, "event after a failed attempt", got[len(got)-3], second)
		return nil
	})
	// After the lease, at 11s: es[4] (due at 4s) comes before es[2] (due at 10s).
	var third *keyhold.Event
	update(t, s, func(tx keyhold.Tx) error {
		var err error
		third, err = tx.ClaimEventDelivery(ctx, at(11*time.Second), at(2*time.Minute))
		return err
	})
	if third.ID != es[4].ID {
		t.Errorf("claimed %d, want %d: the earliest next attempt first", third.ID, es[4].ID)
	}
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.UpdateEventDelivery(ctx, &keyhold.Event{ID: 1 << 40, Delivery: keyhold.DeliveryDelivered})
	})
	wantCode(t, "UpdateEventDelivery of a missing event", err, keyhold.CodeNotFound)
}

// testTenantSettings: defaults until stored; a put replaces.
func testTenantSettings(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.TenantSettings(ctx, "t1")
		if err != nil {
			return err
		}
		equal(t, "TenantSettings before any put", got, &keyhold.TenantSettings{TenantID: "t1"})
		return nil
	})
	want := &keyhold.TenantSettings{TenantID: "t1", AutoReenable: true, WebhookURL: "https://hooks.example/keyhold", UpdatedAt: at(time.Second), UpdatedBy: "u1"}
	update(t, s, func(tx keyhold.Tx) error { return tx.PutTenantSettings(ctx, want) })
	want2 := &keyhold.TenantSettings{TenantID: "t1", AutoReenable: false, WebhookURL: "", UpdatedAt: at(2 * time.Second), UpdatedBy: "u2"}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.TenantSettings(ctx, "t1")
		if err != nil {
			return err
		}
		equal(t, "TenantSettings after a put", got, want)
		return nil
	})
	update(t, s, func(tx keyhold.Tx) error { return tx.PutTenantSettings(ctx, want2) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.TenantSettings(ctx, "t1")
		if err != nil {
			return err
		}
		equal(t, "TenantSettings after a second put", got, want2)
		other, err := tx.TenantSettings(ctx, "t2")
		if err != nil {
			return err
		}
		equal(t, "another tenant's settings", other, &keyhold.TenantSettings{TenantID: "t2"})
		return nil
	})
}

// testAuditAfterID: following the log lists the entries after an id,
// oldest first, within the limit, and only the actions asked for.
func testAuditAfterID(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var ids []int64
	update(t, s, func(tx keyhold.Tx) error {
		for i := range 5 {
			e := &keyhold.AuditEntry{At: at(time.Duration(i) * time.Second), TenantID: "t1", ActorID: "u", Action: []string{"row.put", "key.update", "roleAssignment.delete", "key.get", "keyx"}[i], Target: fmt.Sprint(i), Result: "Succeeded"}
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
			ids = append(ids, e.ID)
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ListAudit(ctx, keyhold.AuditFilter{AfterID: ids[1], Limit: 2})
		if err != nil {
			return err
		}
		if len(got) != 2 || got[0].ID != ids[2] || got[1].ID != ids[3] {
			t.Errorf("ListAudit(after %d, limit 2) = %v, want ids %v oldest first", ids[1], got, ids[2:4])
		}
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{AfterID: ids[0], ActionPrefixes: []string{"key.update", "roleAssignment."}})
		if err != nil {
			return err
		}
		if len(got) != 2 || got[0].ID != ids[1] || got[1].ID != ids[2] {
			t.Errorf("ListAudit(actions key.update, roleAssignment.) = %v, want ids %v", got, ids[1:3])
		}
		if _, err := tx.ListAudit(ctx, keyhold.AuditFilter{ActionPrefixes: []string{"key%"}}); err == nil {
			t.Error("ListAudit with a wildcard in an action prefix: no error")
		}
		return nil
	})
}
