package platform

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// Benchmarks of the customer-managed key lifecycle. Each iteration builds
// its own data, outside the timer, so run them once:
//
//	go test ./platform -run '^$' -bench 'CMK' -benchtime 1x -timeout 60m
//
// Select a backend with the sub-benchmark name (…/sqlite/…, …/postgres/…;
// PostgreSQL needs KEYHOLD_TEST_POSTGRES, as scripts/test.sh sets it), and
// sizes with the variables below.

// benchInts reads a comma-separated list of sizes from an environment
// variable.
func benchInts(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for s := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		out = append(out, n)
	}
	return out
}

// seedRows writes n rows of about size bytes, properly sealed under the
// environment's epoch 1 key, straight into the store, 5000 per
// transaction; it returns their plaintext bytes.
func (f *cmkFixture) seedRows(b testing.TB, envID string, n, size int) int64 {
	b.Helper()
	ctx := context.Background()
	sk, err := f.p.storeKey(ctx, envID, 1, keyhold.StoreRows)
	if err != nil {
		b.Fatal(err)
	}
	defer sk.Destroy()
	data := []byte(`{"p":"` + strings.Repeat("x", max(size-8, 1)) + `"}`)
	now := time.Now().UTC()
	for start := 0; start < n; start += 5000 {
		recs := make([]*keyhold.RowRecord, 0, 5000)
		for i := start; i < min(start+5000, n); i++ {
			id := fmt.Sprintf("r%08d", i)
			ct, err := sk.Seal(rowItemID("bench", id), 1, data)
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, &keyhold.RowRecord{EnvID: envID, Table: "bench", ID: id, Epoch: 1, Version: 1, Ciphertext: ct, UpdatedAt: now})
		}
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			for _, r := range recs {
				if err := tx.PutRow(ctx, r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if os.Getenv("KEYHOLD_BENCH_ANALYZE") != "" {
		// As autovacuum (PostgreSQL) would have by the time rows this
		// old are re-keyed: the planner's statistics of the new rows.
		if db, ok := f.store.(interface{ DB() *sql.DB }); ok {
			if _, err := db.DB().Exec("ANALYZE data_rows"); err != nil {
				b.Fatal(err)
			}
		}
	}
	return int64(n) * int64(len(data))
}

// benchPolicy makes a vault, key and policy with its grant.
func benchPolicy(b testing.TB, f *cmkFixture, name string) *keyhold.EnterprisePolicy {
	v := f.newVault(b, "kv-"+name, true)
	f.newKey(b, v, "k")
	pol := f.newPolicy(b, name, v, "k", nil)
	f.grantKey(b, pol, v, "k")
	return pol
}

// runRunner runs the fixture's runner until the returned stop is called.
func (f *cmkFixture) runRunner() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.runner.Run(ctx) }()
	return func() { cancel(); <-done }
}

// BenchmarkCMKLinkCustody measures the time from LinkPolicy to CMK custody
// (the rewrap step committed: the MMK copy is gone) for environments of
// growing size. Custody moves one wrapped key per epoch, so the figure
// should not grow with the data. Sizes: KEYHOLD_BENCH_CUSTODY_ROWS
// (default 1000,100000,1000000).
func BenchmarkCMKLinkCustody(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			for _, n := range benchInts(b, "KEYHOLD_BENCH_CUSTODY_ROWS", []int{1000, 100000, 1000000}) {
				b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
					f := newCMKFixture(b, be.Open(b), false)
					pol := benchPolicy(b, f, "pol")
					var sum time.Duration
					b.ResetTimer()
					for range b.N {
						b.StopTimer()
						env := f.managedEnv(b, "bench")
						seedStart := time.Now()
						f.seedRows(b, env.ID, n, 100)
						b.Logf("seeded %d rows in %v", n, time.Since(seedStart).Round(time.Millisecond))
						stop := f.runRunner()
						b.StartTimer()
						start := time.Now()
						op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
						if err != nil {
							b.Fatal(err)
						}
						for f.env(b, env.ID).KeyManagedBy != keyhold.KeyManagedByCustomer {
							time.Sleep(time.Millisecond)
						}
						sum += time.Since(start)
						b.StopTimer()
						// The re-key that follows is not measured here: stop
						// it, and end its operation so that the next
						// iteration's runner doesn't take it up.
						stop()
						if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
							o, err := tx.Operation(context.Background(), op.ID)
							if err != nil {
								return err
							}
							o.State, o.Step, o.FinishedAt, o.LeaseOwner, o.LeaseUntil = keyhold.OperationFailed, "", time.Now(), "", time.Time{}
							return tx.UpdateOperation(context.Background(), o)
						}); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(sum.Microseconds())/1000/float64(b.N), "ms-to-custody")
				})
			}
		})
	}
}

