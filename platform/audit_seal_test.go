package platform

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// auditTableHolds reports whether any column of any audit_log row holds
// marker: the database as an attacker who reads it sees it.
func auditTableHolds(t *testing.T, store keyhold.Store, marker string) bool {
	t.Helper()
	db := store.(interface{ DB() *sql.DB }).DB()
	rows, err := db.QueryContext(context.Background(), `SELECT target, detail, action, actor_id, sealed FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var target, detail, action, actor string
		var sealed []byte
		if err := rows.Scan(&target, &detail, &action, &actor, &sealed); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(target+detail+action+actor, marker) || bytes.Contains(sealed, []byte(marker)) {
			return true
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return false
}

// dataEntries returns env's data-plane entries as listed, oldest first.
func (f *cmkFixture) dataEntries(t *testing.T, envID string) []*keyhold.AuditEntry {
	t.Helper()
	es, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: envID, Limit: 1000})
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	var out []*keyhold.AuditEntry
	for i := len(es) - 1; i >= 0; i-- {
		if keyhold.AuditSealed(es[i].Action) {
			out = append(out, es[i])
		}
	}
	return out
}

// TestAuditSealedUnderEnvironmentKey: the data plane's entries are sealed
// under the environment's key (nothing of their target in the audit
// table), listed in clear to the admin, moved with a re-key (the link),
// withheld while the environment is locked with the platform's own
// entries still readable; entries written in clear before are sealed by
// SealPlainAudit, and a reset shreds them with its keys.
func TestAuditSealedUnderEnvironmentKey(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		marker := string(newMarker(t))
		env := f.managedEnv(t, "audit")
		rowID := "r-" + marker
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", rowID, json.RawMessage(`{"a":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := f.p.DeleteRow(f.ctx, env.ID, "accounts", rowID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PutFile(f.ctx, env.ID, "f-"+marker, strings.NewReader("body")); err != nil {
			t.Fatal(err)
		}
		wantTargets := func(when string, more ...string) {
			t.Helper()
			es := f.dataEntries(t, env.ID)
			want := append([]string{"row.put " + rowTarget(env.ID, "accounts", rowID), "row.delete " + rowTarget(env.ID, "accounts", rowID), "file.put " + fileTarget(env.ID, "f-"+marker)}, more...)
			var got []string
			for _, e := range es {
				if e.Withheld {
					t.Fatalf("%s: entry %d withheld", when, e.ID)
				}
				got = append(got, e.Action+" "+e.Target)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%s: data entries\n%s\nwant\n%s", when, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if es[2].Detail != "4 bytes" {
				t.Fatalf("%s: file.put detail %q, want \"4 bytes\"", when, es[2].Detail)
			}
		}
		wantTargets("after the writes")
		if auditTableHolds(t, f.store, marker) {
			t.Fatal("the audit table holds a data entry's target in clear")
		}
		if cs := f.epochCounts(t, env.ID); len(cs) != 1 || cs[0].Epoch != env.Epoch || cs[0].Audit != 3 {
			t.Fatalf("items per epoch %v, want 3 audit entries on epoch %d", cs, env.Epoch)
		}

		// An entry written in clear before Keyhold sealed them.
		legacy := "legacy-" + marker
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			return tx.AppendAudit(ctx, &keyhold.AuditEntry{At: f.clock.Now(), TenantID: env.TenantID, ActorID: f.adminID(), Action: "row.put",
				Target: rowTarget(env.ID, "accounts", legacy), EnvID: env.ID, Result: keyhold.AuditSucceeded})
		}); err != nil {
			t.Fatal(err)
		}
		if !auditTableHolds(t, f.store, legacy) {
			t.Fatal("the planted entry in clear is not found: the scan can't fail")
		}
		n, left, err := f.p.SealPlainAudit(ctx)
		if err != nil || n != 1 || left != 0 {
			t.Fatalf("SealPlainAudit = %d sealed, %d left, %v; want 1, 0", n, left, err)
		}
		if auditTableHolds(t, f.store, legacy) {
			t.Fatal("the entry in clear is still in clear after SealPlainAudit")
		}
		if n, _, err := f.p.SealPlainAudit(ctx); err != nil || n != 0 {
			t.Fatalf("SealPlainAudit again = %d, %v; want nothing to do", n, err)
		}
		es := f.dataEntries(t, env.ID)
		if len(es) != 4 || es[3].Target != rowTarget(env.ID, "accounts", legacy) {
			t.Fatalf("after SealPlainAudit: %d data entries, last %+v", len(es), es[len(es)-1])
		}

		// The link re-keys the environment: its audit moves too.
		w := f.newVault(t, "kv-audit", true)
		f.newKey(t, w, "k")
		pol := f.newPolicy(t, "pol-audit", w, "k", nil)
		f.grantKey(t, pol, w, "k")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		linked := f.env(t, env.ID)
		if cs := f.epochCounts(t, env.ID); len(cs) != 1 || cs[0].Epoch != linked.Epoch || cs[0].Epoch == env.Epoch || cs[0].Audit != 4 {
			t.Fatalf("after the link: items per epoch %v, want the 4 audit entries on epoch %d only", cs, linked.Epoch)
		}
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].Root != keyhold.RootCMK {
			t.Fatalf("after the link: wrapped keys %v, want only the CMK's", describeKeys(wks))
		}
		f.p.DropKeys(env.ID)
		wantTargets("after the link", "row.put "+rowTarget(env.ID, "accounts", legacy))

		// Locked: the data entries are withheld, the platform's are not.
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			e, err := tx.Environment(ctx, env.ID)
			if err != nil {
				return err
			}
			e.State, e.LockedAt = keyhold.StateLocked, f.clock.Now().UTC()
			return tx.UpdateEnvironment(ctx, e)
		}); err != nil {
			t.Fatal(err)
		}
		all, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: env.ID, Limit: 1000})
		if err != nil {
			t.Fatalf("ListAudit of the locked environment: %v", err)
		}
		var withheld, readable int
		for _, e := range all {
			switch {
			case keyhold.AuditSealed(e.Action) && (!e.Withheld || e.Target != "" || e.Detail != ""):
				t.Fatalf("locked: data entry %+v not withheld", e)
			case keyhold.AuditSealed(e.Action):
				withheld++
			case e.Target != "" && !e.Withheld:
				readable++
			}
		}
		if withheld != 4 || readable == 0 {
			t.Fatalf("locked: %d withheld, %d platform entries readable; want 4 and some", withheld, readable)
		}
		if n, left, err := f.p.SealPlainAudit(ctx); err != nil || n != 0 || left != 0 {
			t.Fatalf("SealPlainAudit while locked = %d, %d, %v", n, left, err)
		}
	})
}
