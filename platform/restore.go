package platform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
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
// after the operation, in pages (takeBackup). Taken already: nothing to
// do; left unfinished by a crash: deleted and taken afresh.
func (p *Backups) stepSnapshot(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	in, err := dbOpInput(op)
	if err != nil {
		return ops.StepResult{}, ops.Permanent(err)
	}
	sid := snapshotID(op)
	taken := false
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		b, err := tx.Backup(ctx, sid)
		if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
			return nil
		} else if err != nil {
			return err
		}
		if !strings.HasPrefix(b.Label, inProgressLabelPrefix) {
			taken = true
			return nil
		}
		return tx.DeleteBackup(ctx, sid)
	})
	if err != nil || taken {
		return ops.StepResult{}, storeConflict(err)
	}
	b := &keyhold.Backup{ID: sid, Label: "snapshot for copy operation " + op.ID + " to environment " + op.Target, CreatedBy: op.CreatedBy}
	err = p.takeBackup(ctx, opActor(op), b, func(ctx context.Context, tx keyhold.Tx) (*keyhold.Environment, error) {
		src, err := tx.Environment(ctx, in.SourceID)
		if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
			return nil, ops.Permanent(keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "source environment %s was deleted before it could be copied", in.SourceID))
		} else if err != nil {
			return nil, err
		}
		if src.State == keyhold.StateLocked {
			return nil, lockPause(ctx, tx, src)
		}
		return src, nil
	}, func(*keyhold.Environment) time.Duration { return copySnapshotTTL },
		func(context.Context, keyhold.Tx, *keyhold.Environment) error {
			op.Total = b.Rows + b.Files
			return nil
		})
	return ops.StepResult{}, storeConflict(err)
}

// stepCleanup deletes the copy's snapshot.
func (p *Backups) stepCleanup(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	return ops.StepResult{}, storeConflict(p.deleteSnapshot(ctx, op))
}

// rollbackCopy deletes a failed copy's staging areas and its snapshot,
// if it was taken.
func (p *Backups) rollbackCopy(ctx context.Context, op *keyhold.Operation) error {
	if err := p.rollbackRestore(ctx, op); err != nil {
		return err
	}
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

// restorePlan is what both steps of a restore read: the backup, the
// target and its epoch when the step began, the backup's files, and the
// keys (the backup's epochs, the target's current one), all unwrapped
// before any writing transaction, which must not wait on a key vault.
type restorePlan struct {
	b      *keyhold.Backup
	target *keyhold.Environment
	tEpoch uint32
	files  []*keyhold.FileRecord
	keys   keyRing
}

// loadRestore reads the plan of op's restore step; the caller destroys
// its keys.
func (p *Backups) loadRestore(ctx context.Context, op *keyhold.Operation) (*restorePlan, error) {
	in, err := dbOpInput(op)
	if err != nil {
		return nil, ops.Permanent(err)
	}
	backupID := in.BackupID
	if op.Kind == keyhold.OpCopy {
		backupID = snapshotID(op)
	}
	rp := &restorePlan{keys: newKeyRing()}
	var epochs []uint32
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if rp.b, err = tx.Backup(ctx, backupID); err != nil {
			return err
		}
		if rp.target, err = tx.Environment(ctx, op.Target); err != nil {
			return err
		}
		if rp.files, err = tx.BackupFiles(ctx, rp.b.ID); err != nil {
			return err
		}
		epochs, err = tx.BackupEpochs(ctx, rp.b.EnvID)
		return err
	})
	switch keyhold.ErrorCode(err) {
	case keyhold.CodeBackupNotFound:
		return nil, ops.Permanent(keyhold.Errorf(keyhold.CodeBackupNotFound, "backup %s was deleted (or expired) before it could be restored", backupID))
	case keyhold.CodeEnvironmentNotFound:
		return nil, ops.Permanent(keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %s was deleted during the operation", op.Target))
	}
	if err != nil {
		return nil, err
	}
	rp.tEpoch = rp.target.Epoch
	for _, e := range epochs {
		for _, store := range []string{keyhold.StoreRows, keyhold.StoreFiles} {
			sk, err := p.storeKey(ctx, rp.b.EnvID, e, store)
			if err != nil {
				rp.keys.destroy()
				return nil, err
			}
			rp.keys.put(rp.b.EnvID, e, store, sk)
		}
	}
	for _, store := range []string{keyhold.StoreRows, keyhold.StoreFiles} {
		sk, err := p.storeKey(ctx, rp.target.ID, rp.tEpoch, store)
		if err != nil {
			rp.keys.destroy()
			return nil, err
		}
		rp.keys.put(rp.target.ID, rp.tEpoch, store, sk)
	}
	return rp, nil
}

