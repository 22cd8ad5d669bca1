package http

// The run history kept from before an environment's link to a
// customer-managed key (issue 16), for platform administrators:
//
//	GET /providers/Microsoft.ProcessSimple/scopes/admin/environments/{env}/preMigrationRuns
//
// answers {"value":[{"flowName","name","migration","status","triggerName",
// "startTime","endTime","expiresTime","content"}]}: each run with its whole
// saved state. Every read is audited; after 30 days it is 404
// PreMigrationRunsExpired.

import (
	"context"
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// preMigrationRoutes declares the pre-migration runs' route; none unless
// s.PreMigration is set.
func (s *Server) preMigrationRoutes() []route {
	if s.PreMigration == nil {
		return nil
	}
	pm := s.PreMigration
	return []route{
		{Method: "GET", Pattern: flowsAdminPrefix + "/{envId}/preMigrationRuns", Auth: []keyhold.Audience{keyhold.AudienceFlow, keyhold.AudiencePowerApps}, Timeout: apiTimeout,
			Handler: func(w nethttp.ResponseWriter, r *nethttp.Request) error {
				runs, err := pm.PreMigrationRuns(r.Context(), r.PathValue("envId"))
				if err != nil {
					return err
				}
				writeJSON(w, nethttp.StatusOK, listJSON[*keyhold.PreMigrationRun]{Value: runs})
				return nil
			}},
	}
}

var _ keyhold.PreMigrationService = (*Client)(nil)

// PreMigrationRuns reads the environment's pre-migration runs with their
// content (platform administrators only; audited).
func (c *Client) PreMigrationRuns(ctx context.Context, envID string) ([]*keyhold.PreMigrationRun, error) {
	if err := needID("environment", envID); err != nil {
		return nil, err
	}
	var out listJSON[*keyhold.PreMigrationRun]
	if err := c.doFlow(ctx, "GET", flowsAdminPrefix+escape(envID, "preMigrationRuns"), nil, &out); err != nil {
		return nil, err
	}
	if out.Value == nil {
		out.Value = []*keyhold.PreMigrationRun{}
	}
	return out.Value, nil
}
