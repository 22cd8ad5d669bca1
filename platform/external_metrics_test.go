package platform

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestExternalUnwrapMetrics: unwraps by the customer's vault are timed,
// the vault's last successful unwrap is recorded, and failures are
// counted by class: a transient fault (connection refused) and a
// revocation (the grant removed).
func TestExternalUnwrapMetrics(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		w := newExtWorld(t, f)
		defer f.runRunner()()
		assignment := w.c.grant(t)
		pol := w.policy(t, "metrics", "", "cmk", "", "", "")
		env := f.managedEnv(t, "e")
		data := f.fill(t, env.ID, 2)
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		m := f.p.m.external
		last := m.last.WithLabelValues(strings.ToLower(w.c.vaultURI))
		before := testutil.ToFloat64(last)
		f.check(t, env.ID, data) // one unwrap across the boundary
		if got := testutil.ToFloat64(last); got == 0 || got < before {
			t.Errorf("last unwrap timestamp of %s = %v (before %v), want set", w.c.vaultURI, got, before)
		}
		if n := testutil.CollectAndCount(m.seconds, "keyhold_external_unwrap_seconds"); n == 0 {
			t.Errorf("no keyhold_external_unwrap_seconds series after an unwrap")
		}

		w.setVaultAddr(closedPort(t))
		f.p.DropKeys("")
		if err := f.readBack(env.ID, data); keyhold.ErrorCode(err) != keyhold.CodeKeyVaultUnavailable {
			t.Fatalf("read with the vault unreachable: %v", err)
		}
		if got := testutil.ToFloat64(m.errors.WithLabelValues("transient")); got != 1 {
			t.Errorf("transient errors = %v, want 1", got)
		}
		w.setVaultAddr(w.c.addr)
		w.c.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(f.ctx, assignment) })
		f.p.DropKeys("")
		if err := f.readBack(env.ID, data); err == nil {
			t.Fatal("read with the grant removed succeeded")
		}
		if got := testutil.ToFloat64(m.errors.WithLabelValues("revocation")); got != 1 {
			t.Errorf("revocation errors = %v, want 1", got)
		}
	})
}
