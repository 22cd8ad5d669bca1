package platform

import (
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/policy"
)

// TestExternalLastUnwrap (both databases, the key in the customer's
// Keyhold): a policy's last successful unwrap is never before any; the
// link sets it; within a minute further unwraps write nothing (the
// throttle: the stored time stays), after it the next one does; the
// health probe records one too; a failed unwrap and a failed probe after
// the grant is removed leave it where it was. The policy service's Get
// and the coverage report's customer rows show it, with the vault.
func TestExternalLastUnwrap(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		w := newExtWorld(t, f)
		defer f.runRunner()()
		assignment := w.c.grant(t)
		pol := w.policy(t, "lastunwrap", "", "cmk", "", "", "")
		env := f.managedEnv(t, "e")
		data := f.fill(t, env.ID, 2)
		last := func() time.Time {
			t.Helper()
			var at time.Time
			if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
				var err error
				at, err = tx.LastUnwrap(f.ctx, pol.PrincipalID, pol.UnwrapVault())
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return at
		}
		ps := policy.New(policy.Config{Store: f.store, Clock: f.clock, ARM: f.arm, Vaults: f.kv})
		shown := func() *time.Time {
			t.Helper()
			got, err := ps.Get(f.ctx, pol.SubscriptionID, pol.ResourceGroup, pol.Name)
			if err != nil {
				t.Fatal(err)
			}
			return got.LastUnwrap
		}
		if at := last(); !at.IsZero() {
			t.Fatalf("last unwrap before any = %v, want none", at)
		}
		if at := shown(); at != nil {
			t.Fatalf("policy Get before any unwrap: last unwrap %v, want nil (never)", at)
		}

		linkedAt := f.clock.Now().UTC()
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		t1 := last()
		if t1.IsZero() || t1.Before(linkedAt) {
			t.Fatalf("last unwrap after the link = %v, want at or after %v", t1, linkedAt)
		}
		if at := shown(); at == nil || !at.Equal(t1) {
			t.Fatalf("policy Get after the link: last unwrap %v, want %v", at, t1)
		}

		// Two more unwraps within the minute: no write.
		for _, d := range []time.Duration{10 * time.Second, 30 * time.Second} {
			f.clock.Advance(d)
			f.p.DropKeys("")
			before := f.p.Unwraps()
			f.check(t, env.ID, data)
			if f.p.Unwraps() == before {
				t.Fatal("reading after DropKeys unwrapped nothing")
			}
			if at := last(); !at.Equal(t1) {
				t.Fatalf("last unwrap %v after an unwrap %v later, want it kept at %v (one write a minute)", at, f.clock.Now().Sub(t1), t1)
			}
		}
		// A minute after the write, the next unwrap writes.
		f.clock.Advance(21 * time.Second)
		f.p.DropKeys("")
		f.check(t, env.ID, data)
		t2 := last()
		if !t2.Equal(f.clock.Now().UTC()) {
			t.Fatalf("last unwrap a minute later = %v, want %v", t2, f.clock.Now().UTC())
		}
		// The health probe wraps and unwraps: it records too.
		f.clock.Advance(2 * time.Minute)
		if h, err := f.p.CheckPolicyHealth(f.ctx, pol.ID()); err != nil || h != keyhold.HealthHealthy {
			t.Fatalf("health check: %v, %v", h, err)
		}
		t3 := last()
		if !t3.Equal(f.clock.Now().UTC()) {
			t.Fatalf("last unwrap after a healthy probe = %v, want %v", t3, f.clock.Now().UTC())
		}

		cov, err := f.p.EncryptionCoverage(f.ctx, env.ID)
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, s := range cov.Stores {
			for _, r := range s.Roots {
				if r.Root != keyhold.CoverageRootCustomer {
					continue
				}
				rows++
				if !strings.EqualFold(r.Vault, w.c.vaultURI) || !r.External || r.LastUnwrap == nil || !r.LastUnwrap.Equal(t3) {
					t.Errorf("coverage %s: vault %q external %v last unwrap %v, want %s, true, %v", s.Store, r.Vault, r.External, r.LastUnwrap, w.c.vaultURI, t3)
				}
			}
		}
		if rows == 0 {
			t.Fatalf("coverage has no customer rows: %+v", cov.Stores)
		}

		// The customer removes the grant: the unwrap and the probe fail,
		// and the last successful unwrap stays.
		w.c.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(f.ctx, assignment) })
		f.clock.Advance(2 * time.Minute)
		f.p.DropKeys("")
		if err := f.readBack(env.ID, data); err == nil {
			t.Fatal("read with the grant removed succeeded")
		}
		if at := last(); !at.Equal(t3) {
			t.Fatalf("last unwrap after a failed unwrap = %v, want it kept at %v", at, t3)
		}
		f.clock.Advance(2 * time.Minute)
		if h, _ := f.p.CheckPolicyHealth(f.ctx, pol.ID()); h != keyhold.HealthUnhealthy {
			t.Fatalf("health check with the grant removed: %v, want Unhealthy", h)
		}
		if at := last(); !at.Equal(t3) {
			t.Fatalf("last unwrap after a failed probe = %v, want it kept at %v", at, t3)
		}
		if at := shown(); at == nil || !at.Equal(t3) {
			t.Fatalf("policy Get after the revocation: last unwrap %v, want %v", at, t3)
		}
	})
}
