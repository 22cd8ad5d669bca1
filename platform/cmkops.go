package platform

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// The steps of the lifecycle's operations. Each is idempotent: its effects
// commit in one transaction, together with their audit entry, and a step
// run again (after a crash between that transaction and the Runner's
// record of the step) reads the store, finds its work done and does
// nothing. Calls to the key vault happen before that transaction; a crash
// after them only repeats them.
//
//	link (and swap)  disable, rewrap, enable, newepoch, rekey, destroy
//	unlink           disable, rewrap, flows, enable
//	rekey            newepoch, rekey, destroy
//	rotate           rewrap (one operation per policy; see rotation.go)
//
// A failed link, unlink or re-key rolls back to an Enabled environment
// whose EncryptionStatus is Failed, under whichever key holds it: custody
// moves in one transaction, so the data is entirely under the old root or
// entirely under the new one, and a rollback never needs to reach a key.

// Step names.
const (
	stepDisable  = "disable"
	stepRewrap   = "rewrap"
	stepEnable   = "enable"
	stepNewEpoch = "newepoch"
	stepRekey    = "rekey"
	stepDestroy  = "destroy"
	stepFlows    = "flows" // unlink: flows back from the platform partition (rekey_flows.go)
)

// opActor is the identity an operation's audit entries name: the
// administrator who started it.
func opActor(op *keyhold.Operation) *keyhold.Identity {
	return &keyhold.Identity{TenantID: op.TenantID, PrincipalID: op.CreatedBy}
}

// errSuperseded is the cause of errNotOurs.
var errSuperseded = errors.New("platform: the environment is under another operation")

// errNotOurs refuses to change an environment that another operation has
// taken over since (it can't happen while the store keeps one running
// operation per environment; this guards the invariant).
func errNotOurs(env *keyhold.Environment, op *keyhold.Operation) error {
	return ops.Permanent(keyhold.Errorf(keyhold.CodeConflict,
		"environment %s is now under operation %s, not %s: this operation stops", env.ID, env.LastOperationID, op.ID).WithCause(errSuperseded))
}

// changeEnv runs fn on op's environment in a transaction and, if fn
// changed it (returned an audit action), stores it and audits the change.
// A Locked environment pauses the operation instead (lockPause), in the
// same transaction, so a step never changes keys or data after a lock.
func (p *CMK) changeEnv(ctx context.Context, op *keyhold.Operation, fn func(tx keyhold.Tx, env *keyhold.Environment) (action, detail string, err error)) error {
	return p.changeEnvIn(ctx, op, true, fn)
}

// changeEnvIn is changeEnv; only with pauseLocked does a Locked
// environment pause (the rollback, which changes the environment's record
// only, runs on a Locked one).
func (p *CMK) changeEnvIn(ctx context.Context, op *keyhold.Operation, pauseLocked bool, fn func(tx keyhold.Tx, env *keyhold.Environment) (action, detail string, err error)) error {
	var stepErr error
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		stepErr = nil
		env, err := tx.Environment(ctx, op.Target)
		if err != nil {
			return err
		}
		if env.LastOperationID != op.ID {
			stepErr = errNotOurs(env, op)
			return stepErr
		}
		if pauseLocked && env.State == keyhold.StateLocked {
			stepErr = lockPause(ctx, tx, env)
			return stepErr
		}
		action, detail, err := fn(tx, env)
		if err != nil || action == "" {
			stepErr = err
			return err
		}
		env.UpdatedAt = p.clock.Now().UTC()
		if err := tx.UpdateEnvironment(ctx, env); err != nil {
			return err
		}
		return p.audit(ctx, tx, opActor(op), action, envTarget(env.ID), env.ID, detail+" (operation "+op.ID+")")
	})
	if err != nil && err != stepErr {
		return storeConflict(err)
	}
	return err
}

// storeConflict marks a store's CodeConflict (a lost race with a
// concurrent writer, or too many serialization failures in a row) as
// transient: the step runs again and reads afresh. Every other error is
// returned as is.
func storeConflict(err error) error {
	if keyhold.ErrorCode(err) == keyhold.CodeConflict {
		return ops.Transient(err)
	}
	return err
}

