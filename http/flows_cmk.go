package http

// Flows under a customer-managed key (issue 16):
//
//	GET /providers/Microsoft.ProcessSimple/scopes/admin/environments/{env}/platformKeyFlows
//
// lists the flows that stay on the platform key, each with its category,
// reason and fix: {"value":[{"flowName","displayName","category","reason","fix","via"}]}.

import (
	"context"
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// flowCMKRoutes declares the routes of flows under a customer key; none
// unless s.Flows also serves keyhold.FlowCMKService.
func (s *Server) flowCMKRoutes() []route {
	cmk, ok := s.Flows.(keyhold.FlowCMKService)
	if !ok {
		return s.preMigrationRoutes()
	}
	auth := []keyhold.Audience{keyhold.AudienceFlow, keyhold.AudiencePowerApps}
	return append(s.preMigrationRoutes(), []route{
		{Method: "GET", Pattern: flowsAdminPrefix + "/{envId}/platformKeyFlows", Auth: auth, Timeout: apiTimeout,
			Handler: func(w nethttp.ResponseWriter, r *nethttp.Request) error {
				fs, err := cmk.PlatformFlows(r.Context(), r.PathValue("envId"))
				if err != nil {
					return err
				}
				writeJSON(w, nethttp.StatusOK, listJSON[*keyhold.PlatformFlow]{Value: fs})
				return nil
			}},
	}...)
}

var _ keyhold.FlowCMKService = (*Client)(nil)

// PlatformFlows lists the environment's flows that stay on the platform
// key, with why and the fix (platform administrators only).
func (c *Client) PlatformFlows(ctx context.Context, envID string) ([]*keyhold.PlatformFlow, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	var out listJSON[*keyhold.PlatformFlow]
	if err := c.doFlow(ctx, "GET", flowsAdminPrefix+escape(envID, "platformKeyFlows"), nil, &out); err != nil {
		return nil, err
	}
	if out.Value == nil {
		out.Value = []*keyhold.PlatformFlow{}
	}
	return out.Value, nil
}
