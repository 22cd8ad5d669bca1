package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// The Client's customer-managed key lifecycle methods: it implements
// keyhold.CMKService over HTTPS, and WaitOperation follows an operation to
// its end.

var _ keyhold.CMKService = (*Client)(nil)

// Polling of WaitOperation.
const (
	// defaultPollInterval is the interval when neither the caller nor the
	// server's Retry-After sets one.
	defaultPollInterval = time.Second
	// maxRetryAfter bounds the server's Retry-After.
	maxRetryAfter = time.Minute
	// maxPollFailures is how many polls in a row may fail with
	// CodeServiceUnavailable (a server restarting) before WaitOperation
	// gives up.
	maxPollFailures = 5
)

// LinkPolicy starts linking the environment envID to the Encryption
// enterprise policy whose properties.systemId is systemID, or swapping it
// to that policy. It returns the operation as the server accepted it,
// Running; follow it with WaitOperation. Refusals (the caller lacks a role
// or Reader on the policy, the environment is not a Managed Environment, a
// Trial, or in another region; the policy's key can't be reached) are
// errors, and start nothing.
func (c *Client) LinkPolicy(ctx context.Context, envID, systemID string) (*keyhold.Operation, error) {
	return c.startPolicyOperation(ctx, keyhold.OpLink, envID, systemID)
}

// UnlinkPolicy starts returning the environment envID, linked to the policy
// systemID, to the platform's key. It returns the operation, as
// LinkPolicy does.
func (c *Client) UnlinkPolicy(ctx context.Context, envID, systemID string) (*keyhold.Operation, error) {
	return c.startPolicyOperation(ctx, keyhold.OpUnlink, envID, systemID)
}

// startPolicyOperation posts a link or unlink. The 202 answer holds the
// operation; should it not (a server that answers an empty body, as the
// real service does), the operation is read once from its
// operation-location, and failing that it is reported Running with the id
// that operation-location names, since it has started either way.
func (c *Client) startPolicyOperation(ctx context.Context, action, envID, systemID string) (*keyhold.Operation, error) {
	b, err := json.Marshal(struct {
		SystemID string `json:"SystemId"`
	}{systemID})
	if err != nil {
		return nil, err
	}
	path := bapPrefix + escape("environments", envID, "enterprisePolicies", keyhold.PolicyKindEncryption, action) +
		"?api-version=" + defaultBAPAPIVersion
	op, id, err := c.postOperation(ctx, path, bytes.NewReader(b), "application/json")
	if op != nil || err != nil {
		return op, err
	}
	if op, err = c.GetOperation(ctx, id); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return &keyhold.Operation{ID: id, Kind: action, Target: envID, State: keyhold.OperationRunning}, nil
	}
	return op, nil
}

// postOperation posts a request that answers 202 with an operation. It
// returns the operation when the answer's body holds it, or else the
// operation's id from the operation-location (or Location) header, for the
// caller to fetch from its own server.
func (c *Client) postOperation(ctx context.Context, path string, body io.Reader, contentType string) (*keyhold.Operation, string, error) {
	resp, err := c.send(ctx, "POST", path, body, contentType)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var j operationJSON
	if len(bytes.TrimSpace(b)) > 0 && json.Unmarshal(b, &j) == nil && (j.Name != "" || j.OperationID != "") {
		return fromOperationJSON(&j), "", nil
	}
	id := operationIDFromLocation(resp.Header.Get("operation-location"))
	if id == "" {
		id = operationIDFromLocation(resp.Header.Get("Location"))
	}
	if id == "" {
		return nil, "", badAnswer(resp, "operation-location header", nil)
	}
	return nil, id, nil
}

// operationIDFromLocation returns the operation id that ends an
// operation-location URL (…/scopes/admin/operations/{id}?…), or "". Only the
// id is taken: the client polls its own server, never a URL it was handed.
func operationIDFromLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return ""
	}
	before, id, ok := strings.Cut(u.Path, "/scopes/admin/operations/")
	if !ok || !strings.HasSuffix(before, bapPrefix) || id == "" || strings.Contains(id, "/") {
		return ""
	}
	return id
}

// GetOperation returns an operation of the caller's tenant; CodeNotFound if
// there is none with that id.
func (c *Client) GetOperation(ctx context.Context, id string) (*keyhold.Operation, error) {
	op, _, err := c.getOperation(ctx, id)
	return op, err
}

// getOperation also returns the answer's Retry-After (0 if none).
func (c *Client) getOperation(ctx context.Context, id string) (*keyhold.Operation, time.Duration, error) {
	if id == "" {
		return nil, 0, keyhold.Errorf(keyhold.CodeBadRequest, "the operation id is empty: give the id that starting the operation printed")
	}
	resp, err := c.send(ctx, "GET", operationsPrefix+escape(id), nil, "")
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var j operationJSON
	if err := decodeAnswer(resp, &j); err != nil {
		return nil, 0, err
	}
	return fromOperationJSON(&j), retryAfter(resp), nil
}

