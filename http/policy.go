package http

// The Microsoft.PowerPlatform resource provider's routes (management
// audience), in ARM's shapes:
//
//	PUT    /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies/{name}   201 created, 200 updated
//	GET    …/enterprisePolicies/{name}                                                                            200
//	PATCH  …/enterprisePolicies/{name}                                                                            200
//	DELETE …/enterprisePolicies/{name}                                                                            200, 204 if none
//	GET    /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies         {"value":[…]}
//	GET    /subscriptions/{sub}/providers/Microsoft.PowerPlatform/enterprisePolicies                             {"value":[…]}
//	PUT    /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}             201 new, 200 again
//	GET    …/deployments/{name}                                                                                   200
//	GET    …/deployments/{name}/operationStatuses/{opId}                                                         200 {"status":…}, the PUT's Azure-AsyncOperation
//
// Any api-version is accepted (the Power Platform API's are 2020-10-30 and
// 2020-10-30-preview). A deployment is done when PUT answers: its
// provisioningState is Succeeded, or, when one of its resources failed,
// PUT answers that resource's error (its own code and status, as ARM's
// synchronous validation does) and GET shows the deployment as Failed
// with the same error. A template that can't be evaluated is 400
// InvalidTemplate and stores nothing.

import (
	"encoding/json"
	nethttp "net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/keyhold/keyhold"
)

// PolicyAPI holds the services behind the enterprise policy and template
// deployment routes.
type PolicyAPI struct {
	// Service serves enterprise policies (a *policy.Service). Nil: none
	// of their routes is served.
	Service keyhold.PolicyService
	// Deployments serves template deployments (a *deploy.Service). Nil:
	// none of their routes is served.
	Deployments keyhold.DeploymentService
}

// InvalidTemplate is ARM's answer to a template that can't be deployed:
// 400, like the other request problems of the statuses table.

// Paths and limits of the policy and deployment routes.
const (
	policyGroupPath    = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies"
	policySubPath      = "/subscriptions/{sub}/providers/Microsoft.PowerPlatform/enterprisePolicies"
	deploymentPath     = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}"
	deploymentType     = "Microsoft.Resources/deployments"
	maxPolicyBody      = 64 << 10
	maxDeploymentBody  = 4 << 20 // ARM's limit of a template with its parameters
	exampleDeployment  = `{"properties":{"mode":"Incremental","template":{"$schema":"…","contentVersion":"1.0.0.0","resources":[…]},"parameters":{"name":{"value":"…"}}}}`
	examplePolicyPatch = `{"tags":{"env":"prod"},"properties":{"encryption":{"keyVault":{"key":{"name":"…","version":"…"}}}}}`
	policyAPIVersion   = "2020-10-30"
	// linkedEnvironmentsName is Keyhold's own read of a policy: how many
	// environments are linked to it, which its DELETE would lock.
	linkedEnvironmentsName = "linkedEnvironments"
	deploymentsVersion     = "2021-04-01"
)

// policyRoutes declares the policy routes, while s.Policies.Service is
// set, and the deployment routes, while s.Policies.Deployments is.
func (s *Server) policyRoutes() []route {
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	r := func(method, pattern string, max int64, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		rt := route{Method: method, Pattern: pattern, Auth: mgmt, Timeout: apiTimeout, Handler: h}
		if max > 0 {
			rt.Body, rt.MaxBody = bodyJSON, max
		}
		return rt
	}
	var routes []route
	if s.Policies.Service != nil {
		routes = append(routes,
			r("PUT", policyGroupPath+"/{name}", maxPolicyBody, s.putPolicy),
			r("GET", policyGroupPath+"/{name}", 0, s.getPolicy),
			r("PATCH", policyGroupPath+"/{name}", maxPolicyBody, s.patchPolicy),
			r("DELETE", policyGroupPath+"/{name}", 0, s.deletePolicy),
			r("GET", policyGroupPath+"/{name}/"+linkedEnvironmentsName, 0, s.getLinkedEnvironments),
			r("GET", policyGroupPath, 0, s.listPolicies),
			r("GET", policySubPath, 0, s.listPolicies),
		)
	}
	if s.Policies.Deployments != nil {
		routes = append(routes,
			r("PUT", deploymentPath, maxDeploymentBody, s.putDeployment),
			r("GET", deploymentPath, 0, s.getDeployment),
			r("GET", deploymentPath+"/operationStatuses/{opId}", 0, s.getDeploymentStatus),
		)
	}
	return routes
}

