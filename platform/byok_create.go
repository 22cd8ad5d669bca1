package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Creating an environment directly under the tenant's BYOK key (issue
// 14). In the legacy feature, every environment with a database in a
// tenant whose BYOK key is Active was encrypted under it; in Keyhold every
// environment has its database, so CreateEnvironment in such a tenant
// wraps the first epoch's environment key under the Active BYOK key
// (root keyhold.RootBYOK, keyManagedBy CustomerViaMicrosoft) and never
// under the platform's key: no platform-key copy is made, so none can be
// left behind. The new copy proves itself, as in the custody move, by
// unwrapping through the BYOK key and comparing with the key it wraps,
// before anything is stored. The BYOK restrictions (byok_limits.go) hold
// from the start, as they follow keyManagedBy.
//
// A locked tenant refuses creation: its BYOK key unwraps nothing until
// the same key is supplied again, so an environment made under it would
// be unusable, and one made under the platform key would escape the
// tenant's choice. Once BYOK is removed (byok_remove.go), or before any
// key is Active, environments are created under the platform key as
// before.

// byokForCreation returns the BYOK key a new environment of tenantID is
// created under: nil for the platform key. It refuses while the tenant is
// locked with an Active key, and when the tenant's key rows fail their
// seals (CodeRecordIntegrity; the caller audits it).
func byokForCreation(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID string) (*keyhold.BYOKKey, error) {
	s, err := byokSetIn(ctx, tx, rec, tenantID) // byok_seal.go
	if err != nil {
		return nil, err
	}
	st := s.st
	if !st.RemovalRequestedAt.IsZero() {
		return nil, nil
	}
	active := s.active()
	if active == nil {
		return nil, nil
	}
	if !st.LockedAt.IsZero() {
		return nil, keyhold.Errorf(keyhold.CodeConflict,
			"a new environment can't be created in tenant %s now: new environments are encrypted under the tenant's BYOK key, and the tenant's administrator locked it at %s; unlock it first by supplying the same key (keyhold byok unlock), then create the environment",
			tenantID, st.LockedAt.UTC().Format(time.RFC3339))
	}
	return active, nil
}

// newBYOKEnvKey creates a fresh EK for (envID, epoch), wraps it under the
// BYOK key k of tenantID and proves the copy by unwrapping it again. The
// caller stores the wrapped copy and destroys the EK.
func newBYOKEnvKey(ctx context.Context, p *core, k *keyhold.BYOKKey, envID string, epoch uint32) (*crypt.Key, *keyhold.WrappedKey, error) {
	ek, err := crypt.NewKey()
	if err != nil {
		return nil, nil, err
	}
	payload, err := crypt.EKPayload(envID, epoch, ek)
	if err != nil {
		ek.Destroy()
		return nil, nil, err
	}
	kid, ct, err := p.byok(k.TenantID).Wrap(ctx, byokKIDPrefix+k.ID, payload)
	clear(payload)
	p.m.wraps.WithLabelValues(string(keyhold.RootBYOK), result(err)).Inc()
	if err != nil {
		ek.Destroy()
		return nil, nil, fmt.Errorf("wrapping the environment key under BYOK key %s: %w", k.ID, err)
	}
	wk := &keyhold.WrappedKey{EnvID: envID, Epoch: epoch, Root: keyhold.RootBYOK, KeyID: kid, Ciphertext: ct, CreatedAt: p.clock.Now().UTC()}
	if err := p.prove(ctx, wk, k.TenantID, ek); err != nil { // custody.go
		ek.Destroy()
		return nil, nil, err
	}
	return ek, wk, nil
}