// stagingLabelPrefix begins the label of every restore's staging area;
// stagingLabel is one operation's.
const stagingLabelPrefix = "staging area of restore operation "

func stagingLabel(op *keyhold.Operation) string { return stagingLabelPrefix + op.ID }

// stagingID is the id of op's staging area for rows re-sealed under the
// target's epoch: derived from both, so that a step run again finds it,
// and a staging area sealed under an epoch the target has left is never
// taken for a current one.
func stagingID(op *keyhold.Operation, epoch uint32) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("keyhold:restore-staging:%s:%d", op.ID, epoch))).String()
}

// deleteStaging deletes, in tx, every staging area of op (of any epoch)
// but keep's.
func deleteStaging(ctx context.Context, tx keyhold.Tx, op *keyhold.Operation, keep string) error {
	bs, err := tx.ListBackups(ctx, op.Target)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if b.Label == stagingLabel(op) && b.ID != keep {
			if err := tx.DeleteBackup(ctx, b.ID); err != nil && keyhold.ErrorCode(err) != keyhold.CodeBackupNotFound {
				return err
			}
		}
	}
	return nil
}

// stepStage re-seals the backup's rows for the target into the
// operation's staging area, page by page (stageRows).
func (p *Backups) stepStage(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	rp, err := p.loadRestore(ctx, op)
	if err != nil {
		return ops.StepResult{}, err
	}
	defer rp.keys.destroy()
	return ops.StepResult{}, storeConflict(p.stageRows(ctx, op, rp))
}

// stageRows writes the backup's rows, re-sealed under the target's epoch,
// into a fresh staging area: a backup record of the target (StageBackup)
// whose rows nothing serves. Each page is read in a read transaction,
// re-sealed outside any transaction and written in its own short one, so
// no transaction holds the write lock for the whole environment, and a
// data write elsewhere waits at most for one page. A staging area a
// crashed run left is deleted first: run again, it does the same again.
// It expires after copySnapshotTTL should its operation be lost, and
// PruneBackups deletes it then.
func (p *Backups) stageRows(ctx context.Context, op *keyhold.Operation, rp *restorePlan) error {
	b, target := rp.b, rp.target
	sid := stagingID(op, rp.tEpoch)
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := deleteStaging(ctx, tx, op, ""); err != nil {
			return err
		}
		now := p.clock.Now().UTC()
		return tx.StageBackup(ctx, &keyhold.Backup{ID: sid, EnvID: target.ID, TenantID: target.TenantID, Label: stagingLabel(op),
			CreatedBy: op.CreatedBy, CreatedAt: now, ExpiresAt: now.Add(copySnapshotTTL)})
	})
	if err != nil {
		return err
	}
	rowsKey := rp.keys.get(target.ID, rp.tEpoch, keyhold.StoreRows)
	afterTable, afterID := "", ""
	for {
		var page []*keyhold.RowRecord
		if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
			page, err = tx.BackupRows(ctx, b.ID, afterTable, afterID, restoreRowPage)
			return err
		}); err != nil {
			if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
				return ops.Permanent(keyhold.Errorf(keyhold.CodeBackupNotFound, "backup %s was deleted (or expired) during the restore; environment %s was left as it was", b.ID, target.ID))
			}
			return err
		}
		now := p.clock.Now().UTC()
		sealed := make([]*keyhold.RowRecord, 0, len(page))
		for _, r := range page {
			sk := rp.keys.get(b.EnvID, r.Epoch, keyhold.StoreRows)
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
			sealed = append(sealed, &keyhold.RowRecord{EnvID: target.ID, Table: r.Table, ID: r.ID, Epoch: rp.tEpoch, Version: r.Version, Ciphertext: ct, UpdatedAt: now})
		}
		if len(sealed) > 0 {
			if err := p.store.Update(ctx, func(tx keyhold.Tx) error {
				if err := pauseIfLocked(ctx, tx, target.ID); err != nil {
					return err
				}
				if err := pauseIfLocked(ctx, tx, b.EnvID); err != nil {
					return err
				}
				return tx.InsertBackupRows(ctx, sid, sealed)
			}); err != nil {
				return err
			}
			stagedPageFault()
			if stagedPageHook != nil {
				stagedPageHook()
			}
		}
		if len(page) < restoreRowPage {
			return nil
		}
		afterTable, afterID = page[len(page)-1].Table, page[len(page)-1].ID
	}
}

