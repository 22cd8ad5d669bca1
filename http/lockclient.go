package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"

	"github.com/keyhold/keyhold"
)

// EnableEnvironment re-enables the Locked environment envID, once the key
// of its enterprise policy is accessible again, and returns the operation
// that records it (Succeeded: the server re-enables at once). Refusals are
// errors and change nothing: CodeConflict if the environment is not
// Locked, CodeForbidden without the administrator role or Reader on the
// policy, and the key vault's code (Forbidden, KeyNotFound, …) while the
// key still can't be used, the environment staying locked.
func (c *Client) EnableEnvironment(ctx context.Context, envID string) (*keyhold.Operation, error) {
	path := adminEnvPrefix + escape(envID, enableAction) + "?api-version=" + defaultBAPAPIVersion
	resp, err := c.send(ctx, "POST", path, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var j operationJSON
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &j) == nil && (j.Name != "" || j.OperationID != "") {
		return fromOperationJSON(&j), nil
	}
	id := operationIDFromLocation(resp.Header.Get("operation-location"))
	if id == "" {
		id = operationIDFromLocation(resp.Header.Get("Location"))
	}
	if id == "" {
		return nil, badAnswer(resp, "operation-location header", nil)
	}
	return c.GetOperation(ctx, id)
}
