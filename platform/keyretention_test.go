package platform

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestKeyRetentionAfterRemoval: the spec asks that the key and the
// policy's access to it be kept 30 days after an environment is removed
// from the policy, and a key version 28 days after a rotation moved the
// last environment key off it. With the injected clock: a version last
// used by an environment that was unlinked, swapped away or reset is safe
// to disable 30 days after; one that a rotation left, 28 days after. The
// unlink's answer warns, naming the key, the vault, the policy and the
// date.
func TestKeyRetentionAfterRemoval(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		type world struct {
			v   *keyhold.Vault
			kb  *keyhold.KeyBundle
			pol *keyhold.EnterprisePolicy
		}
		newWorld := func(name string) world {
			v := f.newVault(t, "kv-"+name, true)
			kb := f.newKey(t, v, "k")
			pol := f.newPolicy(t, "pol-"+name, v, "k", nil)
			f.grantKey(t, pol, v, "k")
			return world{v, kb, pol}
		}
		linked := func(w world, sku keyhold.EnvironmentSKU) *keyhold.Environment {
			e := f.managedEnv(t, "env-"+w.pol.Name)
			if sku != keyhold.SKUProduction {
				f.setEnv(t, e.ID, func(e *keyhold.Environment) { e.SKU = sku })
			}
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e.ID, w.pol.SystemID) })
			f.fill(t, e.ID, 2)
			return e
		}
		// oldVersion rotates w's key (after an hour, so that the new
		// version is not the one just used) and returns the usage of the
		// version the environments used.
		oldVersion := func(w world) *keyhold.KeyVersionUsage {
			t.Helper()
			f.clock.Advance(time.Hour)
			if _, err := f.kv.RotateKey(f.ctx, w.v.Name, "k"); err != nil {
				t.Fatal(err)
			}
			usage, err := f.p.KeyVersionUsage(f.ctx, w.pol.ID())
			if err != nil || len(usage) != 2 || usage[0].Version != w.kb.Version.Version || usage[0].Current {
				t.Fatalf("KeyVersionUsage(%s) = %s, %v; want the old version first", w.pol.Name, showUsage(usage), err)
			}
			return usage[0]
		}
		wantSafe := func(what string, u *keyhold.KeyVersionUsage, used time.Time, keep time.Duration) {
			t.Helper()
			if u.LiveKeys != 0 || !u.LastUsedAt.Equal(used) || !u.SafeToDisableAt.Equal(used.Add(keep)) {
				t.Errorf("%s: version %s last used %v, safe to disable %v (live keys %d); want last used %v, safe %v (+%v)",
					what, u.Version, u.LastUsedAt, u.SafeToDisableAt, u.LiveKeys, used, used.Add(keep), keep)
			}
		}

		// Unlink: 30 days, and the answer says so.
		unlinked := newWorld("unlinked")
		e := linked(unlinked, keyhold.SKUProduction)
		at := f.clock.Now().UTC()
		op, err := f.p.UnlinkPolicy(f.ctx, e.ID, unlinked.pol.SystemID)
		if err != nil {
			t.Fatal(err)
		}
		if len(op.Warnings) != 1 {
			t.Fatalf("unlink warnings %q, want one", op.Warnings)
		}
		for _, m := range []string{"30 days", "key k of key vault kv-unlinked", unlinked.pol.ID(), at.Add(30 * 24 * time.Hour).Format(time.RFC3339), "restoring"} {
			if !strings.Contains(op.Warnings[0], m) {
				t.Errorf("unlink warning %q does not mention %q", op.Warnings[0], m)
			}
		}
		if op = f.wait(t, op); op.State != keyhold.OperationSucceeded {
			t.Fatalf("unlink: %s %s", op.State, op.ErrorMsg)
		}
		wantSafe("after an unlink", oldVersion(unlinked), at, keyhold.KeyRetentionAfterRemoval)

		// Swap: the policy left behind keeps its key 30 days.
		left, joined := newWorld("left"), newWorld("joined")
		e = linked(left, keyhold.SKUProduction)
		at = f.clock.Now().UTC()
		f.succeed(t, "swap", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e.ID, joined.pol.SystemID) })
		wantSafe("after a swap", oldVersion(left), at, keyhold.KeyRetentionAfterRemoval)

		// Rotation: the version it moved off, 28 days (the environment
		// stays on the policy). joined's key holds the swapped
		// environment.
		f.clock.Advance(time.Hour)
		if _, err := f.kv.RotateKey(f.ctx, joined.v.Name, "k"); err != nil {
			t.Fatal(err)
		}
		at = f.clock.Now().UTC()
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
			t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
		}
		rot := f.operations(t, joined.pol.ID())
		if len(rot) != 1 || f.wait(t, rot[0]).State != keyhold.OperationSucceeded {
			t.Fatalf("rotation operations %+v", rot)
		}
		usage, err := f.p.KeyVersionUsage(f.ctx, joined.pol.ID())
		if err != nil || len(usage) != 2 {
			t.Fatalf("KeyVersionUsage = %s, %v", showUsage(usage), err)
		}
		wantSafe("after a rotation", usage[0], at, keyhold.KeyVersionRetention)

		// Reset of a linked Sandbox: it leaves the policy, 30 days.
		reset := newWorld("reset")
		e = linked(reset, keyhold.SKUSandbox)
		at = f.clock.Now().UTC()
		f.succeed(t, "reset", func() (*keyhold.Operation, error) { return f.p.ResetEnvironment(f.ctx, e.ID) })
		wantSafe("after a reset", oldVersion(reset), at, keyhold.KeyRetentionAfterRemoval)
	})
}
