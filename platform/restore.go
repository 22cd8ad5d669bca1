package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// The steps of restore and copy: the snapshot, the restore that
// re-seals every item into the target, and the cleanup (backups.go has
// the design notes).

// stepSnapshot takes the copy's snapshot: a backup of the source, named
// after the operation. Taken already: nothing to do.
func (p *Backups) stepSnapshot(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	in, err := dbOpInput(op)
	if err != nil {
		return ops.StepResult{}, ops.Permanent(err)
	}
	sid := snapshotID(op)
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if _, err := tx.Backup(ctx, sid); err == nil {
			return nil
		} else if keyhold.ErrorCode(err) != keyhold.CodeBackupNotFound {
			return err
		}
		src, err := tx.Environment(ctx, in.SourceID)
		if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "source environment %s was deleted before it could be copied", in.SourceID))
		} else if err != nil {
			return err
		}
		if src.State == keyhold.StateLocked {
			return lockPause(ctx, tx, src)
		}
		now := p.clock.Now().UTC()
		b := &keyhold.Backup{ID: sid, EnvID: src.ID, TenantID: src.TenantID, Label: "snapshot for copy operation " + op.ID + " to environment " + op.Target,
			CreatedBy: op.CreatedBy, CreatedAt: now, ExpiresAt: now.Add(copySnapshotTTL)}
		if err := tx.CreateBackup(ctx, b); err != nil {
			return err
		}
		op.Total = b.Rows + b.Files
		return nil
	})
	return ops.StepResult{}, storeConflict(err)
}

// stepCleanup deletes the copy's snapshot.
func (p *Backups) stepCleanup(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	return ops.StepResult{}, storeConflict(p.deleteSnapshot(ctx, op))
}

// rollbackCopy deletes a failed copy's snapshot, if it was taken.
func (p *Backups) rollbackCopy(ctx context.Context, op *keyhold.Operation) error {
	return storeConflict(p.deleteSnapshot(ctx, op))
}

func (p *Backups) deleteSnapshot(ctx context.Context, op *keyhold.Operation) error {
	var destroyed []uint32
	var envID string
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		b, err := tx.Backup(ctx, snapshotID(op))
		if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
			return nil
		} else if err != nil {
			return err
		}
		env, err := tx.Environment(ctx, b.EnvID)
		if err != nil {
			return err
		}
		envID = env.ID
		destroyed, err = p.removeBackup(ctx, tx, opActor(op), env, b, "", "")
		return err
	})
	for _, e := range destroyed {
		p.dropEpochKeys(envID, e)
	}
	return err
}

// stagedFile is a backup's file re-sealed for the target, in a staged
// generation.
type stagedFile struct {
	rec *keyhold.FileRecord
	gen string
}

