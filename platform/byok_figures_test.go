package platform

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestBYOKMigrationFigures measures a BYOK environment's migration to a
// customer-managed key with BYOK_ROWS rows (skipped when unset): the
// link's time (rewrap and re-key), and the reads and writes per second two
// workers get during it, against the same load with no migration running
// (over the migration's time, at least a second). docs/benchmarks.md has
// the figures.
//
//	BYOK_ROWS=100000 go test -run BYOKMigrationFigures -v ./platform/
func TestBYOKMigrationFigures(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BYOK_ROWS"))
	if n <= 0 {
		t.Skip("set BYOK_ROWS to measure")
	}
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newCMKFixture(t, open(t), true)
		env := f.managedEnv(t, "fig")
		for i := range n {
			if _, err := f.p.PutRow(f.ctx, env.ID, "t", fmt.Sprint(i), json.RawMessage(`{"name":"row","n":1}`)); err != nil {
				t.Fatal(err)
			}
		}
		f.byokTenant(t)
		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		v := f.newVault(t, "kv-fig", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-fig", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		load := func(stop *atomic.Bool) (int64, time.Duration) {
			var ops atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; !stop.Load(); i++ {
						if _, err := f.p.PutRow(f.ctx, env.ID, "load", fmt.Sprintf("%d-%d", w, i), json.RawMessage(`{}`)); err == nil {
							ops.Add(1)
						}
						if _, err := f.p.GetRow(f.ctx, env.ID, "t", fmt.Sprint(i%n)); err == nil {
							ops.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			return ops.Load(), time.Since(start)
		}
		var stop atomic.Bool
		var got int64
		var dur time.Duration
		done := make(chan struct{})
		go func() { got, dur = load(&stop); close(done) }()
		t0 := time.Now()
		f.succeed(t, "migration", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		mig := time.Since(t0)
		stop.Store(true)
		<-done
		var stop2 atomic.Bool
		go func() { time.Sleep(max(mig, time.Second)); stop2.Store(true) }()
		base, bdur := load(&stop2)
		t.Logf("%d rows: migration %s; during it %.0f reads+writes/s; without it %.0f reads+writes/s", n, mig.Round(time.Millisecond), float64(got)/dur.Seconds(), float64(base)/bdur.Seconds())
	})
}
