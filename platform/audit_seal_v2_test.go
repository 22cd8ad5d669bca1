package platform

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestAuditSealV2 (both databases): a data-plane entry is appended sealed
// in the v2 format, in one statement (TestDataPlaneQueries counts them);
// its seal binds its clear columns, so an entry whose actor is changed in
// the database, or whose seal is copied onto another entry, fails its
// check (and the listing says so) instead of showing a target it didn't
// have (two entries by one actor with one action at one instant of the
// clock included: each gets its own time); an entry sealed in the v1
// format (bound to its row id) still reads, and a link's re-key seals
// every entry in v1.
func TestAuditSealV2(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		env := f.managedEnv(t, "auditv2")
		for _, id := range []string{"a", "b"} {
			if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", id, json.RawMessage(`{"a":1}`)); err != nil {
				t.Fatal(err)
			}
		}
		es := f.dataEntries(t, env.ID)
		if len(es) != 2 || es[0].Target != rowTarget(env.ID, "accounts", "a") || es[1].Target != rowTarget(env.ID, "accounts", "b") {
			t.Fatalf("data entries %+v", es)
		}
		ss := f.store.(*sqlstore.Store)
		sealedOf := func(id int64) []byte {
			t.Helper()
			query := `SELECT sealed FROM audit_log WHERE id = ?`
			if ss.Dialect().Numbered {
				query = sqlstore.Rebind(query)
			}
			var b []byte
			if err := ss.DB().QueryRowContext(ctx, query, id).Scan(&b); err != nil {
				t.Fatal(err)
			}
			return b
		}
		exec := func(query string, args ...any) {
			t.Helper()
			if n := storetest.Exec(t, f.store, query, args...); n != 1 {
				t.Fatalf("%s changed %d rows", query, n)
			}
		}
		listFails := func(what string) {
			t.Helper()
			f.p.DropKeys("")
			if _, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: env.ID, Limit: 1000}); keyhold.ErrorCode(err) != keyhold.CodeInternal {
				t.Fatalf("%s: ListAudit = %v, want the integrity check's CodeInternal", what, err)
			}
		}
		a, b := es[0], es[1]
		sa := sealedOf(a.ID)
		if len(sa) == 0 || sa[0] != auditSealV2 {
			t.Fatalf("entry %d sealed %x..., want the v2 format", a.ID, sa[:min(len(sa), 4)])
		}

		// The actor changed in the database.
		exec(`UPDATE audit_log SET actor_id = ? WHERE id = ?`, "someone-else", a.ID)
		listFails("an entry's actor changed")
		exec(`UPDATE audit_log SET actor_id = ? WHERE id = ?`, a.ActorID, a.ID)
		// Entry a's seal copied onto entry b.
		sb := sealedOf(b.ID)
		exec(`UPDATE audit_log SET sealed = ? WHERE id = ?`, sa, b.ID)
		listFails("a seal copied onto another entry")
		exec(`UPDATE audit_log SET sealed = ? WHERE id = ?`, sb, b.ID)
		if es := f.dataEntries(t, env.ID); len(es) != 2 || es[1].Target != b.Target {
			t.Fatalf("after undoing the changes: %+v", es)
		}

		// A v1 entry: appended with an empty target, then sealed bound to
		// its row id, as Keyhold wrote them before.
		sk, err := f.p.storeKey(ctx, env.ID, env.Epoch, keyhold.StoreAudit)
		if err != nil {
			t.Fatal(err)
		}
		v1Target := rowTarget(env.ID, "accounts", "v1")
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			e, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: f.clock.Now(), TenantID: env.TenantID, ActorID: f.adminID(), Action: "row.put", EnvID: env.ID})
			if err != nil {
				return err
			}
			pt, _ := json.Marshal(auditSecret{Target: v1Target})
			ct, err := sk.Seal(auditItemID(e.ID), 1, pt)
			if err != nil {
				return err
			}
			e.Epoch, e.Version, e.Sealed = sk.Epoch(), 1, ct
			_, err = tx.SealAudit(ctx, e, 0)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		sk.Destroy()
		es = f.dataEntries(t, env.ID)
		if len(es) != 3 || es[2].Target != v1Target {
			t.Fatalf("with a v1 entry: %+v", es)
		}
		if s := sealedOf(es[2].ID); s[0] == auditSealV2 {
			t.Fatal("the planted v1 entry is v2")
		}

		// The link re-keys every entry, v1 ones into v2.
		w := f.newVault(t, "kv-auditv2", true)
		f.newKey(t, w, "k")
		pol := f.newPolicy(t, "pol-auditv2", w, "k", nil)
		f.grantKey(t, pol, w, "k")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		f.p.DropKeys(env.ID)
		es = f.dataEntries(t, env.ID)
		if len(es) != 3 || es[0].Target != a.Target || es[1].Target != b.Target || es[2].Target != v1Target {
			t.Fatalf("after the link: %+v", es)
		}
		for _, e := range es {
			if s := sealedOf(e.ID); s[0] == auditSealV2 || e.Epoch == env.Epoch {
				t.Errorf("after the link, entry %d: epoch %d, format byte %#x; want the new epoch, v1 (bound to the row id)", e.ID, e.Epoch, s[0])
			}
		}
		// Bound to its row id again: a seal copied onto another entry fails.
		exec(`UPDATE audit_log SET sealed = ? WHERE id = ?`, sealedOf(es[0].ID), es[1].ID)
		listFails("after the re-key, a seal copied onto another entry")
	})
}
