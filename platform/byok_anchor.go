package platform

import (
	"context"

	"github.com/keyhold/keyhold"
)

// The BYOK generations outside the database (keyhold.BYOKAnchor). Each
// tenant's BYOK rows carry a generation that every write moves on
// (byokSet.commit), so no row of an earlier write fits the others; but
// all of a tenant's rows put back together from one earlier write, or the
// whole database rolled back to an older snapshot, are consistent, and
// would undo a lock or a crypto-shred. With a PKCS#11 token, the token
// keeps each tenant's generation too: raised after every committed write
// (updateBYOK), and compared before the BYOK key wraps or unwraps
// anything (byokWrapper.key). A database generation below the token's is
// refused as a record changed outside Keyhold (CodeRecordIntegrity,
// audited): nothing is wrapped or unwrapped under the tenant's BYOK key,
// so none of its environments' data opens. A database generation above
// the token's is one this server wrote (its seal says so) and whose raise
// was lost (a crash after the commit, a token error): the token is
// raised to it once the key's read has ended.
//
// Without a token there is no anchor, and the limit stands
// (docs/architecture.md, "Threat model").

// setToken gives b the PKCS#11 token (nil: none), which holds the keys
// uploaded as transfer blobs and, if it is a keyhold.BYOKAnchor, the
// tenants' generations.
func (b *BYOK) setToken(t keyhold.BYOKToken) {
	b.token = t
	b.anchor = byokAnchor{}
	if a, ok := t.(keyhold.BYOKAnchor); ok {
		b.anchor.a = a
	}
}

// byokAnchor checks and raises tenants' generations in the token. It
// reads the token at every check: a check runs only when a BYOK key is
// about to wrap or unwrap (a key cache's miss, already an RSA operation),
// and another replica on the same token may have raised it since.
type byokAnchor struct {
	a keyhold.BYOKAnchor // nil: no token, every check passes
}

// check refuses tenant's BYOK set at generation gen if the token holds a
// later one. behind says the token holds an earlier one: the caller
// raises it (raiseGenerations) once its transaction has ended.
func (x *byokAnchor) check(ctx context.Context, tenant string, gen int64) (behind bool, err error) {
	if x == nil || x.a == nil {
		return false, nil
	}
	known, err := x.a.BYOKGeneration(ctx, tenant)
	if err != nil {
		return false, keyhold.Errorf(keyhold.CodeServiceUnavailable, "the PKCS#11 token that keeps tenant %s's BYOK generation could not be read: nothing is wrapped or unwrapped under its BYOK key until it can; retry later", tenant).WithCause(err)
	}
	if gen < known {
		return false, keyhold.Errorf(keyhold.CodeRecordIntegrity,
			"the BYOK records of tenant %s are at generation %d, but the PKCS#11 token recorded generation %d: they were put back from an earlier copy, outside Keyhold (the database or the tenant's BYOK rows restored from an older snapshot); nothing is wrapped or unwrapped under its BYOK key. Restore the database from its latest copy, or ask the operator",
			tenant, gen, known)
	}
	return gen > known, nil
}

// recorded says whether the token recorded a generation of tenant (or
// can't be read: then it is taken as recorded). Rows the one-time sealing
// at start-up would seal (sealBYOKAtStart) are not sealed then: this
// version sealed the tenant's rows before, so seals stripped from them
// are not put back, even with the "sealing done" marker deleted and the
// generation column set past the token's.
func (x *byokAnchor) recorded(ctx context.Context, tenant string) bool {
	if x == nil || x.a == nil {
		return false
	}
	g, err := x.a.BYOKGeneration(ctx, tenant)
	return err != nil || g > 0
}

// raise records gen as tenant's generation in the token.
func (x *byokAnchor) raise(ctx context.Context, tenant string, gen int64) error {
	if x == nil || x.a == nil {
		return nil
	}
	return x.a.RaiseBYOKGeneration(ctx, tenant, gen)
}

// byokCommitted collects, in a transaction, the BYOK generations it
// writes (byokSet.commit), for raiseGenerations once it has committed.
type byokCommitted map[string]int64

// updateBYOK runs fn, a write of BYOK state, in a transaction, and once
// it has committed raises the token to the generations it wrote: fn
// passes committed to every byokSet.commit. A retried attempt starts with
// it empty, and a transaction that fails raises nothing, so the token is
// never ahead of the database.
func (b *BYOK) updateBYOK(ctx context.Context, fn func(tx keyhold.Tx, committed byokCommitted) error) error {
	committed := byokCommitted{}
	err := b.store.Update(ctx, func(tx keyhold.Tx) error {
		clear(committed)
		return fn(tx, committed)
	})
	if err == nil {
		b.raiseGenerations(ctx, committed)
	}
	return err
}

// raiseGenerations raises the token's generations to those a committed
// transaction wrote, or a key use found the token behind on. A failure
// is logged, not returned: the write committed (or was found, sealed),
// and the next use of the tenant's key raises the token again
// (byokAnchor.check); until then, a roll-back to the generation before
// is not told apart.
func (b *BYOK) raiseGenerations(ctx context.Context, c byokCommitted) {
	for tenant, gen := range c {
		if err := b.anchor.raise(context.WithoutCancel(ctx), tenant, gen); err != nil {
			b.log.ErrorContext(ctx, "recording the tenant's BYOK generation in the PKCS#11 token failed: a roll-back of its BYOK records to the generation before is not detected until the next use of its key records it", "tenant", tenant, "generation", gen, "err", err)
		}
	}
}
