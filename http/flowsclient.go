package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"
	"net/url"

	"github.com/keyhold/keyhold"
)

// The Client's flows methods: it implements keyhold.FlowService over
// HTTPS (flows.go has the routes), with tokens for Power Automate's
// audience.

var _ keyhold.FlowService = (*Client)(nil)

const flowScope = string(keyhold.AudienceFlow) + "/.default"

// doFlow is do with a Power Automate token.
func (c *Client) doFlow(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.sendAs(ctx, flowScope, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeAnswer(resp, out)
}

func needIDs(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := needID(pairs[i], pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) flowAt(ctx context.Context, method, envID, flowID string, in any) (*keyhold.Flow, error) {
	if err := needIDs("environment", envID, "flow", flowID); err != nil {
		return nil, err
	}
	var out resourceJSON[*keyhold.Flow]
	path := flowPath(envID, flowID)
	switch method {
	case "START":
		method, path = "POST", path+"/start"
	case "STOP":
		method, path = "POST", path+"/stop"
	}
	if err := c.doFlow(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	if out.Properties == nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "the server answered a flow without properties")
	}
	out.Properties.EnvID, out.Properties.ID = envID, out.Name
	return out.Properties, nil
}

// PutFlow creates or replaces a flow.
func (c *Client) PutFlow(ctx context.Context, envID, flowID string, in *keyhold.FlowInput) (*keyhold.Flow, error) {
	return c.flowAt(ctx, "PUT", envID, flowID, map[string]any{"properties": in})
}

// PatchFlow changes the fields of in that are set.
func (c *Client) PatchFlow(ctx context.Context, envID, flowID string, in *keyhold.FlowInput) (*keyhold.Flow, error) {
	return c.flowAt(ctx, "PATCH", envID, flowID, map[string]any{"properties": in})
}

// GetFlow returns a flow with its definition.
func (c *Client) GetFlow(ctx context.Context, envID, flowID string) (*keyhold.Flow, error) {
	return c.flowAt(ctx, "GET", envID, flowID, nil)
}

// SetFlowState starts or stops a flow.
func (c *Client) SetFlowState(ctx context.Context, envID, flowID, state string) (*keyhold.Flow, error) {
	if state == keyhold.FlowStopped {
		return c.flowAt(ctx, "STOP", envID, flowID, nil)
	}
	return c.flowAt(ctx, "START", envID, flowID, nil)
}

// ListFlows lists an environment's flows.
func (c *Client) ListFlows(ctx context.Context, envID string) ([]*keyhold.Flow, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	var out listJSON[resourceJSON[*keyhold.Flow]]
	if err := c.doFlow(ctx, "GET", flowsPrefix+escape(envID, "flows"), nil, &out); err != nil {
		return nil, err
	}
	fs := make([]*keyhold.Flow, 0, len(out.Value))
	for _, f := range out.Value {
		if f.Properties != nil {
			f.Properties.EnvID, f.Properties.ID = envID, f.Name
			fs = append(fs, f.Properties)
		}
	}
	return fs, nil
}

// DeleteFlow deletes a flow and its runs.
func (c *Client) DeleteFlow(ctx context.Context, envID, flowID string) error {
	if err := needIDs("environment", envID, "flow", flowID); err != nil {
		return err
	}
	return c.doFlow(ctx, "DELETE", flowPath(envID, flowID), nil, nil)
}

func (c *Client) runAt(ctx context.Context, method, path, envID, flowID string, in any) (*keyhold.FlowRun, error) {
	var out resourceJSON[*keyhold.FlowRun]
	if err := c.doFlow(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	if out.Properties == nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "the server answered a run without properties")
	}
	out.Properties.EnvID, out.Properties.FlowID, out.Properties.ID = envID, flowID, out.Name
	return out.Properties, nil
}

// RunTrigger runs a flow's manual trigger with body.
func (c *Client) RunTrigger(ctx context.Context, envID, flowID, trigger string, body json.RawMessage) (*keyhold.FlowRun, error) {
	if err := needIDs("environment", envID, "flow", flowID, "trigger", trigger); err != nil {
		return nil, err
	}
	var in any
	if len(body) > 0 {
		in = body
	}
	return c.runAt(ctx, "POST", flowPath(envID, flowID)+escape("triggers", trigger, "run"), envID, flowID, in)
}

// CallbackURL returns a request trigger's signed invoke URL.
func (c *Client) CallbackURL(ctx context.Context, envID, flowID, trigger string, regenerate bool) (*keyhold.FlowCallback, error) {
	if err := needIDs("environment", envID, "flow", flowID, "trigger", trigger); err != nil {
		return nil, err
	}
	path := flowPath(envID, flowID) + escape("triggers", trigger, "listCallbackUrl")
	if regenerate {
		path += "?regenerate=true"
	}
	var out keyhold.FlowCallback
	if err := c.doFlow(ctx, "POST", path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// InvokeTrigger posts body to a request trigger's invoke URL with sig,
// without a token.
func (c *Client) InvokeTrigger(ctx context.Context, envID, flowID, trigger string, sig keyhold.FlowSignature, body json.RawMessage) (*keyhold.FlowResponse, error) {
	q := url.Values{"api-version": {sig.APIVersion}, "sp": {sig.SP}, "sv": {sig.SV}, "sig": {sig.Sig}}
	u := c.base + flowPath(envID, flowID) + escape("triggers", trigger, "paths", "invoke") + "?" + q.Encode()
	req, err := newRequest(ctx, "POST", u, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, decodeError(resp)
	}
	out := &keyhold.FlowResponse{StatusCode: resp.StatusCode, Headers: map[string]string{}, RunID: resp.Header.Get("x-ms-workflow-run-id")}
	for k := range resp.Header {
		out.Headers[k] = resp.Header.Get(k)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, keyhold.MaxTriggerBodyBytes))
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		var v any
		if json.Unmarshal(data, &v) == nil {
			out.Body = v
		} else {
			out.Body = string(data)
		}
	}
	return out, nil
}

