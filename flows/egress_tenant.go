package flows

import (
	"context"
	"slices"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
)

// tenantPolicy is a tenant's allowlist as applied: the operator's policy
// narrowed by it, as of the setting's last change.
type tenantPolicy struct {
	at    time.Time
	allow []string
	p     *egress.Policy
}

// tenantPolicy returns the egress policy of a tenant's Http actions:
// Config.EgressFor's if it gives one; else the operator's (Config.Egress)
// narrowed by the tenant's stored allowlist (keyhold.TenantEgress), so
// the operator's refusals still apply and a refusal by the tenant's list
// names its setting. The store is read at each call (a change applies to
// the next Http action); the narrowed policy, and its client, are kept
// until the setting changes.
func (s *Service) tenantPolicy(ctx context.Context, tenantID string) (*egress.Policy, error) {
	if s.cfg.EgressFor != nil {
		if p := s.cfg.EgressFor(tenantID); p != nil {
			return p, nil
		}
	}
	var e *keyhold.TenantEgress
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		e, err = tx.TenantEgress(ctx, tenantID)
		return err
	}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.tenants[tenantID]
	if cur != nil && cur.at.Equal(e.UpdatedAt) && slices.Equal(cur.allow, e.Allow) {
		return cur.p, nil
	}
	if cur != nil {
		delete(s.clients, cur.p) // the old list's client goes with it
		delete(s.tenants, tenantID)
	}
	if len(e.Allow) == 0 {
		return s.cfg.Egress, nil
	}
	p, err := s.cfg.Egress.Restrict(e.Allow, keyhold.TenantEgressSetting)
	if err != nil {
		return nil, actionErr("EgressSettingInvalid", 400, false, "the tenant's stored Http allowlist is not valid (%s): set it again with %s", err.Error(), keyhold.TenantEgressSetting)
	}
	s.tenants[tenantID] = &tenantPolicy{at: e.UpdatedAt, allow: e.Allow, p: p}
	return p, nil
}
