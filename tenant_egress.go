package keyhold

import (
	"context"
	"time"
)

// TenantEgressSetting names the tenant's Http allowlist in refusals: the
// command that changes it.
const TenantEgressSetting = "keyhold tenant egress set (the tenant's Http allowlist)"

// MaxTenantEgressEntries bounds a tenant's Http allowlist.
const MaxTenantEgressEntries = 100

// TenantEgress is a tenant's allowlist for its flows' Http action: CIDRs,
// addresses and host names (package egress reads them). Empty: no
// restriction beyond the operator's egress policy. When set, an Http
// action may reach only what it lists, and still only what the operator's
// policy allows (the operator's refusals apply on top).
type TenantEgress struct {
	TenantID  string    `json:"tenantId"`
	Allow     []string  `json:"allow"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	UpdatedBy string    `json:"updatedBy,omitempty"`
}

// TenantEgressTx is the part of a store transaction that holds tenants'
// Http allowlists. TenantEgress answers an empty one (zero UpdatedAt) for a
// tenant that has none; PutTenantEgress replaces it.
type TenantEgressTx interface {
	TenantEgress(ctx context.Context, tenantID string) (*TenantEgress, error)
	PutTenantEgress(ctx context.Context, e *TenantEgress) error
}

// TenantEgressService shows and sets the caller's tenant's Http allowlist
// (platform, served by http, and the http Client). The caller must be a
// platform administrator of the tenant.
type TenantEgressService interface {
	TenantEgress(ctx context.Context) (*TenantEgress, error)
	// SetTenantEgress replaces the allowlist (empty: no restriction). An
	// entry that is not a CIDR, an address or a host name is
	// CodeInvalidRequestContent quoting it, and nothing changes.
	SetTenantEgress(ctx context.Context, allow []string) (*TenantEgress, error)
}
