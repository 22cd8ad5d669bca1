package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/ops/opstest"
)

// runUntilCleanup runs f's runner until the returned stop is called or
// the test ends.
func (f *cmkFixture) runUntilCleanup(t *testing.T) (stop func()) {
	t.Helper()
	var once sync.Once
	run := f.runRunner()
	stop = func() { once.Do(run) }
	t.Cleanup(stop)
	return stop
}

// refusedWhileRestoring requires that every write of the environment's
// data is refused with 409 naming op and the reason, and that the refusals
// change neither the data nor the audit log; reads go on.
func (f *cmkFixture) refusedWhileRestoring(t *testing.T, p *Platform, envID string, op *keyhold.Operation, what string) {
	t.Helper()
	before, audit := f.backupState(t, envID), len(f.auditAll(t, envID))
	for name, write := range map[string]func() error{
		"PutRow new": func() error {
			_, err := p.PutRow(f.ctx, envID, "accounts", "during", json.RawMessage(`{"lost":true}`))
			return err
		},
		"PutRow existing": func() error {
			_, err := p.PutRow(f.ctx, envID, "accounts", "r0000", json.RawMessage(`{"lost":true}`))
			return err
		},
		"DeleteRow": func() error { return p.DeleteRow(f.ctx, envID, "contacts", "r0001") },
		"PutFile":   func() error { _, err := p.PutFile(f.ctx, envID, "file-0.bin", strings.NewReader("lost")); return err },
	} {
		err := write()
		if msg := keyhold.ErrorMessage(err); keyhold.ErrorCode(err) != keyhold.CodeConflict || !strings.Contains(msg, "is being "+what+" by operation "+op.ID) ||
			!strings.Contains(msg, "Retry after the operation has ended") {
			t.Errorf("%s while %s: %v; want Conflict naming operation %s", name, what, err, op.ID)
		}
	}
	if after := f.backupState(t, envID); after != before {
		t.Errorf("refused writes changed the environment:\n%s\nthen\n%s", before, after)
	}
	if n := len(f.auditAll(t, envID)); n != audit {
		t.Errorf("refused writes wrote %d audit entries, want none", n-audit)
	}
	if _, err := p.GetRow(f.ctx, envID, "accounts", "r0000"); err != nil {
		t.Errorf("GetRow while %s: %v; reads go on", what, err)
	}
	env, err := p.FindEnvironment(f.ctx, envID)
	if err != nil || env.RestoreOperationID != op.ID {
		t.Errorf("FindEnvironment while %s: restore operation %q, %v; want %s", what, env.RestoreOperationID, err, op.ID)
	}
	envs, err := p.ListEnvironments(f.ctx)
	for _, e := range envs {
		if e.ID == envID && e.RestoreOperationID != op.ID {
			t.Errorf("ListEnvironments while %s: restore operation %q, %v; want %s", what, e.RestoreOperationID, err, op.ID)
		}
	}
}

