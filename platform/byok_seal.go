package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Sealed BYOK key records (issue 14). Which of a tenant's BYOK keys is
// Active decides what every new environment key of the tenant is wrapped
// under, so each key's row carries a seal under the master key
// (crypt.RecordKey.SealBYOKKey, migration 0047) over its identity (tenant,
// id, source, size, thumbprint, sealed key) and its state (state, last
// activation). Every read that decides custody checks the tenant's keys
// (checkBYOKKeys): a database writer without the master key can't flip
// Active and Available, swap a thumbprint or a sealed key, or move a row
// from another tenant; such a row is refused with CodeRecordIntegrity,
// audited (integrity.refused), and nothing is wrapped under it.
//
// The seals authenticate rows one by one; a writer could still put back
// rows Keyhold sealed earlier (a replay, see docs/architecture.md). The
// set checks below catch the replays that leave the tenant's keys
// inconsistent: two Active keys, or an Active key older than another
// key's last activation.

// checkBYOKKeys checks the seal of each of a tenant's keys, and that they
// are consistent: at most one Active, and none activated after it.
func checkBYOKKeys(rec *crypt.RecordKey, ks []*keyhold.BYOKKey) error {
	var active *keyhold.BYOKKey
	for _, k := range ks {
		if err := rec.CheckBYOKKey(k); err != nil {
			return err
		}
		if k.State == keyhold.BYOKActive {
			if active != nil {
				return byokSetError(k.TenantID, fmt.Sprintf("two keys, %s and %s, are Active", active.ID, k.ID))
			}
			active = k
		}
	}
	if active == nil {
		return nil
	}
	for _, k := range ks {
		if k.ActivatedAt.After(active.ActivatedAt) {
			return byokSetError(k.TenantID, fmt.Sprintf("key %s was activated at %s, after the Active key %s (%s)",
				k.ID, k.ActivatedAt.UTC().Format(time.RFC3339), active.ID, active.ActivatedAt.UTC().Format(time.RFC3339)))
		}
	}
	return nil
}

// byokSetError refuses a tenant's keys whose states contradict each other.
func byokSetError(tenantID, why string) error {
	return keyhold.Errorf(keyhold.CodeRecordIntegrity,
		"the BYOK keys of tenant %s were changed outside Keyhold (%s, which no activation leaves), so Keyhold will not wrap under any of them: nothing was changed. Restore the byok_keys rows from a backup of the database and look for who wrote to it; see \"Record integrity\" in docs/operations.md",
		tenantID, why)
}

