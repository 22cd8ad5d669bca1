package platform

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// Backup, restore, copy and reset (keyhold.BackupService; the rules are in
// the keyhold package's backup.go).
//
// Keys. A backup holds its environment's items exactly as stored, under
// the epochs they were sealed with, and the environment keeps the wrapped
// keys of every epoch a backup holds items under (stepDestroy and
// destroyUnused leave them): so a backup has no keys of its own, and is
// protected by whatever protects the environment's keys: a link moves them
// to the customer's key (the platform can then read neither the
// environment nor its backups), a revocation locks both, a rotation
// rewraps both, an unlink brings both back. Once no live item and no
// backup holds items under an old epoch, its wrapped keys are destroyed.
// The price: an operator who copied an EK in plaintext before a link can
// read the backups taken before it until they expire (at most 28 days),
// while the re-key shuts him out of the live data at once.
//
// Restore and copy re-seal every item under the target's current epoch
// (the item's AAD names the environment, so a ciphertext can't simply be
// moved) and keep each item's version. Files stream one chunk at a time
// into generations staged as uploads (a crash leaves chunks that
// CleanStaleUploads removes); rows and the swap to the staged files
// happen in one transaction that first clears the target: the target
// holds either all of its old data or all of the backup's, never a mix. A
// copy first takes a backup of the source (its snapshot, named after the
// operation, so a step run again finds it), restores that, and deletes it.
//
// Locked environments. Every start checks the source and the target with
// requireServing, and every step checks both again (pausable, and inside
// the writing transaction): a lock while one runs pauses it, and it goes
// on after the re-enable.

// Backups is the service of backups and the database operations: backup,
// restore, copy and reset, and their operations' steps.
type Backups struct {
	*core
	envs      *Environments // discards an unfinished staged upload
	health    *Health       // pauses a step while an environment is Locked
	lifecycle *CMK          // starts the environment's operation record
}

// Audit actions of backups and the database operations.
const (
	auditBackupCreate = "backup.create"
	auditBackupDelete = "backup.delete"
	auditBackupExpire = "backup.expire"
	auditRestoreStart = "environment.restore.start"
	auditRestore      = "environment.restore"
	auditCopyStart    = "environment.copy.start"
	auditResetStart   = "environment.reset.start"
	auditReset        = "environment.reset"
	auditEpochDestroy = "environment.key.destroy"
)

// Steps of the database operations.
const (
	stepSnapshot = "snapshot"
	stepRestore  = "restore"
	stepCleanup  = "cleanup"
	stepReset    = "reset"
)

// copySnapshotTTL is how long a copy's snapshot lives if the copy never
// deletes it (its operation was lost): the expiry sweep then does.
const copySnapshotTTL = 24 * time.Hour

// restoreRowPage is how many rows a restore re-seals per store read.
const restoreRowPage = 500

// dbInput is the Input of restore, copy and reset operations.
type dbInput struct {
	BackupID  string `json:"backupId,omitempty"`  // restore
	SourceID  string `json:"sourceId,omitempty"`  // restore and copy: where the data comes from
	FromEpoch uint32 `json:"fromEpoch,omitempty"` // reset: the epoch it replaces
}

func dbOpInput(op *keyhold.Operation) (dbInput, error) {
	var in dbInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return in, keyhold.Errorf(keyhold.CodeInternal, "operation %s has unreadable input", op.ID).WithCause(err)
	}
	return in, nil
}

// snapshotID is the id of a copy's snapshot: derived from the operation,
// so that the snapshot step run again after a crash finds it.
func snapshotID(op *keyhold.Operation) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("keyhold:copy-snapshot:"+op.ID)).String()
}

// backupKinds returns the operation kinds of restore, copy and reset.
func (p *Backups) backupKinds() map[string]ops.Kind {
	return map[string]ops.Kind{
		keyhold.OpRestore: {Steps: []ops.Step{
			{Name: stepRestore, Run: p.pausableDB(p.stepRestore)},
		}},
		keyhold.OpCopy: {Steps: []ops.Step{
			{Name: stepSnapshot, Run: p.pausableDB(p.stepSnapshot)},
			{Name: stepRestore, Run: p.pausableDB(p.stepRestore)},
			{Name: stepCleanup, Run: p.stepCleanup},
		}, Rollback: p.rollbackCopy},
		keyhold.OpReset: {Steps: []ops.Step{
			{Name: stepReset, Run: p.pausableDB(p.stepReset)},
		}},
	}
}

