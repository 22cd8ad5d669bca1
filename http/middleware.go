package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	nethttp "net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/prometheus/client_golang/prometheus"
)

// hstsValue is the Strict-Transport-Security header of HTTPS answers:
// one year, as browsers' preload rules ask.
const hstsValue = "max-age=31536000"

// reqState is what the wrapper learns about a request as it goes, for the
// access log and error logs.
type reqState struct {
	requestID string
	pattern   string
	principal string
	aborted   bool
}

// wrap returns the handler of one route: request ids, panic recovery,
// timeout, authentication, content-type and size checks, then the route's
// handler, whose error it writes; and, whatever happened, the access log
// line and the metrics.
func (s *Server) wrap(rt route) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		start := time.Now()
		st := &reqState{requestID: uuid.NewString(), pattern: rt.Pattern}
		rec := &recorder{ResponseWriter: w}
		h := w.Header()
		h.Set("x-ms-request-id", st.requestID)
		h.Set("x-ms-correlation-request-id", correlationID(r, st.requestID))
		if id := r.Header.Get("x-ms-client-request-id"); isUUID(id) {
			h.Set("x-ms-client-request-id", id)
		}
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			// HSTS: a browser that once reached the API over HTTPS
			// never falls back to plain HTTP for it, where a token
			// could be read on the way. Not includeSubDomains: the
			// server can't speak for other hosts under its name.
			h.Set("Strict-Transport-Security", hstsValue)
		}

		defer func() {
			v := recover()
			if v != nil && v != nethttp.ErrAbortHandler {
				s.log.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
					slog.String("request_id", st.requestID),
					slog.String("route", st.pattern),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())))
				if rec.wrote {
					st.aborted = true
					v = nethttp.ErrAbortHandler
				} else {
					s.writeError(rec, r, st, fmt.Errorf("panic: %v", v))
					v = nil
				}
			}
			s.finish(r, st, rec, start)
			if v != nil {
				panic(v) // net/http aborts the connection
			}
		}()

		ctx := r.Context()
		if rt.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
			defer cancel()
		}
		req := r.WithContext(ctx)
		// The connection's deadlines for this route (deadline.go).
		// Errors: the writer may not support them.
		rc := nethttp.NewResponseController(rec)
		rec.body = s.setDeadlines(rc, req, rt, start)
		rec.closeUnread = r.ProtoMajor == 1 && r.ContentLength != 0
		defer rec.closeUnreadBody(rc)
		req, err := s.prepare(rec, req, rt, st)
		if err == nil {
			err = rt.Handler(rec, req)
		}
		if err != nil {
			s.fail(rec, req, st, rt, err)
		}
	})
}

// prepare authenticates the caller and checks the request's body against
// the route, and returns the request carrying the caller's identity.
func (s *Server) prepare(w nethttp.ResponseWriter, r *nethttp.Request, rt route, st *reqState) (*nethttp.Request, error) {
	if rt.Auth != nil {
		challenge := ""
		if rt.Challenge != nil {
			var err error
			if r, challenge, err = rt.Challenge(r); err != nil {
				return r, err
			}
		}
		id, err := s.authenticate(r, rt.Auth)
		if err != nil {
			if challenge != "" && StatusOf(keyhold.ErrorCode(err)) == nethttp.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", challenge)
			}
			return r, err
		}
		st.principal = id.PrincipalID
		r = r.WithContext(keyhold.NewContext(r.Context(), id))
	}
	if err := checkContentType(r, rt.Body); err != nil {
		return r, err
	}
	if rt.MaxBody > 0 {
		if r.ContentLength > rt.MaxBody {
			return r, tooLarge(rt.MaxBody, fmt.Sprintf("Content-Length is %d", r.ContentLength))
		}
		r.Body = nethttp.MaxBytesReader(w, r.Body, rt.MaxBody)
	}
	return r, nil
}

// authenticate verifies the bearer token and that its audience is one the
// route accepts.
func (s *Server) authenticate(r *nethttp.Request, accept []keyhold.Audience) (*keyhold.Identity, error) {
	scope := string(accept[0]) + "/.default"
	tok, ok := bearerToken(r)
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeUnauthorized, "the request has no bearer token: get one from POST /{tenantId}/oauth2/v2.0/token with scope %s and send it as 'Authorization: Bearer <token>'", scope)
	}
	id, err := s.Tokens.Authenticate(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, keyhold.Errorf(keyhold.CodeInvalidToken, "the access token is not valid: get a new one with scope %s", scope)
	}
	if !slices.Contains(accept, id.Audience) {
		return nil, keyhold.Errorf(keyhold.CodeInvalidToken, "the access token is for audience %q, but this API needs audience %q: get a token with scope %s", id.Audience, accept[0], scope)
	}
	return id, nil
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *nethttp.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// checkContentType refuses bodies the route does not take. Form bodies are
// refused everywhere but the token endpoint, so that a browser form can't
// post to the API (a JSON content type needs a CORS preflight).
func checkContentType(r *nethttp.Request, kind bodyKind) error {
	ct := r.Header.Get("Content-Type")
	if kind == bodyIgnored {
		return nil
	}
	if ct == "" {
		if kind == bodyForm {
			return keyhold.Errorf(keyhold.CodeInvalidRequest, "the token request has no Content-Type: send the parameters as a form with Content-Type: application/x-www-form-urlencoded")
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return keyhold.Errorf(keyhold.CodeUnsupportedMediaType, "Content-Type %q is not a valid media type: %v", keyhold.Clip(ct), err)
	}
	form := mt == "application/x-www-form-urlencoded" || strings.HasPrefix(mt, "multipart/")
	switch kind {
	case bodyForm:
		if mt != "application/x-www-form-urlencoded" {
			return keyhold.Errorf(keyhold.CodeInvalidRequest, "the token request has Content-Type %s: send the parameters as a form with Content-Type: application/x-www-form-urlencoded", mt)
		}
	case bodyJSON:
		if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return keyhold.Errorf(keyhold.CodeUnsupportedMediaType, "Content-Type %s is not accepted here: send a JSON body with Content-Type: application/json", mt)
		}
	case bodyStream:
		if form {
			return keyhold.Errorf(keyhold.CodeUnsupportedMediaType, "Content-Type %s is not accepted here: send the file's bytes as the body with Content-Type: application/octet-stream", mt)
		}
	default:
		if form {
			return keyhold.Errorf(keyhold.CodeUnsupportedMediaType, "Content-Type %s is not accepted by the API: this route takes no body", mt)
		}
	}
	return nil
}

