package platform

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// PreMigration is the run history not carried forward at a link (issue
// 16, spec 004: "Run History isn't carried forward. You can request it
// through a support ticket up to 30 days after migration"). The link's
// re-key (rekey_flows.go) moves the finished runs of the flows that go to
// the customer key into a partition of their own: a fresh random key per
// (environment, link), wrapped by the platform key with the environment
// and the link bound in, in flow_premigration_keys; the runs, sealed
// under it, in flow_premigration_runs, where no run listing, retention or
// engine looks. Platform administrators read them (every read audited)
// until the key expires, 30 days after the link; then Shred deletes the
// key, which makes the runs unreadable, and then the runs.
//
// It is its own small type, not methods on core (at its size limit) or
// Environments.
type PreMigration struct {
	*core
}

var _ keyhold.PreMigrationService = (*PreMigration)(nil)

// auditPreMigrationRead is the audit action of a read of pre-migration
// runs.
const auditPreMigrationRead = "flow.preMigrationRuns.read"

// premigrationKey returns the item key of the pre-migration partition
// partitionID of envID, making and storing the partition's key first if
// it has none (the re-key at a link; a step run again finds the one it
// stored). The caller destroys it.
func premigrationKey(ctx context.Context, p *core, envID, partitionID string) (*crypt.StoreKey, error) {
	for attempt := 0; ; attempt++ {
		var k *keyhold.PreMigrationKey
		err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
			k, err = tx.PreMigrationKey(ctx, envID, partitionID)
			return err
		})
		if err == nil {
			return openPremigrationKey(p, k)
		}
		if keyhold.ErrorCode(err) != keyhold.CodeNotFound || attempt > 0 {
			return nil, err
		}
		fresh, err := crypt.NewKey()
		if err != nil {
			return nil, err
		}
		wrapped, err := p.mmk.WrapPartitionKey(envID, partitionID, fresh)
		fresh.Destroy()
		if err != nil {
			return nil, err
		}
		now := p.clock.Now().UTC()
		k = &keyhold.PreMigrationKey{EnvID: envID, PartitionID: partitionID, KeyID: p.mmk.KeyID(), Wrapped: wrapped,
			CreatedAt: now, ExpiresAt: now.Add(keyhold.PreMigrationRetention)}
		err = p.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutPreMigrationKey(ctx, k) })
		if err != nil && keyhold.ErrorCode(err) != keyhold.CodeConflict {
			return nil, err
		}
		// Stored, or stored by a concurrent run of the step: read it back.
	}
}

func openPremigrationKey(p *core, k *keyhold.PreMigrationKey) (*crypt.StoreKey, error) {
	if k.KeyID != p.mmk.KeyID() {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "the pre-migration partition %s of environment %s is wrapped by %s, not the platform key %s", k.PartitionID, k.EnvID, k.KeyID, p.mmk.KeyID())
	}
	key, err := p.mmk.UnwrapPartitionKey(k.EnvID, k.PartitionID, k.Wrapped)
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "the key of pre-migration partition %s of environment %s failed its integrity check", k.PartitionID, k.EnvID).WithCause(err)
	}
	defer key.Destroy()
	return crypt.DerivePreMigrationKey(key, k.EnvID, keyhold.StorePreMigration)
}

