//go:build sqlitebench

package sqlite

// Benchmarks behind the sqlite package's choices: the driver, the pool
// layout and the synchronous level. They are behind a build tag because
// the cgo driver they compare against takes minutes to compile and needs a
// C compiler, which the normal test run shouldn't:
//
//	go test -tags sqlitebench -run '^$' -bench . -benchtime 2s ./sqlite/

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	_ "github.com/mattn/go-sqlite3" // cgo driver, registered as "sqlite3"

	"github.com/keyhold/keyhold"
)

const (
	benchKeys = 10000 // keys the workload spreads over
	blobSize  = 1024  // bytes per value, a typical row's ciphertext
)

// driverDB opens a raw database the way Open does (WAL, one write
// connection with BEGIN IMMEDIATE, a pool of readers) with the given
// driver.
func driverDB(b *testing.B, driver, sync string) (write, read *sql.DB) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	var wdsn, rdsn string
	switch driver {
	case "sqlite": // modernc.org/sqlite
		common := "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
		wdsn = path + "?" + common + "&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_txlock=immediate"
		rdsn = path + "?" + common + "&_pragma=query_only(1)"
	case "sqlite3": // github.com/mattn/go-sqlite3
		common := "_busy_timeout=5000&_foreign_keys=1"
		wdsn = "file:" + path + "?" + common + "&_journal_mode=WAL&_synchronous=" + sync + "&_txlock=immediate"
		rdsn = "file:" + path + "?" + common + "&_query_only=1"
	}
	var err error
	if write, err = sql.Open(driver, wdsn); err != nil {
		b.Fatal(err)
	}
	write.SetMaxOpenConns(1)
	if _, err := write.Exec(`CREATE TABLE rows (env TEXT, tbl TEXT, id TEXT, data BLOB NOT NULL, PRIMARY KEY (env, tbl, id))`); err != nil {
		b.Fatal(err)
	}
	// Preload every key, so that upserts update and reads hit a table of
	// realistic size.
	tx, err := write.Begin()
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, blobSize)
	for i := range benchKeys {
		if _, err := tx.Exec(`INSERT INTO rows VALUES (?, ?, ?, ?)`, "env-1", "accounts", fmt.Sprintf("row-%05d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if read, err = sql.Open(driver, rdsn); err != nil {
		b.Fatal(err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	b.Cleanup(func() { write.Close(); read.Close() })
	return write, read
}

// BenchmarkDriver compares modernc.org/sqlite (pure Go) with
// github.com/mattn/go-sqlite3 (cgo) on Keyhold's hot path: upsert a 1 KiB
// value keyed (env, table, id), then read it back by key. One op is both.
func BenchmarkDriver(b *testing.B) {
	// FULL is what Open uses; OFF takes the fsync out and leaves the
	// drivers' own cost.
	for _, sync := range []string{"FULL", "NORMAL", "OFF"} {
		for _, driver := range []string{"sqlite", "sqlite3"} {
			name := map[string]string{"sqlite": "modernc", "sqlite3": "mattn"}[driver]
			b.Run(fmt.Sprintf("sync=%s/%s/serial", sync, name), func(b *testing.B) {
				write, read := driverDB(b, driver, sync)
				value := make([]byte, blobSize)
				rand.Read(value)
				b.SetBytes(blobSize)
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if !driverOp(b, write, read, i, value) {
						return
					}
				}
			})
			b.Run(fmt.Sprintf("sync=%s/%s/parallel", sync, name), func(b *testing.B) {
				write, read := driverDB(b, driver, sync)
				var next atomic.Int64
				b.SetBytes(blobSize)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					value := make([]byte, blobSize)
					rand.Read(value)
					for pb.Next() {
						if !driverOp(b, write, read, int(next.Add(1)), value) {
							return
						}
					}
				})
			})
		}
	}
}

// driverOp upserts one key and reads it back. It reports failures with
// b.Error (it may run on a RunParallel goroutine) and returns false.
func driverOp(b *testing.B, write, read *sql.DB, i int, value []byte) bool {
	id := fmt.Sprintf("row-%05d", i*7919%benchKeys)
	if _, err := write.Exec(`INSERT INTO rows (env, tbl, id, data) VALUES (?, ?, ?, ?) ON CONFLICT (env, tbl, id) DO UPDATE SET data = excluded.data`,
		"env-1", "accounts", id, value); err != nil {
		b.Error(err)
		return false
	}
	var got []byte
	if err := read.QueryRow(`SELECT data FROM rows WHERE env = ? AND tbl = ? AND id = ?`, "env-1", "accounts", id).Scan(&got); err != nil {
		b.Error(err)
		return false
	}
	if len(got) != blobSize {
		b.Errorf("read %d bytes", len(got))
		return false
	}
	return true
}

// BenchmarkLayout measures the pool layout and synchronous level of Open
// through the Store: writers (RunParallel) each do Update(PutRow) and
// View(Row) on rows of their own.
func BenchmarkLayout(b *testing.B) {
	for _, tc := range []struct {
		name string
		o    options
	}{
		{"split pools/sync=FULL", options{}},
		{"split pools/sync=NORMAL", options{synchronous: "NORMAL"}},
		{"single pool/sync=FULL", options{singlePool: true}},
	} {
		b.Run(tc.name+"/serial", func(b *testing.B) {
			benchStore(b, tc.o, false)
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			benchStore(b, tc.o, true)
		})
	}
}

func benchStore(b *testing.B, o options, parallel bool) {
	s, err := open(filepath.Join(b.TempDir(), "k.db"), o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
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
		value := make([]byte, blobSize)
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
	b.SetBytes(blobSize)
	b.ResetTimer()
	if parallel {
		b.SetParallelism(4) // more goroutines than cores, as an HTTP server has
		b.RunParallel(func(pb *testing.PB) { work(pb.Next) })
	} else {
		work(b.Loop)
	}
}