// pausableDB is pausable for the database operations: the source
// environment's lock pauses them too.
func (p *Backups) pausableDB(run func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error)) func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	inner := p.health.pausable(run)
	return func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		in, err := dbOpInput(op)
		if err != nil || in.SourceID == "" || in.SourceID == op.Target {
			return inner(ctx, op)
		}
		if err := p.health.checkLocked(ctx, in.SourceID); err != nil {
			return ops.StepResult{}, err
		}
		res, err := inner(ctx, op)
		if err != nil && !errors.Is(err, ops.ErrPaused) && ctx.Err() == nil {
			// The source locked while the step ran (its keys refused).
			if perr := p.health.checkLocked(ctx, in.SourceID); errors.Is(perr, ops.ErrPaused) {
				return ops.StepResult{}, perr
			}
		}
		return res, err
	}
}

// validateLabel checks a backup label: at most MaxBackupLabel bytes of
// printable UTF-8.
func validateLabel(label string) error {
	if len(label) > keyhold.MaxBackupLabel || !utf8.ValidString(label) ||
		strings.IndexFunc(label, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent,
			"the backup label must be at most %d bytes of printable text (no control characters)", keyhold.MaxBackupLabel)
	}
	return nil
}

func backupTarget(envID, backupID string) string { return envTarget(envID) + "/backups/" + backupID }

// CreateBackup takes a backup of an Enabled environment now.
func (p *Backups) CreateBackup(ctx context.Context, envID, label string) (*keyhold.Backup, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	var b *keyhold.Backup
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		if err := requireServing(ctx, tx, env, "backed up"); err != nil {
			return err
		}
		now := p.clock.Now().UTC()
		b = &keyhold.Backup{ID: uuid.NewString(), EnvID: env.ID, TenantID: env.TenantID, Label: label,
			CreatedBy: id.PrincipalID, CreatedAt: now, ExpiresAt: now.Add(keyhold.RetentionFor(env.SKU))}
		if err := tx.CreateBackup(ctx, b); err != nil {
			return err
		}
		return p.audit(ctx, tx, id, auditBackupCreate, backupTarget(env.ID, b.ID), env.ID,
			fmt.Sprintf("backup %q of %d rows and %d files (%d bytes); kept until %s", label, b.Rows, b.Files, b.Bytes, b.ExpiresAt.Format(time.RFC3339)))
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ListBackups lists an environment's backups, newest first.
func (p *Backups) ListBackups(ctx context.Context, envID string) ([]*keyhold.Backup, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.Backup
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		out, err = tx.ListBackups(ctx, env.ID)
		return err
	})
	return out, err
}

// backupFor loads a backup of environment envID (which the caller sees).
func backupFor(ctx context.Context, tx keyhold.Tx, envID, backupID string) (*keyhold.Backup, error) {
	b, err := tx.Backup(ctx, backupID)
	if err == nil && b.EnvID != envID {
		err = keyhold.Errorf(keyhold.CodeBackupNotFound, "")
	}
	if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
		return nil, keyhold.Errorf(keyhold.CodeBackupNotFound, "environment %s has no backup %q: list its backups to find the id", envID, backupID)
	}
	return b, err
}

// DeleteBackup deletes one backup of an environment, and the wrapped keys
// of epochs nothing holds items under any more.
func (p *Backups) DeleteBackup(ctx context.Context, envID, backupID string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	var destroyed []uint32
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		b, err := backupFor(ctx, tx, env.ID, backupID)
		if err != nil {
			return err
		}
		destroyed, err = p.removeBackup(ctx, tx, id, env, b, auditBackupDelete, fmt.Sprintf("backup %q taken %s deleted", b.Label, b.CreatedAt.Format(time.RFC3339)))
		return err
	})
	for _, e := range destroyed {
		p.dropEpochKeys(envID, e)
	}
	return err
}

// removeBackup deletes backup b of env in tx, then the wrapped keys of the
// epochs only it held items under (destroyUnused), and audits it as
// action (none if ""). It returns the epochs destroyed; the caller drops
// them from the caches after the commit.
func (p *Backups) removeBackup(ctx context.Context, tx keyhold.Tx, actor *keyhold.Identity, env *keyhold.Environment, b *keyhold.Backup, action, detail string) ([]uint32, error) {
	if err := tx.DeleteBackup(ctx, b.ID); err != nil {
		return nil, err
	}
	destroyed, err := p.destroyUnused(ctx, tx, actor, env)
	if err != nil || action == "" {
		return destroyed, err
	}
	return destroyed, p.audit(ctx, tx, actor, action, backupTarget(env.ID, b.ID), env.ID, detail)
}