// PreMigrationRuns returns every pre-migration run of the environment
// with its content, oldest partition first. Only a platform administrator
// of the environment's tenant may read them, and each read is audited
// (who, which runs) before anything is returned. A partition past its 30
// days is not read even before the sweeper has shredded it: with no other
// partition, the read is refused (CodePreMigrationRunsExpired).
func (p *PreMigration) PreMigrationRuns(ctx context.Context, envID string) ([]*keyhold.PreMigrationRun, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var keys []*keyhold.PreMigrationKey
	var runs = map[string][]*keyhold.PreMigrationRunRecord{}
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		env, err := tx.Environment(ctx, envID)
		if err != nil || env.TenantID != id.TenantID {
			return keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found in tenant %s: list environments to find its id", keyhold.Clip(envID), id.TenantID)
		}
		if err := requirePlatformAdmin(ctx, tx, id, fmt.Sprintf("read the run history kept from before environment %s's link to a customer-managed key", envID)); err != nil {
			return err
		}
		if keys, err = tx.PreMigrationKeys(ctx, envID); err != nil {
			return err
		}
		for _, k := range keys {
			if runs[k.PartitionID], err = tx.PreMigrationRuns(ctx, envID, k.PartitionID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A partition past its 30 days is never read; only when every one is
	// (a later link's partition may still be readable) is the read
	// refused, naming the last expiry.
	now := p.clock.Now()
	live := keys[:0:0]
	var expired *keyhold.PreMigrationKey
	for _, k := range keys {
		if now.Before(k.ExpiresAt) {
			live = append(live, k)
		} else {
			expired = k
		}
	}
	if len(live) == 0 && expired != nil {
		return nil, keyhold.Errorf(keyhold.CodePreMigrationRunsExpired, "the run history kept from before environment %s's link (operation %s) expired at %s, 30 days after the link, and is crypto-shredded: it can no longer be read", envID, expired.PartitionID, expired.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	keys = live
	out := []*keyhold.PreMigrationRun{}
	var names []string
	for _, k := range keys {
		sk, err := openPremigrationKey(p.core, k)
		if err != nil {
			return nil, err
		}
		for _, r := range runs[k.PartitionID] {
			pt, err := sk.Open(keyhold.FlowRunItemID(r.FlowID, r.ID), r.StateVersion, r.Sealed)
			if err != nil {
				sk.Destroy()
				return nil, keyhold.Errorf(keyhold.CodeInternal, "pre-migration run %s of flow %s failed its integrity check and was not returned", r.ID, r.FlowID).WithCause(err)
			}
			out = append(out, &keyhold.PreMigrationRun{FlowID: r.FlowID, ID: r.ID, Migration: k.PartitionID, Status: r.Status, TriggerName: r.TriggerName,
				StartTime: r.StartedAt, EndTime: r.EndedAt, ExpiresAt: k.ExpiresAt, Content: pt})
			names = append(names, r.FlowID+"/"+r.ID)
		}
		sk.Destroy()
	}
	detail := fmt.Sprintf("read %d pre-migration runs", len(names))
	if len(names) > 0 {
		detail += ": " + strings.Join(names, ", ")
	}
	if err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		return p.audit(ctx, tx, id, auditPreMigrationRead, envTarget(envID)+"/preMigrationRuns", envID, keyhold.Clip(detail))
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// requirePlatformAdmin refuses a caller that is not a platform
// administrator of its tenant, saying what it may not do.
func requirePlatformAdmin(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, what string) error {
	roles, err := tx.DirectoryRoles(ctx, id.TenantID, id.PrincipalID)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if r.IsPlatformAdmin() {
			return nil
		}
	}
	return keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not %s: only a platform administrator of tenant %s may; ask one, or to be assigned the role", id.PrincipalID, what, id.TenantID)
}

// Shred crypto-shreds the pre-migration partitions past their 30 days:
// each key is deleted first, in its own transaction, which makes its
// runs unreadable at once; then the runs whose key is gone are deleted
// (also those a crash left after their key). It says how many partitions
// it shredded. The server runs it with the other periodic deletions.
func (p *PreMigration) Shred(ctx context.Context) (int, error) {
	var keys []*keyhold.PreMigrationKey
	if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		keys, err = tx.ExpiredPreMigrationKeys(ctx, p.clock.Now(), 100)
		return err
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if err := p.store.Update(ctx, func(tx keyhold.Tx) error {
			if err := tx.DeletePreMigrationKey(ctx, k.EnvID, k.PartitionID); err != nil {
				return err
			}
			_, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: p.clock.Now(), TenantID: envTenant(ctx, tx, k.EnvID), ActorID: systemActorID,
				Action: "flow.preMigrationRuns.shred", Target: envTarget(k.EnvID) + "/preMigrationRuns", EnvID: k.EnvID,
				Detail: fmt.Sprintf("deleted the key of the run history kept from before the link (operation %s), 30 days after it: its runs can no longer be read", k.PartitionID)})
			return err
		}); err != nil {
			return n, err
		}
		n++
	}
	for {
		var deleted int
		if err := p.store.Update(ctx, func(tx keyhold.Tx) (err error) {
			deleted, err = tx.DeleteShreddedPreMigrationRuns(ctx, 500)
			return err
		}); err != nil {
			return n, err
		}
		if deleted < 500 {
			return n, nil
		}
	}
}

// envTenant is the tenant of envID, "" if it is gone.
func envTenant(ctx context.Context, tx keyhold.Tx, envID string) string {
	if env, err := tx.Environment(ctx, envID); err == nil {
		return env.TenantID
	}
	return ""
}