// retryAfter reads a Retry-After of whole seconds, at most maxRetryAfter;
// 0 if there is none. (An HTTP date is not used here: the server sends
// seconds.)
func retryAfter(resp *nethttp.Response) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After")))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// WaitOperation polls the operation id until it has finished and returns
// it. It polls every interval `every`, or as the server's Retry-After asks
// if that is longer (every 0: as Retry-After asks, else every second), and
// calls progress, if not nil, with each answer, the last one included.
//
// An operation that Failed is returned with its error as a
// *keyhold.Error (its ErrorCode and ErrorMsg). If ctx ends first,
// WaitOperation returns the operation as last seen and ctx's error. A
// server that can't be reached for a few polls in a row (a restart) is
// waited for; other errors end the wait.
func (c *Client) WaitOperation(ctx context.Context, id string, every time.Duration, progress func(*keyhold.Operation)) (*keyhold.Operation, error) {
	var last *keyhold.Operation
	failures := 0
	for {
		op, wait, err := c.getOperation(ctx, id)
		switch {
		case err == nil:
			failures = 0
			last = op
			if progress != nil {
				progress(op)
			}
			if op.State != keyhold.OperationRunning {
				return op, operationError(op)
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		case keyhold.ErrorCode(err) == keyhold.CodeServiceUnavailable && failures < maxPollFailures:
			failures++
		default:
			return last, err
		}
		wait = max(wait, every)
		if wait <= 0 {
			wait = defaultPollInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// operationError is the error of a Failed operation, a *keyhold.Error with
// the operation's error code and message; nil for any other.
func operationError(op *keyhold.Operation) error {
	if op == nil || op.State != keyhold.OperationFailed {
		return nil
	}
	code, msg := op.ErrorCode, op.ErrorMsg
	if code == "" {
		code = keyhold.CodeInternal
	}
	if msg == "" {
		msg = "no reason was recorded"
	}
	return &keyhold.Error{Code: code, Message: fmt.Sprintf("%s operation %s failed: %s", op.Kind, op.ID, msg)}
}

// PolicyLinks lists the caller's tenant's environments that are linked to
// an enterprise policy, or whose last link or unlink failed.
func (c *Client) PolicyLinks(ctx context.Context) ([]*keyhold.PolicyLink, error) {
	var out listJSON[policyLinkJSON]
	if err := c.do(ctx, "GET", policyLinksPath, nil, &out); err != nil {
		return nil, err
	}
	links := make([]*keyhold.PolicyLink, len(out.Value))
	for i := range out.Value {
		links[i] = fromPolicyLinkJSON(&out.Value[i])
	}
	return links, nil
}

// KeyVersionUsage reports, for each version of the key that the policy
// policyID (its ARM resource id) names, what still depends on it and from
// when it may be disabled. A policyID that is not an enterprise policy's
// resource id is CodeBadRequest.
func (c *Client) KeyVersionUsage(ctx context.Context, policyID string) ([]*keyhold.KeyVersionUsage, error) {
	sub, rg, name, ok := splitPolicyResourceID(policyID)
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "%q is not an enterprise policy's resource id: use /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies/{name}", keyhold.Clip(policyID))
	}
	path := escape("subscriptions", sub, "resourceGroups", rg, "providers", "Microsoft.PowerPlatform", "enterprisePolicies", name, keyVersionUsageName)
	var out listJSON[keyVersionUsageJSON]
	if _, err := c.mgmt(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	usage := make([]*keyhold.KeyVersionUsage, len(out.Value))
	for i := range out.Value {
		usage[i] = fromKeyVersionUsageJSON(&out.Value[i])
	}
	return usage, nil
}

// PolicySystemID returns the properties.systemId of the enterprise policy
// whose ARM resource id is policyID, the id that LinkPolicy and
// UnlinkPolicy take. It reads the policy resource with a management token,
// so the caller needs Reader on it. A policyID that is not an enterprise
// policy's resource id is CodeBadRequest; a policy without a systemId
// (not an Encryption policy) is CodeBadRequest too.
func (c *Client) PolicySystemID(ctx context.Context, policyID string) (string, error) {
	sub, rg, name, ok := splitPolicyResourceID(policyID)
	if !ok {
		return "", keyhold.Errorf(keyhold.CodeBadRequest, "%q is not an enterprise policy's resource id: use /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies/{name}", keyhold.Clip(policyID))
	}
	path := escape("subscriptions", sub, "resourceGroups", rg, "providers", "Microsoft.PowerPlatform", "enterprisePolicies", name) +
		"?api-version=2020-10-30-preview"
	var out struct {
		Kind       string `json:"kind"`
		Properties struct {
			SystemID string `json:"systemId"`
		} `json:"properties"`
	}
	if _, err := c.mgmt(ctx, "GET", path, nil, &out); err != nil {
		return "", err
	}
	if out.Properties.SystemID == "" {
		return "", keyhold.Errorf(keyhold.CodeBadRequest, "enterprise policy %s (kind %q) has no properties.systemId: link an Encryption policy", name, keyhold.Clip(out.Kind))
	}
	return out.Properties.SystemID, nil
}
