package platform

import (
	"context"
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
// (over the migration's time, at least a second). The rows (about 20
// bytes each, sealed under the environment's key) are written straight
// into the store, 5000 per transaction (seedRows), so that a million take
// minutes rather than an hour of requests. docs/benchmarks.md has the
// figures.
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
		seeded := time.Now()
		f.seedRows(t, env.ID, n, 20) // table "bench", ids r00000000…
		t.Logf("%d rows seeded through the store in %s", n, time.Since(seeded).Round(time.Millisecond))
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
						if _, err := f.p.GetRow(f.ctx, env.ID, "bench", fmt.Sprintf("r%08d", i%n)); err == nil {
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
		op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a million rows on a busy machine
		op, err = f.runner.Wait(wctx, op.ID)
		cancel()
		if err != nil || op.State != keyhold.OperationSucceeded {
			t.Fatalf("migration: %+v, %v", op, err)
		}
		mig := time.Since(t0)
		stop.Store(true)
		<-done
		var stop2 atomic.Bool
		go func() { time.Sleep(max(mig, time.Second)); stop2.Store(true) }()
		base, bdur := load(&stop2)
		t.Logf("%d rows: migration %s; during it %.0f reads+writes/s; without it %.0f reads+writes/s", n, mig.Round(time.Millisecond), float64(got)/dur.Seconds(), float64(base)/bdur.Seconds())
	})
}
