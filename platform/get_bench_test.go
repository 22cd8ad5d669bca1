package platform

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// BenchmarkCachedGet is the server's part of issue 12's GET at 16
// clients, in process and without HTTP: GetRow of one of 64 rows of
// 1 KiB with the caller's access and the environment's key cached, under
// a cancellable context as a server's request has; one goroutine
// ("serial") and 16 on the machine's cores ("parallel16"). The steadier
// figure, on a shared machine, for docs/benchmarks.md's "GET, second
// pass".
func BenchmarkCachedGet(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := newFixture(b, be.Open(b))
			e := &keyhold.Environment{DisplayName: "bench", Location: "europe", SKU: keyhold.SKUProduction}
			if err := f.p.CreateEnvironment(f.ctx, e); err != nil {
				b.Fatal(err)
			}
			const rows = 64
			for i := range rows {
				if _, err := f.p.PutRow(f.ctx, e.ID, "bench", fmt.Sprint("r", i), benchRow); err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(f.ctx)
			defer cancel()
			get := func(i int) {
				if _, err := f.p.GetRow(ctx, e.ID, "bench", fmt.Sprint("r", i%rows)); err != nil {
					b.Fatal(err)
				}
			}
			get(0) // fills the access cache
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					get(i)
				}
			})
			b.Run("parallel16", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						get(i)
					}
				})
			})
		})
	}
}
