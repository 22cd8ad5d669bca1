package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// testBackupEpochCounts: a backup's rows and files counted per epoch over
// all of an environment's backups, with the latest expiry among the
// backups holding each; other environments' backups not counted.
func testBackupEpochCounts(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	backup := func(id, env string, exp time.Duration) {
		update(t, s, func(tx keyhold.Tx) error {
			return tx.CreateBackup(ctx, &keyhold.Backup{ID: id, EnvID: env, TenantID: "t1", Label: id, CreatedBy: "u1", CreatedAt: at(0), ExpiresAt: at(exp)})
		})
	}
	update(t, s, func(tx keyhold.Tx) error {
		for _, r := range []*keyhold.RowRecord{row("e1", "T", "r1", 1, 1), row("e1", "T", "r2", 1, 2), row("e2", "T", "x", 1, 1)} {
			if err := tx.PutRow(ctx, r); err != nil {
				return err
			}
		}
		_, err := tx.PutFile(ctx, &keyhold.FileRecord{EnvID: "e1", Name: "f", Generation: "g", Epoch: 2, Version: 1, UpdatedAt: at(0)})
		return err
	})
	backup("b1", "e1", time.Hour)
	backup("b2", "e1", 30*time.Minute)
	backup("b3", "e2", 5*time.Hour)
	var got []keyhold.BackupEpochCount
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.BackupEpochCounts(ctx, "e1"); return err })
	equal(t, "e1", got, []keyhold.BackupEpochCount{{Epoch: 1, Items: 2, ExpiresAt: at(time.Hour)}, {Epoch: 2, Items: 4, ExpiresAt: at(time.Hour)}})
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.BackupEpochCounts(ctx, "nope"); return err })
	equal(t, "unknown environment", len(got), 0)
}
