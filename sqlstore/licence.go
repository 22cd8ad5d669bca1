package sqlstore

import (
	"context"

	"github.com/keyhold/keyhold"
)

// AddLicence stores a tenant's licence: CodeConflict if the tenant holds
// one of that name (in any case), CodeNotFound if the tenant is unknown.
func (t *tx) AddLicence(ctx context.Context, l *keyhold.Licence) error {
	if err := checkTimes(l.AddedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO tenant_licences (tenant_id, name_key, name, added_by, added_at) VALUES (?, ?, ?, ?, ?)`,
		l.TenantID, key(l.Name), l.Name, l.AddedBy, nanos(l.AddedAt))
	switch {
	case err == nil:
		return nil
	case t.class(err) == ErrUnique:
		return keyhold.Errorf(keyhold.CodeConflict, "tenant %s already holds licence %q", l.TenantID, l.Name).WithCause(err)
	case t.class(err) == ErrForeignKey:
		return keyhold.Errorf(keyhold.CodeNotFound, "tenant %q not found", l.TenantID).WithCause(err)
	}
	return t.fail("add licence", err)
}

// RemoveLicence removes a tenant's licence, or answers CodeNotFound.
func (t *tx) RemoveLicence(ctx context.Context, tenantID, name string) error {
	n, err := t.execN(ctx, `DELETE FROM tenant_licences WHERE tenant_id = ? AND name_key = ?`, tenantID, key(name))
	if err != nil {
		return t.fail("remove licence", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "tenant %s holds no licence %q", tenantID, name)
	}
	return nil
}

// ListLicences lists a tenant's licences by name.
func (t *tx) ListLicences(ctx context.Context, tenantID string) ([]*keyhold.Licence, error) {
	return list(t, ctx, "list licences", func(sc scanner) (*keyhold.Licence, error) {
		l := &keyhold.Licence{}
		err := sc.Scan(&l.TenantID, &l.Name, &l.AddedBy, timeCol{&l.AddedAt})
		return l, err
	}, `SELECT tenant_id, name, added_by, added_at FROM tenant_licences WHERE tenant_id = ? ORDER BY name_key`, tenantID)
}