// sealBYOKKeys seals, at start-up, the BYOK keys written before their rows
// were sealed (migration 0047), auditing each (integrity.seal); only while
// no key has a seal, as the vault's records: once one has, an unsealed row
// was written outside Keyhold and stays refused.
func (b *BYOK) sealBYOKKeys(ctx context.Context) (int, error) {
	n, left := 0, 0
	err := b.store.Update(ctx, func(tx keyhold.Tx) error {
		n, left = 0, 0
		tenants, err := tx.ListTenants(ctx)
		if err != nil {
			return err
		}
		var todo []*keyhold.BYOKKey
		sealed := false
		for _, t := range tenants {
			ks, err := tx.BYOKKeys(ctx, t.ID)
			if err != nil {
				return err
			}
			for _, k := range ks {
				sealed = sealed || len(k.MAC) > 0
				if len(k.MAC) == 0 {
					todo = append(todo, k)
				}
			}
		}
		if sealed {
			left = len(todo)
			return nil
		}
		for _, k := range todo {
			b.rec.SealBYOKKey(k)
			if err := tx.UpdateBYOKKey(ctx, k); err != nil {
				return err
			}
			if _, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: b.clock.Now(), TenantID: k.TenantID, ActorID: systemActorID,
				Action: "integrity.seal", Target: byokTarget(k.TenantID, k.ID),
				Detail: "sealed at the first start after the upgrade to sealed BYOK keys"}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sealing the BYOK keys written before this version: %w", err)
	}
	if n > 0 {
		b.log.WarnContext(ctx, "platform: sealed the BYOK keys written before this version; check the audit entries integrity.seal if the database may have been written by others before the upgrade", "keys", n)
	}
	if left > 0 {
		b.log.ErrorContext(ctx, "platform: BYOK keys have no integrity seal although this server seals every one it writes: they were written outside Keyhold and are refused", "keys", left)
	}
	return n, nil
}

// Sealed BYOK tenant state (issue 14, migration 0051). A tenant's lock is
// only byok_tenants.locked_at (and its environments Disabled), so the row
// carries a seal under the master key (crypt.RecordKey.SealBYOKTenant):
// a database writer who clears locked_at, or the seal, can't undo an
// administrator's lock. Every read in platform goes through byokTenantIn
// and every write through putBYOKTenant. A tenant that never held a BYOK
// key has no row (a zero state, unsealed): that is accepted only while it
// holds no key, and its first key writes a sealed state (startBYOKTenant),
// so deleting the row of a tenant with keys is refused too.

// byokTenantIn reads tenantID's BYOK state in tx and checks its seal: a
// state that fails it is CodeRecordIntegrity, which every caller treats
// as refusing (never as unlocked) and audits (auditTamper).
func byokTenantIn(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID string) (*keyhold.BYOKTenant, error) {
	st, err := tx.BYOKTenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if len(st.MAC) == 0 && st.LockedAt.IsZero() && st.LockedBy == "" && st.RemovalRequestedAt.IsZero() && st.ShredAfter.IsZero() && st.ShreddedAt.IsZero() {
		ks, err := tx.BYOKKeys(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		if len(ks) == 0 {
			return st, nil // never held a BYOK key
		}
	}
	if err := rec.CheckBYOKTenant(st); err != nil {
		return nil, err
	}
	return st, nil
}

// putBYOKTenant seals st and writes it in tx.
func putBYOKTenant(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, st *keyhold.BYOKTenant) error {
	rec.SealBYOKTenant(st)
	return tx.PutBYOKTenant(ctx, st)
}

// startBYOKTenant writes, in tx, the sealed state of a tenant about to
// get its first BYOK key (ks are its keys so far): from then on its state
// must be sealed (byokTenantIn).
func startBYOKTenant(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID string, ks []*keyhold.BYOKKey) error {
	if len(ks) > 0 {
		return nil
	}
	st, err := byokTenantIn(ctx, tx, rec, tenantID)
	if err != nil || len(st.MAC) > 0 {
		return err
	}
	return putBYOKTenant(ctx, tx, rec, st)
}

// sealBYOKTenants seals, at start-up, the BYOK states of tenants that
// hold keys (or a state) written before states were sealed (migration
// 0051), auditing each (integrity.seal); only while no state has a seal,
// as sealBYOKKeys: once one has, an unsealed state was written outside
// Keyhold and stays refused.
func (b *BYOK) sealBYOKTenants(ctx context.Context) (int, error) {
	n, left := 0, 0
	err := b.store.Update(ctx, func(tx keyhold.Tx) error {
		n, left = 0, 0
		tenants, err := tx.ListTenants(ctx)
		if err != nil {
			return err
		}
		var todo []*keyhold.BYOKTenant
		sealed := false
		for _, t := range tenants {
			st, err := tx.BYOKTenant(ctx, t.ID)
			if err != nil {
				return err
			}
			if len(st.MAC) > 0 {
				sealed = true
				continue
			}
			if _, err := byokTenantIn(ctx, tx, b.rec, t.ID); err == nil {
				continue // never held a key: nothing to seal
			}
			todo = append(todo, st)
		}
		if sealed {
			left = len(todo)
			return nil
		}
		for _, st := range todo {
			if err := putBYOKTenant(ctx, tx, b.rec, st); err != nil {
				return err
			}
			if _, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: b.clock.Now(), TenantID: st.TenantID, ActorID: systemActorID,
				Action: "integrity.seal", Target: byokTarget(st.TenantID, ""),
				Detail: "BYOK state sealed at the first start after the upgrade to sealed BYOK states"}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sealing the BYOK tenant states written before this version: %w", err)
	}
	if n > 0 {
		b.log.WarnContext(ctx, "platform: sealed the BYOK tenant states written before this version; check the audit entries integrity.seal if the database may have been written by others before the upgrade", "tenants", n)
	}
	if left > 0 {
		b.log.ErrorContext(ctx, "platform: BYOK tenant states have no integrity seal although this server seals every one it writes: they were written outside Keyhold and are refused", "tenants", left)
	}
	return n, nil
}