// stepRestore overwrites the target with the backup (a restore's, or a
// copy's snapshot): it stages every file re-sealed under the target's
// current epoch, then, in one transaction that checks both environments
// are still served and the target's epoch unchanged, clears the target,
// re-seals every row into it and swaps the staged files in. Run again, it
// does the same again, with the same result.
func (p *Backups) stepRestore(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	in, err := dbOpInput(op)
	if err != nil {
		return ops.StepResult{}, ops.Permanent(err)
	}
	backupID := in.BackupID
	if op.Kind == keyhold.OpCopy {
		backupID = snapshotID(op)
	}
	var (
		b      *keyhold.Backup
		target *keyhold.Environment
		files  []*keyhold.FileRecord
		epochs []uint32
	)
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if b, err = tx.Backup(ctx, backupID); err != nil {
			return err
		}
		if target, err = tx.Environment(ctx, op.Target); err != nil {
			return err
		}
		if files, err = tx.BackupFiles(ctx, b.ID); err != nil {
			return err
		}
		epochs, err = tx.BackupEpochs(ctx, b.EnvID)
		return err
	})
	switch keyhold.ErrorCode(err) {
	case keyhold.CodeBackupNotFound:
		return ops.StepResult{}, ops.Permanent(keyhold.Errorf(keyhold.CodeBackupNotFound, "backup %s was deleted (or expired) before it could be restored", backupID))
	case keyhold.CodeEnvironmentNotFound:
		return ops.StepResult{}, ops.Permanent(keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %s was deleted during the operation", op.Target))
	}
	if err != nil {
		return ops.StepResult{}, err
	}

	// Keys: the backup's epochs (of its environment), the target's current
	// one. All unwrapped before the writing transaction, which must not wait
	// on a key vault.
	keys := newKeyRing()
	defer keys.destroy()
	for _, e := range epochs {
		for _, store := range []string{keyhold.StoreRows, keyhold.StoreFiles} {
			sk, err := p.storeKey(ctx, b.EnvID, e, store)
			if err != nil {
				return ops.StepResult{}, err
			}
			keys.put(b.EnvID, e, store, sk)
		}
	}
	tEpoch := target.Epoch
	for _, store := range []string{keyhold.StoreRows, keyhold.StoreFiles} {
		sk, err := p.storeKey(ctx, target.ID, tEpoch, store)
		if err != nil {
			return ops.StepResult{}, err
		}
		keys.put(target.ID, tEpoch, store, sk)
	}

	var staged []stagedFile
	committed := false
	defer func() {
		if !committed {
			for _, s := range staged {
				p.envs.discardUpload(target.ID, s.gen)
			}
		}
	}()
	for _, f := range files {
		gen, err := p.stageFile(ctx, f, target.ID, keys.get(b.EnvID, f.Epoch, keyhold.StoreFiles), keys.get(target.ID, tEpoch, keyhold.StoreFiles))
		if gen != "" {
			staged = append(staged, stagedFile{rec: f, gen: gen})
		}
		if err != nil {
			return ops.StepResult{}, err
		}
	}

	var rows int64
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		rows = 0
		if err := pauseIfLocked(ctx, tx, target.ID); err != nil {
			return err
		}
		if err := pauseIfLocked(ctx, tx, b.EnvID); err != nil {
			return err
		}
		// The backup may have been deleted (or expired) since it was read:
		// then its rows are gone too, and a restore of only its files
		// would lose the target's data.
		if _, err := tx.Backup(ctx, b.ID); keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeBackupNotFound, "backup %s was deleted (or expired) during the restore; environment %s was left as it was", b.ID, target.ID))
		} else if err != nil {
			return err
		}
		cur, err := tx.Environment(ctx, target.ID)
		if err != nil {
			return err
		}
		if cur.Epoch != tEpoch {
			return ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "environment %s moved to key epoch %d during the restore", target.ID, cur.Epoch))
		}
		if err := tx.ClearEnvData(ctx, target.ID); err != nil {
			return err
		}
		now := p.clock.Now().UTC()
		rowsKey := keys.get(target.ID, tEpoch, keyhold.StoreRows)
		afterTable, afterID := "", ""
		for {
			page, err := tx.BackupRows(ctx, b.ID, afterTable, afterID, restoreRowPage)
			if err != nil {
				return err
			}
			sealed := make([]*keyhold.RowRecord, 0, len(page))
			for _, r := range page {
				sk := keys.get(b.EnvID, r.Epoch, keyhold.StoreRows)
				if sk == nil {
					return ops.Permanent(keyhold.Errorf(keyhold.CodeInternal, "backup %s holds row %s/%s under epoch %d, whose key is gone", b.ID, r.Table, r.ID, r.Epoch))
				}
				item := rowItemID(r.Table, r.ID)
				pt, err := sk.Open(item, r.Version, r.Ciphertext)
				if err != nil {
					return ops.Permanent(keyhold.Errorf(keyhold.CodeInternal,
						"row %s/%s of backup %s failed its integrity check: the backup was altered; restore another backup", r.Table, r.ID, b.ID).WithCause(err))
				}
				ct, err := rowsKey.Seal(item, r.Version, pt)
				clear(pt)
				if err != nil {
					return err
				}
				sealed = append(sealed, &keyhold.RowRecord{EnvID: target.ID, Table: r.Table, ID: r.ID, Epoch: tEpoch, Version: r.Version, Ciphertext: ct, UpdatedAt: now})
			}
			// One statement for the page, not one per row.
			if err := tx.InsertRows(ctx, sealed); err != nil {
				return err
			}
			rows += int64(len(sealed))
			if len(page) < restoreRowPage {
				break
			}
			afterTable, afterID = page[len(page)-1].Table, page[len(page)-1].ID
		}
		for _, s := range staged {
			rec := *s.rec
			rec.EnvID, rec.Generation, rec.Epoch, rec.UpdatedAt = target.ID, s.gen, tEpoch, now
			if _, err := tx.PutFile(ctx, &rec); err != nil {
				return err
			}
			if err := tx.DeleteFileUpload(ctx, target.ID, s.gen); err != nil {
				return err
			}
		}
		what := fmt.Sprintf("backup %s (%q, taken %s) of environment %s", b.ID, b.Label, b.CreatedAt.Format(time.RFC3339), b.EnvID)
		if op.Kind == keyhold.OpCopy {
			what = fmt.Sprintf("environment %s as of %s", b.EnvID, b.CreatedAt.Format(time.RFC3339))
		}
		return p.audit(ctx, tx, opActor(op), auditRestore, envTarget(target.ID), target.ID,
			fmt.Sprintf("overwritten with %s: %d rows and %d files, re-sealed under epoch %d (operation %s)", what, rows, len(staged), tEpoch, op.ID))
	})
	if err != nil {
		return ops.StepResult{}, storeConflict(err)
	}
	committed = true
	op.Done, op.Total = rows+int64(len(staged)), rows+int64(len(staged))
	return ops.StepResult{}, nil
}

