package storetest_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// BenchmarkStore compares the backends through the Store on the data
// plane's hot path: one op is Update(PutRow) of a 1 KiB ciphertext (the
// next version of one of 100 rows per goroutine) and View(Row) of it.
//
//	scripts/test.sh -run '^$' -bench Store ./sqlstore/storetest/
func BenchmarkStore(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name+"/serial", func(b *testing.B) { benchStore(b, be.Open(b), false) })
		b.Run(be.Name+"/parallel", func(b *testing.B) { benchStore(b, be.Open(b), true) })
	}
}

func benchStore(b *testing.B, s keyhold.Store, parallel bool) {
	ctx := context.Background()
	if err := s.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t"}); err != nil {
			return err
		}
		return tx.CreateEnvironment(ctx, &keyhold.Environment{ID: "e", TenantID: "t"})
	}); err != nil {
		b.Fatal(err)
	}
	var worker atomic.Int64
	work := func(next func() bool) {
		w := worker.Add(1)
		value := make([]byte, 1024)
		rand.Read(value)
		versions := map[string]uint64{}
		for i := 0; next(); i++ {
			id := fmt.Sprintf("w%d-%03d", w, i%100)
			versions[id]++
			r := &keyhold.RowRecord{EnvID: "e", Table: "accounts", ID: id, Epoch: 1, Version: versions[id], Ciphertext: value}
			if err := s.Update(ctx, func(tx keyhold.Tx) error { return tx.PutRow(ctx, r) }); err != nil {
				b.Error(err) // not Fatal: this may be a RunParallel goroutine
				return
			}
			if err := s.View(ctx, func(tx keyhold.Tx) error { _, err := tx.Row(ctx, "e", "accounts", id); return err }); err != nil {
				b.Error(err)
				return
			}
		}
	}
	b.SetBytes(1024)
	b.ResetTimer()
	if parallel {
		b.SetParallelism(4) // more goroutines than cores, as a server has
		b.RunParallel(func(pb *testing.PB) { work(pb.Next) })
	} else {
		work(b.Loop)
	}
}
