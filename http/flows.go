package http

// Power Automate's management API (issue 15), in its shapes:
//
//	PUT|GET|PATCH|DELETE /providers/Microsoft.ProcessSimple/environments/{env}/flows/{flow}
//	GET   …/environments/{env}/flows
//	GET   /providers/Microsoft.ProcessSimple/scopes/admin/environments/{env}/flows[/{flow}]
//	POST  …/flows/{flow}/start | stop
//	POST  …/flows/{flow}/triggers/{trigger}/run
//	POST  …/flows/{flow}/triggers/{trigger}/listCallbackUrl[?regenerate=true]
//	POST  …/flows/{flow}/triggers/{trigger}/paths/invoke?api-version=…&sp=…&sv=1.0&sig=…   (no token: the signature)
//	GET   …/flows/{flow}/runs, …/runs/{run}, …/runs/{run}/actions
//	POST  …/flows/{flow}/runs/{run}/cancel | resubmit
//	PUT|GET|DELETE /providers/Microsoft.PowerApps/apis/{api}/connections/{name}?$filter=environment eq '{env}'
//	GET   /providers/Microsoft.PowerApps/connections?$filter=environment eq '{env}'
//
// Tokens for https://service.flow.microsoft.com (or Power Apps') are
// accepted. A resource is {"name","id","type","properties":{…}}.

import (
	"encoding/json"
	nethttp "net/http"
	"regexp"
	"strings"

	"github.com/keyhold/keyhold"
)

// Paths of the flows API.
const (
	flowsPrefix      = "/providers/Microsoft.ProcessSimple/environments"
	flowsAdminPrefix = "/providers/Microsoft.ProcessSimple/scopes/admin/environments"
	connsPrefix      = "/providers/Microsoft.PowerApps"
	maxFlowBody      = 2 << 20
)

// resourceJSON is a Power Automate resource.
type resourceJSON[T any] struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Type       string `json:"type"`
	Properties T      `json:"properties"`
}

func flowPath(envID, flowID string) string {
	return flowsPrefix + escape(envID, "flows", flowID)
}

func flowJSON(f *keyhold.Flow) resourceJSON[*keyhold.Flow] {
	return resourceJSON[*keyhold.Flow]{Name: f.ID, ID: flowPath(f.EnvID, f.ID), Type: "Microsoft.ProcessSimple/environments/flows", Properties: f}
}

func runJSON(r *keyhold.FlowRun) resourceJSON[*keyhold.FlowRun] {
	return resourceJSON[*keyhold.FlowRun]{Name: r.ID, ID: flowPath(r.EnvID, r.FlowID) + escape("runs", r.ID), Type: "Microsoft.ProcessSimple/environments/flows/runs", Properties: r}
}

func connJSON(c *keyhold.Connection) resourceJSON[*keyhold.Connection] {
	return resourceJSON[*keyhold.Connection]{Name: c.Name, ID: connsPrefix + escape("apis", c.API, "connections", c.Name), Type: "Microsoft.PowerApps/apis/connections", Properties: c}
}

// flowRoutes declares the flows' routes; none while s.Flows is nil.
func (s *Server) flowRoutes() []route {
	if s.Flows == nil {
		return nil
	}
	auth := []keyhold.Audience{keyhold.AudienceFlow, keyhold.AudiencePowerApps}
	const (
		flows = flowsPrefix + "/{envId}/flows"
		flow  = flows + "/{flowId}"
		trig  = flow + "/triggers/{trigger}"
		run   = flow + "/runs/{runId}"
		conn  = connsPrefix + "/apis/{api}/connections/{name}"
	)
	r := func(method, pattern string, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		rt := route{Method: method, Pattern: pattern, Auth: auth, Timeout: apiTimeout, Handler: h}
		if method == "PUT" || method == "PATCH" || method == "POST" {
			rt.Body, rt.MaxBody = bodyJSON, maxFlowBody
		}
		return rt
	}
	return []route{
		r("PUT", flow, s.putFlow),
		r("PATCH", flow, s.patchFlow),
		r("GET", flow, s.getFlow),
		r("DELETE", flow, s.deleteFlow),
		r("GET", flows, s.listFlows),
		r("GET", flowsAdminPrefix+"/{envId}/flows", s.listFlows),
		r("GET", flowsAdminPrefix+"/{envId}/flows/{flowId}", s.getFlow),
		r("POST", flow+"/start", s.flowState(keyhold.FlowStarted)),
		r("POST", flow+"/stop", s.flowState(keyhold.FlowStopped)),
		r("POST", trig+"/run", s.runTrigger),
		r("POST", trig+"/listCallbackUrl", s.listCallbackURL),
		// The invoke URL carries no token: its signature is the
		// authorization, checked by the service.
		{Method: "POST", Pattern: trig + "/paths/invoke", Body: bodyJSON, MaxBody: keyhold.MaxTriggerBodyBytes, Timeout: apiTimeout, Handler: s.invokeTrigger},
		r("GET", flow+"/runs", s.listRuns),
		r("GET", run, s.getRun),
		r("GET", run+"/actions", s.runActions),
		r("POST", run+"/cancel", s.cancelRun),
		r("POST", run+"/resubmit", s.resubmitRun),
		r("PUT", conn, s.putConnection),
		r("GET", conn, s.getConnection),
		r("DELETE", conn, s.deleteConnection),
		r("GET", connsPrefix+"/connections", s.listConnections),
	}
}

