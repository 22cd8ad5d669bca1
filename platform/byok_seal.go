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
