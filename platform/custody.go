package platform

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// The custody move: the one way an epoch's environment key (EK) goes from
// one root key to another. Link, swap, unlink and rotation all move custody
// through it, and so must anything that comes (BYOK migration).
//
// A move has two halves, because a key vault is never called inside a
// transaction:
//
//   - prepareMove, outside any transaction: unwrap the EK from its current
//     copy (as that copy's identity), wrap it under the new root (as the new
//     root's identity), and prove the new copy by unwrapping it again,
//     through the same key provider and as the same identity, and comparing
//     the result with the EK in constant time. A new copy that doesn't prove
//     itself is never stored: a root whose public key isn't the one its
//     private key answers to (a key version changed in the database) can't
//     take an environment's key.
//   - custodyMove.commit, inside the caller's transaction: re-read the
//     environment's wrapped keys, check that the copy unwrapped is still
//     stored as read, put the new copy, delete the old one if it is under
//     another root (the store never holds an MMK copy and a CMK copy of one
//     epoch at once, once the move commits), and record the last use of
//     the CMK version the EK left.

// custodyMove is one epoch's proven move: the copy its EK was unwrapped
// from and the new copy, which unwraps to the same EK.
type custodyMove struct {
	from *keyhold.WrappedKey
	to   *keyhold.WrappedKey
}

// wrapTo wraps an epoch's EK under a move's destination root.
type wrapTo func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error)

// prepareMove unwraps from's EK (as from's identity, in tenant), wraps it
// with wrap and proves the new copy (see the top of this file). A new copy
// that unwraps to another key, or not at all, is refused permanently
// (errNotProven, or the unwrap's error); nothing is stored either way.
func (p *core) prepareMove(ctx context.Context, from *keyhold.WrappedKey, tenant string, wrap wrapTo) (*custodyMove, error) {
	ek, err := p.unwrapWrapped(ctx, from, tenant)
	if err != nil {
		return nil, err
	}
	defer ek.Destroy()
	to, err := wrap(ctx, ek)
	if err != nil {
		return nil, err
	}
	if err := p.prove(ctx, to, tenant, ek); err != nil {
		return nil, err
	}
	return &custodyMove{from: from, to: to}, nil
}

// prove unwraps the new copy to, through the provider and as the identity
// that wrapped it, and compares the result with ek in constant time.
func (p *core) prove(ctx context.Context, to *keyhold.WrappedKey, tenant string, ek *crypt.Key) error {
	got, err := p.unwrapWrapped(ctx, to, tenant)
	if err != nil {
		return ops.Permanent(keyhold.Errorf(keyhold.CodeInternal,
			"the environment key of epoch %d of environment %s was wrapped under %s, but that copy does not unwrap (%s): the old copy stays, and nothing changed; check the key's record (a key version changed outside Keyhold wraps under a key it can't unwrap)",
			to.Epoch, to.EnvID, p.currentKID(to.KeyID), keyhold.ErrorMessage(err)).WithCause(err))
	}
	defer got.Destroy()
	if !got.Equal(ek) {
		return ops.Permanent(errNotProven(to))
	}
	return nil
}

// errNotProven refuses a new copy that unwraps to another key.
func errNotProven(to *keyhold.WrappedKey) error {
	return keyhold.Errorf(keyhold.CodeInternal,
		"the environment key of epoch %d of environment %s, wrapped under %s, unwrapped to a different key: the key vault is not answering for the key it wrapped under, so the old copy stays and nothing changed",
		to.Epoch, to.EnvID, to.KeyID)
}

// commit applies m in tx: if the environment still stores m.from exactly
// as it was unwrapped, it puts m.to, deletes m.from if it is under another
// root (a copy under the same root is replaced by the put), and records
// that the EK left m.from's CMK version. It reports false, changing
// nothing, if m.from has changed or gone since; the caller decides whether
// that is a conflict (an operation holding the environment) or a skip (a
// rotation, which yields to whoever changed it).
func (m *custodyMove) commit(ctx context.Context, tx keyhold.Tx, p *core) (bool, error) {
	cur, err := tx.WrappedKeys(ctx, m.from.EnvID)
	if err != nil {
		return false, err
	}
	still := false
	for _, c := range cur {
		still = still || (c.Epoch == m.from.Epoch && sameKey(c, m.from))
	}
	if !still {
		return false, nil
	}
	if err := tx.PutWrappedKey(ctx, m.to); err != nil {
		return false, err
	}
	if m.from.Root != m.to.Root {
		if err := tx.DeleteWrappedKey(ctx, m.from.EnvID, m.from.Epoch, m.from.Root); err != nil {
			return false, err
		}
	}
	if err := p.touchOldKID(ctx, tx, m.from); err != nil {
		return false, err
	}
	return true, nil
}

// checkPolicy checks pol's binding to its key (keyVaultId, key name and
// version, identity, tenant, systemId) against its seal under the master
// key: CodeRecordIntegrity if it was changed outside Keyhold.
func (p *core) checkPolicy(pol *keyhold.EnterprisePolicy) error {
	return p.rec.CheckPolicy(pol)
}

// auditTamper records, in a transaction of its own, that Keyhold refused
// to act on a record that failed its integrity check, and logs it at
// Error level: someone wrote to the database past Keyhold. what names the
// action refused.
func (p *core) auditTamper(ctx context.Context, tenant, target, what string, err error) {
	p.log.ErrorContext(ctx, "refused a record changed outside Keyhold", "action", what, "target", target, "err", keyhold.ErrorMessage(err))
	actx := context.WithoutCancel(ctx)
	aerr := p.store.Update(actx, func(tx keyhold.Tx) error {
		_, err := keyhold.Audit(actx, tx, keyhold.AuditEntry{At: p.clock.Now(), TenantID: tenant, ActorID: systemActorID,
			Action: auditIntegrity, Target: target, Result: keyhold.CodeRecordIntegrity,
			Detail: fmt.Sprintf("%s refused: %s", what, keyhold.ErrorMessage(err))})
		return err
	})
	if aerr != nil {
		p.log.ErrorContext(ctx, "writing the audit entry of a refused record failed", "target", target, "err", aerr)
	}
}

// auditIntegrity is the audit action of a refusal to act on a record
// that failed its integrity check.
const auditIntegrity = "integrity.refused"

// isTamper reports whether err refuses a record that failed its integrity
// check.
func isTamper(err error) bool { return keyhold.ErrorCode(err) == keyhold.CodeRecordIntegrity }
