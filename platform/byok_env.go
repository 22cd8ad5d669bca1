package platform

import (
	"context"
	"crypto/rsa"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// BYOK environments (issue 14): an environment moved under its tenant's
// Active BYOK key holds each epoch's environment key wrapped by that RSA
// key with RSA-OAEP-256 (root kind keyhold.RootBYOK, kid "byok/{keyId}"),
// and no platform-key copy. Its keyManagedBy reads CustomerViaMicrosoft.
//
// The tenant's administrator can lock the tenant: the BYOK key then
// unwraps nothing (byokWrapper.Unwrap refuses, whatever an environment's
// state says), every BYOK environment is Disabled and its keys dropped
// from the caches of every replica. Only the same key, supplied again,
// unlocks it.

// byokKIDPrefix starts the kid of an environment key wrapped under a BYOK
// key: "byok/" + the key's id.
const byokKIDPrefix = "byok/"

// Audit actions of BYOK environments and the tenant lock.
const (
	auditBYOKApply  = "environment.byok.apply"
	auditBYOKLock   = "byok.tenant.lock"
	auditBYOKUnlock = "byok.tenant.unlock"
	auditEnvBYOKOff = "environment.byok.disable"
	auditEnvBYOKOn  = "environment.byok.enable"
)

// byokWrapper wraps and unwraps with one tenant's BYOK keys: a
// keyhold.KeyWrapper whose key ids are "byok/{keyId}".
type byokWrapper struct {
	b      *BYOK
	tenant string
}

// wrapper returns the BYOK key wrapper of tenant.
func (b *BYOK) wrapper(tenant string) keyhold.KeyWrapper { return &byokWrapper{b: b, tenant: tenant} }

// key loads and opens the key named by kid, refusing while the tenant is
// locked. The caller zeroes the key (zeroRSA).
func (w *byokWrapper) key(ctx context.Context, kid string) (*byokOpened, error) {
	id, ok := strings.CutPrefix(kid, byokKIDPrefix)
	if !ok {
		return nil, fmt.Errorf("kid %q is not a BYOK key's", kid)
	}
	var k *keyhold.BYOKKey
	var behind int64 // the generation the token lags behind, if it does
	err := w.b.store.View(ctx, func(tx keyhold.Tx) error {
		behind = 0
		// The tenant's rows must be as Keyhold sealed them (byok_seal.go):
		// nothing is wrapped or unwrapped under a key whose record, or
		// its tenant's state, was changed or put back.
		s, err := byokSetIn(ctx, tx, w.b.rec, w.tenant)
		if err != nil {
			return err
		}
		// Nor under rows all put back together, or a database rolled
		// back, to before the generation the token recorded
		// (byok_anchor.go).
		if lost, err := w.b.anchor.check(ctx, w.tenant, s.st.Generation); err != nil {
			return err
		} else if lost { // a raise lost to a crash or a token error
			behind = s.st.Generation
		}
		if !s.st.LockedAt.IsZero() {
			return errBYOKLocked(s.st, "")
		}
		k, err = s.key(id)
		return err
	})
	if behind > 0 {
		// The set passed its seals, whatever refused after (a lock whose
		// own raise was lost, say): the token catches up now.
		w.b.raiseGenerations(ctx, byokCommitted{w.tenant: behind})
	}
	if isTamper(err) {
		w.b.auditTamper(ctx, w.tenant, byokTarget(w.tenant, id), "use of BYOK key "+id, err)
	}
	if err != nil {
		return nil, err
	}
	return w.b.openBYOK(ctx, k)
}

// Wrap wraps plaintext under the BYOK key keyID names ("byok/{keyId}").
func (w *byokWrapper) Wrap(ctx context.Context, keyID string, plaintext []byte) (string, []byte, error) {
	o, err := w.key(ctx, keyID)
	if err != nil {
		return "", nil, err
	}
	defer o.destroy()
	ct, err := crypt.WrapOAEP(o.public(), crypt.AlgRSAOAEP256, plaintext)
	if err != nil {
		return "", nil, err
	}
	return byokKIDPrefix + o.key.ID, ct, nil
}

// Unwrap unwraps with the BYOK key kid names, unless the tenant is locked.
func (w *byokWrapper) Unwrap(ctx context.Context, kid string, ciphertext []byte) ([]byte, error) {
	o, err := w.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	defer o.destroy()
	return o.unwrap(ctx, ciphertext)
}

// errBYOKLocked refuses what a tenant lock stops; envID may be "".
func errBYOKLocked(st *keyhold.BYOKTenant, envID string) error {
	what := "the tenant's BYOK key"
	if envID != "" {
		what = "environment " + envID + ", which is encrypted under the tenant's BYOK key,"
	}
	return keyhold.Errorf(keyhold.CodeEnvironmentDisabled,
		"%s is disabled: the tenant's administrator locked the tenant at %s; an administrator unlocks it by supplying the same key again (keyhold byok unlock)",
		what, st.LockedAt.UTC().Format(time.RFC3339))
}

// byokServing refuses, in tx, the data of a BYOK environment while its
// tenant is locked: the data plane's message (access.go).
func byokServing(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, env *keyhold.Environment) error {
	if env.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
		return nil
	}
	st, err := byokTenantIn(ctx, tx, rec, env.TenantID)
	if err != nil {
		return err
	}
	if !st.LockedAt.IsZero() {
		return errBYOKLocked(st, env.ID)
	}
	return nil
}

