package http

// Save as (issue 16):
//
//	POST /providers/Microsoft.ProcessSimple/environments/{env}/flows/{flow}/saveAs
//	     {"properties":{"displayName":"…","solutionId":"…"}}
//
// answers 201 with the copy as a flow resource (its new id in name).

import (
	"context"
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// flowSaveAsRoutes declares Save as; none unless s.Flows also serves
// keyhold.FlowSaveAsService.
func (s *Server) flowSaveAsRoutes() []route {
	sa, ok := s.Flows.(keyhold.FlowSaveAsService)
	if !ok {
		return nil
	}
	return []route{{Method: "POST", Pattern: flowsPrefix + "/{envId}/flows/{flowId}/saveAs",
		Auth: []keyhold.Audience{keyhold.AudienceFlow, keyhold.AudiencePowerApps}, Timeout: apiTimeout, Body: bodyJSON, MaxBody: maxFlowBody,
		Handler: func(w nethttp.ResponseWriter, r *nethttp.Request) error {
			body, err := readBody(r)
			if err != nil {
				return err
			}
			var in struct {
				Properties *keyhold.FlowSaveAs `json:"properties"`
			}
			if err := decodeJSON(body, &in, exampleSaveAs); err != nil {
				return err
			}
			if in.Properties == nil {
				return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the body has no properties: send %s", exampleSaveAs)
			}
			f, err := sa.SaveFlowAs(r.Context(), r.PathValue("envId"), r.PathValue("flowId"), in.Properties)
			if err != nil {
				return err
			}
			w.Header().Set("Location", s.baseURL(r)+flowPath(f.EnvID, f.ID))
			writeJSON(w, nethttp.StatusCreated, flowJSON(f))
			return nil
		}}}
}

const exampleSaveAs = `{"properties":{"displayName":"Orders webhook (copy)"}}`

var _ keyhold.FlowSaveAsService = (*Client)(nil)

// SaveFlowAs copies a flow under a new id (POST …/flows/{flow}/saveAs).
func (c *Client) SaveFlowAs(ctx context.Context, envID, flowID string, in *keyhold.FlowSaveAs) (*keyhold.Flow, error) {
	if err := needIDs("environment", envID, "flow", flowID); err != nil {
		return nil, err
	}
	var out resourceJSON[*keyhold.Flow]
	if err := c.doFlow(ctx, "POST", flowPath(envID, flowID)+"/saveAs", map[string]any{"properties": in}, &out); err != nil {
		return nil, err
	}
	if out.Properties == nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "the server answered a flow without properties")
	}
	out.Properties.EnvID, out.Properties.ID = envID, out.Name
	return out.Properties, nil
}