func (s *Server) readFlowInput(r *nethttp.Request) (*keyhold.FlowInput, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var in struct {
		Properties *keyhold.FlowInput `json:"properties"`
	}
	if err := decodeJSON(body, &in, `{"properties":{"displayName":"My flow","definition":{…},"state":"Started"}}`); err != nil {
		return nil, err
	}
	if in.Properties == nil {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the body has no properties: send {\"properties\":{\"displayName\":…,\"definition\":{…}}}")
	}
	return in.Properties, nil
}

func (s *Server) putFlow(w nethttp.ResponseWriter, r *nethttp.Request) error {
	in, err := s.readFlowInput(r)
	if err != nil {
		return err
	}
	f, err := s.Flows.PutFlow(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), in)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, flowJSON(f))
	return nil
}

func (s *Server) patchFlow(w nethttp.ResponseWriter, r *nethttp.Request) error {
	in, err := s.readFlowInput(r)
	if err != nil {
		return err
	}
	f, err := s.Flows.PatchFlow(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), in)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, flowJSON(f))
	return nil
}

func (s *Server) getFlow(w nethttp.ResponseWriter, r *nethttp.Request) error {
	f, err := s.Flows.GetFlow(r.Context(), r.PathValue("envId"), r.PathValue("flowId"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, flowJSON(f))
	return nil
}

func (s *Server) deleteFlow(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.Flows.DeleteFlow(r.Context(), r.PathValue("envId"), r.PathValue("flowId")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusOK)
	return nil
}

func (s *Server) listFlows(w nethttp.ResponseWriter, r *nethttp.Request) error {
	fs, err := s.Flows.ListFlows(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	out := listJSON[resourceJSON[*keyhold.Flow]]{Value: []resourceJSON[*keyhold.Flow]{}}
	for _, f := range fs {
		out.Value = append(out.Value, flowJSON(f))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

func (s *Server) flowState(state string) func(nethttp.ResponseWriter, *nethttp.Request) error {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		if _, err := readBody(r); err != nil {
			return err
		}
		f, err := s.Flows.SetFlowState(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), state)
		if err != nil {
			return err
		}
		writeJSON(w, nethttp.StatusOK, flowJSON(f))
		return nil
	}
}

func (s *Server) runTrigger(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	run, err := s.Flows.RunTrigger(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), r.PathValue("trigger"), body)
	if err != nil {
		return err
	}
	loc := s.baseURL(r) + flowPath(run.EnvID, run.FlowID) + escape("runs", run.ID)
	w.Header().Set("Location", loc)
	writeJSON(w, nethttp.StatusAccepted, runJSON(run))
	return nil
}

func (s *Server) listCallbackURL(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	cb, err := s.Flows.CallbackURL(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), r.PathValue("trigger"), r.URL.Query().Get("regenerate") == "true")
	if err != nil {
		return err
	}
	out := *cb
	out.Value = s.baseURL(r) + cb.Value
	out.BasePath = s.baseURL(r) + cb.BasePath
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

func (s *Server) invokeTrigger(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	sig := keyhold.FlowSignature{APIVersion: q.Get("api-version"), SP: q.Get("sp"), SV: q.Get("sv"), Sig: q.Get("sig")}
	resp, err := s.Flows.InvokeTrigger(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), r.PathValue("trigger"), sig, body)
	if err != nil {
		return err
	}
	for k, v := range resp.Headers {
		if !strings.EqualFold(k, "Content-Length") {
			w.Header().Set(k, v)
		}
	}
	if resp.RunID != "" {
		w.Header().Set("x-ms-workflow-run-id", resp.RunID)
	}
	switch b := resp.Body.(type) {
	case nil:
		w.WriteHeader(resp.StatusCode)
	case string:
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(data)
	}
	return nil
}

