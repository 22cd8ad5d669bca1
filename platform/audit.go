package platform

import (
	"context"

	"github.com/keyhold/keyhold"
)

// ListAudit lists the caller's tenant's audit entries, newest first.
// Reading the audit log needs an administrator role.
func (p *Environments) ListAudit(ctx context.Context, f keyhold.AuditFilter) ([]*keyhold.AuditEntry, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	f.TenantID = id.TenantID
	var entries []*keyhold.AuditEntry
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		entries, err = tx.ListAudit(ctx, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The environment's own entries are opened with its key, outside the
	// transaction (an unwrap may reach the customer's vault).
	if err := p.openAudit(ctx, entries); err != nil {
		return nil, err
	}
	return entries, nil
}
