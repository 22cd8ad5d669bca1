package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// Key-version rotation. A policy that names no key version follows its
// key's current version: when the key gets a new one (a new version, Rotate
// now, or its rotation policy), every environment key wrapped under an
// older version is rewrapped under the new one, in the background and
// without downtime (the EK itself does not change, so neither does any
// item). PickUpRotations finds the policies with work to do and submits one
// "rotate" operation per policy, which walks the policy's wrapped keys in
// pages.
//
// A rotation does not hold the environments it touches: it replaces a
// wrapped key only if the store still holds the exact copy it unwrapped,
// so a link, unlink or re-key running meanwhile (which holds the
// environment) always wins, and the next pickup sees what is left.
//
// Locked environments are left alone: the pickup does not count their
// keys as work, and a rotation skips them (it checks again in the
// transaction that replaces a key), so the policy's other environments
// move to the new version and the locked ones keep the copy their
// re-enable will unwrap. Once re-enabled, the next pickup finds them.

// Rotation pacing and schedule.
const (
	// rotationBatch is how many wrapped keys one step run rewraps (one
	// transaction); rotationWorkers unwrap and wrap them in parallel.
	rotationBatch   = 250
	rotationWorkers = 8
	// RotationPickupInterval is how often the server looks for policies
	// whose key has a new current version.
	RotationPickupInterval = 30 * time.Second
	// rotationRetryAfter is how long the pickup leaves a policy alone
	// after its last rotation failed (its identity lost the key, say),
	// rather than failing again every interval.
	rotationRetryAfter = 10 * time.Minute
)

// rotateProgress is a rotation's cursor over the policy's wrapped keys.
type rotateProgress struct {
	AfterEnvID string `json:"afterEnvId,omitempty"`
	AfterEpoch uint32 `json:"afterEpoch,omitempty"`
}

// systemActorID names the platform in the audit entries of background
// work.
const systemActorID = "system"

// PickUpRotations submits a rotation operation for each policy that
// follows its key's current version (names no version) and has keys of
// environments that are not Locked wrapped under another version, unless
// one is running already, the policy's key access is known to be revoked
// (HealthStatus Unhealthy), or its last rotation failed less than ten
// minutes ago; it returns how many it submitted. The server calls it every
// RotationPickupInterval. It returns 0 on a platform without CMK support.
// For a policy naming an external vault (issue 13) that wraps any key,
// the current version is asked of the customer's vault as the policy's
// identity, outside any transaction; a vault that can't answer now, or
// refuses, leaves the policy for the next pickup (the health check locks
// on a revocation).
func (p *CMK) PickUpRotations(ctx context.Context) (int, error) {
	if p.ops == nil {
		return 0, nil
	}
	var todo, external []*keyhold.EnterprisePolicy
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		pols, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{})
		if err != nil {
			return err
		}
		for _, pol := range pols {
			if pol.Kind != keyhold.PolicyKindEncryption || pol.KeyVersion != "" || pol.PrincipalID == "" || pol.HealthStatus == keyhold.HealthUnhealthy {
				continue
			}
			last, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: pol.ID(), Kind: keyhold.OpRotate, Limit: 1})
			if err != nil {
				return err
			}
			if len(last) == 1 && last[0].State == keyhold.OperationFailed && time.Since(last[0].FinishedAt) < rotationRetryAfter {
				continue
			}
			if err := p.checkPolicy(pol); err != nil {
				// Submitted, so that the rotation fails with the
				// refusal where an administrator sees it (and the pickup
				// then waits rotationRetryAfter), not in a log alone.
				todo = append(todo, pol)
				continue
			}
			if pol.External != nil {
				// Its current version is asked of the customer's vault,
				// over the network, after this transaction: only if the
				// policy wraps any key.
				any, err := tx.ListWrappedKeys(ctx, keyhold.WrappedKeyFilter{PrincipalID: pol.PrincipalID, Root: keyhold.RootCMK, Limit: 1})
				if err != nil {
					return err
				}
				if len(any) > 0 {
					external = append(external, pol)
				}
				continue
			}
			kid, err := p.currentVersionKID(ctx, tx, pol)
			if isTamper(err) {
				todo = append(todo, pol)
				continue
			}
			if err != nil {
				return err
			}
			if kid == "" {
				continue // its key was deleted or has no version: nothing to follow
			}
			stale, err := p.staleServingKey(ctx, tx, pol, kid)
			if err != nil {
				return err
			}
			if stale {
				todo = append(todo, pol)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, pol := range external {
		stale, err := p.externalRotationDue(ctx, pol)
		if err != nil {
			return 0, err
		}
		if stale {
			todo = append(todo, pol)
		}
	}
	n := 0
	for _, pol := range todo {
		in, err := json.Marshal(cmkInput{PolicyID: pol.ID(), SystemID: pol.SystemID})
		if err != nil {
			return n, err
		}
		op := &keyhold.Operation{Kind: keyhold.OpRotate, TenantID: pol.TenantID, Target: pol.ID(), CreatedBy: systemActorID, Input: in}
		switch err := p.ops.Submit(ctx, op); keyhold.ErrorCode(err) {
		case "":
			n++
			p.log.InfoContext(ctx, "key rotation picked up", "policy", pol.ID(), "op", op.ID)
		case keyhold.CodeConflict: // one is running
		default:
			return n, err
		}
	}
	return n, nil
}