// destroyUnused deletes, in tx, the wrapped keys of env's old epochs that
// neither a live item nor a backup holds anything under, unless an
// operation is running on env (a re-key's own destroy step does it then).
// It returns the epochs destroyed; the caller drops them from the caches
// after the commit.
func (p *Backups) destroyUnused(ctx context.Context, tx keyhold.Tx, actor *keyhold.Identity, env *keyhold.Environment) ([]uint32, error) {
	if running, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: env.ID, State: keyhold.OperationRunning, Limit: 1}); err != nil || len(running) > 0 {
		return nil, err
	}
	keep, err := epochsInUse(ctx, tx, env)
	if err != nil {
		return nil, err
	}
	wks, err := tx.WrappedKeys(ctx, env.ID)
	if err != nil {
		return nil, err
	}
	var destroyed []uint32
	var kids []string
	for _, wk := range wks {
		if keep[wk.Epoch] {
			continue
		}
		if err := tx.DeleteWrappedKey(ctx, env.ID, wk.Epoch, wk.Root); err != nil {
			return nil, err
		}
		if err := p.touchOldKID(ctx, tx, wk); err != nil {
			return nil, err
		}
		if !slices.Contains(destroyed, wk.Epoch) {
			destroyed = append(destroyed, wk.Epoch)
		}
		kids = append(kids, fmt.Sprintf("%d (%s)", wk.Epoch, wk.Root))
	}
	if len(kids) > 0 {
		if err := p.audit(ctx, tx, actor, auditEpochDestroy, envTarget(env.ID), env.ID,
			"no live item or backup holds anything under these epochs any more: their wrapped keys are destroyed: ["+strings.Join(kids, ", ")+"]"); err != nil {
			return nil, err
		}
	}
	return destroyed, nil
}

// epochsInUse returns the epochs of env that must keep their keys: the
// current one, those live items are sealed under, and those backups hold
// items under.
func epochsInUse(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) (map[uint32]bool, error) {
	keep := map[uint32]bool{env.Epoch: true}
	counts, err := tx.EpochCounts(ctx, env.ID)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		if c.Rows+c.Files > 0 {
			keep[c.Epoch] = true
		}
	}
	held, err := tx.BackupEpochs(ctx, env.ID)
	if err != nil {
		return nil, err
	}
	for _, e := range held {
		keep[e] = true
	}
	return keep, nil
}

// protection names the root key protecting an environment's keys, for the
// rules of restore and copy: "" for the platform's key, else the
// customer-managed key as vault id + key name (two policies naming the
// same key protect alike), with a description for messages.
func protection(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) (key, desc string, err error) {
	switch env.KeyManagedBy {
	case keyhold.KeyManagedByMicrosoft, "":
		return "", "the Microsoft-managed key", nil
	case keyhold.KeyManagedByCustomerViaMicrosoft:
		return "byok:" + env.TenantID, "the tenant's legacy BYOK key", nil
	}
	pol, err := tx.PolicyBySystemID(ctx, env.PolicySystemID)
	if err != nil {
		return "", "", err
	}
	key = strings.ToLower(pol.KeyVaultID + "/keys/" + pol.KeyName)
	return key, fmt.Sprintf("customer-managed key %s of key vault %s (enterprise policy %s)", pol.KeyName, vaultNameOf(pol), pol.ID()), nil
}

// dbPlan is what the checks of a restore or copy found.
type dbPlan struct {
	target, source *keyhold.Environment
	backup         *keyhold.Backup // restore only
}

