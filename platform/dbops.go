package platform

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Starting restore, copy and reset: who may, and where data may go
// (backups.go has the design notes, restore.go and reset.go the steps).

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
	if err := refuseStaging(ctx, tx, b); err != nil {
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

// refuseStaging refuses to restore b if it is the staging area of a
// restore still running (restore.go): it holds a part of another backup's
// rows, not a backup of anything.
func refuseStaging(ctx context.Context, tx keyhold.Tx, b *keyhold.Backup) error {
	if strings.HasPrefix(b.Label, inProgressLabelPrefix) {
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"backup %s of environment %s is still being taken: wait until its CreateBackup call returns, then restore it", b.ID, b.EnvID)
	}
	if !strings.HasPrefix(b.Label, stagingLabelPrefix) {
		return nil
	}
	running, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: b.EnvID, State: keyhold.OperationRunning})
	if err != nil {
		return err
	}
	for _, op := range running {
		if stagingLabel(op) == b.Label {
			return keyhold.Errorf(keyhold.CodeBadRequest,
				"backup %s is the staging area of restore operation %s, still running, not a backup: restore another backup of environment %s (it is deleted when the operation ends)", b.ID, op.ID, b.EnvID)
		}
	}
	return nil
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
// (Environments.access, writeData), so the write either commits before this transaction or
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