// auditAll lists an environment's audit entries, all actions.
func (f *cmkFixture) auditAll(t *testing.T, envID string) []*keyhold.AuditEntry {
	t.Helper()
	es, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: envID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestWritesRefusedWhileRestoring: from the start of a restore until it
// ends, writes of the environment's rows and files, and deletes, are
// refused with 409 naming the operation, changing nothing, while reads go
// on; the environment shows the operation, also to a platform opened anew
// over the same database (a restart); once the restore succeeds, writes
// are accepted again on the restored data. A copy is the same, and so is
// a copy that fails and rolls back: writes come back when it ends.
func TestWritesRefusedWhileRestoring(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "restoring")
		want := f.fill(t, env.ID, 6, 100, 3)
		b, err := f.p.CreateBackup(f.ctx, env.ID, "before")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "after-backup", json.RawMessage(`{"undone":true}`)); err != nil {
			t.Fatal(err)
		}

		// The runner is stopped: the restore is started and waits.
		op, err := f.p.RestoreBackup(f.ctx, env.ID, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.refusedWhileRestoring(t, f.p, env.ID, op, "restored from a backup")

		// A restart: another platform over the same database.
		runner2, err := ops.New(ops.Config{Store: f.store, Owner: "restarted-" + uuid.NewString()[:8]})
		if err != nil {
			t.Fatal(err)
		}
		p2, kv2, err := openCMK(context.Background(), f.store, f.master, runner2, f.clock)
		if err != nil {
			t.Fatal(err)
		}
		f.refusedWhileRestoring(t, p2, env.ID, op, "restored from a backup")
		p2.Close()
		kv2.Close()

		stop := f.runUntilCleanup(t)
		if op = f.wait(t, op); op.State != keyhold.OperationSucceeded {
			t.Fatalf("restore ended %s: %s", op.State, op.ErrorMsg)
		}
		f.check(t, env.ID, want)
		f.rowGone(t, env.ID, "accounts", "during")
		f.rowGone(t, env.ID, "accounts", "after-backup")
		if got, err := f.p.FindEnvironment(f.ctx, env.ID); err != nil || got.RestoreOperationID != "" {
			t.Fatalf("after the restore: restore operation %q, %v; want none", got.RestoreOperationID, err)
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "after-restore", json.RawMessage(`{"kept":true}`)); err != nil {
			t.Fatalf("PutRow after the restore: %v", err)
		}
		stop()

		// A copy that fails: its source is deleted before it runs.
		src := f.managedEnv(t, "source")
		f.fill(t, src.ID, 2)
		op, err = f.p.CopyEnvironment(f.ctx, env.ID, src.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.refusedWhileRestoring(t, f.p, env.ID, op, "overwritten with a copy of another environment")
		if err := f.p.DeleteEnvironment(f.ctx, src.ID); err != nil {
			t.Fatal(err)
		}
		f.runUntilCleanup(t)
		if op = f.wait(t, op); op.State != keyhold.OperationFailed {
			t.Fatalf("copy from a deleted source ended %s, want Failed", op.State)
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "after-failed-copy", json.RawMessage(`{"kept":true}`)); err != nil {
			t.Fatalf("PutRow after the failed copy: %v", err)
		}
		if got, err := f.p.FindEnvironment(f.ctx, env.ID); err != nil || got.RestoreOperationID != "" {
			t.Fatalf("after the failed copy: restore operation %q, %v; want none", got.RestoreOperationID, err)
		}
	})
}

// TestNoAcknowledgedWriteLostToRestore: writers keep writing new rows
// before, during and after a restore. A write answered 200 may be undone
// by the restore only if it was sent before the restore was started
// (RestoreBackup returned): every write sent after that is either refused
// (409) until the restore ends, or kept. Some writes are refused, and
// every write sent after the restore ended is kept.
func TestNoAcknowledgedWriteLostToRestore(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "busy")
		f.fill(t, env.ID, 4)
		b, err := f.p.CreateBackup(f.ctx, env.ID, "base")
		if err != nil {
			t.Fatal(err)
		}
		type write struct {
			id      string
			sent    time.Time
			code    string // "" for 200
			errText string
		}
		var (
			mu      sync.Mutex
			writes  []write
			stopped = make(chan struct{})
			wg      sync.WaitGroup
		)
		for g := range 3 {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stopped:
						return
					default:
					}
					w := write{id: fmt.Sprintf("w%d-%05d", g, n), sent: time.Now()}
					_, err := f.p.PutRow(f.ctx, env.ID, "writes", w.id, json.RawMessage(`{"g":1}`))
					if err != nil {
						w.code, w.errText = keyhold.ErrorCode(err), err.Error()
					}
					mu.Lock()
					writes = append(writes, w)
					mu.Unlock()
					time.Sleep(2 * time.Millisecond)
				}
			})
		}
		time.Sleep(150 * time.Millisecond)
		op, err := f.p.RestoreBackup(f.ctx, env.ID, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		time.Sleep(200 * time.Millisecond) // writes meet the started restore
		f.runUntilCleanup(t)
		if op = f.wait(t, op); op.State != keyhold.OperationSucceeded {
			t.Fatalf("restore ended %s: %s", op.State, op.ErrorMsg)
		}
		ended := time.Now()
		time.Sleep(150 * time.Millisecond)
		close(stopped)
		wg.Wait()

		var refused, keptAfter int
		for _, w := range writes {
			switch {
			case w.code == keyhold.CodeConflict && strings.Contains(w.errText, op.ID):
				refused++
				continue
			case w.code != "":
				t.Errorf("write %s: %s; want 200 or the restore's 409", w.id, w.errText)
				continue
			}
			_, err := f.p.GetRow(f.ctx, env.ID, "writes", w.id)
			switch {
			case err == nil:
				if w.sent.After(ended) {
					keptAfter++
				}
			case keyhold.ErrorCode(err) != keyhold.CodeRowNotFound:
				t.Fatal(err)
			case !w.sent.Before(started):
				t.Errorf("write %s, sent %v after the restore started, was answered 200 and then lost", w.id, w.sent.Sub(started))
			}
		}
		if refused == 0 || keptAfter == 0 {
			t.Errorf("%d writes refused during the restore, %d kept after it; want some of each", refused, keptAfter)
		}
		t.Logf("%d writes: %d refused during the restore, %d sent after it and kept", len(writes), refused, keptAfter)
	})
}