// externalRotationDue reports whether pol, naming an external vault, has
// keys of environments that are not Locked wrapped under another version
// than its key's current one there. The customer's vault is asked as the
// policy's identity; when it can't say (a transient fault, or access
// revoked: the health check reports and locks), nothing is due now and
// the next pickup asks again.
func (p *CMK) externalRotationDue(ctx context.Context, pol *keyhold.EnterprisePolicy) (bool, error) {
	kid, err := externalCurrentKID(ctx, p.core, pol)
	if err != nil {
		p.log.WarnContext(ctx, "the current version of an external vault's key can't be read for the rotation pickup", "policy", pol.ID(), "err", err)
		return false, nil
	}
	var stale bool
	err = p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		stale, err = p.staleServingKey(ctx, tx, pol, kid)
		return err
	})
	return stale, err
}

// staleServingKey reports whether pol's identity has wrapped a key of an
// environment that is not Locked under another version than kid: work for
// a rotation. The keys of Locked environments wait for their re-enable.
func (p *CMK) staleServingKey(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, kid string) (bool, error) {
	f := keyhold.WrappedKeyFilter{PrincipalID: pol.PrincipalID, Root: keyhold.RootCMK, ExceptKeyID: p.storedKID(kid), Limit: 100}
	checked := map[string]bool{}
	for {
		page, err := tx.ListWrappedKeys(ctx, f)
		if err != nil {
			return false, err
		}
		for _, wk := range page {
			if checked[wk.EnvID] || onKeyVersion(wk, kid) {
				continue
			}
			checked[wk.EnvID] = true
			locked, err := envLocked(ctx, tx, wk.EnvID)
			if err != nil || !locked {
				return err == nil, err
			}
		}
		if len(page) < f.Limit {
			return false, nil
		}
		last := page[len(page)-1]
		f.AfterEnvID, f.AfterEpoch = last.EnvID, last.Epoch
	}
}

// currentVersionKID returns the versioned kid of the current version of
// pol's key, as a wrap returns it; "" if the key is missing or deleted
// (nothing to rotate to: the health check reports that). A key whose
// record (current version or deletion) fails its integrity check is
// CodeRecordIntegrity: a current version set outside Keyhold is never
// rotated to.
func (p *CMK) currentVersionKID(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy) (string, error) {
	k, err := policyKeyRecord(ctx, tx, pol)
	if keyhold.IsNotFound(err) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if hsmNameOf(pol) == "" { // a Managed HSM's key has no seal yet
		if err := p.rec.CheckKey(k); err != nil {
			return "", err
		}
	}
	if k.Deleted() || k.CurrentVersion == "" {
		return "", nil
	}
	return keyIDOf(p.kv, p.hsm, pol, k.VaultName, k.Name, k.CurrentVersion), nil
}