// BenchmarkCMKRekey measures the re-key's throughput, rows and files
// apart: an environment holding only rows of 1 KiB
// (KEYHOLD_BENCH_REKEY_ROWS, default 50000), or only files of 8 MiB
// (KEYHOLD_BENCH_REKEY_FILE_MB in all, default 64), is linked, and the
// link's steps are run one after the other in the benchmark's goroutine;
// the timer covers the rekey step's runs only. Figures are plaintext MB/s,
// each item decrypted under the old epoch and encrypted under the new.
// KEYHOLD_BENCH_REKEY_PAGE sets the rows of a page (rekeyBatch; any
// value but the default 256 overrides the store's page, rowsPage),
// KEYHOLD_BENCH_ANALYZE=1 analyzes data_rows after seeding, and
// KEYHOLD_BENCH_REKEY_PUTS=1 times PUTs made meanwhile (putProbe). Each
// run also reports the re-key's CPU time (cpu-s: this process; pg-cpu-s:
// its PostgreSQL backends) and how much data_rows and its primary key grew
// (rekey_bench_test.go).
func BenchmarkCMKRekey(b *testing.B) {
	if v := benchInts(b, "KEYHOLD_BENCH_REKEY_PAGE", nil); len(v) > 0 {
		defer func(n int) { rekeyBatch = n }(rekeyBatch)
		rekeyBatch = v[0]
	}
	rows := benchInts(b, "KEYHOLD_BENCH_REKEY_ROWS", []int{50000})[0]
	fileMB := benchInts(b, "KEYHOLD_BENCH_REKEY_FILE_MB", []int{64})[0]
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			for _, what := range []string{"rows", "files"} {
				b.Run(what, func(b *testing.B) {
					f := newCMKFixture(b, be.Open(b), false)
					pol := benchPolicy(b, f, "pol")
					for range b.N {
						b.StopTimer()
						env := f.managedEnv(b, "bench")
						var size int64
						if what == "rows" {
							size = f.seedRows(b, env.ID, rows, 1024)
						} else {
							for i := range fileMB / 8 {
								data := randomBytes(b, 8<<20)
								if _, err := f.p.PutFile(f.ctx, env.ID, fmt.Sprintf("f%d", i), bytes.NewReader(data)); err != nil {
									b.Fatal(err)
								}
								size += int64(len(data))
							}
						}
						op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
						if err != nil {
							b.Fatal(err)
						}
						var took time.Duration
						for _, s := range f.p.kinds()[keyhold.OpLink].Steps {
							var probe *putProbe
							var cost *rekeyCost
							if s.Name == stepRekey {
								if what == "rows" && os.Getenv("KEYHOLD_BENCH_REKEY_PUTS") != "" {
									probe = startPutProbe(f, env.ID)
								}
								cost = startRekeyCost(b, f.store)
								b.StartTimer()
							}
							start := time.Now()
							for {
								res, err := s.Run(context.Background(), op)
								if err != nil {
									b.Fatalf("step %s: %v", s.Name, err)
								}
								if !res.Again {
									break
								}
							}
							if s.Name == stepRekey {
								b.StopTimer()
								took = time.Since(start)
								cost.report(b)
								if probe != nil {
									n, p50, p99 := probe.stop(b)
									b.ReportMetric(float64(p99.Microseconds())/1000, "put-p99-ms")
									b.Logf("%d concurrent PUTs during the re-key: p50 %v, p99 %v", n, p50, p99)
								}
							}
						}
						if cs := f.epochCounts(b, env.ID); len(cs) != 1 || cs[0].Epoch != 2 {
							b.Fatalf("items per epoch after the re-key: %v", cs)
						}
						b.ReportMetric(float64(size)/1e6/took.Seconds(), "MB/s")
						b.ReportMetric(float64(op.Done)/took.Seconds(), "items/s")
						if what == "rows" {
							// The ceiling, in the same run: the bare AES-GCM
							// work of the re-key (open under one key, seal
							// under another) on the same number of 1 KiB rows.
							raw := rawAESGCMRekey(b, rows, 1024)
							b.ReportMetric(float64(size)/1e6/raw.Seconds(), "aesgcm-MB/s")
							b.ReportMetric(raw.Seconds()/took.Seconds(), "of-aesgcm")
						}
						b.Logf("%d %s, %.1f MB, re-keyed in %v", op.Done, what, float64(size)/1e6, took.Round(time.Millisecond))
					}
				})
			}
		})
	}
}

