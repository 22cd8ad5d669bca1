package http

import (
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	nethttp "net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestHealthz: 200 when healthy, 503 with the error code when not.
func TestHealthz(t *testing.T) {
	f := newFixture(t)
	a := f.call(t, "GET", "/healthz", "", "", nil)
	if a.status != nethttp.StatusOK || string(a.body) != `{"status":"ok"}` {
		t.Fatalf("healthz = %d %s", a.status, a.body)
	}

	sick := newFixture(t, func(f *fixture) {
		f.srv.Health = func(context.Context) error { return errors.New("database is locked: password=hunter2") }
	})
	a = sick.call(t, "GET", "/healthz", "", "", nil)
	var h struct {
		Status string
		Error  errorDetail
	}
	if err := json.Unmarshal(a.body, &h); err != nil || a.status != nethttp.StatusServiceUnavailable ||
		h.Status != "unavailable" || h.Error.Code != keyhold.CodeServiceUnavailable {
		t.Fatalf("unhealthy healthz = %d %s", a.status, a.body)
	}
	if strings.Contains(string(a.body), "hunter2") {
		t.Fatal("healthz answer holds the cause's text")
	}
}

// TestMetrics: /metrics serves the registry, with the HTTP counters by
// route pattern, method and status.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	if _, err := f.client.ListEnvironments(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.call(t, "GET", "/nowhere", "", "", nil)
	a := f.call(t, "GET", "/metrics", "", "", nil)
	if a.status != nethttp.StatusOK {
		t.Fatalf("metrics = %d", a.status)
	}
	for _, want := range []string{
		`keyhold_http_requests_total{code="200",method="GET",route="` + adminEnvPrefix + `"} 1`,
		`keyhold_http_requests_total{code="200",method="POST",route="/{tenantId}/oauth2/v2.0/token"} 1`,
		`keyhold_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`keyhold_http_request_duration_seconds_count{method="GET",route="` + adminEnvPrefix + `"} 1`,
		`keyhold_key_cache_entries`, // the platform's, on the same registry
	} {
		if !strings.Contains(string(a.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// stubEnvironments fails in ways the platform doesn't, to exercise the
// server's handling of unexpected errors and panics.
type stubEnvironments struct {
	keyhold.EnvironmentService // nil: other methods panic
	err                        error
}

func (s stubEnvironments) ListEnvironments(context.Context) ([]*keyhold.Environment, error) {
	return nil, s.err
}

// TestInternalErrors: an error that is not a *keyhold.Error answers 500
// with the generic message and is logged with its request id; a panic is
// recovered into a 500.
func TestInternalErrors(t *testing.T) {
	f := newFixture(t, func(f *fixture) {
		f.srv.Environments = stubEnvironments{err: errors.New("dial tcp 10.0.0.5:5432: password=hunter2 rejected")}
	})
	tok := f.adminToken(t)

	a := f.call(t, "GET", adminEnvPrefix, tok, "", nil)
	a.wantError(t, nethttp.StatusInternalServerError, keyhold.CodeInternal, "The server log has the details")
	logs := f.logs.String()
	id := a.header.Get("x-ms-request-id")
	var found bool
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, id) && strings.Contains(line, "10.0.0.5:5432") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no Error line with request id %s and the cause in:\n%s", id, logs)
	}
	// The cause belongs in the log, never in an answer.
	f.mu.Lock()
	for _, b := range f.bodies {
		if strings.Contains(string(b), "hunter2") {
			t.Errorf("an answer holds the cause: %s", b)
		}
	}
	f.mu.Unlock()

	// FindEnvironment is the nil embedded interface: it panics.
	a = f.call(t, "GET", adminEnvPrefix+"/x", tok, "", nil)
	a.wantError(t, nethttp.StatusInternalServerError, keyhold.CodeInternal)
	if !strings.Contains(f.logs.String(), "handler panicked") {
		t.Fatal("the panic was not logged")
	}
	// The server still serves.
	if a = f.call(t, "GET", "/healthz", "", "", nil); a.status != nethttp.StatusOK {
		t.Fatalf("after a panic healthz = %d", a.status)
	}
}

// TestRequestIDs: every answer carries a request id; a caller's
// correlation id is kept; the access log names route, status and caller.
func TestRequestIDs(t *testing.T) {
	f := newFixture(t)
	tok := f.adminToken(t)
	req, _ := nethttp.NewRequest("GET", f.url+adminEnvPrefix, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	const corr = "6f1c3b5e-8a2d-4c7f-9e10-2b3a4c5d6e7f"
	req.Header.Set("x-ms-correlation-request-id", corr)
	req.Header.Set("x-ms-client-request-id", corr)
	a := do(t, f, req)
	if a.status != nethttp.StatusOK || !isUUID(a.header.Get("x-ms-request-id")) ||
		a.header.Get("x-ms-correlation-request-id") != corr || a.header.Get("x-ms-client-request-id") != corr {
		t.Fatalf("answer %d headers %v", a.status, a.header)
	}
	b := f.call(t, "GET", "/healthz", "", "", nil)
	if id := b.header.Get("x-ms-request-id"); !isUUID(id) || id == a.header.Get("x-ms-request-id") || b.header.Get("x-ms-correlation-request-id") != id {
		t.Fatalf("second answer headers %v: want a fresh request id, used as correlation id", b.header)
	}

	var entry map[string]any
	for line := range strings.Lines(f.logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "http request" && m["request_id"] == a.header.Get("x-ms-request-id") {
			entry = m
		}
	}
	if entry == nil {
		t.Fatal("no access log line for the request")
	}
	if entry["route"] != adminEnvPrefix || entry["method"] != "GET" || entry["status"] != float64(200) || entry["principal"] == nil || entry["duration"] == nil {
		t.Fatalf("access log line = %v", entry)
	}
}

// TestStatusTable: every error code of the root package has a class, from
// which its status comes; an unknown code is a 500.
func TestStatusTable(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "../error.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") {
					continue
				}
				code, _ := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				if !slices.Contains(keyhold.Codes(), code) {
					t.Errorf("keyhold.%s (%q) has no class, so no HTTP status of its own", name.Name, code)
				}
				n++
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d codes in ../error.go", n)
	}
	want := map[string]int{
		keyhold.CodeInvalidLocation: 400, keyhold.CodeRequestTooLarge: 413, keyhold.CodeInvalidClient: 401,
		keyhold.CodeUnsupportedGrantType: 400, keyhold.CodeForbidden: 403, keyhold.CodeRowNotFound: 404,
		keyhold.CodeEnvironmentDisabled: 409, keyhold.CodeKeyVaultUnavailable: 503, "NoSuchCode": 500,
	}
	for code, status := range want {
		if got := StatusOf(code); got != status {
			t.Errorf("StatusOf(%q) = %d, want %d", code, got, status)
		}
	}
}
