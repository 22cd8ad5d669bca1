package platform

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Removing BYOK from a tenant (spec 000): once its last BYOK environment
// has migrated, the tenant's administrator asks for the BYOK option to be
// removed. From then on every BYOK action is refused (the option is gone;
// no environment is left under the key, so none is restricted), and the
// tenant's BYOK keys are kept until keyhold.BYOKKeyRetention after the
// last migration, so that backups from before it can still be restored,
// then deleted by RunBYOKShred: with the sealed private keys gone, what
// they wrapped opens nowhere (crypto-shred).

// Audit actions of the removal.
const (
	auditBYOKRemove = "byok.tenant.remove"
	auditBYOKShred  = "byok.tenant.shred"
)

// byokRemoved refuses a BYOK action once removal was requested.
func byokRemoved(st *keyhold.BYOKTenant) error {
	if st.RemovalRequestedAt.IsZero() {
		return nil
	}
	return keyhold.Errorf(keyhold.CodeNotSupported,
		"BYOK was removed from tenant %s at %s at its administrator's request: the option is gone; protect environments with customer-managed keys (enterprise policies) instead",
		st.TenantID, st.RemovalRequestedAt.UTC().Format(time.RFC3339))
}

// byokRemovedIn is byokRemoved for tenantID, read in tx.
func byokRemovedIn(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID string) error {
	st, err := byokTenantIn(ctx, tx, rec, tenantID)
	if err != nil {
		return err
	}
	return byokRemoved(st)
}

// RemoveBYOK asks to remove BYOK from the caller's tenant
// (keyhold.BYOKService).
func (b *BYOK) RemoveBYOK(ctx context.Context) (*keyhold.BYOKTenant, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var st *keyhold.BYOKTenant
	err = b.updateBYOK(ctx, func(tx keyhold.Tx, committed byokCommitted) error {
		set, err := adminBYOKSet(ctx, tx, b.rec, id) // byok_seal.go
		if err != nil {
			return err
		}
		st = set.st
		if err := byokRemoved(st); err != nil {
			return keyhold.Errorf(keyhold.CodeConflict, "%s: nothing to do", keyhold.ErrorMessage(err))
		}
		ks := set.keys
		if len(ks) == 0 {
			return keyhold.Errorf(keyhold.CodeConflict, "tenant %s has no BYOK key: there is no BYOK to remove", id.TenantID)
		}
		envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: id.TenantID})
		if err != nil {
			return err
		}
		var left []string
		for _, e := range envs {
			if e.KeyManagedBy == keyhold.KeyManagedByCustomerViaMicrosoft {
				left = append(left, e.ID)
			}
		}
		if len(left) > 0 {
			return keyhold.Errorf(keyhold.CodeConflict, "environments %s are still under the tenant's BYOK key: migrate each to a customer-managed key (keyhold env link), then remove BYOK", strings.Join(left, ", "))
		}
		last, n, err := tx.LastBYOKMigration(ctx, id.TenantID)
		if err != nil {
			return err
		}
		now := b.clock.Now().UTC()
		st.RemovalRequestedAt, st.ShredAfter = now, now
		if n > 0 && last.Add(keyhold.BYOKKeyRetention).After(now) {
			st.ShredAfter = last.Add(keyhold.BYOKKeyRetention)
		}
		if err := set.commit(ctx, tx, b.rec, nil, committed); err != nil {
			return err
		}
		return b.audit(ctx, tx, id, auditBYOKRemove, byokTarget(id.TenantID, ""), "",
			fmt.Sprintf("BYOK removed; its %d keys are deleted at %s (%d environments migrated, the last at %s)", len(ks), st.ShredAfter.Format(time.RFC3339), n, last.UTC().Format(time.RFC3339)))
	})
	if isTamper(err) {
		b.auditTamper(ctx, id.TenantID, byokTarget(id.TenantID, ""), "removal of BYOK by "+id.PrincipalID, err)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// RunBYOKShred deletes the BYOK keys of every tenant whose removal is due
// (keyhold.BYOKKeyRetention after its last migration), and says how many
// tenants it shredded. The server runs it with the deletion countdown.
func (b *BYOK) RunBYOKShred(ctx context.Context) (int, error) {
	now := b.clock.Now().UTC()
	shredded := 0
	var refused map[string]error
	err := b.updateBYOK(ctx, func(tx keyhold.Tx, committed byokCommitted) error {
		shredded, refused = 0, map[string]error{}
		due, err := tx.BYOKTenantsToShred(ctx, now)
		if err != nil {
			return err
		}
		for _, d := range due {
			// A removal written past Keyhold, or put back from before an
			// unlock, must not shred a tenant's keys: its rows must pass
			// their seals (byok_seal.go).
			set, err := byokSetIn(ctx, tx, b.rec, d.TenantID)
			if isTamper(err) {
				refused[d.TenantID] = err
				continue
			} else if err != nil {
				return err
			}
			st := set.st
			if err := b.shredToken(ctx, tx, st.TenantID); err != nil { // token-held keys: byok_transfer.go
				return err
			}
			n, err := tx.DeleteBYOKKeys(ctx, st.TenantID)
			if err != nil {
				return err
			}
			st.ShreddedAt, set.keys = now, nil
			if err := set.commit(ctx, tx, b.rec, nil, committed); err != nil {
				return err
			}
			if _, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: now, TenantID: st.TenantID, ActorID: systemActorID,
				Action: auditBYOKShred, Target: byokTarget(st.TenantID, ""),
				Detail: fmt.Sprintf("%d BYOK keys deleted (crypto-shred), %s after the last migration", n, keyhold.BYOKKeyRetention)}); err != nil {
				return err
			}
			shredded++
		}
		return nil
	})
	for tenant, terr := range refused {
		b.auditTamper(ctx, tenant, byokTarget(tenant, ""), "shredding the BYOK keys", terr)
	}
	return shredded, err
}
