package platform

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the bare engine the data plane is measured against

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// BenchmarkDataPlaneLoad measures the data plane under concurrent load
// (issue 12), on SQLite, next to the bare engine in the same process:
//
//   - raw: the same 1 KiB upsert as a bare SQLite transaction (WAL,
//     synchronous=FULL, one connection, BEGIN IMMEDIATE), one writer;
//   - put-N: PutRow of 1 KiB rows from N concurrent clients, each on its
//     own rows;
//   - get-N: GetRow from N concurrent clients.
//
// Each reports rows/s, p50 and p99; the ratios docs/benchmarks.md gives
// ("Issue 12: the data plane under load") come from one run:
//
//	go test -run '^$' -bench DataPlaneLoad -benchtime 3000x ./platform/
func BenchmarkDataPlaneLoad(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		db := rawSQLite(b)
		ctx := context.Background()
		runClients(b, 1, func(_, i int) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `INSERT INTO rows (env, tbl, id, version, data) VALUES (?, ?, ?, 1, ?)
				ON CONFLICT (env, tbl, id) DO UPDATE SET version = version + 1, data = excluded.data`,
				"env", "bench", fmt.Sprint("r", i%512), []byte(benchRow)); err != nil {
				return err
			}
			return tx.Commit()
		})
	})
	f := newFixture(b, storetest.OpenSQLite(b))
	e := &keyhold.Environment{DisplayName: "load", Location: "europe", SKU: keyhold.SKUProduction}
	if err := f.p.CreateEnvironment(f.ctx, e); err != nil {
		b.Fatal(err)
	}
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprint("put-", clients), func(b *testing.B) {
			runClients(b, clients, func(c, i int) error {
				_, err := f.p.PutRow(f.ctx, e.ID, "bench", fmt.Sprint("c", c, "-r", i%64), benchRow)
				return err
			})
		})
	}
	for i := range 512 {
		if _, err := f.p.PutRow(f.ctx, e.ID, "read", fmt.Sprint("r", i), benchRow); err != nil {
			b.Fatal(err)
		}
	}
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprint("get-", clients), func(b *testing.B) {
			runClients(b, clients, func(_, i int) error {
				_, err := f.p.GetRow(f.ctx, e.ID, "read", fmt.Sprint("r", i%512))
				return err
			})
		})
	}
}

// rawSQLite opens a bare SQLite database as Keyhold's store opens its
// write pool: WAL, synchronous FULL, one connection, BEGIN IMMEDIATE.
func rawSQLite(b *testing.B) *sql.DB {
	b.Helper()
	dsn := filepath.Join(b.TempDir(), "raw.db") + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE rows (env TEXT, tbl TEXT, id TEXT, version INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (env, tbl, id))`); err != nil {
		b.Fatal(err)
	}
	return db
}

// runClients runs op b.N times in all from clients goroutines and reports
// the rate and the p50 and p99 latencies.
func runClients(b *testing.B, clients int, op func(client, i int) error) {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(c, int(i)); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "rows/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