func (s *Server) listRuns(w nethttp.ResponseWriter, r *nethttp.Request) error {
	runs, err := s.Flows.ListRuns(r.Context(), r.PathValue("envId"), r.PathValue("flowId"))
	if err != nil {
		return err
	}
	out := listJSON[resourceJSON[*keyhold.FlowRun]]{Value: []resourceJSON[*keyhold.FlowRun]{}}
	for _, x := range runs {
		out.Value = append(out.Value, runJSON(x))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

func (s *Server) getRun(w nethttp.ResponseWriter, r *nethttp.Request) error {
	run, err := s.Flows.GetRun(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), r.PathValue("runId"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, runJSON(run))
	return nil
}

func (s *Server) runActions(w nethttp.ResponseWriter, r *nethttp.Request) error {
	acts, err := s.Flows.RunActions(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), r.PathValue("runId"))
	if err != nil {
		return err
	}
	out := listJSON[resourceJSON[*keyhold.FlowRunAction]]{Value: []resourceJSON[*keyhold.FlowRunAction]{}}
	for _, a := range acts {
		out.Value = append(out.Value, resourceJSON[*keyhold.FlowRunAction]{Name: a.Name, Type: "Microsoft.ProcessSimple/environments/flows/runs/actions", Properties: a})
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

func (s *Server) runVerb(w nethttp.ResponseWriter, r *nethttp.Request, fn func() (*keyhold.FlowRun, error)) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	run, err := fn()
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, runJSON(run))
	return nil
}

func (s *Server) cancelRun(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.runVerb(w, r, func() (*keyhold.FlowRun, error) {
		return s.Flows.CancelRun(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), r.PathValue("runId"))
	})
}

func (s *Server) resubmitRun(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.runVerb(w, r, func() (*keyhold.FlowRun, error) {
		return s.Flows.ResubmitRun(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), r.PathValue("runId"))
	})
}

// envFilterRE reads the environment from $filter=environment eq '{env}'.
var envFilterRE = regexp.MustCompile(`^\s*environment\s+eq\s+'([^']+)'\s*$`)

// connEnv returns the environment a connections request names in its
// $filter, as the Power Apps API takes it.
func connEnv(r *nethttp.Request) (string, error) {
	f := r.URL.Query().Get("$filter")
	m := envFilterRE.FindStringSubmatch(f)
	if m == nil {
		return "", keyhold.Errorf(keyhold.CodeInvalidRequestContent, "$filter %q does not name the environment: add ?$filter=environment eq '{environmentId}'", keyhold.Clip(f))
	}
	return m[1], nil
}

func (s *Server) putConnection(w nethttp.ResponseWriter, r *nethttp.Request) error {
	env, err := connEnv(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Properties *keyhold.ConnectionInput `json:"properties"`
	}
	if err := decodeJSON(body, &in, `{"properties":{"displayName":"Dataverse","kind":"oauth"}}`); err != nil {
		return err
	}
	if in.Properties == nil {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the body has no properties: send {\"properties\":{\"kind\":\"oauth\"}}")
	}
	c, err := s.Flows.PutConnection(r.Context(), env, r.PathValue("api"), r.PathValue("name"), in.Properties)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, connJSON(c))
	return nil
}

func (s *Server) getConnection(w nethttp.ResponseWriter, r *nethttp.Request) error {
	env, err := connEnv(r)
	if err != nil {
		return err
	}
	c, err := s.Flows.GetConnection(r.Context(), env, r.PathValue("api"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, connJSON(c))
	return nil
}

func (s *Server) deleteConnection(w nethttp.ResponseWriter, r *nethttp.Request) error {
	env, err := connEnv(r)
	if err != nil {
		return err
	}
	if err := s.Flows.DeleteConnection(r.Context(), env, r.PathValue("api"), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusOK)
	return nil
}

func (s *Server) listConnections(w nethttp.ResponseWriter, r *nethttp.Request) error {
	env, err := connEnv(r)
	if err != nil {
		return err
	}
	cs, err := s.Flows.ListConnections(r.Context(), env)
	if err != nil {
		return err
	}
	out := listJSON[resourceJSON[*keyhold.Connection]]{Value: []resourceJSON[*keyhold.Connection]{}}
	for _, c := range cs {
		out.Value = append(out.Value, connJSON(c))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}