// activeBYOKKey returns the tenant's Active BYOK key, refusing while the
// tenant is locked or has none; what names the refused action.
// Its keys must pass their seals (byok_seal.go): CodeRecordIntegrity
// otherwise, which the caller audits (auditTamper) after tx ends.
func activeBYOKKey(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID, what string) (*keyhold.BYOKKey, error) {
	s, err := byokSetIn(ctx, tx, rec, tenantID)
	if err != nil {
		return nil, err
	}
	if err := byokRemoved(s.st); err != nil {
		return nil, err
	}
	if !s.st.LockedAt.IsZero() {
		return nil, keyhold.Errorf(keyhold.CodeConflict, "%s is refused: the tenant's BYOK key is locked since %s; unlock it first by supplying the same key (keyhold byok unlock)", what, s.st.LockedAt.UTC().Format(time.RFC3339))
	}
	if k := s.active(); k != nil {
		return k, nil
	}
	return nil, keyhold.Errorf(keyhold.CodeConflict, "%s is refused: tenant %s has no Active BYOK key; upload or generate one (keyhold byok key upload|generate) and activate it (keyhold byok key activate)", what, tenantID)
}

// ApplyBYOK moves an environment under the tenant's Active BYOK key
// (keyhold.BYOKService).
func (b *BYOK) ApplyBYOK(ctx context.Context, envID string) (*keyhold.Environment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var env *keyhold.Environment
	var key *keyhold.BYOKKey
	var wks []*keyhold.WrappedKey
	check := func(tx keyhold.Tx) error {
		env, err = adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		switch {
		case env.KeyManagedBy == keyhold.KeyManagedByCustomerViaMicrosoft:
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s is under the tenant's BYOK key already: nothing to do", env.ID)
		case env.KeyManagedBy != keyhold.KeyManagedByMicrosoft || env.PolicyID != "":
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s is under a customer-managed key (enterprise policy %s): BYOK applies only to environments under the Microsoft-managed key, and can't replace a customer-managed key", env.ID, env.PolicyID)
		}
		if m, err := tx.BYOKMigration(ctx, env.ID); err != nil {
			return err
		} else if m != nil {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s migrated from the BYOK key to a customer-managed key at %s: a migrated environment can't be re-encrypted with the BYOK key (spec 000)", env.ID, m.MigratedAt.UTC().Format(time.RFC3339))
		}
		if err := requireServing(ctx, tx, env, "moved under the BYOK key"); err != nil {
			return err
		}
		if err := runningOp(ctx, tx, env); err != nil {
			return err
		}
		key, err = activeBYOKKey(ctx, tx, b.rec, id.TenantID, "moving environment "+env.ID+" under the BYOK key")
		return err
	}
	tamper := func(err error) error {
		if isTamper(err) {
			b.auditTamper(ctx, id.TenantID, envTarget(envID), "moving environment "+keyhold.Clip(envID)+" under the BYOK key by "+id.PrincipalID, err)
		}
		return err
	}
	if err := b.store.View(ctx, func(tx keyhold.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		wks, err = tx.WrappedKeys(ctx, env.ID)
		return err
	}); err != nil {
		return nil, tamper(err)
	}
	// Outside any transaction: unwrap, wrap under the BYOK key, prove.
	var moves []*custodyMove
	for _, wk := range wks {
		if wk.Root != keyhold.RootMMK {
			continue
		}
		m, err := b.prepareMove(ctx, wk, id.TenantID, b.wrapToBYOK(id.TenantID, key.ID, wk)) // byok_rewrap.go
		if err != nil {
			return nil, err
		}
		moves = append(moves, m)
	}
	version, keyID := env.Version, key.ID
	err = b.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		if env.Version != version || key.ID != keyID {
			return keyhold.Errorf(keyhold.CodeConflict, "environment %s or the tenant's Active BYOK key changed while its keys were being moved: nothing changed; retry", env.ID)
		}
		for _, m := range moves {
			ok, err := m.commit(ctx, tx, b.core)
			if err != nil {
				return err
			}
			if !ok {
				return keyhold.Errorf(keyhold.CodeConflict, "the key of epoch %d of environment %s changed while it was being moved: nothing changed; retry", m.from.Epoch, env.ID)
			}
		}
		env.KeyManagedBy = keyhold.KeyManagedByCustomerViaMicrosoft
		if err := tx.UpdateEnvironment(ctx, env); err != nil {
			return err
		}
		return b.audit(ctx, tx, id, auditBYOKApply, envTarget(env.ID), env.ID, fmt.Sprintf("environment key wrapped under BYOK key %s (thumbprint %s); the platform key's copy deleted", key.ID, key.Thumbprint))
	})
	if err != nil {
		return nil, tamper(err)
	}
	return env, nil
}

