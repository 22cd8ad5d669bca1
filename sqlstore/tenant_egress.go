package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/keyhold/keyhold"
)

// TenantEgress returns a tenant's Http allowlist, or an empty one.
func (t *tx) TenantEgress(ctx context.Context, tenantID string) (*keyhold.TenantEgress, error) {
	e, err := get(t, ctx, "get tenant egress", func(sc scanner) (*keyhold.TenantEgress, error) {
		e := &keyhold.TenantEgress{}
		var allow string
		if err := sc.Scan(&e.TenantID, &allow, timeCol{&e.UpdatedAt}, &e.UpdatedBy); err != nil {
			return nil, err
		}
		return e, json.Unmarshal([]byte(allow), &e.Allow)
	}, `SELECT tenant_id, allow, updated_at, updated_by FROM tenant_egress WHERE tenant_id = ?`, tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return &keyhold.TenantEgress{TenantID: tenantID, Allow: []string{}}, nil
	} else if err != nil {
		return nil, err
	}
	return e, nil
}

// PutTenantEgress stores e, replacing the tenant's allowlist.
func (t *tx) PutTenantEgress(ctx context.Context, e *keyhold.TenantEgress) error {
	if err := checkTimes(e.UpdatedAt); err != nil {
		return err
	}
	allow := e.Allow
	if allow == nil {
		allow = []string{}
	}
	b, err := json.Marshal(allow)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, `INSERT INTO tenant_egress (tenant_id, allow, updated_at, updated_by) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET allow = excluded.allow, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		e.TenantID, string(b), nanos(e.UpdatedAt), e.UpdatedBy); err != nil {
		return t.fail("put tenant egress", err)
	}
	return nil
}