// rawAESGCMRekey times the cryptography of re-keying n items of size
// bytes with nothing else: crypto/aes and crypto/cipher's GCM, each item
// opened under one random key and sealed under another, with a fresh
// nonce and an AAD as long as a row's item id.
func rawAESGCMRekey(b *testing.B, n, size int) time.Duration {
	b.Helper()
	gcm := func() cipher.AEAD {
		k := make([]byte, 32)
		rand.Read(k)
		blk, err := aes.NewCipher(k)
		if err != nil {
			b.Fatal(err)
		}
		g, err := cipher.NewGCM(blk)
		if err != nil {
			b.Fatal(err)
		}
		return g
	}
	from, to := gcm(), gcm()
	aad := []byte("rows/bench/r00000000")
	nonce := make([]byte, from.NonceSize())
	cts := make([][]byte, n)
	pt := make([]byte, size)
	for i := range cts {
		rand.Read(nonce)
		cts[i] = append(append([]byte{}, nonce...), from.Seal(nil, nonce, pt, aad)...)
	}
	start := time.Now()
	var buf []byte
	for _, ct := range cts {
		p, err := from.Open(buf[:0], ct[:len(nonce)], ct[len(nonce):], aad)
		if err != nil {
			b.Fatal(err)
		}
		rand.Read(nonce)
		out := to.Seal(append([]byte{}, nonce...), nonce, p, aad)
		buf = p
		_ = out
	}
	return time.Since(start)
}

// BenchmarkCMKRotationPickup measures a key rotation across many
// environments under one policy (KEYHOLD_BENCH_ROTATION_ENVS, default
// 10000): the environments and their keys are seeded straight into the
// store, each EK wrapped for real under the key's first version by the
// policy's identity; then the key rotates, and the timer runs from
// PickUpRotations to the end of the rotation, when every EK is wrapped
// under the new version.
func BenchmarkCMKRotationPickup(b *testing.B) {
	n := benchInts(b, "KEYHOLD_BENCH_ROTATION_ENVS", []int{10000})[0]
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := newCMKFixture(b, be.Open(b), false)
			for i := range b.N {
				b.StopTimer()
				pol := benchPolicy(b, f, fmt.Sprint("pol", i))
				seedStart := time.Now()
				f.seedLinkedEnvs(b, pol, n)
				b.Logf("seeded %d linked environments in %v", n, time.Since(seedStart).Round(time.Millisecond))
				k2, err := f.kv.RotateKey(f.ctx, vaultNameOf(pol), "k")
				if err != nil {
					b.Fatal(err)
				}
				stop := f.runRunner()
				b.StartTimer()
				start := time.Now()
				if got, err := f.p.PickUpRotations(context.Background()); err != nil || got != 1 {
					b.Fatalf("PickUpRotations = %d, %v", got, err)
				}
				pickup := time.Since(start)
				ops := f.operations(b, pol.ID())
				op := f.wait(b, ops[0])
				total := time.Since(start)
				b.StopTimer()
				stop()
				if op.State != keyhold.OperationSucceeded || op.Done != int64(n) {
					b.Fatalf("rotation %s, %d of %d rewrapped: %s", op.State, op.Done, n, op.ErrorMsg)
				}
				var stale []*keyhold.WrappedKey
				if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) {
					stale, err = tx.ListWrappedKeys(context.Background(), keyhold.WrappedKeyFilter{PrincipalID: pol.PrincipalID, ExceptKeyID: k2.KID, Limit: 10})
					return err
				}); err != nil || len(stale) != 0 {
					b.Fatalf("keys left on the old version: %v, %v", describeKeys(stale), err)
				}
				b.ReportMetric(float64(pickup.Microseconds())/1000, "ms-to-submit")
				b.ReportMetric(total.Seconds(), "s-to-rewrap-all")
				b.ReportMetric(float64(n)/total.Seconds(), "envs/s")
			}
		})
	}
}

