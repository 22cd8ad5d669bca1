package platform

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestExternalFigures measures, in one run on SQLite, the link time and
// the unwrap latency of an environment key with the key in the customer's
// Keyhold (across the boundary, over HTTPS with a cached token) against
// the built-in vault: docs/benchmarks.md's issue 13 section. It runs only
// with EXT_FIGURES=N (N unwraps per path).
func TestExternalFigures(t *testing.T) {
	n := 0
	if v := os.Getenv("EXT_FIGURES"); v != "" {
		for _, c := range v {
			n = n*10 + int(c-'0')
		}
	}
	if n <= 0 {
		t.Skip("EXT_FIGURES=N measures the issue 13 figures")
	}
	ctx := context.Background()
	f := newCMKFixture(t, storetest.OpenSQLite(t), false)
	w := newExtWorld(t, f)
	defer f.runRunner()()
	w.c.grant(t)
	ext := w.policy(t, "external", "", "cmk", "", "", "")
	v := f.newVault(t, "kv-builtin", true)
	f.newKey(t, v, "k")
	builtin := f.newPolicy(t, "builtin", v, "k", nil)
	f.grantKey(t, builtin, v, "k")

	for _, c := range []struct {
		name string
		pol  *keyhold.EnterprisePolicy
	}{{"built-in vault", builtin}, {"external (customer Keyhold)", ext}} {
		var links []time.Duration
		var wk *keyhold.WrappedKey
		for i := range 5 {
			env := f.managedEnv(t, c.name[:3]+string(rune('a'+i)))
			f.fill(t, env.ID, 50)
			start := time.Now()
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, c.pol.SystemID) })
			links = append(links, time.Since(start))
			wk = f.wrapped(t, env.ID)[0]
		}
		w := f.p.cmk(policyIdentity(c.pol.PrincipalID, c.pol.TenantID))
		kid := f.p.currentKID(wk.KeyID)
		var ds []time.Duration
		for range n {
			start := time.Now()
			pt, err := w.Unwrap(ctx, kid, wk.Ciphertext)
			ds = append(ds, time.Since(start))
			if err != nil {
				t.Fatal(err)
			}
			clear(pt)
		}
		slices.Sort(ds)
		slices.Sort(links)
		t.Logf("%s: link (50 rows, 5 runs) median %v max %v; unwrap p50 %v p99 %v (%d)", c.name,
			links[2].Round(time.Millisecond), links[4].Round(time.Millisecond),
			ds[len(ds)/2].Round(10*time.Microsecond), ds[len(ds)*99/100].Round(10*time.Microsecond), n)
	}
}