// RunRotationPickup calls PickUpRotations every interval until ctx ends.
func (p *CMK) RunRotationPickup(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := p.PickUpRotations(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("picking up key rotations", "err", err)
		} else if n > 0 {
			p.log.Info("picked up key rotations", "operations", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stepRotate rewraps one page of the policy's wrapped keys that are not on
// its key's current version, and moves its cursor past them. Keys of
// Locked environments are skipped, before the unwrap and again in the
// writing transaction.
func (p *CMK) stepRotate(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	in, err := opInput(op)
	if err != nil {
		return ops.StepResult{}, ops.Permanent(err)
	}
	var prog rotateProgress
	if len(op.Progress) > 0 {
		if err := json.Unmarshal(op.Progress, &prog); err != nil {
			return ops.StepResult{}, ops.Permanent(err)
		}
	}
	// Issue 13: the current version of an external vault's key is asked
	// of the customer's vault over the network, before the transaction
	// that reads the page.
	extKID, err := p.rotationExternalKID(ctx, in.SystemID)
	if isTamper(err) {
		p.auditTamper(ctx, op.TenantID, op.Target, "key rotation (operation "+op.ID+")", err)
		return ops.StepResult{}, ops.Permanent(err)
	}
	if err != nil {
		return ops.StepResult{}, err
	}
	var pol *keyhold.EnterprisePolicy
	var kid string
	var page []*keyhold.WrappedKey
	locked := map[string]bool{} // environment id → Locked, for the page
	err = p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		clear(locked)
		pol, err = tx.PolicyBySystemID(ctx, in.SystemID)
		if keyhold.IsNotFound(err) {
			pol = nil
			return nil // deleted: nothing to rotate
		} else if err != nil {
			return err
		}
		if err := p.checkPolicy(pol); err != nil {
			return err
		}
		if pol.KeyVersion != "" {
			return nil // pinned to a version since
		}
		if pol.External != nil {
			kid = extKID // "" if the policy changed since: the next pickup sees it
		} else if kid, err = p.currentVersionKID(ctx, tx, pol); err != nil {
			return err
		}
		if kid == "" {
			return nil
		}
		page, err = tx.ListWrappedKeys(ctx, keyhold.WrappedKeyFilter{PrincipalID: pol.PrincipalID, Root: keyhold.RootCMK, ExceptKeyID: p.storedKID(kid),
			AfterEnvID: prog.AfterEnvID, AfterEpoch: prog.AfterEpoch, Limit: rotationBatch})
		if err != nil {
			return err
		}
		for _, wk := range page {
			if _, ok := locked[wk.EnvID]; !ok {
				if locked[wk.EnvID], err = envLocked(ctx, tx, wk.EnvID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if isTamper(err) {
		p.auditTamper(ctx, op.TenantID, op.Target, "key rotation (operation "+op.ID+")", err)
		return ops.StepResult{}, ops.Permanent(err)
	}
	if err != nil || len(page) == 0 {
		return ops.StepResult{}, err
	}
	moved := make([]*custodyMove, len(page))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rotationWorkers)
	for i, wk := range page {
		if onKeyVersion(wk, kid) {
			continue // stored in an older form (another host), on the current version already
		}
		if locked[wk.EnvID] {
			p.log.InfoContext(ctx, "key rotation skips a locked environment; the pickup after its re-enable rewraps it", "environment", wk.EnvID, "epoch", wk.Epoch, "op", op.ID)
			continue
		}
		g.Go(func() error {
			var err error
			moved[i], err = p.prepareMove(gctx, wk, pol.TenantID, func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error) {
				return p.wrapCMKAt(ctx, pol, kid, wk.EnvID, wk.Epoch, ek)
			})
			switch {
			case err == nil:
			case isTamper(err):
				return err // the key's records were changed: nothing moves
			case isRevocation(err) || !ops.IsPermanent(err):
				return err // the policy lost its key, or a fault: the whole page waits
			default:
				// This one key can't be rewrapped (it doesn't unwrap):
				// leave it where it is, and say so.
				p.log.Error("a wrapped environment key can't be rotated", "environment", wk.EnvID, "epoch", wk.Epoch, "kid", wk.KeyID, "err", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if isTamper(err) {
			p.auditTamper(ctx, op.TenantID, op.Target, "key rotation (operation "+op.ID+")", err)
			return ops.StepResult{}, ops.Permanent(err)
		}
		return ops.StepResult{}, err
	}
	var n int64
	err = storeConflict(p.store.Update(ctx, func(tx keyhold.Tx) error {
		n = 0
		for i, wk := range page {
			if moved[i] == nil {
				continue
			}
			if lk, err := envLocked(ctx, tx, wk.EnvID); err != nil {
				return err
			} else if lk {
				continue // locked since the page was read: left for after its re-enable
			}
			if ok, err := moved[i].commit(ctx, tx, p.core); err != nil {
				return err
			} else if !ok {
				continue // rewrapped, unlinked or destroyed meanwhile
			}
			if err := p.audit(ctx, tx, opActor(op), auditRotate, envTarget(wk.EnvID), wk.EnvID,
				fmt.Sprintf("environment key of epoch %d rewrapped from %s to the key's current version %s (operation %s)", wk.Epoch, p.currentKID(wk.KeyID), p.currentKID(moved[i].to.KeyID), op.ID)); err != nil {
				return err
			}
			n++
		}
		return nil
	}))
	if err != nil {
		return ops.StepResult{}, err
	}
	last := page[len(page)-1]
	prog = rotateProgress{AfterEnvID: last.EnvID, AfterEpoch: last.Epoch}
	if op.Progress, err = json.Marshal(prog); err != nil {
		return ops.StepResult{}, err
	}
	op.Done += n
	return ops.StepResult{Again: len(page) == rotationBatch}, nil
}

// rotationExternalKID returns, for a rotation of the policy systemID
// that names an external vault and no version, the kid of its key's
// current version there; "" for any other policy, or none. The vault's
// refusal or fault is returned as it is: a revocation fails the step (the
// health check locks), a fault is retried.
func (p *CMK) rotationExternalKID(ctx context.Context, systemID string) (string, error) {
	var pol *keyhold.EnterprisePolicy
	err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		pol, err = tx.PolicyBySystemID(ctx, systemID)
		if keyhold.IsNotFound(err) {
			pol, err = nil, nil
		}
		if err == nil && pol != nil {
			err = p.checkPolicy(pol)
		}
		return err
	})
	if err != nil || pol == nil || pol.External == nil || pol.KeyVersion != "" {
		return "", err
	}
	return externalCurrentKID(ctx, p.core, pol)
}

// isRevocation reports whether err says a key can't be used any more
// (access removed, key or vault gone or disabled), as opposed to a fault
// of one wrapped value.
func isRevocation(err error) bool {
	var ke *keyhold.Error
	if !errors.As(err, &ke) {
		return false
	}
	switch ke.Code {
	case keyhold.CodeForbidden, keyhold.CodeKeyNotFound, keyhold.CodeVaultNotFound:
		return true
	}
	return false
}

// wrapCMKAt wraps ek, of (envID, epoch), under exactly the key version kid
// names, as pol's identity.
func (p *CMK) wrapCMKAt(ctx context.Context, pol *keyhold.EnterprisePolicy, kid, envID string, epoch uint32, ek *crypt.Key) (*keyhold.WrappedKey, error) {
	payload, err := crypt.EKPayload(envID, epoch, ek)
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	got, ct, err := p.cmk(policyIdentity(pol.PrincipalID, pol.TenantID)).Wrap(ctx, kid, payload)
	p.m.wraps.WithLabelValues(string(keyhold.RootCMK), result(err)).Inc()
	if err != nil {
		return nil, cmkError(err, "wrap the key of environment "+envID, kid, pol.PrincipalID)
	}
	return &keyhold.WrappedKey{EnvID: envID, Epoch: epoch, Root: keyhold.RootCMK, KeyID: p.storedKID(got), PrincipalID: pol.PrincipalID,
		Ciphertext: ct, CreatedAt: p.clock.Now().UTC()}, nil
}
