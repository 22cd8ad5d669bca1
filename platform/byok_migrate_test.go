package platform

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestBYOKMigration: a BYOK environment migrates to a customer-managed
// key through the ordinary link call with no downtime: readers and
// writers running throughout see no error, and the environment is never
// anything but Enabled. Afterwards its keys are only under the policy's
// key (no BYOK copy), its data reads back, re-encryption with the BYOK
// key is refused, and an unlink is refused naming the date until day 7 on
// the injected clock, when it goes through.
func TestBYOKMigration(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "byok-migrate")
		data := f.fill(t, env.ID, 20, 3000)
		f.byokTenant(t) // after the environment, which apply then moves
		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		v := f.newVault(t, "kv-byok-mig", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-byok-mig", v, "k", nil)
		f.grantKey(t, pol, v, "k")

		var stop atomic.Bool
		var reads, writes, notEnabled atomic.Int64
		var mu sync.Mutex
		var failures []string
		fail := func(s string) {
			mu.Lock()
			defer mu.Unlock()
			if len(failures) < 5 {
				failures = append(failures, s)
			}
		}
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					id := fmt.Sprintf("w%d-%d", w, i)
					if _, err := f.p.PutRow(f.ctx, env.ID, "load", id, json.RawMessage(`{"i":1}`)); err != nil {
						fail("write " + id + ": " + err.Error())
					} else {
						writes.Add(1)
					}
					if _, err := f.p.GetRow(f.ctx, env.ID, "accounts", "r0000"); err != nil {
						fail("read: " + err.Error())
					} else {
						reads.Add(1)
					}
					if e, err := f.p.FindEnvironment(f.ctx, env.ID); err != nil || e.State != keyhold.StateEnabled {
						notEnabled.Add(1)
					}
				}
			}()
		}
		time.Sleep(50 * time.Millisecond) // the load is running before the link
		op := f.succeed(t, "migration", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		time.Sleep(50 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		if len(failures) > 0 || notEnabled.Load() > 0 {
			t.Fatalf("during the migration: %d reads, %d writes, %d times not Enabled; failures %v", reads.Load(), writes.Load(), notEnabled.Load(), failures)
		}
		if reads.Load() == 0 || writes.Load() == 0 {
			t.Fatal("no load ran during the migration")
		}
		t.Logf("during the migration (%s): %d reads, %d writes, no error", op.ID, reads.Load(), writes.Load())

		e := f.env(t, env.ID)
		if e.KeyManagedBy != keyhold.KeyManagedByCustomer || e.PolicyID != pol.ID() || e.State != keyhold.StateEnabled {
			t.Fatalf("after the migration: %+v", e)
		}
		for _, wk := range f.wrapped(t, env.ID) {
			if wk.Root != keyhold.RootCMK {
				t.Fatalf("a %s copy is left after the migration: %v", wk.Root, describeKeys(f.wrapped(t, env.ID)))
			}
		}
		f.check(t, env.ID, data)
		var audited bool
		// Only the link's entries: the load above writes an entry per put,
		// often more than a page (1,000) of them.
		linkEntries, lerr := f.p.ListAudit(f.ctx, keyhold.AuditFilter{ActionPrefixes: []string{auditLinkStart, auditLinkDisable}, Limit: 1000})
		if lerr != nil {
			t.Fatal(lerr)
		}
		for _, a := range linkEntries {
			audited = audited || a.Action == auditLinkStart && strings.Contains(a.Detail, "migrating from the tenant's BYOK key")
			if a.EnvID == env.ID && a.Action == auditLinkDisable {
				t.Errorf("the migration disabled the environment: %s", a.Detail)
			}
		}
		if !audited {
			t.Error("the link's start does not say it migrates from BYOK")
		}

		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); keyhold.ErrorCode(err) != keyhold.CodeConflict || !strings.Contains(keyhold.ErrorMessage(err), "customer-managed key") {
			t.Fatalf("re-encrypting a migrated environment with the BYOK key: %v", err)
		}
		migrated := f.clock.Now().UTC()
		day7 := migrated.Add(7 * 24 * time.Hour).Format(time.RFC3339)
		f.clock.Advance(7*24*time.Hour - time.Second)
		before := describeKeys(f.wrapped(t, env.ID))
		_, err := f.p.UnlinkPolicy(f.ctx, env.ID, pol.SystemID)
		if keyhold.ErrorCode(err) != keyhold.CodeConflict || !strings.Contains(keyhold.ErrorMessage(err), day7) || !strings.Contains(keyhold.ErrorMessage(err), "7 days") {
			t.Fatalf("unlink a second before day 7: %v (want one naming %s)", err, day7)
		}
		if after := describeKeys(f.wrapped(t, env.ID)); strings.Join(after, " ") != strings.Join(before, " ") || f.env(t, env.ID).KeyManagedBy != keyhold.KeyManagedByCustomer {
			t.Fatal("the refused unlink changed the environment")
		}
		f.clock.Advance(time.Second)
		f.succeed(t, "unlink on day 7", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(f.ctx, env.ID, pol.SystemID) })
		if e := f.env(t, env.ID); e.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
			t.Fatalf("after the unlink: %s", e.KeyManagedBy)
		}
		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); keyhold.ErrorCode(err) != keyhold.CodeConflict || !strings.Contains(keyhold.ErrorMessage(err), "can't be re-encrypted with the BYOK key") {
			t.Fatalf("re-encrypting with the BYOK key after the unlink: %v", err)
		}
	})
}

// wantBYOKMigrated checks that an environment's migration from BYOK is
// recorded and that no step of it disabled the environment.
func wantBYOKMigrated(t *testing.T, f *cmkFixture, envID string) {
	t.Helper()
	var m *keyhold.BYOKMigration
	if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
		var err error
		m, err = tx.BYOKMigration(f.ctx, envID)
		return err
	}); err != nil || m == nil {
		t.Errorf("no BYOK migration recorded for %s: %v", envID, err)
	}
	for _, a := range f.fixture.auditAll(t) {
		if a.EnvID == envID && a.Action == auditLinkDisable {
			t.Errorf("the migration disabled the environment: %s", a.Detail)
		}
	}
}