// TestRestoreCrashKeepsWritesRefused kills the server running a restore
// or a copy (kill -9) at every step boundary, on SQLite and PostgreSQL:
// while the operation, left Running by the dead server, has not ended,
// the environment still shows it and refuses writes, changing nothing;
// once another server has finished it, the environment holds the restored
// data and takes writes again.
func TestRestoreCrashKeepsWritesRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("each case starts two processes")
	}
	kinds := assemble(&core{}).kinds()
	type tc struct{ kind, fault string }
	var cases []tc
	for _, k := range []string{keyhold.OpRestore, keyhold.OpCopy} {
		for _, p := range ops.FaultPoints(k, kinds[k]) {
			cases = append(cases, tc{k, p})
		}
	}
	for _, be := range []struct {
		name string
		open func(t *testing.T) opstest.Backend
	}{{"sqlite", func(t *testing.T) opstest.Backend { return opstest.SQLite(t) }}, {"postgres", func(t *testing.T) opstest.Backend { return opstest.Postgres(t) }}} {
		for _, c := range cases {
			t.Run(be.name+"/"+c.fault, func(t *testing.T) {
				b := be.open(t)
				f := newCMKFixture(t, b.Open(t), false)
				env, want := crashEnv(t, f, "target")
				var op *keyhold.Operation
				var err error
				what := "restored from a backup"
				if c.kind == keyhold.OpRestore {
					bk, err := f.p.CreateBackup(f.ctx, env.ID, "b")
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "undone", json.RawMessage(`{}`)); err != nil {
						t.Fatal(err)
					}
					op, err = f.p.RestoreBackup(f.ctx, env.ID, bk.ID)
				} else {
					var src *keyhold.Environment
					src, want = crashEnv(t, f, "source")
					what = "overwritten with a copy of another environment"
					op, err = f.p.CopyEnvironment(f.ctx, env.ID, src.ID)
				}
				if err != nil {
					t.Fatal(err)
				}
				a := opstest.StartChild(t, b, opstest.ChildOptions{Owner: "a", Fault: c.fault, LeaseTTL: 500 * time.Millisecond})
				waitDead(t, a, c.fault)
				var cur *keyhold.Operation
				if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) { cur, err = tx.Operation(context.Background(), op.ID); return err }); err != nil {
					t.Fatal(err)
				}
				if cur.State == keyhold.OperationRunning {
					f.refusedWhileRestoring(t, f.p, env.ID, op, what)
				}
				opstest.StartChild(t, b, opstest.ChildOptions{Owner: "b", LeaseTTL: 500 * time.Millisecond})
				if end := opstest.WaitEnded(t, f.store, op.ID, crashTimeout); end.State != keyhold.OperationSucceeded {
					t.Fatalf("%s ended %s: %s", c.kind, end.State, end.ErrorMsg)
				}
				f.check(t, env.ID, want)
				f.rowGone(t, env.ID, "accounts", "undone")
				f.rowGone(t, env.ID, "accounts", "during")
				if got, err := f.p.FindEnvironment(f.ctx, env.ID); err != nil || got.RestoreOperationID != "" {
					t.Fatalf("after the %s: restore operation %q, %v; want none", c.kind, got.RestoreOperationID, err)
				}
				if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "after", json.RawMessage(`{}`)); err != nil {
					t.Fatalf("PutRow after the %s: %v", c.kind, err)
				}
			})
		}
	}
}