// seedLinkedEnvs stores n Managed Environments linked to pol, each with a
// fresh EK wrapped, for real, under pol's key as pol's identity.
func (f *cmkFixture) seedLinkedEnvs(b testing.TB, pol *keyhold.EnterprisePolicy, n int) {
	b.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	envs := make([]*keyhold.Environment, n)
	wks := make([]*keyhold.WrappedKey, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		envs[i] = &keyhold.Environment{ID: uuid.NewString(), TenantID: f.creds.TenantID, DisplayName: fmt.Sprint("bench ", i), Location: cmkLocation,
			SKU: keyhold.SKUProduction, Managed: true, State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 1,
			PolicyID: pol.ID(), PolicySystemID: pol.SystemID, LinkStatus: keyhold.LinkStatusLinked, EncryptionStatus: keyhold.EncryptionSucceeded,
			CreatedBy: "bench", CreatedAt: now, UpdatedAt: now, Version: 1}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ek, err := crypt.NewKey()
			if err == nil {
				wks[i], err = f.p.wrapCMK(ctx, pol, envs[i].ID, 1, ek)
				ek.Destroy()
			}
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	for start := 0; start < n; start += 1000 {
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			for i := start; i < min(start+1000, n); i++ {
				if err := tx.CreateEnvironment(ctx, envs[i]); err != nil {
					return err
				}
				if err := tx.PutWrappedKey(ctx, wks[i]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBackupRestore measures, on one environment holding rows of
// 1 KiB (KEYHOLD_BENCH_BACKUP_ROWS, default 20000) and files of 8 MiB
// (KEYHOLD_BENCH_BACKUP_FILE_MB in all, default 32): taking a backup
// (a copy of the ciphertext inside the database), restoring it (every
// item decrypted under the backup's epoch and re-sealed for the target),
// and, as the baseline in the same run, re-keying the same data (the same
// decrypt and re-seal per item, moved in place by the link's re-key).
// Figures are plaintext MB/s; restore/rekey is the ratio to watch.
func BenchmarkBackupRestore(b *testing.B) {
	rows := benchInts(b, "KEYHOLD_BENCH_BACKUP_ROWS", []int{20000})[0]
	fileMB := benchInts(b, "KEYHOLD_BENCH_BACKUP_FILE_MB", []int{32})[0]
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := newCMKFixture(b, be.Open(b), false)
			pol := benchPolicy(b, f, "pol")
			ctx := context.Background()
			runSteps := func(kind string, op *keyhold.Operation) time.Duration {
				var took time.Duration
				for _, s := range f.p.kinds()[kind].Steps {
					start := time.Now()
					for {
						res, err := s.Run(ctx, op)
						if err != nil {
							b.Fatalf("%s step %s: %v", kind, s.Name, err)
						}
						if !res.Again {
							break
						}
					}
					if kind != keyhold.OpLink || s.Name == stepRekey {
						took += time.Since(start)
					}
				}
				return took
			}
			for range b.N {
				b.StopTimer()
				env := f.managedEnv(b, "bench")
				size := f.seedRows(b, env.ID, rows, 1024)
				for i := range fileMB / 8 {
					data := randomBytes(b, 8<<20)
					if _, err := f.p.PutFile(f.ctx, env.ID, fmt.Sprintf("f%d", i), bytes.NewReader(data)); err != nil {
						b.Fatal(err)
					}
					size += int64(len(data))
				}
				mb := float64(size) / 1e6

				b.StartTimer()
				start := time.Now()
				bk, err := f.p.CreateBackup(f.ctx, env.ID, "bench")
				backupTook := time.Since(start)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				var op *keyhold.Operation
				if err := f.store.Update(ctx, func(tx keyhold.Tx) (err error) {
					op, err = f.p.startDBOp(ctx, tx, keyhold.IdentityFrom(f.ctx), env, keyhold.OpRestore, dbInput{BackupID: bk.ID, SourceID: env.ID}, auditRestoreStart, "bench")
					return err
				}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				restoreTook := runSteps(keyhold.OpRestore, op)
				b.StopTimer()
				finish(b, f, op)
				if err := f.p.DeleteBackup(f.ctx, env.ID, bk.ID); err != nil {
					b.Fatal(err)
				}

				link, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
				if err != nil {
					b.Fatal(err)
				}
				rekeyTook := runSteps(keyhold.OpLink, link)
				finish(b, f, link)
				b.ReportMetric(mb/backupTook.Seconds(), "backup-MB/s")
				b.ReportMetric(mb/restoreTook.Seconds(), "restore-MB/s")
				b.ReportMetric(mb/rekeyTook.Seconds(), "rekey-MB/s")
				b.ReportMetric(rekeyTook.Seconds()/restoreTook.Seconds(), "restore/rekey")
				b.Logf("%.1f MB (%d rows, %d MiB of files): backup %v, restore %v, re-key (baseline) %v",
					mb, rows, fileMB, backupTook.Round(time.Millisecond), restoreTook.Round(time.Millisecond), rekeyTook.Round(time.Millisecond))
			}
		})
	}
}

// finish ends an operation whose steps a benchmark ran by hand, so that
// the environment takes the next one.
func finish(b *testing.B, f *cmkFixture, op *keyhold.Operation) {
	b.Helper()
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		o, err := tx.Operation(context.Background(), op.ID)
		if err != nil {
			return err
		}
		o.State, o.Step, o.FinishedAt, o.LeaseOwner, o.LeaseUntil = keyhold.OperationSucceeded, "", time.Now(), "", time.Time{}
		return tx.UpdateOperation(context.Background(), o)
	}); err != nil {
		b.Fatal(err)
	}
}

// putProbe writes rows into an environment, one after the other, while a
// re-key runs in it (KEYHOLD_BENCH_REKEY_PUTS=1): the data plane's write
// latency while the re-key's pages hold the write transaction. Its rows
// are new ones (no re-key page holds them), so they wait only for the
// write lock (SQLite) or the database (PostgreSQL), never for a row.
type putProbe struct {
	done chan struct{}
	wg   sync.WaitGroup
	lat  []time.Duration
	err  error
}

func startPutProbe(f *cmkFixture, envID string) *putProbe {
	pp := &putProbe{done: make(chan struct{})}
	pp.wg.Add(1)
	go func() {
		defer pp.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-pp.done:
				return
			default:
			}
			t0 := time.Now()
			if _, err := f.p.PutRow(f.ctx, envID, "probe", fmt.Sprintf("p%06d", i), json.RawMessage(`{"probe":1}`)); err != nil {
				pp.err = err
				return
			}
			pp.lat = append(pp.lat, time.Since(t0))
		}
	}()
	return pp
}

// stop ends the probe and returns how many PUTs it made, their median
// and their 99th percentile.
func (pp *putProbe) stop(b *testing.B) (int, time.Duration, time.Duration) {
	close(pp.done)
	pp.wg.Wait()
	if pp.err != nil {
		b.Fatalf("a PUT during the re-key: %v", pp.err)
	}
	if len(pp.lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(pp.lat)
	return len(pp.lat), pp.lat[len(pp.lat)/2], pp.lat[len(pp.lat)*99/100]
}