// checkRestore checks, in tx, that the caller may restore backupID over
// environment targetID: an administrator, with Reader on the policy the
// target is linked to (requireCustodyReader); both environments Enabled; the
// target with no operation running; and, for a backup under a
// customer-managed key, a target that is its own environment or one under
// the same key.
func checkRestore(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, targetID, backupID string) (*dbPlan, error) {
	target, err := adminEnvironment(ctx, tx, id, targetID)
	if err != nil {
		return nil, err
	}
	b, err := tx.Backup(ctx, backupID)
	if err == nil && b.TenantID != id.TenantID {
		err = keyhold.Errorf(keyhold.CodeBackupNotFound, "")
	}
	if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
		return nil, keyhold.Errorf(keyhold.CodeBackupNotFound, "backup %q was not found in tenant %s: list an environment's backups to find the id", backupID, id.TenantID)
	} else if err != nil {
		return nil, err
	}
	source, err := environmentFor(ctx, tx, id, b.EnvID)
	if err != nil {
		return nil, err
	}
	if err := requireCustodyReader(ctx, tx, id, target, "restore a backup over environment "+target.ID); err != nil {
		return nil, err
	}
	if err := requireServing(ctx, tx, target, "restored"); err != nil {
		return nil, err
	}
	if source.ID != target.ID {
		if err := requireServing(ctx, tx, source, "the source of a restore"); err != nil {
			return nil, err
		}
		if err := sameProtection(ctx, tx, source, target, "backup "+b.ID+" of environment "+source.ID, "restored to environment "+source.ID+" itself or to"); err != nil {
			return nil, err
		}
	}
	if err := runningOp(ctx, tx, target); err != nil {
		return nil, err
	}
	return &dbPlan{target: target, source: source, backup: b}, nil
}

// sameProtection refuses to overwrite target with data of source if the
// source is under a customer's key that doesn't protect target too.
func sameProtection(ctx context.Context, tx keyhold.Tx, source, target *keyhold.Environment, what, allowed string) error {
	sk, sdesc, err := protection(ctx, tx, source)
	if err != nil {
		return err
	}
	if sk == "" {
		return nil // under the platform's key: its data may go anywhere in the tenant
	}
	tk, tdesc, err := protection(ctx, tx, target)
	if err != nil {
		return err
	}
	if tk == sk {
		return nil
	}
	hint := "link it to an enterprise policy that names that key first"
	if target.SKU == keyhold.SKUSupportInvestigation {
		hint = "a Support Investigation environment must be changed to that customer-managed key (linked to an enterprise policy naming it) before data can be copied into it"
	}
	return keyhold.Errorf(keyhold.CodeBadRequest,
		"%s is encrypted with %s: it can only be %s another environment encrypted with that key, and environment %s is encrypted with %s; %s",
		what, sdesc, allowed, target.ID, tdesc, hint)
}

// checkCopy checks, in tx, that the caller may overwrite environment
// targetID with sourceID's data: an administrator, with Reader on the
// policy the target is linked to (requireCustodyReader; the source's data
// stays under its key, sameProtection, so its policy is not asked); two different
// environments, both Enabled, neither with an operation running; and, for
// a source under a customer-managed key, a target under the same key.
func checkCopy(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, targetID, sourceID string) (*dbPlan, error) {
	target, err := adminEnvironment(ctx, tx, id, targetID)
	if err != nil {
		return nil, err
	}
	source, err := environmentFor(ctx, tx, id, sourceID)
	if err != nil {
		return nil, err
	}
	if source.ID == target.ID {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "an environment can't be copied onto itself: pick another target environment (to go back in time, restore a backup)")
	}
	if err := requireCustodyReader(ctx, tx, id, target, "copy environment "+source.ID+" over environment "+target.ID); err != nil {
		return nil, err
	}
	if err := requireServing(ctx, tx, source, "copied"); err != nil {
		return nil, err
	}
	if err := requireServing(ctx, tx, target, "overwritten by a copy"); err != nil {
		return nil, err
	}
	if err := sameProtection(ctx, tx, source, target, "environment "+source.ID, "copied to"); err != nil {
		return nil, err
	}
	if err := runningOp(ctx, tx, target); err != nil {
		return nil, err
	}
	if err := runningOp(ctx, tx, source); err != nil {
		return nil, err
	}
	return &dbPlan{target: target, source: source}, nil
}

// startDBOp creates a database operation on target in tx and audits it.
// It also updates target's row: a data write holds that row
// (writeAccess), so the write either commits before this transaction or
// sees the operation and is refused; none is acknowledged and then
// overwritten.
func (p *Backups) startDBOp(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, target *keyhold.Environment, kind string, in dbInput, action, detail string) (*keyhold.Operation, error) {
	op, err := p.lifecycle.createEnvOp(ctx, tx, id, target, kind, in, action, detail, nil)
	if err != nil {
		return nil, err
	}
	cur, err := tx.Environment(ctx, target.ID)
	if err != nil {
		return nil, err
	}
	cur.UpdatedAt = p.clock.Now().UTC()
	if err := tx.UpdateEnvironment(ctx, cur); err != nil {
		return nil, err
	}
	return op, nil
}

