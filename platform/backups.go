package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
)

// Backup, restore, copy and reset (keyhold.BackupService; the rules are in
// the keyhold package's backup.go). This file takes, lists, deletes and
// expires backups; dbops.go starts restore, copy and reset; restore.go and
// reset.go are their operations' steps.
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
// moved) and keep each item's version. Nothing is re-sealed inside a
// transaction that holds the write lock for the whole environment:
//   - rows (step "stage", restore.go's stageRows) go page by page into a
//     staging area, a backup record of the target that nothing serves,
//     named after the operation and the target's epoch; each page is read,
//     re-sealed outside any transaction and written in its own short one;
//   - files stream one chunk at a time into generations staged as uploads
//     (a crash leaves chunks that CleanStaleUploads removes);
//   - the swap (step "restore") is one transaction that checks the
//     backup, the staging area's row count and the target's epoch, clears
//     the target, copies the staged rows in with one INSERT … SELECT inside
//     the database, points the files at their staged generations and
//     deletes the staging area.
// The target holds either all of its old data or all of the backup's,
// never a mix. A crash mid-stage leaves a partial staging area, which the
// step run again deletes and fills afresh (a failed operation's rollback,
// or the expiry after copySnapshotTTL, deletes it too). A copy first takes
// a backup of the source (its snapshot, named after the operation, so a
// step run again finds it), restores that, and deletes it. A backup is
// taken in pages too (CreateBackup has the design): each page of rows is
// copied as stored, inside the database, in its own short transaction,
// and one final transaction catches what changed meanwhile and copies the
// files.
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
	stepStage    = "stage"
	stepRestore  = "restore"
	stepCleanup  = "cleanup"
	stepReset    = "reset"
)

// copySnapshotTTL is how long a copy's snapshot lives if the copy never
// deletes it (its operation was lost): the expiry sweep then does.
const copySnapshotTTL = 24 * time.Hour

