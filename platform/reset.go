package platform

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
)

// The step of reset (backups.go has the design notes).

// stepReset deletes the environment's rows, files, flows (with their
// runs, schedules, callback keys, connections and pre-migration
// partitions), backups and every wrapped key, and starts a new epoch whose key only the platform's key
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
		// Spec 002: a reset deletes the environment's data, its flows
		// with their runs, schedules, callback keys, connections and
		// pre-migration partitions included.
		if err := tx.ClearEnvFlows(ctx, env.ID); err != nil {
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
		// The environment's own audit entries were sealed under the keys
		// destroyed here: their targets and details go with them.
		if _, err := tx.ShredAudit(ctx, env.ID, next); err != nil {
			return err
		}
		from := env.PolicyID
		env.Epoch = next
		env.KeyManagedBy, env.PolicyID, env.PolicySystemID, env.LinkStatus = keyhold.KeyManagedByMicrosoft, "", "", ""
		env.UpdatedAt = p.clock.Now().UTC()
		if err := tx.UpdateEnvironment(ctx, env); err != nil {
			return err
		}
		detail := fmt.Sprintf("reset: every row, file and flow, %d backups and the keys of epochs [%s] destroyed; new writes use epoch %d under the Microsoft-managed key",
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