// faultStagedPage is the fault point after each page of rows is staged
// (the crash tests kill the server there, mid-step).
const faultStagedPage = "restore:staged-page"

// stagedPageHook, if set, runs where faultStagedPage is (tests: what the
// others see between two pages).
var stagedPageHook func()

// stepRestore overwrites the target with the backup (a restore's, or a
// copy's snapshot). The rows wait in the staging area stepStage filled
// (it stages them now if that area is missing or incomplete: deleted
// meanwhile, or sealed under an epoch the target has left). It stages
// every file re-sealed under the target's current epoch, as uploads,
// then swaps in one short transaction that checks both environments are
// still served, the backup still exists and the target's epoch is
// unchanged, clears the target, copies the staged rows into it inside the
// database (MoveBackupRows: no cryptography and no round trip per row
// while the write lock is held), points the files at their staged
// generations and deletes the staging area. The target holds all of its
// old data or all of the backup's, never a mix. Run again, it does the
// same again, with the same result.
func (p *Backups) stepRestore(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	rp, err := p.loadRestore(ctx, op)
	if err != nil {
		return ops.StepResult{}, err
	}
	defer rp.keys.destroy()
	b, target, tEpoch, keys := rp.b, rp.target, rp.tEpoch, rp.keys
	sid := stagingID(op, tEpoch)
	complete := false
	if err := p.store.View(ctx, func(tx keyhold.Tx) error {
		st, err := tx.Backup(ctx, sid)
		if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
			return nil
		}
		complete = err == nil && st.Rows == b.Rows
		return err
	}); err != nil {
		return ops.StepResult{}, err
	}
	if !complete {
		if err := p.stageRows(ctx, op, rp); err != nil {
			return ops.StepResult{}, storeConflict(err)
		}
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
	for _, f := range rp.files {
		gen, err := p.stageFile(ctx, f, target.ID, keys.get(b.EnvID, f.Epoch, keyhold.StoreFiles), keys.get(target.ID, tEpoch, keyhold.StoreFiles))
		if gen != "" {
			staged = append(staged, stagedFile{rec: f, gen: gen})
		}
		if err != nil {
			return ops.StepResult{}, err
		}
	}

	flows, err := p.stageFlows(ctx, b, target, tEpoch)
	if err != nil {
		return ops.StepResult{}, err
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
		// then a restore of what was staged from it would be one the
		// customer no longer asked for.
		if _, err := tx.Backup(ctx, b.ID); keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeBackupNotFound, "backup %s was deleted (or expired) during the restore; environment %s was left as it was", b.ID, target.ID))
		} else if err != nil {
			return err
		}
		st, err := tx.Backup(ctx, sid)
		if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound || (err == nil && st.Rows != b.Rows) {
			return ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "the staging area of the restore of environment %s changed before the swap", target.ID))
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
		if rows, err = tx.MoveBackupRows(ctx, sid, target.ID); err != nil {
			return err
		}
		if flows != nil {
			if err := tx.ReplaceFlows(ctx, target.ID, flows); err != nil {
				return err
			}
		}
		now := p.clock.Now().UTC()
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
		if err := deleteStaging(ctx, tx, op, ""); err != nil {
			return err
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

// rollbackRestore deletes a failed restore's staging areas.
func (p *Backups) rollbackRestore(ctx context.Context, op *keyhold.Operation) error {
	return storeConflict(p.store.Update(ctx, func(tx keyhold.Tx) error { return deleteStaging(ctx, tx, op, "") }))
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
