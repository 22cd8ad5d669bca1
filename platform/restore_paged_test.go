package platform

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestRestoreIsPaged: a restore re-seals its rows into a staging area one
// page per transaction; between two pages the target still serves its old
// data, another environment takes writes at once, the staging area holds
// the pages staged so far and can't itself be restored (a refusal that
// changes nothing); at the end one swap puts the backup's data in place
// and deletes the staging area.
func TestRestoreIsPaged(t *testing.T) {
	old := restoreRowPage
	restoreRowPage = 10
	t.Cleanup(func() { restoreRowPage = old; stagedPageHook = nil })
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "prod")
		want := f.fill(t, env.ID, 45, 100)
		b, err := f.p.CreateBackup(f.ctx, env.ID, "b")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "r0000", json.RawMessage(`{"changed":true}`)); err != nil {
			t.Fatal(err)
		}
		peer := f.managedEnv(t, "peer")
		pages := 0
		stagedPageHook = func() {
			pages++
			r, err := f.p.GetRow(f.ctx, env.ID, "accounts", "r0000")
			if err != nil || string(r.Data) != `{"changed":true}` {
				t.Errorf("page %d: the target serves %v, %v; want its data before the restore", pages, r, err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := f.p.PutRow(f.ctx, peer.ID, "accounts", "between", json.RawMessage(`{"page":1}`))
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("page %d: a write to another environment: %v", pages, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("page %d: a write to another environment waited 5 s: the restore holds the write lock between pages", pages)
			}
			var staging *keyhold.Backup
			if err := f.store.View(f.ctx, func(tx keyhold.Tx) error {
				bs, err := tx.ListBackups(f.ctx, env.ID)
				for _, x := range bs {
					if strings.HasPrefix(x.Label, stagingLabelPrefix) {
						staging = x
					}
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if staging == nil || staging.Rows != int64(min(10*pages, 45)) {
				t.Errorf("page %d: staging area %+v; want %d rows", pages, staging, min(10*pages, 45))
				return
			}
			if pages == 1 {
				before := f.dataState(t, peer.ID)
				_, err := f.p.RestoreBackup(f.ctx, peer.ID, staging.ID)
				if keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(err.Error(), "staging area of restore operation") {
					t.Errorf("restoring the staging area: %v; want BadRequest naming it", err)
				}
				if after := f.dataState(t, peer.ID); after != before {
					t.Errorf("the refused restore changed its target:\n%s\nthen\n%s", before, after)
				}
			}
		}
		f.succeed(t, "restore", func() (*keyhold.Operation, error) { return f.p.RestoreBackup(f.ctx, env.ID, b.ID) })
		stagedPageHook = nil
		if pages != 5 {
			t.Errorf("45 rows staged in %d pages of 10, want 5", pages)
		}
		f.check(t, env.ID, want)
		bs, err := f.p.ListBackups(f.ctx, env.ID)
		if err != nil || len(bs) != 1 || bs[0].ID != b.ID {
			t.Errorf("after the restore ListBackups = %v, %v; want the one backup, no staging area", bs, err)
		}
	})
}
