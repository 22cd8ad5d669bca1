package http

import (
	"context"
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// coverageRoutes: GET /providers/Microsoft.BusinessAppPlatform/environments/{envId}/encryptionCoverage,
// beside the environment's link and unlink (cmk.go). None while
// Server.Coverage is unset.
func (s *Server) coverageRoutes() []route {
	if s.Coverage == nil {
		return nil
	}
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	return []route{
		{Method: "GET", Pattern: bapPrefix + "/environments/{envId}/encryptionCoverage", Auth: admin, Timeout: apiTimeout, Handler: s.encryptionCoverage},
	}
}

func (s *Server) encryptionCoverage(w nethttp.ResponseWriter, r *nethttp.Request) error {
	c, err := s.Coverage.EncryptionCoverage(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, c)
	return nil
}

// EncryptionCoverage reports an environment's encryption coverage.
func (c *Client) EncryptionCoverage(ctx context.Context, envID string) (*keyhold.EncryptionCoverage, error) {
	var out keyhold.EncryptionCoverage
	if err := c.do(ctx, "GET", bapPrefix+"/environments/"+escape(envID)+"/encryptionCoverage", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
