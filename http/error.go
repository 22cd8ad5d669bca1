package http

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"regexp"
	"strings"

	"github.com/keyhold/keyhold"
)

// classStatuses derives an error's HTTP status from its code's class
// (keyhold.ClassOf): the one table from error to status.
var classStatuses = map[keyhold.Class]int{
	keyhold.ClassInvalid:              nethttp.StatusBadRequest,
	keyhold.ClassUnauthorized:         nethttp.StatusUnauthorized,
	keyhold.ClassForbidden:            nethttp.StatusForbidden,
	keyhold.ClassLocked:               nethttp.StatusForbidden, // the key owner revoked access; 423 is WebDAV-only
	keyhold.ClassNotFound:             nethttp.StatusNotFound,
	keyhold.ClassMethodNotAllowed:     nethttp.StatusMethodNotAllowed,
	keyhold.ClassTimeout:              nethttp.StatusRequestTimeout,
	keyhold.ClassConflict:             nethttp.StatusConflict,
	keyhold.ClassTooLarge:             nethttp.StatusRequestEntityTooLarge,
	keyhold.ClassUnsupportedMediaType: nethttp.StatusUnsupportedMediaType,
	keyhold.ClassTooManyRequests:      nethttp.StatusTooManyRequests,
	keyhold.ClassInternal:             nethttp.StatusInternalServerError,
	keyhold.ClassUnavailable:          nethttp.StatusServiceUnavailable,
}

// StatusOf returns the HTTP status that answers an error with code, from
// the code's class; 500 for a code it does not know.
func StatusOf(code string) int {
	if s, ok := classStatuses[keyhold.ClassOf(code)]; ok {
		return s
	}
	return nethttp.StatusInternalServerError
}

// codeOfStatus is the reverse, for answers without an Azure error body.
func codeOfStatus(status int) string {
	switch status {
	case nethttp.StatusBadRequest:
		return keyhold.CodeBadRequest
	case nethttp.StatusUnauthorized:
		return keyhold.CodeUnauthorized
	case nethttp.StatusForbidden:
		return keyhold.CodeForbidden
	case nethttp.StatusNotFound:
		return keyhold.CodeNotFound
	case nethttp.StatusMethodNotAllowed:
		return keyhold.CodeMethodNotAllowed
	case nethttp.StatusConflict:
		return keyhold.CodeConflict
	case nethttp.StatusRequestEntityTooLarge:
		return keyhold.CodeRequestTooLarge
	case nethttp.StatusUnsupportedMediaType:
		return keyhold.CodeUnsupportedMediaType
	case nethttp.StatusServiceUnavailable, nethttp.StatusBadGateway, nethttp.StatusGatewayTimeout:
		return keyhold.CodeServiceUnavailable
	}
	return keyhold.CodeInternal
}

// errorBody is the Azure error body.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	InnerError *innerError `json:"innererror,omitempty"`
}

type innerError struct {
	Code string `json:"code"`
}

// clientError returns the *keyhold.Error to send for err: err's own, or for
// any other error a generic internal error, whose text stays here.
func clientError(err error) (e *keyhold.Error, internal bool) {
	if e, ok := errors.AsType[*keyhold.Error](err); ok {
		return e, false
	}
	return &keyhold.Error{Code: keyhold.CodeInternal, Message: keyhold.ErrorMessage(err)}, true
}

// writeError answers err with the Azure error body. It logs the causes of
// server errors with the request id.
func (s *Server) writeError(w nethttp.ResponseWriter, r *nethttp.Request, st *reqState, err error) {
	e, internal := clientError(err)
	status := StatusOf(e.Code)
	s.logError(r, st, err, status, internal)
	if status == nethttp.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", s.bearerChallenge(r))
	}
	body := errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}}
	if e.Inner != "" {
		body.Error.InnerError = &innerError{Code: e.Inner}
	}
	writeJSON(w, status, body)
}

// logError logs the cause of a failed request: server errors at Error
// level, client errors that carry a cause at Debug level.
func (s *Server) logError(r *nethttp.Request, st *reqState, err error, status int, internal bool) {
	level := slog.LevelDebug
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		level = slog.LevelInfo // the client went away mid-request
	case status >= 500:
		level = slog.LevelError
	}
	if !internal && status < 500 && errors.Unwrap(err) == nil {
		return // the client message says it all
	}
	s.log.LogAttrs(r.Context(), level, "request failed",
		slog.String("request_id", st.requestID),
		slog.String("method", r.Method),
		slog.String("route", st.pattern),
		slog.Int("status", status),
		slog.String("error", err.Error()))
}

// bearerChallenge is the WWW-Authenticate value of a 401, naming where to
// sign in. The tenant comes from the presented token's unverified claims,
// which is only a hint to the client; "common" when there is none.
func (s *Server) bearerChallenge(r *nethttp.Request) string {
	tenant := "common"
	if id := identity(r); id != nil && id.TenantID != "" {
		tenant = id.TenantID
	} else if tid := unverifiedTenant(r); tid != "" {
		tenant = tid
	}
	return fmt.Sprintf(`Bearer authorization_uri="%s/%s/oauth2/v2.0/authorize", error="invalid_token"`, s.baseURL(r), tenant)
}

// tenantRE is what a tenant id taken from an unverified token must look
// like to be echoed in a header.
var tenantRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// unverifiedTenant returns the "tid" claim of the request's bearer token
// without verifying it, or "".
func unverifiedTenant(r *nethttp.Request) string {
	tok, ok := bearerToken(r)
	if !ok {
		return ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 8<<10 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		TID string `json:"tid"`
	}
	if json.Unmarshal(payload, &claims) != nil || !tenantRE.MatchString(claims.TID) {
		return ""
	}
	return claims.TID
}

// baseURL is PublicURL, or the scheme and host the request came to.
func (s *Server) baseURL(r *nethttp.Request) string {
	if s.PublicURL != "" {
		return strings.TrimSuffix(s.PublicURL, "/")
	}
	return "https://" + r.Host
}

// writePut answers a PUT with v: 201 Created if it made the resource, 200
// OK if it replaced one, as ARM does.
func writePut(w nethttp.ResponseWriter, created bool, v any) {
	status := nethttp.StatusOK
	if created {
		status = nethttp.StatusCreated
	}
	writeJSON(w, status, v)
}

// writeJSON answers v as JSON with status.
func writeJSON(w nethttp.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here: the types sent are plain.
		status = nethttp.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: errorDetail{Code: keyhold.CodeInternal, Message: keyhold.ErrorMessage(err)}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(b)
}