// startChecked runs check in a read transaction, then again in the
// transaction that starts the operation (things may have changed since),
// and kicks the runner.
func (p *Backups) startChecked(ctx context.Context, check func(tx keyhold.Tx, id *keyhold.Identity) (*dbPlan, error), start func(tx keyhold.Tx, id *keyhold.Identity, plan *dbPlan) (*keyhold.Operation, error)) (*keyhold.Operation, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if p.ops == nil {
		return nil, errCMKOff
	}
	if err := p.store.View(ctx, func(tx keyhold.Tx) error { _, err := check(tx, id); return err }); err != nil {
		return nil, err
	}
	var op *keyhold.Operation
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		plan, err := check(tx, id)
		if err != nil {
			return err
		}
		op, err = start(tx, id, plan)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.ops.Kick()
	p.log.InfoContext(ctx, "environment database operation started", "kind", op.Kind, "environment", op.Target, "op", op.ID, "by", id.PrincipalID)
	return op, nil
}

// RestoreBackup starts overwriting environment targetID with a backup.
func (p *Backups) RestoreBackup(ctx context.Context, targetID, backupID string) (*keyhold.Operation, error) {
	return p.startChecked(ctx, func(tx keyhold.Tx, id *keyhold.Identity) (*dbPlan, error) {
		return checkRestore(ctx, tx, id, targetID, backupID)
	}, func(tx keyhold.Tx, id *keyhold.Identity, plan *dbPlan) (*keyhold.Operation, error) {
		b := plan.backup
		return p.startDBOp(ctx, tx, id, plan.target, keyhold.OpRestore, dbInput{BackupID: b.ID, SourceID: b.EnvID}, auditRestoreStart,
			fmt.Sprintf("restoring backup %s (%q, taken %s) of environment %s", b.ID, b.Label, b.CreatedAt.Format(time.RFC3339), b.EnvID))
	})
}

// CopyEnvironment starts overwriting environment targetID with the
// current data of sourceID.
func (p *Backups) CopyEnvironment(ctx context.Context, targetID, sourceID string) (*keyhold.Operation, error) {
	return p.startChecked(ctx, func(tx keyhold.Tx, id *keyhold.Identity) (*dbPlan, error) {
		return checkCopy(ctx, tx, id, targetID, sourceID)
	}, func(tx keyhold.Tx, id *keyhold.Identity, plan *dbPlan) (*keyhold.Operation, error) {
		return p.startDBOp(ctx, tx, id, plan.target, keyhold.OpCopy, dbInput{SourceID: plan.source.ID}, auditCopyStart,
			"copying the data of environment "+plan.source.ID)
	})
}

// ResetEnvironment starts deleting a Sandbox's data and backups and
// returning it to the platform's key. An environment linked to an
// enterprise policy leaves it, so the caller also needs Reader on the
// policy, as for an unlink.
func (p *Backups) ResetEnvironment(ctx context.Context, envID string) (*keyhold.Operation, error) {
	return p.startChecked(ctx, func(tx keyhold.Tx, id *keyhold.Identity) (*dbPlan, error) {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return nil, err
		}
		if env.SKU != keyhold.SKUSandbox {
			return nil, keyhold.Errorf(keyhold.CodeBadRequest,
				"environment %s is a %s environment: only a Sandbox can be reset; change its type to Sandbox first if its data may really be deleted", env.ID, env.SKU)
		}
		if err := requireServing(ctx, tx, env, "reset"); err != nil {
			return nil, err
		}
		if err := requireCustodyReader(ctx, tx, id, env, "reset environment "+env.ID); err != nil {
			return nil, err
		}
		if err := runningOp(ctx, tx, env); err != nil {
			return nil, err
		}
		return &dbPlan{target: env}, nil
	}, func(tx keyhold.Tx, id *keyhold.Identity, plan *dbPlan) (*keyhold.Operation, error) {
		env := plan.target
		detail := "resetting: deleting every row, file and backup"
		if env.PolicyID != "" {
			detail += " and returning from enterprise policy " + env.PolicyID + " to the Microsoft-managed key"
		}
		return p.startDBOp(ctx, tx, id, env, keyhold.OpReset, dbInput{FromEpoch: env.Epoch}, auditResetStart, detail)
	})
}

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