func policyIDs(r *nethttp.Request) (sub, rg, name string) {
	return r.PathValue("sub"), r.PathValue("rg"), r.PathValue("name")
}

// putPolicy: PUT …/enterprisePolicies/{name}.
func (s *Server) putPolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in keyhold.PolicyResourceInput
	if err := decodeJSON(body, &in, keyhold.ExamplePolicyResource); err != nil {
		return err
	}
	spec, err := in.Spec()
	if err != nil {
		return err
	}
	sub, rg, name := policyIDs(r)
	p, created, err := s.Policies.Service.Put(r.Context(), sub, rg, name, spec)
	if err != nil {
		return err
	}
	writePut(w, created, keyhold.ToPolicyResource(p))
	return nil
}

// patchPolicy: PATCH …/enterprisePolicies/{name} changes what the body
// names.
func (s *Server) patchPolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in keyhold.PolicyResourceInput
	if err := decodeJSON(body, &in, examplePolicyPatch); err != nil {
		return err
	}
	c, err := in.Patch()
	if err != nil {
		return err
	}
	sub, rg, name := policyIDs(r)
	p, err := s.Policies.Service.Patch(r.Context(), sub, rg, name, c)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, keyhold.ToPolicyResource(p))
	return nil
}

// getPolicy: GET …/enterprisePolicies/{name}.
func (s *Server) getPolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := policyIDs(r)
	p, err := s.Policies.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, keyhold.ToPolicyResource(p))
	return nil
}

// deletePolicy: DELETE …/enterprisePolicies/{name}: 200, or 204 when
// there is no such policy, as ARM answers.
func (s *Server) deletePolicy(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := policyIDs(r)
	switch err := s.Policies.Service.Delete(r.Context(), sub, rg, name); keyhold.ErrorCode(err) {
	case "":
		w.WriteHeader(nethttp.StatusOK)
	case keyhold.CodeResourceNotFound:
		w.WriteHeader(nethttp.StatusNoContent)
	default:
		return err
	}
	return nil
}

// linkedEnvironmentsJSON is the answer of GET
// …/enterprisePolicies/{name}/linkedEnvironments. It counts and does not
// name them: the key vault admin who asks may see nothing of the
// environments themselves.
type linkedEnvironmentsJSON struct {
	Count int `json:"count"`
}

// getLinkedEnvironments: GET …/enterprisePolicies/{name}/linkedEnvironments,
// what the CLI warns with before a DELETE locks them.
func (s *Server) getLinkedEnvironments(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := policyIDs(r)
	n, err := s.Policies.Service.LinkedEnvironments(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, linkedEnvironmentsJSON{Count: n})
	return nil
}

