package sqlstore

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold"
)

// SCAFFOLD: the enterprise policy table (issue 4); the policy helper
// replaces this file.

var errPolicyNotImplemented = errors.New("sqlstore: enterprise policies not implemented yet")

func (t *tx) CreatePolicy(ctx context.Context, p *keyhold.EnterprisePolicy) error {
	return errPolicyNotImplemented
}

func (t *tx) Policy(ctx context.Context, sub, rg, name string) (*keyhold.EnterprisePolicy, error) {
	return nil, errPolicyNotImplemented
}

func (t *tx) PolicyBySystemID(ctx context.Context, systemID string) (*keyhold.EnterprisePolicy, error) {
	return nil, errPolicyNotImplemented
}

func (t *tx) UpdatePolicy(ctx context.Context, p *keyhold.EnterprisePolicy) error {
	return errPolicyNotImplemented
}

func (t *tx) DeletePolicy(ctx context.Context, sub, rg, name string) error {
	return errPolicyNotImplemented
}

func (t *tx) ListPolicies(ctx context.Context, f keyhold.PolicyFilter) ([]*keyhold.EnterprisePolicy, error) {
	return nil, errPolicyNotImplemented
}
