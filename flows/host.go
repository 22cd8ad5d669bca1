package flows

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/flows/wdl"
)

// host is wdl.Host for one run: the actions with outside effects.
type host struct {
	s  *Service
	l  *lease
	fd *flowDef
}

func (h *host) Now() time.Time { return h.s.clock.Now() }

func (h *host) Sleep(ctx context.Context, d time.Duration) error {
	if h.s.cfg.Sleep != nil {
		return h.s.cfg.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (h *host) Call(ctx context.Context, c wdl.Call) (wdl.Outputs, error) {
	in, _ := c.Inputs.(map[string]any)
	switch c.Type {
	case "Response":
		return wdl.Outputs{}, nil // wdl records it; the invoke answers it
	case "Http":
		return h.http(ctx, in)
	case "Workflow":
		return h.child(ctx, c, in)
	case "ApiConnection", "OpenApiConnection":
		return h.connector(ctx, c, in)
	}
	return wdl.Outputs{}, &wdl.ActionError{Code: "ActionTypeNotSupported", Message: fmt.Sprintf("the host does not run actions of type %q", c.Type), StatusCode: 400}
}

func actionErr(code string, status int, retry bool, format string, args ...any) *wdl.ActionError {
	return &wdl.ActionError{Code: code, Message: fmt.Sprintf(format, args...), StatusCode: status, Retryable: retry}
}

// client returns the Http action's client for a tenant's egress policy
// (tenantPolicy).
func (s *Service) client(ctx context.Context, tenantID string) (*http.Client, error) {
	p, err := s.tenantPolicy(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[p]
	if c == nil {
		c = p.Client(s.cfg.TLSConfig, s.cfg.HTTPTimeout, s.cfg.MaxRedirects)
		s.clients[p] = c
	}
	return c, nil
}

// http performs the Http action: inputs method, uri, headers, queries,
// body, through the tenant's egress policy, with the configured time,
// redirect and response size limits.
func (h *host) http(ctx context.Context, in map[string]any) (wdl.Outputs, error) {
	method, _ := in["method"].(string)
	raw, _ := in["uri"].(string)
	if method == "" {
		method = "GET"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return wdl.Outputs{}, actionErr("InvalidUri", 400, false, "inputs.uri %q is not an absolute http or https URL", keyhold.Clip(raw))
	}
	if q, ok := in["queries"].(map[string]any); ok {
		v := u.Query()
		for k, x := range q {
			v.Set(k, fmt.Sprint(x))
		}
		u.RawQuery = v.Encode()
	}
	var body io.Reader
	ctype := ""
	switch b := in["body"].(type) {
	case nil:
	case string:
		body, ctype = strings.NewReader(b), "text/plain; charset=utf-8"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return wdl.Outputs{}, actionErr("InvalidBody", 400, false, "inputs.body can't be sent as JSON: %v", err)
		}
		body, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(method), u.String(), body)
	if err != nil {
		return wdl.Outputs{}, actionErr("InvalidRequest", 400, false, "%v", err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if hs, ok := in["headers"].(map[string]any); ok {
		for k, x := range hs {
			req.Header.Set(k, fmt.Sprint(x))
		}
	}
	credHeader := ""
	if a, ok := in["authentication"].(map[string]any); ok {
		if credHeader, err = h.authenticate(ctx, req, a); err != nil {
			return wdl.Outputs{}, err
		}
	}
	env, err := h.env(ctx)
	if err != nil {
		return wdl.Outputs{}, err
	}
	client, err := h.s.client(ctx, env.TenantID)
	if err != nil {
		return wdl.Outputs{}, err
	}
	if credHeader != "" {
		client = keepOnHost(client, credHeader)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return wdl.Outputs{}, ctx.Err() // stopping: not the action's failure
		}
		var refused *egress.RefusedError
		if errors.As(err, &refused) {
			return wdl.Outputs{}, actionErr("EgressRefused", 403, false, "the request to %s was refused by the egress policy: %s", u.Redacted(), refused.Error())
		}
		return wdl.Outputs{}, actionErr("HttpRequestFailed", 502, true, "the request to %s failed: %v", u.Redacted(), err)
	}
	defer resp.Body.Close()
	max := h.s.cfg.MaxResponseBytes
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return wdl.Outputs{}, actionErr("HttpRequestFailed", 502, true, "reading the answer of %s failed: %v", u.Redacted(), err)
	}
	if int64(len(data)) > max {
		return wdl.Outputs{}, actionErr("ResponseTooLarge", 502, false, "the answer of %s is over %d bytes, the Http action's limit", u.Redacted(), max)
	}
	out := wdl.Outputs{StatusCode: resp.StatusCode, Headers: map[string]string{}}
	for k := range resp.Header {
		out.Headers[k] = resp.Header.Get(k)
	}
	out.Body = string(data)
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); strings.HasSuffix(mt, "json") {
		var v any
		if json.Unmarshal(data, &v) == nil {
			out.Body = v
		}
	}
	if resp.StatusCode >= 400 {
		retry := resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500
		return wdl.Outputs{}, actionErr(http.StatusText(resp.StatusCode), resp.StatusCode, retry, "%s answered %d", u.Redacted(), resp.StatusCode)
	}
	return out, nil
}

func (h *host) env(ctx context.Context) (env *keyhold.Environment, err error) {
	err = h.s.store.View(ctx, func(tx keyhold.Tx) error {
		env, err = tx.Environment(ctx, h.fd.rec.EnvID)
		return err
	})
	return env, err
}

// childRunID is the run id of the child a Workflow action starts: derived
// from the parent's run and the action's path, so that a parent resumed
// after a crash finds the child it started instead of starting another.
func childRunID(parentRunID, path string) string {
	sum := sha256.Sum256([]byte(parentRunID + "\x00" + path))
	return parentRunID[:min(len(parentRunID), 20)] + "c" + hex.EncodeToString(sum[:6])
}

// child runs a Workflow action: the child flow (inputs.host.
// workflowReferenceName) of the same environment, as a run whose parent is
// this one, capped at keyhold.MaxFlowDepth; it waits for the child's end
// and answers its Response.
func (h *host) child(ctx context.Context, c wdl.Call, in map[string]any) (wdl.Outputs, error) {
	hostIn, _ := in["host"].(map[string]any)
	ref, _ := hostIn["workflowReferenceName"].(string)
	h.l.mu.Lock()
	parent := *h.l.rec
	h.l.mu.Unlock()
	if parent.Depth+1 >= keyhold.MaxFlowDepth {
		return wdl.Outputs{}, actionErr("WorkflowRecursionLimit", 400, false, "child flow %q would run at depth %d: flows may nest at most %d deep (a flow calling itself, or a cycle of flows?)", keyhold.Clip(ref), parent.Depth+1, keyhold.MaxFlowDepth)
	}
	frec, err := h.s.flowRecord(ctx, parent.EnvID, ref)
	if keyhold.ErrorCode(err) == keyhold.CodeFlowNotFound {
		return wdl.Outputs{}, actionErr("WorkflowNotFound", 404, false, "child flow %q was not found in environment %s", keyhold.Clip(ref), parent.EnvID)
	} else if err != nil {
		return wdl.Outputs{}, err
	}
	id := childRunID(parent.ID, c.Path)
	run, err := h.s.runRecord(ctx, parent.EnvID, ref, id)
	if keyhold.ErrorCode(err) == keyhold.CodeFlowRunNotFound {
		fd, err := h.s.openFlow(ctx, frec)
		if err != nil {
			return wdl.Outputs{}, err
		}
		if fd.rec.TriggerType != "Request" {
			return wdl.Outputs{}, actionErr("WorkflowTriggerNotSupported", 400, false, "child flow %q has a %s trigger: a child flow needs a manual (Request) trigger", ref, fd.rec.TriggerType)
		}
		run, err = h.s.startRun(ctx, fd, wdl.Outputs{Body: in["body"]}, parent.ID, id, parent.Depth+1)
		if keyhold.ErrorCode(err) == keyhold.CodeConflict {
			return wdl.Outputs{}, actionErr("WorkflowNotStarted", 409, false, "%s", err.Error())
		}
		if err != nil {
			return wdl.Outputs{}, err
		}
	} else if err != nil {
		return wdl.Outputs{}, err
	}
	end, err := h.s.waitRun(ctx, run)
	if err != nil {
		return wdl.Outputs{}, err
	}
	st, err := h.s.openState(ctx, end)
	if err != nil {
		return wdl.Outputs{}, err
	}
	if end.Status != keyhold.RunSucceeded {
		msg := "the child flow's run " + end.ID + " ended " + end.Status
		if st.Error != nil {
			msg += ": " + st.Error.Message
		}
		return wdl.Outputs{}, actionErr("ChildFlowFailed", 400, false, "%s", msg)
	}
	if st.Response == nil {
		return wdl.Outputs{StatusCode: 202}, nil
	}
	return *st.Response, nil
}
