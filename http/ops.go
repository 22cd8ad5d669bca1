package http

import (
	"log/slog"
	nethttp "net/http"

	"github.com/keyhold/keyhold"
)

// healthz: GET /healthz. 200 {"status":"ok"}, or 503 with the error code
// when Server.Health fails.
func (s *Server) healthz(w nethttp.ResponseWriter, r *nethttp.Request) error {
	type health struct {
		Status string       `json:"status"`
		Error  *errorDetail `json:"error,omitempty"`
	}
	if s.Health != nil {
		if err := s.Health(r.Context()); err != nil {
			e, internal := clientError(err)
			code := e.Code
			if internal {
				code = keyhold.CodeServiceUnavailable
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "health check failed", slog.String("error", err.Error()))
			writeJSON(w, nethttp.StatusServiceUnavailable, health{Status: "unavailable", Error: &errorDetail{Code: code, Message: e.Message}})
			return nil
		}
	}
	writeJSON(w, nethttp.StatusOK, health{Status: "ok"})
	return nil
}

// serveMetrics: GET /metrics, the Prometheus exposition of Server.Registry.
func (s *Server) serveMetrics(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if s.Registry == nil {
		return keyhold.Errorf(keyhold.CodeNotFound, "metrics are not enabled on this server")
	}
	s.promHandler.ServeHTTP(w, r)
	return nil
}
