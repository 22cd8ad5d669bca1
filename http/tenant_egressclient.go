package http

import (
	"context"

	"github.com/keyhold/keyhold"
)

var _ keyhold.TenantEgressClient = (*Client)(nil)

// TenantEgress returns the caller's tenant's Http allowlist.
func (c *Client) TenantEgress(ctx context.Context) (*keyhold.TenantEgress, error) {
	var out keyhold.TenantEgress
	if err := c.doFlow(ctx, "GET", tenantEgressPath, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetTenantEgress replaces the caller's tenant's Http allowlist (empty:
// none).
func (c *Client) SetTenantEgress(ctx context.Context, allow []string) (*keyhold.TenantEgress, error) {
	if allow == nil {
		allow = []string{}
	}
	var out keyhold.TenantEgress
	if err := c.doFlow(ctx, "PUT", tenantEgressPath, map[string]any{"allow": allow}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