// fail answers a handler's error. Once the headers are out, a status can't
// be sent any more: the connection is aborted so that the client sees a
// broken transfer rather than a short one that looks complete.
func (s *Server) fail(w *recorder, r *nethttp.Request, st *reqState, rt route, err error) {
	if w.wrote {
		st.aborted = true
		s.log.LogAttrs(r.Context(), slog.LevelError, "aborting response after headers were sent",
			slog.String("request_id", st.requestID),
			slog.String("route", st.pattern),
			slog.String("error", err.Error()))
		panic(nethttp.ErrAbortHandler)
	}
	if errors.Is(r.Context().Err(), context.DeadlineExceeded) && keyhold.ErrorCode(err) == keyhold.CodeInternal {
		err = keyhold.Errorf(keyhold.CodeServiceUnavailable, "the request did not finish in time: retry it").WithCause(err)
	}
	if w.body != nil && w.body.timedOut != nil {
		err = w.body.timedOut.WithCause(err) // whatever the handler made of it
	}
	if mb, ok := errors.AsType[*nethttp.MaxBytesError](err); ok && keyhold.ErrorCode(err) == keyhold.CodeInternal {
		err = tooLarge(mb.Limit, "it was cut off there").WithCause(err)
	}
	if rt.OAuthErrors {
		s.writeOAuthError(w, r, st, err)
		return
	}
	s.writeError(w, r, st, err)
}

// finish writes the access log line and the metrics of a request. It logs
// neither headers nor bodies: they may hold tokens, secrets or data.
func (s *Server) finish(r *nethttp.Request, st *reqState, w *recorder, start time.Time) {
	d := time.Since(start)
	status := w.status
	if status == 0 {
		status = nethttp.StatusOK // the handler wrote nothing
	}
	method := r.Method
	if !slices.Contains(probeMethods, method) && method != "HEAD" {
		method = "other" // bound the label's values
	}
	s.metrics.requests.WithLabelValues(st.pattern, method, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(st.pattern, method).Observe(d.Seconds())

	level := slog.LevelInfo
	if st.pattern == "/healthz" || st.pattern == "/metrics" {
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("route", st.pattern),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("request_id", st.requestID),
	}
	if st.principal != "" {
		attrs = append(attrs, slog.String("principal", st.principal))
	}
	if st.aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	s.log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// correlationID keeps the caller's correlation id if it is a uuid, as
// Azure Resource Manager does, and otherwise uses the request id.
func correlationID(r *nethttp.Request, requestID string) string {
	if id := r.Header.Get("x-ms-correlation-request-id"); isUUID(id) {
		return id
	}
	return requestID
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// recorder remembers the status a handler answered with.
type recorder struct {
	nethttp.ResponseWriter
	status int
	wrote  bool
	// body is the request's body; with closeUnread (HTTP/1 with a body),
	// an answer sent before the body was read to its end closes the
	// connection: net/http would otherwise read the rest of the body
	// first, as slowly as the client cares to send it, before answering.
	body        *trackedBody
	closeUnread bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status, w.wrote = code, true
		if w.closeUnread && w.body != nil && !w.body.sawEOF {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(nethttp.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(nethttp.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives net/http.ResponseController the underlying writer.
func (w *recorder) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// metrics are the HTTP layer's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newMetrics creates the collectors and registers them with reg, if any.
// A Registry that already holds them (a second Server on it) shares them.
func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhold_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyhold_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
	}
	if reg == nil {
		return m
	}
	if err := reg.Register(m.requests); err != nil {
		are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
		if !ok {
			panic(err)
		}
		m.requests = are.ExistingCollector.(*prometheus.CounterVec)
	}
	if err := reg.Register(m.duration); err != nil {
		are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
		if !ok {
			panic(err)
		}
		m.duration = are.ExistingCollector.(*prometheus.HistogramVec)
	}
	return m
}
