package platform

import (
	"context"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
)

// Egress is the tenants' Http allowlists for their flows
// (keyhold.TenantEgressService): the flows package reads them from the
// store and narrows the operator's egress policy with them.
type Egress struct {
	*core
}

var _ keyhold.TenantEgressService = (*Egress)(nil)

const auditTenantEgress = "tenant.egress.update"

// TenantEgress returns the caller's tenant's Http allowlist; the caller
// must be a platform administrator.
func (p *Egress) TenantEgress(ctx context.Context) (*keyhold.TenantEgress, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var e *keyhold.TenantEgress
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		e, err = tx.TenantEgress(ctx, id.TenantID)
		return err
	})
	return e, err
}

// SetTenantEgress replaces the caller's tenant's Http allowlist (empty:
// none). Entries are trimmed, deduplicated and checked as the egress
// package reads them: a bad one is refused quoting it, and nothing
// changes. The change is audited.
func (p *Egress) SetTenantEgress(ctx context.Context, allow []string) (*keyhold.TenantEgress, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var list []string
	for _, a := range allow {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	if len(list) > keyhold.MaxTenantEgressEntries {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the allowlist has %d entries: at most %d; use CIDRs to cover ranges", len(list), keyhold.MaxTenantEgressEntries)
	}
	if _, err := egress.Default().Restrict(list, keyhold.TenantEgressSetting); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "%s", err.Error())
	}
	if list == nil {
		list = []string{}
	}
	e := &keyhold.TenantEgress{TenantID: id.TenantID, Allow: list, UpdatedAt: p.clock.Now().UTC(), UpdatedBy: id.PrincipalID}
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		if err := tx.PutTenantEgress(ctx, e); err != nil {
			return err
		}
		detail := "allow=" + strings.Join(list, ",")
		if len(list) == 0 {
			detail = "no allowlist: the operator's egress policy only"
		}
		return p.audit(ctx, tx, id, auditTenantEgress, "/tenants/"+id.TenantID+"/egress", "", detail)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}