// LockBYOKTenant locks the caller's tenant (keyhold.BYOKService).
func (b *BYOK) LockBYOKTenant(ctx context.Context) ([]string, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var disabled []string
	err = b.updateBYOK(ctx, func(tx keyhold.Tx, committed byokCommitted) error {
		disabled = nil
		set, err := adminBYOKSet(ctx, tx, b.rec, id) // byok_seal.go
		if err != nil {
			return err
		}
		st := set.st
		if !st.LockedAt.IsZero() {
			return keyhold.Errorf(keyhold.CodeConflict, "tenant %s is locked already, since %s: nothing to do", id.TenantID, st.LockedAt.UTC().Format(time.RFC3339))
		}
		if err := byokRemoved(st); err != nil {
			return err
		}
		if len(set.keys) == 0 {
			return keyhold.Errorf(keyhold.CodeConflict, "tenant %s has no BYOK key to lock: the lock disables the environments under the tenant's BYOK key", id.TenantID)
		}
		envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: id.TenantID})
		if err != nil {
			return err
		}
		now := b.clock.Now().UTC()
		for _, e := range envs {
			if e.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft || e.State != keyhold.StateEnabled {
				continue
			}
			e.State = keyhold.StateDisabled
			if err := tx.UpdateEnvironment(ctx, e); err != nil {
				return err
			}
			if err := b.audit(ctx, tx, id, auditEnvBYOKOff, envTarget(e.ID), e.ID, "disabled: the tenant's BYOK key was locked"); err != nil {
				return err
			}
			disabled = append(disabled, e.ID)
		}
		st.LockedAt, st.LockedBy = now, id.PrincipalID
		if err := set.commit(ctx, tx, b.rec, nil, committed); err != nil {
			return err
		}
		return b.audit(ctx, tx, id, auditBYOKLock, byokTarget(id.TenantID, ""), "", fmt.Sprintf("%d environments disabled", len(disabled)))
	})
	if isTamper(err) {
		b.auditTamper(ctx, id.TenantID, byokTarget(id.TenantID, ""), "locking the tenant by "+id.PrincipalID, err)
	}
	if err != nil {
		return nil, err
	}
	// After the commit: a key unwrapped before it leaves every cache.
	for _, e := range disabled {
		b.DropKeys(e)
	}
	if disabled == nil {
		disabled = []string{}
	}
	return disabled, nil
}

