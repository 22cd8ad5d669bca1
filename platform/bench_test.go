package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// benchRow is a 1 KiB JSON row.
var benchRow = json.RawMessage(`{"payload":"` + strings.Repeat("x", 1024-14) + `"}`)

// plainPutGet performs the same store transactions as PutRow and GetRow,
// with the cryptography bypassed: the baseline that isolates what
// encryption costs on the data path.
func plainPutGet(ctx context.Context, f *fixture, envID, rowID string) error {
	id := keyhold.IdentityFrom(ctx)
	err := f.p.updateData(ctx, func(tx keyhold.Tx) error {
		env, err := f.p.access(ctx, tx, id, envID, writeData)
		if err != nil {
			return err
		}
		rec := &keyhold.RowRecord{EnvID: envID, Table: "bench", ID: rowID, Epoch: env.Epoch, Version: 1, Ciphertext: benchRow, UpdatedAt: f.clock.Now()}
		switch old, err := tx.Row(ctx, envID, "bench", rowID); {
		case err == nil:
			rec.Version = old.Version + 1
		case keyhold.ErrorCode(err) != keyhold.CodeRowNotFound:
			return err
		}
		if err := tx.PutRow(ctx, rec); err != nil {
			return err
		}
		return f.p.audit(ctx, tx, id, "row.put", rowTarget(envID, "bench", rowID), envID, "")
	})
	if err != nil {
		return err
	}
	return f.store.View(ctx, func(tx keyhold.Tx) error {
		if _, err := f.p.access(ctx, tx, id, envID, readData); err != nil {
			return err
		}
		_, err := tx.Row(ctx, envID, "bench", rowID)
		return err
	})
}

// BenchmarkRowPutGet compares an encrypted 1 KiB row put+get with the same
// transactions without encryption, on each backend. The ratio of their
// ns/op is the figure docs/benchmarks.md reports (target ≥ 0.90).
func BenchmarkRowPutGet(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := newFixture(b, be.Open(b))
			e := &keyhold.Environment{DisplayName: "bench", Location: "europe", SKU: keyhold.SKUProduction}
			if err := f.p.CreateEnvironment(f.ctx, e); err != nil {
				b.Fatal(err)
			}
			b.Run("encrypted", func(b *testing.B) {
				b.SetBytes(int64(len(benchRow)))
				for i := 0; b.Loop(); i++ {
					id := fmt.Sprint("r", i%512)
					if _, err := f.p.PutRow(f.ctx, e.ID, "bench", id, benchRow); err != nil {
						b.Fatal(err)
					}
					if _, err := f.p.GetRow(f.ctx, e.ID, "bench", id); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("plaintext", func(b *testing.B) {
				b.SetBytes(int64(len(benchRow)))
				for i := 0; b.Loop(); i++ {
					if err := plainPutGet(f.ctx, f, e.ID, fmt.Sprint("p", i%512)); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkUnwrapsPer10k counts root-key unwraps over 10,000 reads spread
// over 10 environments within one cache TTL, and reports them per 10k
// requests (the target: at most one per environment, here 10).
func BenchmarkUnwrapsPer10k(b *testing.B) {
	f := newFixture(b, storetest.OpenSQLite(b))
	const envs = 10
	ids := make([]string, envs)
	for i := range ids {
		e := &keyhold.Environment{DisplayName: fmt.Sprint("e", i), Location: "europe", SKU: keyhold.SKUProduction}
		if err := f.p.CreateEnvironment(f.ctx, e); err != nil {
			b.Fatal(err)
		}
		ids[i] = e.ID
		if _, err := f.p.PutRow(f.ctx, e.ID, "t", "r", benchRow); err != nil {
			b.Fatal(err)
		}
	}
	var unwraps uint64
	for b.Loop() {
		f.p.DropKeys("")
		before := f.p.Unwraps()
		for i := 0; i < 10000; i++ {
			if _, err := f.p.GetRow(f.ctx, ids[i%envs], "t", "r"); err != nil {
				b.Fatal(err)
			}
		}
		unwraps += f.p.Unwraps() - before
	}
	b.ReportMetric(float64(unwraps)/float64(b.N), "unwraps/10k-requests")
}
