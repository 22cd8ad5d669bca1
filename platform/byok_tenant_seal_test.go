package platform

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// byokTenantState reads a tenant's BYOK state as stored, seal included.
func (f *fixture) byokTenantState(t *testing.T) *keyhold.BYOKTenant {
	t.Helper()
	return storetest.Read(t, f.store, func(ctx context.Context, tx keyhold.Tx) (*keyhold.BYOKTenant, error) {
		return tx.BYOKTenant(ctx, f.creds.TenantID)
	})
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