// ListRuns lists a flow's runs, newest first.
func (c *Client) ListRuns(ctx context.Context, envID, flowID string) ([]*keyhold.FlowRun, error) {
	if err := needIDs("environment", envID, "flow", flowID); err != nil {
		return nil, err
	}
	var out listJSON[resourceJSON[*keyhold.FlowRun]]
	if err := c.doFlow(ctx, "GET", flowPath(envID, flowID)+"/runs", nil, &out); err != nil {
		return nil, err
	}
	rs := make([]*keyhold.FlowRun, 0, len(out.Value))
	for _, r := range out.Value {
		if r.Properties != nil {
			r.Properties.EnvID, r.Properties.FlowID, r.Properties.ID = envID, flowID, r.Name
			rs = append(rs, r.Properties)
		}
	}
	return rs, nil
}

// GetRun returns a run.
func (c *Client) GetRun(ctx context.Context, envID, flowID, runID string) (*keyhold.FlowRun, error) {
	if err := needIDs("environment", envID, "flow", flowID, "run", runID); err != nil {
		return nil, err
	}
	return c.runAt(ctx, "GET", flowPath(envID, flowID)+escape("runs", runID), envID, flowID, nil)
}

// RunActions lists a run's actions.
func (c *Client) RunActions(ctx context.Context, envID, flowID, runID string) ([]*keyhold.FlowRunAction, error) {
	if err := needIDs("environment", envID, "flow", flowID, "run", runID); err != nil {
		return nil, err
	}
	var out listJSON[resourceJSON[*keyhold.FlowRunAction]]
	if err := c.doFlow(ctx, "GET", flowPath(envID, flowID)+escape("runs", runID, "actions"), nil, &out); err != nil {
		return nil, err
	}
	as := make([]*keyhold.FlowRunAction, 0, len(out.Value))
	for _, a := range out.Value {
		if a.Properties != nil {
			a.Properties.Name = a.Name
			as = append(as, a.Properties)
		}
	}
	return as, nil
}

// CancelRun cancels a running run.
func (c *Client) CancelRun(ctx context.Context, envID, flowID, runID string) (*keyhold.FlowRun, error) {
	if err := needIDs("environment", envID, "flow", flowID, "run", runID); err != nil {
		return nil, err
	}
	return c.runAt(ctx, "POST", flowPath(envID, flowID)+escape("runs", runID, "cancel"), envID, flowID, nil)
}

// ResubmitRun runs the flow again with a run's trigger outputs.
func (c *Client) ResubmitRun(ctx context.Context, envID, flowID, runID string) (*keyhold.FlowRun, error) {
	if err := needIDs("environment", envID, "flow", flowID, "run", runID); err != nil {
		return nil, err
	}
	return c.runAt(ctx, "POST", flowPath(envID, flowID)+escape("runs", runID, "resubmit"), envID, flowID, nil)
}

func connPath(envID, api, name string) string {
	return connsPrefix + escape("apis", api, "connections", name) + "?" + url.Values{"$filter": {"environment eq '" + envID + "'"}}.Encode()
}

func (c *Client) connAt(ctx context.Context, method, envID, api, name string, in any) (*keyhold.Connection, error) {
	if err := needIDs("environment", envID, "api", api, "connection", name); err != nil {
		return nil, err
	}
	var out resourceJSON[*keyhold.Connection]
	if err := c.doFlow(ctx, method, connPath(envID, api, name), in, &out); err != nil {
		return nil, err
	}
	if out.Properties == nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "the server answered a connection without properties")
	}
	out.Properties.Name = out.Name
	return out.Properties, nil
}

// PutConnection creates a connection or replaces its credentials.
func (c *Client) PutConnection(ctx context.Context, envID, api, name string, in *keyhold.ConnectionInput) (*keyhold.Connection, error) {
	return c.connAt(ctx, "PUT", envID, api, name, map[string]any{"properties": in})
}

// GetConnection returns a connection (never its credentials).
func (c *Client) GetConnection(ctx context.Context, envID, api, name string) (*keyhold.Connection, error) {
	return c.connAt(ctx, "GET", envID, api, name, nil)
}

// ListConnections lists an environment's connections.
func (c *Client) ListConnections(ctx context.Context, envID string) ([]*keyhold.Connection, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	var out listJSON[resourceJSON[*keyhold.Connection]]
	path := connsPrefix + "/connections?" + url.Values{"$filter": {"environment eq '" + envID + "'"}}.Encode()
	if err := c.doFlow(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	cs := make([]*keyhold.Connection, 0, len(out.Value))
	for _, x := range out.Value {
		if x.Properties != nil {
			x.Properties.Name = x.Name
			cs = append(cs, x.Properties)
		}
	}
	return cs, nil
}

// DeleteConnection deletes a connection.
func (c *Client) DeleteConnection(ctx context.Context, envID, api, name string) error {
	if err := needIDs("environment", envID, "api", api, "connection", name); err != nil {
		return err
	}
	return c.doFlow(ctx, "DELETE", connPath(envID, api, name), nil, nil)
}

// newRequest is a JSON POST without a token.
func newRequest(ctx context.Context, method, u string, body []byte) (*nethttp.Request, error) {
	var rb io.Reader
	if len(body) > 0 {
		rb = bytes.NewReader(body)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, u, rb)
	if err != nil {
		return nil, err
	}
	if rb != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}
