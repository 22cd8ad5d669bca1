package http

import (
	"context"

	"github.com/keyhold/keyhold"
)

// EnableEnvironmentOp re-enables the Locked environment envID, once the key
// of its enterprise policy is accessible again, and returns the operation
// that records it (Succeeded: the server re-enables at once). Refusals are
// errors and change nothing: CodeConflict if the environment is not
// Locked, CodeForbidden without the administrator role or Reader on the
// policy, and the key vault's code (Forbidden, KeyNotFound, …) while the
// key still can't be used, the environment staying locked. It is the
// root's keyhold.EnvironmentEnabler, as the server's Health implements it.
func (c *Client) EnableEnvironmentOp(ctx context.Context, envID string) (*keyhold.Operation, error) {
	path := adminEnvPrefix + escape(envID, enableAction) + "?api-version=" + defaultBAPAPIVersion
	op, id, err := c.postOperation(ctx, path, nil, "")
	if op != nil || err != nil {
		return op, err
	}
	return c.GetOperation(ctx, id)
}
