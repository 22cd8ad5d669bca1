package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// Rewrapping a tenant's BYOK environments on a new activation (issue 14).
// When an administrator activates another key, the older one becomes
// Available, and every environment key of the tenant still wrapped under
// an older key moves to the new one: an operation (keyhold.OpBYOKRewrap)
// created in the activation's transaction, which the administrator
// follows by its id (the activation's rewrapOperationId, GET
// …/operations/{id}). Its one step moves up to byokRewrapBatch copies per
// run, each by the custody move (custody.go: unwrap with the older key,
// wrap under the new, prove by unwrapping again, then replace the copy
// only if the store still holds the one unwrapped), and runs again until
// none is left. A crash repeats at most one batch; a commit is all or
// nothing, so a copy is under the old key or the new, never lost.
//
// The environments serve throughout: the move changes no environment key,
// only the key that wraps it, and the older key stays Available (and
// unwraps) until the last copy has left it. The operation holds no
// environment: a link (migration), apply or creation that changes a copy
// meanwhile wins, and the move of that copy is skipped. While the tenant
// is locked the step pauses until it is unlocked. Nothing is undone when
// the operation fails (each committed move is whole); the environments
// left under the older key keep working under it, and the next activation
// moves them.

// byokRewrapBatch is how many copies one run of the step moves (one
// transaction); crash tests make it 1.
var byokRewrapBatch = 100

// Audit action of one environment's copies moved to the new key.
const auditEnvBYOKRewrap = "environment.byok.rewrap"

// byokRewrapInput is an OpBYOKRewrap's input: the key activated.
type byokRewrapInput struct {
	KeyID string `json:"keyId"`
}

// byokRewrapTarget is the target of a tenant's rewrap operations: one
// runs at a time per tenant.
func byokRewrapTarget(tenantID string) string { return byokTarget(tenantID, "") }

// staleBYOKCopies lists, in tx, up to limit wrapped keys of tenantID's
// environments under a BYOK key other than keyID.
func staleBYOKCopies(ctx context.Context, tx keyhold.Tx, tenantID, keyID string, limit int) ([]*keyhold.WrappedKey, error) {
	envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: tenantID})
	if err != nil {
		return nil, err
	}
	var out []*keyhold.WrappedKey
	for _, e := range envs {
		wks, err := tx.WrappedKeys(ctx, e.ID)
		if err != nil {
			return nil, err
		}
		for _, wk := range wks {
			if wk.Root == keyhold.RootBYOK && wk.KeyID != byokKIDPrefix+keyID {
				out = append(out, wk)
				if limit > 0 && len(out) == limit {
					return out, nil
				}
			}
		}
	}
	return out, nil
}

// startBYOKRewrap creates, in the activation's transaction tx, the
// operation that moves the tenant's copies under older keys to k; nil if
// there is none to move, or the platform runs no operations.
func (b *BYOK) startBYOKRewrap(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, k *keyhold.BYOKKey) (*keyhold.Operation, error) {
	if b.ops == nil {
		return nil, nil
	}
	stale, err := staleBYOKCopies(ctx, tx, k.TenantID, k.ID, 0)
	if err != nil || len(stale) == 0 {
		return nil, err
	}
	in, err := json.Marshal(byokRewrapInput{KeyID: k.ID})
	if err != nil {
		return nil, err
	}
	op := &keyhold.Operation{Kind: keyhold.OpBYOKRewrap, TenantID: k.TenantID, Target: byokRewrapTarget(k.TenantID), CreatedBy: id.PrincipalID, Input: in}
	if err := b.ops.Prepare(op); err != nil {
		return nil, err
	}
	op.Total = int64(len(stale))
	if err := tx.CreateOperation(ctx, op); err != nil {
		if keyhold.ErrorCode(err) == keyhold.CodeConflict {
			return nil, keyhold.Errorf(keyhold.CodeConflict, "the environments of tenant %s are still being moved to the key activated before (a rewrap operation is running): wait for it to end (keyhold byok key list shows the Active key; GET …/operations/{id}), then activate key %s", k.TenantID, k.ID).WithCause(err)
		}
		return nil, err
	}
	return op, nil
}