// restoreRowPage is how many rows a restore re-seals per page: one read
// transaction and one short writing one each (a variable for the tests).
var restoreRowPage = 500

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
			{Name: stepStage, Run: p.pausableDB(p.stepStage)},
			{Name: stepRestore, Run: p.pausableDB(p.stepRestore)},
		}, Rollback: p.rollbackRestore},
		keyhold.OpCopy: {Steps: []ops.Step{
			{Name: stepSnapshot, Run: p.pausableDB(p.stepSnapshot)},
			{Name: stepStage, Run: p.pausableDB(p.stepStage)},
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

// backupRowPage is how many rows a backup copies per transaction (a
// variable for the tests).
var backupRowPage = 500

// inProgressLabelPrefix begins the label of a backup being taken: such a
// record is listed by nobody and restored by nobody (refuseStaging) until
// FinishBackup gives it its own label.
const inProgressLabelPrefix = "backup in progress, not restorable: "

// backupInProgressTTL is how long a backup being taken lives if it is
// never finished (the process died mid-way): PruneBackups then deletes it.
const backupInProgressTTL = time.Hour

// faultBackupPage is the fault point after each page of rows a backup
// copies (the crash tests kill the process there).
const faultBackupPage = "backup:copied-page"

// backupPageHook, if set, runs where faultBackupPage is (tests: what the
// others see between two pages).
var backupPageHook func()

// CreateBackup takes a backup of an Enabled environment, in pages, so that
// no transaction holds the write lock for the whole environment:
//  1. one short transaction checks the caller and the environment and
//     stores an empty backup record labelled inProgressLabelPrefix+label,
//     which nothing lists or restores, expiring after backupInProgressTTL;
//  2. each page of backupRowPage rows is copied, as stored (ciphertexts
//     under their epochs and versions: nothing is decrypted), inside the
//     database by one INSERT … SELECT in its own short transaction
//     (CopyBackupRows); a write to the environment between two pages goes
//     through;
//  3. one final transaction checks the environment again, then catches
//     every row changed, added or deleted since its page was copied: each
//     copied row is compared with the live one (version, epoch,
//     updated_at and ciphertext: a write, a re-key and a restore each
//     change at least one), those that differ or are gone are dropped and
//     the live rows the backup lacks are copied; files are copied there
//     too (not paged); then the record gets its label, creation time and
//     retention (FinishBackup).
//
// The backup is an exact image of the environment as of the final
// transaction, whose time is its backupPointDateTime. The final
// transaction still reads every row's key (an index scan, no copying of
// unchanged rows), but copies only what changed. A crash before it leaves
// the in-progress record, which PruneBackups deletes once it expires; a
// failure deletes it at once.
func (p *Backups) CreateBackup(ctx context.Context, envID, label string) (*keyhold.Backup, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	b := &keyhold.Backup{ID: uuid.NewString(), Label: label, CreatedBy: id.PrincipalID}
	err = p.takeBackup(ctx, id, b, func(ctx context.Context, tx keyhold.Tx) (*keyhold.Environment, error) {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return nil, err
		}
		return env, requireServing(ctx, tx, env, "backed up")
	}, func(env *keyhold.Environment) time.Duration { return keyhold.RetentionFor(env.SKU) },
		func(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
			return p.audit(ctx, tx, id, auditBackupCreate, backupTarget(env.ID, b.ID), env.ID,
				fmt.Sprintf("backup %q of %d rows and %d files (%d bytes); kept until %s", b.Label, b.Rows, b.Files, b.Bytes, b.ExpiresAt.Format(time.RFC3339)))
		})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// takeBackup takes backup b (ID, Label and CreatedBy set) in pages, as
// CreateBackup describes. check loads and checks the environment, in the
// first and in the final transaction; retention is how long the finished
// backup is kept; done runs in the final transaction (the audit). On
// failure it deletes the unfinished record (best effort: left behind, it
// expires after backupInProgressTTL).
func (p *Backups) takeBackup(ctx context.Context, actor *keyhold.Identity, b *keyhold.Backup,
	check func(ctx context.Context, tx keyhold.Tx) (*keyhold.Environment, error),
	retention func(env *keyhold.Environment) time.Duration,
	done func(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error) error {
	var n int64
	var lastTable, lastID string
	// The record and the first page share a transaction: N pages, N+1
	// transactions.
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := check(ctx, tx)
		if err != nil {
			return err
		}
		now := p.clock.Now().UTC()
		b.EnvID, b.TenantID = env.ID, env.TenantID
		if err := tx.StageBackup(ctx, &keyhold.Backup{ID: b.ID, EnvID: env.ID, TenantID: env.TenantID, Label: inProgressLabelPrefix + b.Label,
			CreatedBy: b.CreatedBy, CreatedAt: now, ExpiresAt: now.Add(backupInProgressTTL)}); err != nil {
			return err
		}
		n, lastTable, lastID, err = tx.CopyBackupRows(ctx, b.ID, "", "", backupRowPage)
		return err
	})
	if err != nil {
		return err
	}
	if err := p.fillBackup(ctx, b, n, lastTable, lastID, check, retention, done); err != nil {
		p.dropUnfinished(context.WithoutCancel(ctx), actor, b)
		return err
	}
	return nil
}

// fillBackup copies the rest of the rows of b's environment into b page
// by page, after the first page (n rows, the last one's key), then
// finishes it.
func (p *Backups) fillBackup(ctx context.Context, b *keyhold.Backup, n int64, lastTable, lastID string,
	check func(ctx context.Context, tx keyhold.Tx) (*keyhold.Environment, error),
	retention func(env *keyhold.Environment) time.Duration,
	done func(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error) error {
	for {
		if n > 0 {
			backupPageFault()
			if backupPageHook != nil {
				backupPageHook()
			}
		}
		if lastTable == "" && lastID == "" {
			break
		}
		afterTable, afterID := lastTable, lastID
		if err := p.store.Update(ctx, func(tx keyhold.Tx) (err error) {
			n, lastTable, lastID, err = tx.CopyBackupRows(ctx, b.ID, afterTable, afterID, backupRowPage)
			return err
		}); err != nil {
			return err
		}
	}
	return p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := check(ctx, tx)
		if err != nil {
			return err
		}
		now := p.clock.Now().UTC()
		b.CreatedAt, b.ExpiresAt = now, now.Add(retention(env))
		if err := tx.FinishBackup(ctx, b); err != nil {
			return err
		}
		if err := backupFlows(ctx, tx, b); err != nil {
			return err
		}
		return done(ctx, tx, env)
	})
}

// dropUnfinished deletes backup b if it is still unfinished (its label
// says so), with the wrapped keys of epochs only it held items under.
func (p *Backups) dropUnfinished(ctx context.Context, actor *keyhold.Identity, b *keyhold.Backup) {
	var destroyed []uint32
	_ = p.store.Update(ctx, func(tx keyhold.Tx) error {
		cur, err := tx.Backup(ctx, b.ID)
		if err != nil || !strings.HasPrefix(cur.Label, inProgressLabelPrefix) {
			return nil
		}
		env, err := tx.Environment(ctx, cur.EnvID)
		if err != nil {
			return tx.DeleteBackup(ctx, b.ID)
		}
		destroyed, err = p.removeBackup(ctx, tx, actor, env, cur, "", "")
		return err
	})
	for _, e := range destroyed {
		p.dropEpochKeys(b.EnvID, e)
	}
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
		all, err := tx.ListBackups(ctx, env.ID)
		for _, b := range all {
			if !strings.HasPrefix(b.Label, inProgressLabelPrefix) {
				out = append(out, b)
			}
		}
		return err
	})
	if out == nil && err == nil {
		out = []*keyhold.Backup{}
	}
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
		if c.Rows+c.Files+c.Audit > 0 {
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