// stepReset deletes the environment's rows, files, backups and every
// wrapped key, and starts a new epoch whose key only the platform's key
// wraps, in one transaction; the environment leaves its enterprise
// policy. An environment already past the operation's FromEpoch was
// reset by an earlier run of the step: nothing to do (so a crash after
// the commit never wipes what was written since).
func (p *Backups) stepReset(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	in, err := dbOpInput(op)
	if err != nil {
		return ops.StepResult{}, ops.Permanent(err)
	}
	next := in.FromEpoch + 1
	ek, wk, err := p.newEnvKey(ctx, op.Target, next)
	if err != nil {
		return ops.StepResult{}, err
	}
	defer ek.Destroy()
	done := false
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		done = false
		env, err := tx.Environment(ctx, op.Target)
		if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %s was deleted before it could be reset", op.Target))
		} else if err != nil {
			return err
		}
		if env.Epoch != in.FromEpoch {
			return nil
		}
		if env.State == keyhold.StateLocked {
			return lockPause(ctx, tx, env)
		}
		backups, err := tx.ListBackups(ctx, env.ID)
		if err != nil {
			return err
		}
		for _, b := range backups {
			if err := tx.DeleteBackup(ctx, b.ID); err != nil {
				return err
			}
		}
		if err := tx.ClearEnvData(ctx, env.ID); err != nil {
			return err
		}
		wks, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil {
			return err
		}
		for _, old := range wks {
			if err := tx.DeleteWrappedKey(ctx, env.ID, old.Epoch, old.Root); err != nil {
				return err
			}
			if err := p.touchOldKID(ctx, tx, old); err != nil {
				return err
			}
		}
		if err := tx.PutWrappedKey(ctx, wk); err != nil {
			return err
		}
		from := env.PolicyID
		env.Epoch = next
		env.KeyManagedBy, env.PolicyID, env.PolicySystemID, env.LinkStatus = keyhold.KeyManagedByMicrosoft, "", "", ""
		env.UpdatedAt = p.clock.Now().UTC()
		if err := tx.UpdateEnvironment(ctx, env); err != nil {
			return err
		}
		detail := fmt.Sprintf("reset: every row and file, %d backups and the keys of epochs [%s] destroyed; new writes use epoch %d under the Microsoft-managed key",
			len(backups), epochList(wks), next)
		if from != "" {
			detail += "; unlinked from enterprise policy " + from
		}
		done = true
		return p.audit(ctx, tx, opActor(op), auditReset, envTarget(env.ID), env.ID, detail+" (operation "+op.ID+")")
	})
	if err != nil {
		return ops.StepResult{}, storeConflict(err)
	}
	if done {
		p.DropKeys(op.Target) // here and on every other replica
	}
	return ops.StepResult{}, nil
}

func epochList(wks []*keyhold.WrappedKey) string {
	var es []string
	for _, wk := range wks {
		if s := fmt.Sprint(wk.Epoch); !slices.Contains(es, s) {
			es = append(es, s)
		}
	}
	return strings.Join(es, " ")
}

// PruneBackups deletes expired backups (and then the wrapped keys of
// epochs nothing holds items under) and returns how many it deleted. The
// backups of a Locked environment are kept past their expiry, until it is
// re-enabled or deleted: a customer who restores key access must find its
// backups as it left them. It runs as the platform.
func (p *Backups) PruneBackups(ctx context.Context) (int, error) {
	var expired []*keyhold.Backup
	if err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		expired, err = tx.ExpiredBackups(ctx, p.clock.Now().UTC(), 1000)
		return err
	}); err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, b := range expired {
		var destroyed []uint32
		deleted := false
		err := p.store.Update(ctx, func(tx keyhold.Tx) error {
			deleted = false
			env, err := tx.Environment(ctx, b.EnvID)
			if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
				return nil
			} else if err != nil {
				return err
			}
			if env.State == keyhold.StateLocked {
				return nil
			}
			system := &keyhold.Identity{TenantID: env.TenantID, PrincipalID: systemActorID}
			destroyed, err = p.removeBackup(ctx, tx, system, env, b, auditBackupExpire,
				fmt.Sprintf("backup %q taken %s expired on %s and was deleted", b.Label, b.CreatedAt.Format(time.RFC3339), b.ExpiresAt.Format(time.RFC3339)))
			if keyhold.ErrorCode(err) == keyhold.CodeBackupNotFound {
				return nil // deleted meanwhile
			}
			deleted = err == nil
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("backup %s: %w", b.ID, err))
			continue
		}
		if deleted {
			n++
		}
		for _, e := range destroyed {
			p.dropEpochKeys(b.EnvID, e)
		}
	}
	return n, errors.Join(errs...)
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