// stepBYOKRewrap moves one batch of copies to the operation's key.
func (b *BYOK) stepBYOKRewrap(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	var in byokRewrapInput
	if err := json.Unmarshal(op.Input, &in); err != nil {
		return ops.StepResult{}, ops.Permanent(fmt.Errorf("operation %s: bad input: %w", op.ID, err))
	}
	tenant := op.TenantID
	// check reads the tenant's state: paused while locked, and refused
	// unless in.KeyID is still its Active key and its rows pass their
	// seals.
	check := func(tx keyhold.Tx) error {
		st, err := byokTenantIn(ctx, tx, b.rec, tenant)
		if err != nil {
			return err
		}
		if !st.LockedAt.IsZero() {
			return ops.Paused(fmt.Sprintf("the tenant's BYOK key is locked since %s; the environments move to key %s once an administrator unlocks the tenant (keyhold byok unlock)", st.LockedAt.UTC().Format(time.RFC3339), in.KeyID), time.Minute)
		}
		k, err := activeBYOKKey(ctx, tx, b.rec, tenant, "moving the tenant's environments to BYOK key "+in.KeyID)
		if err != nil {
			return ops.Permanent(err)
		}
		if k.ID != in.KeyID {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeConflict, "BYOK key %s is no longer the tenant's Active key (key %s is): its environments move to that key instead", in.KeyID, k.ID))
		}
		return nil
	}
	var stale []*keyhold.WrappedKey
	err := b.store.View(ctx, func(tx keyhold.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		var err error
		stale, err = staleBYOKCopies(ctx, tx, tenant, in.KeyID, byokRewrapBatch)
		return err
	})
	if err != nil {
		return ops.StepResult{}, b.rewrapRefused(ctx, op, err)
	}
	if len(stale) == 0 {
		op.Done = op.Total
		return ops.StepResult{}, nil
	}
	var moves []*custodyMove
	for _, wk := range stale {
		m, err := b.prepareMove(ctx, wk, tenant, b.wrapToBYOK(tenant, in.KeyID, wk))
		if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentDisabled { // locked since the check
			return ops.StepResult{}, ops.Paused(keyhold.ErrorMessage(err), time.Minute)
		}
		if err != nil { // a tampered key's use is audited by its wrapper
			return ops.StepResult{}, err
		}
		moves = append(moves, m)
	}
	moved := map[string][]string{}
	var left int
	err = b.store.Update(ctx, func(tx keyhold.Tx) error {
		clear(moved)
		if err := check(tx); err != nil {
			return err
		}
		for _, m := range moves {
			ok, err := m.commit(ctx, tx, b.core)
			if err != nil {
				return err
			}
			if !ok { // changed meanwhile (a migration, say): it wins
				continue
			}
			moved[m.from.EnvID] = append(moved[m.from.EnvID], fmt.Sprintf("epoch %d from %s", m.from.Epoch, m.from.KeyID))
		}
		for envID, what := range moved {
			if _, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: b.clock.Now(), TenantID: tenant, ActorID: systemActorID,
				Action: auditEnvBYOKRewrap, Target: envTarget(envID), EnvID: envID,
				Detail: fmt.Sprintf("environment key (%s) rewrapped under the Active BYOK key %s in operation %s", strings.Join(what, ", "), in.KeyID, op.ID)}); err != nil {
				return err
			}
		}
		// Done is counted from the store, not added up: a crash after
		// this commit and before the runner records the step loses no
		// count.
		rest, err := staleBYOKCopies(ctx, tx, tenant, in.KeyID, 0)
		left = len(rest)
		return err
	})
	if err != nil {
		return ops.StepResult{}, b.rewrapRefused(ctx, op, err)
	}
	op.Done = max(op.Total-int64(left), 0)
	// Another run finds what is left (nothing: the step ends).
	return ops.StepResult{Again: true}, nil
}

// rewrapRefused audits a refusal of a tampered record before the step
// returns err.
func (b *BYOK) rewrapRefused(ctx context.Context, op *keyhold.Operation, err error) error {
	if isTamper(err) {
		b.auditTamper(ctx, op.TenantID, byokRewrapTarget(op.TenantID), "rewrap of the tenant's BYOK environments (operation "+op.ID+")", err)
	}
	return err
}

// wrapToBYOK is the custody move's destination: from's epoch key wrapped
// under tenant's BYOK key keyID with RSA-OAEP-256.
func (b *BYOK) wrapToBYOK(tenant, keyID string, from *keyhold.WrappedKey) wrapTo {
	w := b.wrapper(tenant)
	return func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error) {
		payload, err := crypt.EKPayload(from.EnvID, from.Epoch, ek)
		if err != nil {
			return nil, err
		}
		defer clear(payload)
		kid, ct, err := w.Wrap(ctx, byokKIDPrefix+keyID, payload)
		b.m.wraps.WithLabelValues(string(keyhold.RootBYOK), result(err)).Inc()
		if err != nil {
			return nil, err
		}
		return &keyhold.WrappedKey{EnvID: from.EnvID, Epoch: from.Epoch, Root: keyhold.RootBYOK, KeyID: kid, Ciphertext: ct, CreatedAt: b.clock.Now().UTC()}, nil
	}
}
