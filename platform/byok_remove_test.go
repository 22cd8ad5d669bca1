package platform

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestBYOKRemoval: removal is refused while an environment is still under
// the BYOK key, naming it; after the last migration it is accepted, the
// BYOK option disappears (every BYOK action refused, naming the removal)
// while new environments work as before, and the keys are kept until 28
// days after the migration, then deleted, on the injected clock.
func TestBYOKRemoval(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "byok-remove")
		data := f.fill(t, env.ID, 4)
		f.byokTenant(t) // after the environment, which apply then moves
		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		f.fixture.refuse(t, "removal while an environment is under BYOK", keyhold.CodeConflict, []string{env.ID, "migrate each"}, func() error {
			_, err := f.p.RemoveBYOK(f.ctx)
			return err
		})
		v := f.newVault(t, "kv-byok-remove", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-remove", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		f.succeed(t, "migration", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		migrated := f.clock.Now().UTC()
		f.clock.Advance(3 * 24 * time.Hour)

		st, err := f.p.RemoveBYOK(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		shredAt := migrated.Add(28 * 24 * time.Hour)
		if !st.ShredAfter.Equal(shredAt) || st.RemovalRequestedAt.IsZero() {
			t.Fatalf("RemoveBYOK = %+v, want keys deleted at %s", st, shredAt)
		}
		for _, c := range []struct {
			name string
			fn   func() error
		}{
			{"upload", func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
				return err
			}},
			{"generate", func() error { _, err := f.p.GenerateBYOKKey(f.ctx, 2048); return err }},
			{"activate", func() error { _, err := f.p.ActivateBYOKKey(f.ctx, "any"); return err }},
			{"apply", func() error { _, err := f.p.ApplyBYOK(f.ctx, f.managedEnv(t, "after").ID); return err }},
			{"lock", func() error { _, err := f.p.LockBYOKTenant(f.ctx); return err }},
		} {
			if err := c.fn(); keyhold.ErrorCode(err) != keyhold.CodeNotSupported || !strings.Contains(keyhold.ErrorMessage(err), "BYOK was removed") {
				t.Errorf("%s after the removal: %v", c.name, err)
			}
		}
		if _, err := f.p.RemoveBYOK(f.ctx); keyhold.ErrorCode(err) != keyhold.CodeConflict {
			t.Errorf("a second removal: %v", err)
		}
		plain := f.managedEnv(t, "plain")
		if _, err := f.p.PutRow(f.ctx, plain.ID, "t", "r", json.RawMessage(`{}`)); err != nil {
			t.Fatalf("a new environment after the removal: %v", err)
		}

		keys := func() int {
			t.Helper()
			var n int
			if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
				ks, err := tx.BYOKKeys(context.Background(), f.creds.TenantID)
				n = len(ks)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		f.clock.Set(shredAt.Add(-time.Second))
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 0 || keys() != 1 {
			t.Fatalf("shred a second before day 28: %d, %v; %d keys left, want 1", n, err, keys())
		}
		f.clock.Set(shredAt)
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 1 || keys() != 0 {
			t.Fatalf("shred on day 28: %d, %v; %d keys left, want 0", n, err, keys())
		}
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 0 {
			t.Fatalf("a second shred: %d, %v", n, err)
		}
		f.check(t, env.ID, data) // the migrated environment needs no BYOK key
	})
}

// TestBYOKRestoreAfterMigration: a backup taken while the environment was
// under the BYOK key restores over it within the 28 days after its
// migration, bringing back the pre-migration data.
func TestBYOKRestoreAfterMigration(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "byok-restore")
		f.byokTenant(t) // after the environment, which apply then moves
		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		before := f.fill(t, env.ID, 6, 2000)
		b, err := f.p.CreateBackup(f.ctx, env.ID, "before the migration")
		if err != nil {
			t.Fatal(err)
		}
		v := f.newVault(t, "kv-byok-restore", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-restore", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		f.succeed(t, "migration", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "r0000", json.RawMessage(`{"after":true}`)); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(27 * 24 * time.Hour)
		f.succeed(t, "restore of the pre-migration backup", func() (*keyhold.Operation, error) { return f.p.RestoreBackup(f.ctx, env.ID, b.ID) })
		f.check(t, env.ID, before)
		if e := f.env(t, env.ID); e.KeyManagedBy != keyhold.KeyManagedByCustomer {
			t.Fatalf("after the restore: %s", e.KeyManagedBy)
		}
	})
}
