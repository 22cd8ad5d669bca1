//go:build keyhold_faults

package platform

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/ops/opstest"
)

// TestRestoreCrashKeepsWritesRefused kills the server running a restore
// or a copy (kill -9) at every step boundary, after a page of rows is
// staged, and after a page of the copy's snapshot is copied, on SQLite
// and PostgreSQL:
// while the operation, left Running by the dead server, has not ended,
// the environment still shows it and refuses writes, changing nothing;
// once another server has finished it, the environment holds the restored
// data and takes writes again.
func TestRestoreCrashKeepsWritesRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("each case starts two processes")
	}
	kinds := assemble(&core{}).kinds()
	type tc struct{ kind, fault, name string }
	var cases []tc
	for _, k := range []string{keyhold.OpRestore, keyhold.OpCopy} {
		for _, p := range ops.FaultPoints(k, kinds[k]) {
			cases = append(cases, tc{k, p, p})
		}
		cases = append(cases, tc{k, faultStagedPage, k + ":" + faultStagedPage}) // mid-step: a page staged, the rest not
	}
	// Mid-snapshot: a page of the copy's snapshot copied, the backup
	// unfinished; the step run again deletes it and takes it afresh.
	cases = append(cases, tc{keyhold.OpCopy, faultBackupPage, keyhold.OpCopy + ":" + faultBackupPage})
	for _, be := range []struct {
		name string
		open func(t *testing.T) opstest.Backend
	}{{"sqlite", func(t *testing.T) opstest.Backend { return opstest.SQLite(t) }}, {"postgres", func(t *testing.T) opstest.Backend { return opstest.Postgres(t) }}} {
		for _, c := range cases {
			t.Run(be.name+"/"+c.name, func(t *testing.T) {
				b := be.open(t)
				f := newCMKFixture(t, b.Open(t), false)
				env, want := crashEnv(t, f, "target")
				var op *keyhold.Operation
				var err error
				what := "restored from a backup"
				if c.kind == keyhold.OpRestore {
					bk, berr := f.p.CreateBackup(f.ctx, env.ID, "b")
					if berr != nil {
						t.Fatal(berr)
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
				if c.kind == keyhold.OpCopy {
					if in, err := dbOpInput(op); err != nil {
						t.Fatal(err)
					} else if ip := f.inProgress(t, in.SourceID); len(ip) != 0 {
						t.Errorf("after the copy, unfinished backups of the source are left: %v", ip)
					}
				}
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
