package platform

import (
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestBYOKRetainedKeyShown: after an environment migrates from its BYOK
// key to a customer-managed key, the policy's key-version usage and the
// environment's coverage report show the retained BYOK key: its id and
// thumbprint, the backup taken before the migration that it is kept for,
// the migration time and its shred date (28 days after the migration).
// On day 27 it is shown and the shred deletes nothing; on day 28 the
// shred deletes it and neither report shows it any more, while the
// policy's own key version is still listed.
func TestBYOKRetainedKeyShown(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "byok-retained")
		data := f.fill(t, env.ID, 4)
		_, k := f.byokTenant(t)
		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.CreateBackup(f.ctx, env.ID, "before the migration"); err != nil {
			t.Fatal(err)
		}
		v := f.newVault(t, "kv-byok-retained", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-retained", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		f.clock.Advance(time.Hour)
		f.succeed(t, "migration", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		migrated := f.clock.Now().UTC()
		if _, err := f.p.CreateBackup(f.ctx, env.ID, "after the migration"); err != nil {
			t.Fatal(err)
		}
		shredAt := migrated.Add(keyhold.BYOKKeyRetention)
		want := func(t *testing.T, what string, r *keyhold.RetainedBYOKKey, removal bool) {
			t.Helper()
			if r == nil {
				t.Fatalf("%s shows no retained BYOK key", what)
			}
			if r.KeyID != byokKIDPrefix+k.ID || r.Thumbprint != k.Thumbprint || r.PreMigrationBackups != 1 ||
				!r.MigratedAt.Equal(migrated) || !r.ShredAfter.Equal(shredAt) || r.RemovalRequested != removal {
				t.Fatalf("%s shows %+v; want key %s (thumbprint %s), 1 pre-migration backup, migrated %s, shred after %s, removal requested %v",
					what, r, k.ID, k.Thumbprint, migrated, shredAt, removal)
			}
		}
		usage := func(t *testing.T) (versions int, retained *keyhold.KeyVersionUsage) {
			t.Helper()
			us, err := f.p.KeyVersionUsage(f.ctx, pol.ID())
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range us {
				if u.RetainedBYOK != nil {
					retained = u
				} else {
					versions++
				}
			}
			return versions, retained
		}
		coverage := func(t *testing.T) *keyhold.RetainedBYOKKey {
			t.Helper()
			c, err := f.p.EncryptionCoverage(f.ctx, env.ID)
			if err != nil {
				t.Fatal(err)
			}
			return c.RetainedBYOK
		}
		n, u := usage(t)
		if n != 1 || u == nil {
			t.Fatalf("key version usage after the migration: %d versions, retained %+v; want 1 and the BYOK key", n, u)
		}
		want(t, "key version usage", u.RetainedBYOK, false)
		if u.KeyID != byokKIDPrefix+k.ID || u.Backups != 1 || !u.SafeToDisableAt.Equal(shredAt) || u.Current {
			t.Fatalf("the retained key's usage entry %+v", u)
		}
		want(t, "the coverage report", coverage(t), false)

		f.clock.Advance(24 * time.Hour)
		if _, err := f.p.RemoveBYOK(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Set(migrated.Add(27 * 24 * time.Hour))
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 0 {
			t.Fatalf("shred on day 27: %d, %v", n, err)
		}
		_, u = usage(t)
		want(t, "key version usage on day 27", u.RetainedBYOK, true)
		want(t, "the coverage report on day 27", coverage(t), true)

		f.clock.Set(shredAt)
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 1 {
			t.Fatalf("shred on day 28: %d, %v", n, err)
		}
		if n, u := usage(t); n != 1 || u != nil {
			t.Fatalf("key version usage after the shred: %d versions, retained %+v; want 1 and no BYOK key", n, u)
		}
		if r := coverage(t); r != nil {
			t.Fatalf("the coverage report after the shred shows %+v", r)
		}
		f.check(t, env.ID, data)
	})
}
