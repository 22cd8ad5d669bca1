package platform

import (
	"context"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// The retained BYOK key (issue 14, spec 000). After an environment
// migrates from the tenant's BYOK key to a customer-managed key, the BYOK
// key is kept at least keyhold.BYOKKeyRetention (byok_remove.go) so that
// support can restore a backup from before the migration. Until it is
// shredded, the policy's key-version usage (keyusage.go) and the
// environment's coverage report (coverage.go) show it, with the backups
// it is kept for and its shred date, so that an administrator sees what
// still depends on the old key and when it goes.

// retainedBYOK returns, read in tx, the BYOK keys of tenantID that the
// environments envIDs migrated off and that are still kept, oldest
// migration first; none once the tenant's keys are shredded.
func retainedBYOK(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, tenantID string, envIDs []string) ([]*keyhold.RetainedBYOKKey, error) {
	set, err := byokSetIn(ctx, tx, rec, tenantID) // byok_seal.go
	if err != nil || !set.st.ShreddedAt.IsZero() {
		return nil, err
	}
	st := set.st
	last, _, err := tx.LastBYOKMigration(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	shred := last.Add(keyhold.BYOKKeyRetention)
	if st.ShredAfter.After(shred) {
		shred = st.ShredAfter
	}
	byKey := map[string]*keyhold.RetainedBYOKKey{}
	var out []*keyhold.RetainedBYOKKey
	for _, envID := range envIDs {
		m, err := tx.BYOKMigration(ctx, envID)
		if err != nil {
			return nil, err
		}
		if m == nil || m.TenantID != tenantID {
			continue
		}
		r := byKey[m.KeyID]
		if r == nil {
			k, err := set.key(m.KeyID)
			if keyhold.IsNotFound(err) {
				continue // shredded
			} else if err != nil {
				return nil, err
			}
			r = &keyhold.RetainedBYOKKey{KeyID: byokKIDPrefix + k.ID, Thumbprint: k.Thumbprint, State: k.State,
				ShredAfter: shred.UTC(), RemovalRequested: !st.RemovalRequestedAt.IsZero()}
			byKey[m.KeyID] = r
			out = append(out, r)
		}
		if m.MigratedAt.After(r.MigratedAt) {
			r.MigratedAt = m.MigratedAt.UTC()
		}
		bs, err := tx.ListBackups(ctx, envID)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			if b.CreatedAt.Before(m.MigratedAt) {
				r.PreMigrationBackups++
			}
		}
	}
	slices.SortFunc(out, func(a, b *keyhold.RetainedBYOKKey) int { return a.MigratedAt.Compare(b.MigratedAt) })
	return out, nil
}

// retainedBYOKUsage is retainedBYOK for the environments of pol's tenant
// now linked to pol, as key-version usage entries (see
// keyhold.KeyVersionUsage.RetainedBYOK).
func retainedBYOKUsage(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, pol *keyhold.EnterprisePolicy) ([]*keyhold.KeyVersionUsage, error) {
	envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: pol.TenantID})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range envs {
		if strings.EqualFold(e.PolicyID, pol.ID()) {
			ids = append(ids, e.ID)
		}
	}
	rs, err := retainedBYOK(ctx, tx, rec, pol.TenantID, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*keyhold.KeyVersionUsage, 0, len(rs))
	for _, r := range rs {
		out = append(out, &keyhold.KeyVersionUsage{KeyID: r.KeyID, Version: r.KeyID, Backups: r.PreMigrationBackups,
			LastUsedAt: r.MigratedAt, SafeToDisableAt: r.ShredAfter, RetainedBYOK: r})
	}
	return out, nil
}