// stepDisable takes the environment out of service for the custody change.
// (A Locked environment pauses the operation: changeEnv.)
func (p *CMK) stepDisable(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	if in, err := opInput(op); err == nil && in.FromBYOK {
		return ops.StepResult{}, nil // a BYOK migration stays enabled (byok_migrate.go)
	}
	return ops.StepResult{}, p.changeEnv(ctx, op, func(tx keyhold.Tx, env *keyhold.Environment) (string, string, error) {
		switch env.State {
		case keyhold.StateDisabled:
			return "", "", nil // done already
		case keyhold.StateEnabled:
		default:
			return "", "", ops.Permanent(keyhold.Errorf(keyhold.CodeEnvironmentDisabled,
				"environment %s became %s before its key could change: restore it and start again", env.ID, env.State))
		}
		env.State = keyhold.StateDisabled
		action := auditLinkDisable
		if op.Kind == keyhold.OpUnlink {
			action = auditUnlinkDisable
		}
		return action, "environment disabled while its key changes custody", nil
	})
}

// stepEnable puts the environment back in service. It ends an unlink.
func (p *CMK) stepEnable(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	return ops.StepResult{}, p.changeEnv(ctx, op, func(tx keyhold.Tx, env *keyhold.Environment) (string, string, error) {
		end := op.Kind == keyhold.OpUnlink
		if env.State != keyhold.StateDisabled && (!end || env.EncryptionStatus == keyhold.EncryptionSucceeded) {
			return "", "", nil
		}
		if env.State == keyhold.StateDisabled {
			env.State = keyhold.StateEnabled
		}
		if end {
			env.EncryptionStatus = keyhold.EncryptionSucceeded
			return auditUnlinkEnable, "environment enabled again, under the platform's key", nil
		}
		return auditLinkEnable, "environment enabled again, under the customer-managed key; its data is being re-keyed in the background", nil
	})
}

// rollbackEnvOp ends a failed link, unlink or re-key: the environment
// serves again (if the operation had disabled it) and its encryption
// status is Failed. Custody is whatever the last committed rewrap left:
// all under the old root, or all under the new one.
func (p *CMK) rollbackEnvOp(ctx context.Context, op *keyhold.Operation) error {
	err := p.changeEnvIn(ctx, op, false, func(tx keyhold.Tx, env *keyhold.Environment) (string, string, error) {
		if env.State != keyhold.StateDisabled && env.EncryptionStatus == keyhold.EncryptionFailed {
			return "", "", nil
		}
		if env.State == keyhold.StateDisabled {
			env.State = keyhold.StateEnabled
		}
		env.EncryptionStatus = keyhold.EncryptionFailed
		under := "the platform's key"
		if env.KeyManagedBy == keyhold.KeyManagedByCustomer {
			under = "enterprise policy " + env.PolicyID
		}
		return auditRollback, fmt.Sprintf("%s failed at step %s (%s: %s); the environment is in service under %s",
			op.Kind, op.Step, op.ErrorCode, op.ErrorMsg, under), nil
	})
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound || errors.Is(err, errSuperseded) {
		return nil // deleted, or taken over, meanwhile: nothing to restore
	}
	return err
}

// epochKeys groups an environment's wrapped keys by epoch.
type epochKeys struct {
	epoch uint32
	mmk   *keyhold.WrappedKey
	cmk   *keyhold.WrappedKey
	other *keyhold.WrappedKey
}

func groupByEpoch(wks []*keyhold.WrappedKey) []*epochKeys {
	m := map[uint32]*epochKeys{}
	var out []*epochKeys
	for _, wk := range wks {
		g := m[wk.Epoch]
		if g == nil {
			g = &epochKeys{epoch: wk.Epoch}
			m[wk.Epoch] = g
			out = append(out, g)
		}
		switch wk.Root {
		case keyhold.RootMMK:
			g.mmk = wk
		case keyhold.RootCMK:
			g.cmk = wk
		default:
			g.other = wk
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].epoch < out[j].epoch })
	return out
}