// stageFile streams backup file f (stored under its environment's epoch
// f.Epoch) re-sealed with to into a new generation of environment
// targetID, marked as an upload. It returns the generation (also on
// error, once created, so that the caller discards it).
func (p *Backups) stageFile(ctx context.Context, f *keyhold.FileRecord, targetID string, from, to *crypt.StoreKey) (string, error) {
	if from == nil {
		return "", ops.Permanent(keyhold.Errorf(keyhold.CodeInternal, "a backup holds file %q under epoch %d, whose key is gone", f.Name, f.Epoch))
	}
	gen := uuid.NewString()
	if err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		return tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: targetID, Generation: gen, StartedAt: p.clock.Now().UTC()})
	}); err != nil {
		return "", err
	}
	cr := &chunkReader{ctx: ctx, p: p.core, rec: f}
	cw := &chunkWriter{ctx: ctx, p: p.core, envID: targetID, gen: gen, buf: make([]byte, 0, 64<<10)}
	dec, err := from.NewDecryptingReader(bufio.NewReaderSize(cr, 64<<10), f.Name, f.Version)
	if err != nil {
		return gen, backupIntegrity(f, err)
	}
	enc, err := to.NewEncryptingWriter(cw, f.Name, f.Version)
	if err != nil {
		return gen, err
	}
	n, err := io.Copy(enc, dec)
	if err != nil {
		return gen, backupIntegrity(f, err)
	}
	if n != f.Size {
		return gen, backupIntegrity(f, fmt.Errorf("%w: it holds %d bytes, its record says %d", crypt.ErrDecrypt, n, f.Size))
	}
	if err := enc.Close(); err != nil {
		return gen, err
	}
	if err := cw.flush(); err != nil {
		return gen, err
	}
	f.Chunks = cw.seq
	return gen, nil
}

func backupIntegrity(f *keyhold.FileRecord, err error) error {
	if errors.Is(err, crypt.ErrDecrypt) {
		return ops.Permanent(keyhold.Errorf(keyhold.CodeInternal,
			"file %q of a backup of environment %s failed its integrity check: the backup was altered; restore another backup", f.Name, f.EnvID).WithCause(err))
	}
	return err
}

// keyRing holds store keys by environment, epoch and store, and destroys
// them together.
type keyRing map[string]*crypt.StoreKey

func newKeyRing() keyRing { return keyRing{} }

func ringID(envID string, epoch uint32, store string) string {
	return cacheID(envID, epoch) + "/" + store
}

func (r keyRing) put(envID string, epoch uint32, store string, sk *crypt.StoreKey) {
	if old := r[ringID(envID, epoch, store)]; old != nil {
		old.Destroy()
	}
	r[ringID(envID, epoch, store)] = sk
}

func (r keyRing) get(envID string, epoch uint32, store string) *crypt.StoreKey {
	return r[ringID(envID, epoch, store)]
}

func (r keyRing) destroy() {
	for _, sk := range r {
		sk.Destroy()
	}
}
