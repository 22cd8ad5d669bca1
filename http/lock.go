package http

// Re-enabling a Locked environment:
//
//	POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{envId}/enable   202
//
// An environment is Locked when its enterprise policy's key became
// inaccessible; once the key vault admin restores access, an administrator
// re-enables it here. The platform does it at once (it proves access by
// unwrapping the environment's key), and the route answers as a link does:
// 202 Accepted with the operation, already Succeeded, in the body and where
// to read it in operation-location (and Location), and Retry-After. A
// refusal (409 not Locked, 403 without Reader on the policy, 403 while the
// key is still inaccessible) changes nothing: the environment stays
// locked. The route is served when the CMK service can re-enable
// (keyhold.EnvironmentEnabler), which the platform can.

import (
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// enableAction is the last segment of the enable route.
const enableAction = "enable"

// lockRoutes declares the enable route; none unless s.CMK is an
// keyhold.EnvironmentEnabler.
func (s *Server) lockRoutes() []route {
	en, ok := s.CMK.(keyhold.EnvironmentEnabler)
	if !ok {
		return nil
	}
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	return []route{{Method: "POST", Pattern: adminEnvPrefix + "/{envId}/" + enableAction, Auth: admin, Timeout: apiTimeout,
		Handler: func(w nethttp.ResponseWriter, r *nethttp.Request) error { return s.enableEnvironment(w, r, en) }}}
}

// enableEnvironment: POST …/scopes/admin/environments/{envId}/enable.
func (s *Server) enableEnvironment(w nethttp.ResponseWriter, r *nethttp.Request, en keyhold.EnvironmentEnabler) error {
	op, err := en.EnableEnvironmentOp(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	s.acceptOperation(w, r, op)
	return nil
}