// source is the copy an epoch's EK is unwrapped from: the customer's if
// there is one, else the platform's.
func (g *epochKeys) source() *keyhold.WrappedKey {
	switch {
	case g.cmk != nil:
		return g.cmk
	case g.mmk != nil:
		return g.mmk
	}
	return g.other
}

// sameKey reports whether two wrapped copies are the same stored value.
func sameKey(a, b *keyhold.WrappedKey) bool {
	return a != nil && b != nil && a.Root == b.Root && a.KeyID == b.KeyID && bytes.Equal(a.Ciphertext, b.Ciphertext)
}

// touchOldKID records, in tx, that an EK moved off the CMK version of wk.
func (p *core) touchOldKID(ctx context.Context, tx keyhold.Tx, wk *keyhold.WrappedKey) error {
	if wk == nil || wk.Root != keyhold.RootCMK {
		return nil
	}
	k, err := keyhold.ParseKeyID(wk.KeyID)
	if err != nil || k.Version == "" {
		return nil
	}
	now := p.clock.Now().UTC()
	keep, err := versionRetention(ctx, tx, wk)
	if err != nil {
		return err
	}
	return tx.TouchKeyVersion(ctx, &keyhold.KeyVersionUse{VaultName: k.Vault, KeyName: k.Name, Version: k.Version, LastUsedAt: now, RetainUntil: now.Add(keep)})
}

// loadTarget reads, for a step, op's environment, its wrapped keys and
// the policy op's input names. A policy deleted meanwhile fails the
// operation.
func (p *CMK) loadTarget(ctx context.Context, op *keyhold.Operation, in cmkInput) (*keyhold.Environment, []*keyhold.WrappedKey, *keyhold.EnterprisePolicy, error) {
	var env *keyhold.Environment
	var wks []*keyhold.WrappedKey
	var pol *keyhold.EnterprisePolicy
	err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if env, err = tx.Environment(ctx, op.Target); err != nil {
			return err
		}
		if wks, err = tx.WrappedKeys(ctx, env.ID); err != nil {
			return err
		}
		pol, err = tx.PolicyBySystemID(ctx, in.SystemID)
		if keyhold.IsNotFound(err) {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeNotFound,
				"enterprise policy %s was deleted while operation %s was running on environment %s", in.PolicyID, op.ID, op.Target))
		} else if err != nil {
			return err
		}
		return p.checkPolicy(pol)
	})
	if isTamper(err) {
		p.auditTamper(ctx, op.TenantID, envTarget(op.Target), op.Kind+" (operation "+op.ID+")", err)
	}
	return env, wks, pol, err
}

// policyKeyID is the key id a policy's key is wrapped under: unversioned
// (the key's current version) unless the policy names a version.
func (p *core) policyKeyID(pol *keyhold.EnterprisePolicy) string {
	if pol.External != nil {
		return externalKeyID(pol)
	}
	return keyIDOf(p.kv, p.hsm, pol, vaultNameOf(pol), pol.KeyName, pol.KeyVersion)
}

// wrapCMK wraps ek, of (envID, epoch), under pol's key (the version it
// names, or the current one) as pol's identity.
func (p *CMK) wrapCMK(ctx context.Context, pol *keyhold.EnterprisePolicy, envID string, epoch uint32, ek *crypt.Key) (*keyhold.WrappedKey, error) {
	return p.wrapCMKAt(ctx, pol, p.policyKeyID(pol), envID, epoch, ek)
}

// wrapMMK wraps ek, of (envID, epoch), under the MMK.
func (p *CMK) wrapMMK(ctx context.Context, envID string, epoch uint32, ek *crypt.Key) (*keyhold.WrappedKey, error) {
	payload, err := crypt.EKPayload(envID, epoch, ek)
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	kid, ct, err := p.mmk.Wrap(ctx, mmkID, payload)
	p.m.wraps.WithLabelValues(string(keyhold.RootMMK), result(err)).Inc()
	if err != nil {
		return nil, fmt.Errorf("wrapping the environment key under the MMK: %w", err)
	}
	return &keyhold.WrappedKey{EnvID: envID, Epoch: epoch, Root: keyhold.RootMMK, KeyID: kid, Ciphertext: ct, CreatedAt: p.clock.Now().UTC()}, nil
}

