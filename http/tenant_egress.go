package http

// The tenant's Http allowlist for its flows (keyhold.TenantEgressService):
//
//	GET /providers/Microsoft.ProcessSimple/scopes/admin/httpAllowlist   200 {"tenantId","allow":[…],"updatedAt","updatedBy"}
//	PUT /providers/Microsoft.ProcessSimple/scopes/admin/httpAllowlist   200, body {"allow":[…]} ([] removes it)

import (
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

const (
	tenantEgressPath    = "/providers/Microsoft.ProcessSimple/scopes/admin/httpAllowlist"
	exampleTenantEgress = `{"allow":["api.partner.example","203.0.113.0/24"]}`
	maxTenantEgressBody = 16 << 10
)

// tenantEgressRoutes declares the allowlist's routes; none if Egress is
// unset.
func (s *Server) tenantEgressRoutes() []route {
	if s.Egress == nil {
		return nil
	}
	auth := []keyhold.Audience{keyhold.AudienceFlow, keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	return []route{
		{Method: "GET", Pattern: tenantEgressPath, Auth: auth, Timeout: apiTimeout, Handler: s.getTenantEgress},
		{Method: "PUT", Pattern: tenantEgressPath, Auth: auth, Body: bodyJSON, MaxBody: maxTenantEgressBody, Timeout: apiTimeout, Handler: s.putTenantEgress},
	}
}

func (s *Server) getTenantEgress(w nethttp.ResponseWriter, r *nethttp.Request) error {
	e, err := s.Egress.TenantEgress(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, e)
	return nil
}

func (s *Server) putTenantEgress(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Allow *[]string `json:"allow"`
	}
	if err := decodeJSON(body, &in, exampleTenantEgress); err != nil {
		return err
	}
	if in.Allow == nil {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body has no \"allow\": send %s, or {\"allow\":[]} to remove the allowlist", exampleTenantEgress)
	}
	e, err := s.Egress.SetTenantEgress(r.Context(), *in.Allow)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, e)
	return nil
}
