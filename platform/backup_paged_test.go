package platform

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// inProgress returns env's unfinished backups, as stored.
func (f *cmkFixture) inProgress(t *testing.T, envID string) []*keyhold.Backup {
	t.Helper()
	var out []*keyhold.Backup
	if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
		bs, err := tx.ListBackups(f.ctx, envID)
		for _, b := range bs {
			if strings.HasPrefix(b.Label, inProgressLabelPrefix) {
				out = append(out, b)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackupIsPaged takes a backup of 45 rows in pages of 10, on SQLite
// and PostgreSQL: it takes 5 page transactions and one final one (N+1);
// between pages a write to the same environment goes through at once;
// the unfinished backup is neither listed nor restorable (the refusal
// changes nothing); rows changed, deleted and added between pages, even
// after the last page, are in the backup as they were at its final
// transaction, and restoring it brings back exactly that state.
func TestBackupIsPaged(t *testing.T) {
	old := backupRowPage
	backupRowPage = 10
	t.Cleanup(func() { backupRowPage = old; backupPageHook = nil })
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "prod")
		want := f.fill(t, env.ID, 45, 100)
		peer := f.managedEnv(t, "peer")
		pages := 0
		write := func(fn func() error) {
			done := make(chan error, 1)
			go func() { done <- fn() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("page %d: a write to the environment: %v", pages, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("page %d: a write to the environment waited 5 s: the backup holds the write lock between pages", pages)
			}
		}
		put := func(table, id, data string) func() error {
			return func() error {
				_, err := f.p.PutRow(f.ctx, env.ID, table, id, json.RawMessage(data))
				return err
			}
		}
		backupPageHook = func() {
			pages++
			switch pages {
			case 1: // accounts/r0000 was in page 1
				write(put("accounts", "r0000", `{"changed":1}`))
				want.rows["accounts/r0000"] = `{"changed":1}`
				if bs, err := f.p.ListBackups(f.ctx, env.ID); err != nil || len(bs) != 0 {
					t.Errorf("ListBackups mid-backup = %v, %v; want none", bs, err)
				}
				ip := f.inProgress(t, env.ID)
				if len(ip) != 1 || ip[0].Rows != 10 {
					t.Fatalf("unfinished backups %v; want one of 10 rows", ip)
				}
				before := f.dataState(t, peer.ID)
				_, err := f.p.RestoreBackup(f.ctx, env.ID, ip[0].ID)
				if keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(err.Error(), "still being taken") {
					t.Errorf("restoring the unfinished backup: %v; want BadRequest saying it is still being taken", err)
				}
				if after := f.dataState(t, peer.ID); after != before {
					t.Errorf("the refused restore changed something:\n%s\nthen\n%s", before, after)
				}
			case 3:
				write(func() error { return f.p.DeleteRow(f.ctx, env.ID, "accounts", "r0002") })
				delete(want.rows, "accounts/r0002")
			case 5: // after the last page: only the final transaction sees these
				write(put("zzz", "new", `{"new":1}`))
				write(put("contacts", "r0001", `{"changed":5}`))
				want.rows["zzz/new"] = `{"new":1}`
				want.rows["contacts/r0001"] = `{"changed":5}`
			}
		}
		b, err := f.p.CreateBackup(f.ctx, env.ID, "paged")
		backupPageHook = nil
		if err != nil {
			t.Fatal(err)
		}
		if pages != 5 {
			t.Errorf("45 rows copied in %d pages of 10, want 5 (and one final transaction)", pages)
		}
		if b.Rows != 45 || b.Files != 1 || b.Label != "paged" {
			t.Errorf("backup %+v: want 45 rows (one deleted, one added), 1 file, label paged", b)
		}
		if bs, err := f.p.ListBackups(f.ctx, env.ID); err != nil || len(bs) != 1 || bs[0].ID != b.ID || bs[0].Label != "paged" || bs[0].Rows != 45 {
			t.Errorf("ListBackups after = %v, %v; want the one finished backup", bs, err)
		}
		// Change the environment after the backup, then restore it.
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "r0000", json.RawMessage(`{"after":1}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "later", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "restore", func() (*keyhold.Operation, error) { return f.p.RestoreBackup(f.ctx, env.ID, b.ID) })
		f.check(t, env.ID, want)
		f.rowGone(t, env.ID, "accounts", "r0002")
		f.rowGone(t, env.ID, "accounts", "later")
		var n int
		if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
			rs, err := tx.ListRows(f.ctx, keyhold.RowFilter{EnvID: env.ID, Limit: 1000})
			n = len(rs)
			return err
		}); err != nil || n != len(want.rows) {
			t.Errorf("restored %d rows (%v); want %d", n, err, len(want.rows))
		}
	})
}

// TestUnfinishedBackupIsCleanedUp leaves a backup unfinished as a crash
// would (the goroutine taking it ends after its first page, running no
// more code) and checks that it is neither listed nor restorable, then
// that PruneBackups deletes it after backupInProgressTTL, not before; and
// that a backup that fails mid-way (its caller gone) deletes its record
// at once.
func TestUnfinishedBackupIsCleanedUp(t *testing.T) {
	old := backupRowPage
	backupRowPage = 10
	t.Cleanup(func() { backupRowPage = old; backupPageHook = nil })
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "prod")
		want := f.fill(t, env.ID, 25)
		backupPageHook = func() { runtime.Goexit() }
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = f.p.CreateBackup(f.ctx, env.ID, "crashed")
		}()
		<-done
		backupPageHook = nil
		ip := f.inProgress(t, env.ID)
		if len(ip) != 1 || ip[0].Rows != 10 {
			t.Fatalf("after the crash: unfinished backups %v; want one of 10 rows", ip)
		}
		if bs, err := f.p.ListBackups(f.ctx, env.ID); err != nil || len(bs) != 0 {
			t.Errorf("ListBackups = %v, %v; want none", bs, err)
		}
		before := f.dataState(t, env.ID)
		if _, err := f.p.RestoreBackup(f.ctx, env.ID, ip[0].ID); keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
			t.Errorf("restoring the unfinished backup: %v; want BadRequest", err)
		}
		if after := f.dataState(t, env.ID); after != before {
			t.Errorf("the refused restore changed the environment")
		}
		f.clock.Advance(backupInProgressTTL - time.Minute)
		if n, err := f.p.PruneBackups(context.Background()); err != nil || n != 0 {
			t.Errorf("PruneBackups before the unfinished backup's expiry = %d, %v; want 0", n, err)
		}
		f.clock.Advance(time.Minute)
		if n, err := f.p.PruneBackups(context.Background()); err != nil || n != 1 {
			t.Errorf("PruneBackups after = %d, %v; want 1", n, err)
		}
		if ip := f.inProgress(t, env.ID); len(ip) != 0 {
			t.Errorf("unfinished backups left: %v", ip)
		}

		// A failure mid-way (the caller's context ends) deletes the record.
		ctx, cancel := context.WithCancel(f.ctx)
		backupPageHook = cancel
		if _, err := f.p.CreateBackup(ctx, env.ID, "cancelled"); err == nil {
			t.Error("CreateBackup with its context cancelled mid-way succeeded")
		}
		backupPageHook = nil
		if ip := f.inProgress(t, env.ID); len(ip) != 0 {
			t.Errorf("a failed backup left its record: %v", ip)
		}
		b, err := f.p.CreateBackup(f.ctx, env.ID, "fine")
		if err != nil || b.Rows != 25 {
			t.Fatalf("CreateBackup afterwards = %+v, %v; want 25 rows", b, err)
		}
		f.check(t, env.ID, want)
	})
}

// BenchmarkBackupPaged takes a backup of KEYHOLD_BENCH_BACKUP_PAGED_ROWS
// rows of 1 KiB (100,000) both ways on each backend, side by side: the
// former one INSERT … SELECT transaction (the store's CreateBackup) and
// the paged CreateBackup. It reports each one's time and the longest
// writing transaction of each (the former: all of it; the paged: the
// longest page or the final transaction).
func BenchmarkBackupPaged(b *testing.B) {
	rows := benchInts(b, "KEYHOLD_BENCH_BACKUP_PAGED_ROWS", []int{100000})[0]
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			f := newCMKFixture(b, be.Open(b), false)
			env := f.managedEnv(b, "bench")
			f.seedRows(b, env.ID, rows, 1024)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				one := &keyhold.Backup{ID: "one-" + time.Now().Format("150405.000000"), EnvID: env.ID, TenantID: env.TenantID, Label: "one",
					CreatedBy: "bench", CreatedAt: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Hour)}
				if err := f.store.Update(f.ctx, func(tx keyhold.Tx) error { return tx.CreateBackup(f.ctx, one) }); err != nil {
					b.Fatal(err)
				}
				oneTook := time.Since(start)

				var longest time.Duration
				last := time.Now()
				start = last
				backupPageHook = func() {
					now := time.Now()
					longest = max(longest, now.Sub(last))
					last = now
				}
				bk, err := f.p.CreateBackup(f.ctx, env.ID, "paged")
				backupPageHook = nil
				if err != nil {
					b.Fatal(err)
				}
				final := time.Since(last)
				pagedTook := time.Since(start)
				if bk.Rows != int64(rows) || one.Rows != int64(rows) {
					b.Fatalf("backups of %d and %d rows, want %d", one.Rows, bk.Rows, rows)
				}
				b.ReportMetric(oneTook.Seconds(), "one-tx-s")
				b.ReportMetric(pagedTook.Seconds(), "paged-s")
				b.ReportMetric(float64(longest.Milliseconds()), "longest-page-ms")
				b.ReportMetric(float64(final.Milliseconds()), "final-tx-ms")
				b.Logf("%s, %d rows: one transaction %s; paged %s (longest page %s, final transaction %s)", be.Name, rows, oneTook, pagedTook, longest, final)
				for _, id := range []string{one.ID, bk.ID} {
					if err := f.store.Update(f.ctx, func(tx keyhold.Tx) error { return tx.DeleteBackup(f.ctx, id) }); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