// listPolicies: GET …/resourceGroups/{rg}/providers/Microsoft.PowerPlatform/enterprisePolicies
// and GET /subscriptions/{sub}/providers/Microsoft.PowerPlatform/enterprisePolicies.
func (s *Server) listPolicies(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg := r.PathValue("sub"), r.PathValue("rg")
	var ps []*keyhold.EnterprisePolicy
	var err error
	if rg == "" {
		ps, err = s.Policies.Service.ListBySubscription(r.Context(), sub)
	} else {
		ps, err = s.Policies.Service.ListByResourceGroup(r.Context(), sub, rg)
	}
	if err != nil {
		return err
	}
	out := listJSON[*keyhold.PolicyResource]{Value: make([]*keyhold.PolicyResource, 0, len(ps))}
	for _, p := range ps {
		out.Value = append(out.Value, keyhold.ToPolicyResource(p))
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// deploymentJSON is a deployment as ARM answers it.
type deploymentJSON struct {
	ID         string                 `json:"id"`
	Name       string                 `json:"name"`
	Type       string                 `json:"type"`
	Properties deploymentPropertiesJS `json:"properties"`
}

type deploymentPropertiesJS struct {
	ProvisioningState string               `json:"provisioningState"`
	Mode              string               `json:"mode"`
	Timestamp         string               `json:"timestamp"`
	OutputResources   []deploymentResource `json:"outputResources"`
	Outputs           json.RawMessage      `json:"outputs,omitempty"`
	Error             *errorDetail         `json:"error,omitempty"`
}

type deploymentResource struct {
	ID string `json:"id"`
}

func toDeploymentJSON(d *keyhold.Deployment) deploymentJSON {
	out := deploymentJSON{ID: d.ID(), Name: d.Name, Type: deploymentType, Properties: deploymentPropertiesJS{
		ProvisioningState: d.ProvisioningState, Mode: d.Mode, Timestamp: d.UpdatedAt.UTC().Format(time.RFC3339Nano),
		OutputResources: make([]deploymentResource, 0, len(d.OutputResources)), Outputs: d.Outputs}}
	for _, id := range d.OutputResources {
		out.Properties.OutputResources = append(out.Properties.OutputResources, deploymentResource{ID: id})
	}
	if d.ErrorCode != "" {
		out.Properties.Error = &errorDetail{Code: d.ErrorCode, Message: d.ErrorMessage}
	}
	return out
}

// putDeployment: PUT …/providers/Microsoft.Resources/deployments/{name}.
func (s *Server) putDeployment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Properties *struct {
			Mode           string          `json:"mode"`
			Template       json.RawMessage `json:"template"`
			Parameters     json.RawMessage `json:"parameters"`
			TemplateLink   json.RawMessage `json:"templateLink"`
			ParametersLink json.RawMessage `json:"parametersLink"`
		} `json:"properties"`
	}
	if err := decodeJSON(body, &in, exampleDeployment); err != nil {
		return err
	}
	p := in.Properties
	if p == nil {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the request has no properties: send a body like %s", exampleDeployment)
	}
	if len(p.TemplateLink) > 0 && string(p.TemplateLink) != "null" || len(p.ParametersLink) > 0 && string(p.ParametersLink) != "null" {
		return keyhold.Errorf(keyhold.CodeNotSupported, "properties.templateLink and parametersLink are not supported: send the template and its parameters inline")
	}
	sub, rg, name := policyIDs(r)
	d, created, err := s.Policies.Deployments.Deploy(r.Context(), sub, rg, name, keyhold.DeploymentRequest{Mode: p.Mode, Template: p.Template, Parameters: p.Parameters})
	if err != nil {
		return err
	}
	// A deployment is a long-running operation in ARM. Keyhold's ends
	// before the answer (the body's provisioningState is final, which
	// azcore's pollers take as done), but the answer still names the
	// operation's status, as ARM's does, for clients that follow it.
	status := s.baseURL(r) + d.ID() + "/operationStatuses/" + deploymentRunID(d)
	if v := r.URL.Query().Get("api-version"); v != "" {
		status += "?api-version=" + url.QueryEscape(v)
	}
	w.Header().Set("Azure-AsyncOperation", status)
	w.Header().Set("Retry-After", "1")
	writePut(w, created, toDeploymentJSON(d))
	return nil
}

// deploymentRunID names a deployment's latest run: the time it ran.
func deploymentRunID(d *keyhold.Deployment) string {
	return strconv.FormatInt(d.UpdatedAt.UnixNano(), 10)
}

// deploymentStatusJSON is ARM's asynchronous operation status.
type deploymentStatusJSON struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Status    string       `json:"status"`
	StartTime string       `json:"startTime"`
	EndTime   string       `json:"endTime"`
	Error     *errorDetail `json:"error,omitempty"`
}

// getDeploymentStatus: GET …/deployments/{name}/operationStatuses/{opId},
// the Azure-AsyncOperation of a deployment's PUT: the status of its
// latest run. An earlier run, replaced by a later PUT, is not kept
// (CodeNotFound).
func (s *Server) getDeploymentStatus(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := policyIDs(r)
	d, err := s.Policies.Deployments.Deployment(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	op := r.PathValue("opId")
	if op != deploymentRunID(d) {
		return keyhold.Errorf(keyhold.CodeNotFound, "deployment %s has no operation %q: only its latest run's status is kept (GET the deployment for its state)", name, keyhold.Clip(op))
	}
	at := d.UpdatedAt.UTC().Format(time.RFC3339Nano)
	out := deploymentStatusJSON{ID: d.ID() + "/operationStatuses/" + op, Name: op, Status: d.ProvisioningState, StartTime: at, EndTime: at}
	if d.ErrorCode != "" {
		out.Error = &errorDetail{Code: d.ErrorCode, Message: d.ErrorMessage}
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// getDeployment: GET …/deployments/{name}.
func (s *Server) getDeployment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sub, rg, name := policyIDs(r)
	d, err := s.Policies.Deployments.Deployment(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, toDeploymentJSON(d))
	return nil
}