// UnlockBYOKTenant unlocks the caller's tenant with the same key
// (keyhold.BYOKService).
func (b *BYOK) UnlockBYOKTenant(ctx context.Context, up keyhold.BYOKUpload) ([]string, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.store.View(ctx, func(tx keyhold.Tx) error { return requireAdmin(ctx, tx, id) }); err != nil {
		return nil, err
	}
	thumb, err := b.uploadThumbprint(ctx, id.TenantID, up) // a transfer blob: byok_transfer.go
	if err != nil {
		return nil, err
	}
	var enabled []string
	err = b.updateBYOK(ctx, func(tx keyhold.Tx, committed byokCommitted) error {
		enabled = nil
		set, err := adminBYOKSet(ctx, tx, b.rec, id) // byok_seal.go
		if err != nil {
			return err
		}
		st := set.st
		if st.LockedAt.IsZero() {
			return keyhold.Errorf(keyhold.CodeConflict, "tenant %s is not locked: nothing to unlock", id.TenantID)
		}
		active := set.active()
		if active == nil || active.Thumbprint != thumb {
			want := "none"
			if active != nil {
				want = active.Thumbprint
			}
			return keyhold.Errorf(keyhold.CodeForbidden, "the key supplied (thumbprint %s) is not the tenant's Active BYOK key (thumbprint %s): only the same key unlocks the tenant; it stays locked", thumb, want)
		}
		if err := b.open(ctx, active); err != nil { // its record must still be the key's
			return err
		}
		envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: id.TenantID})
		if err != nil {
			return err
		}
		for _, e := range envs {
			if e.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft || e.State != keyhold.StateDisabled {
				continue
			}
			if err := runningOp(ctx, tx, e); keyhold.ErrorCode(err) == keyhold.CodeConflict {
				continue // its operation re-enables it
			} else if err != nil {
				return err
			}
			e.State = keyhold.StateEnabled
			if err := tx.UpdateEnvironment(ctx, e); err != nil {
				return err
			}
			if err := b.audit(ctx, tx, id, auditEnvBYOKOn, envTarget(e.ID), e.ID, "enabled: the tenant's BYOK key was unlocked"); err != nil {
				return err
			}
			enabled = append(enabled, e.ID)
		}
		st.LockedAt, st.LockedBy = time.Time{}, ""
		if err := set.commit(ctx, tx, b.rec, nil, committed); err != nil {
			return err
		}
		return b.audit(ctx, tx, id, auditBYOKUnlock, byokTarget(id.TenantID, ""), "", fmt.Sprintf("unlocked with the Active key (thumbprint %s); %d environments enabled", thumb, len(enabled)))
	})
	if isTamper(err) {
		b.auditTamper(ctx, id.TenantID, byokTarget(id.TenantID, ""), "unlocking the tenant by "+id.PrincipalID, err)
	}
	if err != nil {
		return nil, err
	}
	// A rewrap paused by the lock (byok_rewrap.go) goes on now.
	if b.ops != nil {
		if _, rerr := b.ops.Resume(ctx, byokRewrapTarget(id.TenantID)); rerr != nil {
			b.log.WarnContext(ctx, "resuming the tenant's BYOK rewrap after the unlock", "tenant", id.TenantID, "err", rerr)
		}
	}
	if enabled == nil {
		enabled = []string{}
	}
	return enabled, nil
}

// byokOpened is an opened BYOK key, zeroed by destroy: priv in memory,
// or a token-held key's ref and pub (byok_transfer.go).
type byokOpened struct {
	key   *keyhold.BYOKKey
	priv  *rsa.PrivateKey
	pub   *rsa.PublicKey
	ref   []byte
	token keyhold.BYOKToken
}

func (o *byokOpened) destroy() { zeroRSA(o.priv) }
