package platform

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// byokTenantState reads a tenant's BYOK state as stored, seal included.
func (f *fixture) byokTenantState(t *testing.T) *keyhold.BYOKTenant {
	t.Helper()
	var st *keyhold.BYOKTenant
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) {
		st, err = tx.BYOKTenant(context.Background(), f.creds.TenantID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestBYOKTenantSealed: a database writer without the master key clears
// a tenant's lock, removes its state's seal, or deletes its state row;
// each time applying BYOK, creating an environment, unlocking and locking
// are refused with CodeRecordIntegrity and audited, the tenant is still
// treated as locked, and nothing changed. Put back, the genuine state
// unlocks and locks as before.
func TestBYOKTenantSealed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		db := rawDB(f)
		plain := f.createEnv(t, "plain") // under the platform key
		up, _ := f.byokTenant(t)
		f.createEnv(t, "byok")
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatal(err)
		}
		genuine := f.byokTenantState(t)
		if len(genuine.MAC) == 0 || genuine.LockedAt.IsZero() {
			t.Fatalf("the locked state is not sealed: %+v", genuine)
		}
		snapshot := func() string {
			es, err := f.p.ListEnvironments(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, e := range es {
				s = append(s, fmt.Sprintf("%s:%s:%s", e.ID, e.State, e.KeyManagedBy))
			}
			sort.Strings(s)
			return strings.Join(s, " ") + "\n" + byokRows(t, db)
		}
		before := snapshot()
		edits := map[string]string{
			"lock cleared": `UPDATE byok_tenants SET locked_at = -9223372036854775808, locked_by = ''`,
			"seal removed": `UPDATE byok_tenants SET mac = NULL`,
			"row deleted":  `DELETE FROM byok_tenants`,
		}
		for name, edit := range edits {
			t.Run(name, func(t *testing.T) {
				execSQL(t, db, edit)
				refused := f.auditCount(t, auditIntegrity)
				tries := map[string]func() error{
					"apply": func() error { _, err := f.p.ApplyBYOK(f.ctx, plain.ID); return err },
					"create": func() error {
						return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "new", Location: "europe", SKU: keyhold.SKUProduction})
					},
					"unlock": func() error { _, err := f.p.UnlockBYOKTenant(f.ctx, up); return err },
					"lock":   func() error { _, err := f.p.LockBYOKTenant(f.ctx); return err },
				}
				for what, try := range tries {
					if err := try(); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
						t.Errorf("%s after %s: %v, want %s", what, name, err, keyhold.CodeRecordIntegrity)
					}
				}
				if got := snapshot(); got != before {
					t.Errorf("refusals changed the state:\n%s\nwant\n%s", got, before)
				}
				if n := f.auditCount(t, auditIntegrity); n < refused+len(tries) {
					t.Errorf("%s entries: %d, want at least %d", auditIntegrity, n, refused+len(tries))
				}
				if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
					return tx.PutBYOKTenant(context.Background(), genuine)
				}); err != nil {
					t.Fatal(err)
				}
			})
		}
		if _, err := f.p.UnlockBYOKTenant(f.ctx, up); err != nil {
			t.Fatalf("unlock with the genuine state: %v", err)
		}
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatalf("lock after the unlock: %v", err)
		}
		if st := f.byokTenantState(t); st.LockedAt.IsZero() || len(st.MAC) == 0 {
			t.Fatalf("state after the lock: %+v", st)
		}
	})
}

// TestBYOKTenantSealedAtStart: states written before they were sealed
// are sealed at start-up (audited integrity.seal) while no state has a
// seal; once one has, an unsealed state stays refused.
func TestBYOKTenantSealedAtStart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		db := rawDB(f)
		up, _ := f.byokTenant(t)
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatal(err)
		}
		execSQL(t, db, `UPDATE byok_tenants SET mac = NULL`)
		reopen := func() {
			t.Helper()
			p, err := Open(context.Background(), Config{Store: f.store, MasterKey: f.master, Clock: f.clock, Issuer: "https://keyhold.test"})
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
		}
		seals := f.auditCount(t, "integrity.seal")
		reopen()
		if n := f.auditCount(t, "integrity.seal"); n != seals+1 {
			t.Fatalf("integrity.seal entries: %d, want %d", n, seals+1)
		}
		if st := f.byokTenantState(t); len(st.MAC) == 0 || st.LockedAt.IsZero() {
			t.Fatalf("state after the start: %+v", st)
		}
		if _, err := f.p.UnlockBYOKTenant(f.ctx, up); err != nil {
			t.Fatalf("unlock of the state sealed at start: %v", err)
		}

		// Another tenant's sealed state: the start now leaves ours.
		other := f.createOtherTenant(t)
		st := &keyhold.BYOKTenant{TenantID: other}
		f.p.BYOK.rec.SealBYOKTenant(st)
		if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error { return tx.PutBYOKTenant(context.Background(), st) }); err != nil {
			t.Fatal(err)
		}
		execSQL(t, db, fmt.Sprintf(`UPDATE byok_tenants SET mac = NULL WHERE tenant_id = '%s'`, f.creds.TenantID))
		seals = f.auditCount(t, "integrity.seal")
		reopen()
		if n := f.auditCount(t, "integrity.seal"); n != seals {
			t.Fatalf("an unsealed state was sealed while another had a seal (%d entries, want %d)", n, seals)
		}
		if _, err := f.p.LockBYOKTenant(f.ctx); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Fatalf("lock with an unsealed state: %v", err)
		}
	})
}

func (f *fixture) createOtherTenant(t *testing.T) string {
	t.Helper()
	id := uuid.NewString()
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		return tx.CreateTenant(context.Background(), &keyhold.Tenant{ID: id, DisplayName: "other", CreatedAt: f.clock.Now().UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBYOKShredRefusesForgedRemoval: a removal written into the tenant's
// state past Keyhold (unsealed) does not shred the tenant's keys: the
// shredder skips it, audited, and the keys stay.
func TestBYOKShredRefusesForgedRemoval(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		db := rawDB(f)
		f.byokTenant(t)
		before := byokRows(t, db)
		execSQL(t, db, `UPDATE byok_tenants SET removal_requested_at = 1, shred_after = 1`)
		refused := f.auditCount(t, auditIntegrity)
		n, err := f.p.RunBYOKShred(f.ctx)
		if err != nil || n != 0 {
			t.Fatalf("shred of a forged removal: %d tenants, %v; want 0", n, err)
		}
		if got := byokRows(t, db); got != before {
			t.Fatalf("keys changed by a forged removal:\n%s\nwant\n%s", got, before)
		}
		if got := f.auditCount(t, auditIntegrity); got != refused+1 {
			t.Fatalf("%s entries: %d, want %d", auditIntegrity, got, refused+1)
		}
	})
}