// stepLinkRewrap moves every epoch's EK to the policy's key: it unwraps
// each EK with its current root (the MMK, or the old policy's key in a
// swap), wraps it as the new policy's identity, and then, in one
// transaction, stores the CMK copies, deletes the MMK copies (a swap's
// put replaces the old policy's copy) and records the link. Epochs already
// on the policy's key are skipped, so running it again changes nothing.
// An environment found Enabled was re-enabled after a lock paused the
// operation past its disable step: it goes back to disable, so that
// custody still changes while the environment is out of service.
func (p *CMK) stepLinkRewrap(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	in, err := opInput(op)
	if err != nil {
		return ops.StepResult{}, ops.Permanent(err)
	}
	env, wks, pol, err := p.loadTarget(ctx, op, in)
	if err != nil {
		return ops.StepResult{}, err
	}
	if env.State == keyhold.StateEnabled && !in.FromBYOK {
		return ops.StepResult{Next: stepDisable}, nil // re-enabled after a lock paused it: disable again
	}
	var moves []*custodyMove
	for _, g := range groupByEpoch(wks) {
		if g.cmk != nil && onPolicy(g.cmk, pol) {
			continue
		}
		src := g.source()
		if src.Root != keyhold.RootMMK && src.Root != keyhold.RootCMK && !(src.Root == keyhold.RootBYOK && in.FromBYOK) {
			return ops.StepResult{}, ops.Permanent(keyhold.Errorf(keyhold.CodeBadRequest,
				"epoch %d of environment %s is protected by a %s key, which a link can't move: migrate it first", g.epoch, env.ID, src.Root))
		}
		m, err := p.prepareMove(ctx, src, env.TenantID, func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error) {
			return p.wrapCMK(ctx, pol, env.ID, g.epoch, ek)
		})
		if err != nil {
			return ops.StepResult{}, err
		}
		moves = append(moves, m)
	}
	err = p.changeEnv(ctx, op, func(tx keyhold.Tx, env *keyhold.Environment) (string, string, error) {
		cur, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil {
			return "", "", err
		}
		groups := map[uint32]*epochKeys{}
		for _, g := range groupByEpoch(cur) {
			groups[g.epoch] = g
		}
		var kids, deleted []string
		for _, m := range moves {
			g := groups[m.to.Epoch]
			if g == nil || !sameKey(g.source(), m.from) {
				// Changed since it was read (it can't while this
				// operation holds the environment): read again.
				return "", "", ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "the key of epoch %d of environment %s changed during the rewrap", m.to.Epoch, env.ID))
			}
			if ok, err := m.commit(ctx, tx, p.core); err != nil || !ok {
				return "", "", cmp.Or(err, ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "the key of epoch %d of environment %s changed during the rewrap", m.to.Epoch, env.ID)))
			}
			if m.from.Root == keyhold.RootMMK {
				g.mmk = nil
				deleted = append(deleted, fmt.Sprint(g.epoch))
			}
			g.cmk = m.to
			kids = append(kids, fmt.Sprintf("%d→%s", m.to.Epoch, p.currentKID(m.to.KeyID)))
		}
		for _, g := range groups {
			if g.mmk != nil && g.cmk != nil && onPolicy(g.cmk, pol) {
				if err := tx.DeleteWrappedKey(ctx, env.ID, g.epoch, keyhold.RootMMK); err != nil {
					return "", "", err
				}
				deleted = append(deleted, fmt.Sprint(g.epoch))
			}
		}
		if in.FromBYOK {
			if err := recordBYOKMigration(ctx, tx, env, moves, p.clock.Now()); err != nil { // byok_migrate.go
				return "", "", err
			}
		}
		linked := env.KeyManagedBy == keyhold.KeyManagedByCustomer && env.PolicyID == pol.ID() &&
			env.PolicySystemID == pol.SystemID && env.LinkStatus == keyhold.LinkStatusLinked
		if len(moves) == 0 && len(deleted) == 0 && linked {
			return "", "", nil
		}
		env.KeyManagedBy, env.PolicyID, env.PolicySystemID, env.LinkStatus = keyhold.KeyManagedByCustomer, pol.ID(), pol.SystemID, keyhold.LinkStatusLinked
		sort.Strings(deleted)
		return auditLinkRewrap, fmt.Sprintf("environment keys wrapped by enterprise policy %s's identity %s (epoch→kid: %s); MMK-wrapped copies of epochs [%s] deleted",
			pol.ID(), pol.PrincipalID, strings.Join(kids, ", "), strings.Join(deleted, " ")), nil
	})
	return ops.StepResult{}, err
}

// stepUnlinkRewrap moves every epoch's EK back to the MMK: it unwraps each
// CMK copy as the identity that wrapped it, wraps it under the MMK and, in
// one transaction, stores the MMK copies, deletes the CMK copies and
// clears the link. An environment found Enabled goes back to disable, as
// in stepLinkRewrap.
func (p *CMK) stepUnlinkRewrap(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	env, wks, err := p.envWithKeys(ctx, op.Target)
	if err != nil {
		return ops.StepResult{}, err
	}
	if env.State == keyhold.StateEnabled {
		return ops.StepResult{Next: stepDisable}, nil // re-enabled after a lock paused it: disable again
	}
	var moves []*custodyMove
	for _, g := range groupByEpoch(wks) {
		if g.cmk == nil || g.mmk != nil {
			continue
		}
		m, err := p.prepareMove(ctx, g.cmk, env.TenantID, func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error) {
			return p.wrapMMK(ctx, env.ID, g.epoch, ek)
		})
		if err != nil {
			return ops.StepResult{}, err
		}
		moves = append(moves, m)
	}
	err = p.changeEnv(ctx, op, func(tx keyhold.Tx, env *keyhold.Environment) (string, string, error) {
		cur, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil {
			return "", "", err
		}
		groups := map[uint32]*epochKeys{}
		for _, g := range groupByEpoch(cur) {
			groups[g.epoch] = g
		}
		var deleted []string
		for _, m := range moves {
			g := groups[m.to.Epoch]
			if g == nil || !sameKey(g.cmk, m.from) {
				return "", "", ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "the key of epoch %d of environment %s changed during the rewrap", m.to.Epoch, env.ID))
			}
			if ok, err := m.commit(ctx, tx, p.core); err != nil || !ok {
				return "", "", cmp.Or(err, ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "the key of epoch %d of environment %s changed during the rewrap", m.to.Epoch, env.ID)))
			}
			deleted = append(deleted, fmt.Sprintf("%d (%s)", g.epoch, p.currentKID(g.cmk.KeyID)))
			g.mmk, g.cmk = m.to, nil
		}
		for _, g := range groups {
			if g.cmk != nil && g.mmk != nil {
				if err := tx.DeleteWrappedKey(ctx, env.ID, g.epoch, keyhold.RootCMK); err != nil {
					return "", "", err
				}
				if err := p.touchOldKID(ctx, tx, g.cmk); err != nil {
					return "", "", err
				}
				deleted = append(deleted, fmt.Sprintf("%d (%s)", g.epoch, p.currentKID(g.cmk.KeyID)))
			}
		}
		if len(moves) == 0 && len(deleted) == 0 && env.KeyManagedBy == keyhold.KeyManagedByMicrosoft && env.PolicyID == "" {
			return "", "", nil
		}
		from := env.PolicyID
		env.KeyManagedBy, env.PolicyID, env.PolicySystemID, env.LinkStatus = keyhold.KeyManagedByMicrosoft, "", "", ""
		sort.Strings(deleted)
		return auditUnlinkRewrap, fmt.Sprintf("environment keys wrapped by the platform's key again; unlinked from enterprise policy %s; CMK-wrapped copies deleted: %s",
			from, strings.Join(deleted, ", ")), nil
	})
	return ops.StepResult{}, err
}
