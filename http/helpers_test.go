package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

// testCA is one CA and server certificate for 127.0.0.1, shared by the
// tests to keep them fast.
var testCA = sync.OnceValues(func() (ca []byte, conf *tls.Config) {
	now := time.Now()
	caCert, caKey, err := crypt.GenerateConstrainedCA("Keyhold test CA", []string{"127.0.0.1"}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		panic(err)
	}
	cert, key, err := crypt.IssueServerCert(caCert, caKey, []string{"127.0.0.1", "*.vault.localhost", "*.managedhsm.localhost"}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		panic(err)
	}
	conf, err = crypt.LoadServerTLS(cert, key)
	if err != nil {
		panic(err)
	}
	return caCert, conf
})

// fixture is a real platform over a real store, served by Server over
// TLS, with a Go client signed in as the bootstrap administrator.
type fixture struct {
	p      *platform.Platform
	store  keyhold.Store
	clock  *clocktest.Clock
	creds  *platform.BootstrapCredentials
	srv    *Server
	url    string
	ca     []byte
	raw    *nethttp.Client // trusts the CA; no credentials
	client *Client
	logs   *syncBuffer

	tokenRequests atomic.Int64 // answered by the token endpoint

	mu      sync.Mutex
	bodies  [][]byte // the start of every answer but successful token grants
	secrets []string // must never appear in bodies or logs
}

// option changes a fixture's Server before it serves.
type option func(*fixture)

// newFixture serves a fresh platform over a SQLite store.
func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	return newFixtureOn(t, storetest.OpenSQLite(t), opts...)
}

// forEachBackend runs fn against a fixture over each storage backend
// (PostgreSQL skips without KEYHOLD_TEST_POSTGRES; scripts/test.sh sets it).
func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newFixtureOn(t, open(t)))
	})
}

func newFixtureOn(t *testing.T, store keyhold.Store, opts ...option) *fixture {
	t.Helper()
	ctx := context.Background()
	ca, tlsConf := testCA()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, ca: ca, url: "https://" + ln.Addr().String(), logs: new(syncBuffer),
		clock: clocktest.New(time.Now().Truncate(time.Second))}
	master, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Destroy)
	reg := prometheus.NewRegistry()
	f.p, err = platform.Open(ctx, platform.Config{Store: store, MasterKey: master, Clock: f.clock, Registerer: reg, Issuer: f.url})
	if err != nil {
		t.Fatalf("platform.Open: %v", err)
	}
	t.Cleanup(func() { f.p.Close() })
	if f.creds, _, err = f.p.BootstrapCustomer(ctx); err != nil || f.creds == nil {
		t.Fatalf("BootstrapCustomer: %v", err)
	}
	f.secrets = append(f.secrets, f.creds.ClientSecret)
	f.srv = &Server{
		Tokens: f.p, Environments: f.p, Data: f.p, Audit: f.p,
		Logger:    slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry:  reg,
		PublicURL: f.url,
	}
	for _, o := range opts {
		o(f)
	}
	hs := &nethttp.Server{Handler: f.capture(f.srv.Handler()), TLSConfig: tlsConf, ErrorLog: discardLog()}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	f.raw = &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(f.raw.CloseIdleConnections)
	f.client, err = NewClient(f.url, ca, f.creds.TenantID, f.creds.ClientID, f.creds.ClientSecret)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(f.client.hc.CloseIdleConnections)
	t.Cleanup(func() { f.checkNoSecrets(t) })
	return f
}

// capture records the start of each answer (to check that none holds a
// secret) and counts token grants.
func (f *fixture) capture(h nethttp.Handler) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		cw := &captureWriter{ResponseWriter: w}
		defer func() {
			if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") && cw.status == nethttp.StatusOK {
				f.tokenRequests.Add(1)
				var tok tokenJSON
				json.Unmarshal(cw.buf.Bytes(), &tok)
				f.mu.Lock()
				f.secrets = append(f.secrets, tok.AccessToken)
				f.mu.Unlock()
				return
			}
			f.mu.Lock()
			f.bodies = append(f.bodies, cw.buf.Bytes())
			f.mu.Unlock()
		}()
		h.ServeHTTP(cw, r)
	})
}

type captureWriter struct {
	nethttp.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = nethttp.StatusOK
	}
	if room := 64<<10 - w.buf.Len(); room > 0 {
		w.buf.Write(b[:min(room, len(b))])
	}
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// checkNoSecrets fails if an answer or a log line holds the client secret
// or an access token.
func (f *fixture) checkNoSecrets(t *testing.T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	logs := f.logs.String()
	for _, s := range f.secrets {
		if s == "" {
			continue
		}
		for _, b := range f.bodies {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("an answer holds a secret or token: %.300s", b)
			}
		}
		if strings.Contains(logs, s) {
			t.Errorf("the log holds a secret or token")
		}
	}
}

// token gets a token for scope straight from the token endpoint.
func (f *fixture) token(t *testing.T, scope string) string {
	t.Helper()
	a := f.form(t, "/"+f.creds.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID},
		"client_secret": {f.creds.ClientSecret}, "scope": {scope},
	})
	if a.status != nethttp.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	var tok tokenJSON
	if err := json.Unmarshal(a.body, &tok); err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// adminToken is a token for the Power Apps audience.
func (f *fixture) adminToken(t *testing.T) string {
	t.Helper()
	return f.token(t, "https://service.powerapps.com/.default")
}

// answer is a raw HTTP answer.
type answer struct {
	status int
	header nethttp.Header
	body   []byte
}

// call sends a raw request; token and contentType may be empty.
func (f *fixture) call(t *testing.T, method, path, token, contentType string, body io.Reader) answer {
	t.Helper()
	req, err := nethttp.NewRequest(method, f.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading answer: %v", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// jsonCall sends body as JSON with token.
func (f *fixture) jsonCall(t *testing.T, method, path, token, body string) answer {
	t.Helper()
	return f.call(t, method, path, token, "application/json", strings.NewReader(body))
}

// form posts a form without credentials.
func (f *fixture) form(t *testing.T, path string, v url.Values) answer {
	t.Helper()
	return f.call(t, "POST", path, "", "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
}

// azureError decodes an Azure error body, failing if it is not one.
func (a answer) azureError(t *testing.T) errorDetail {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(a.body, &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("answer %d is not an Azure error body: %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want application/json", ct)
	}
	return b.Error
}

// wantError checks a raw answer's status, code and that its message holds
// each of hints.
func (a answer) wantError(t *testing.T, status int, code string, hints ...string) {
	t.Helper()
	e := a.azureError(t)
	if a.status != status || e.Code != code {
		t.Fatalf("answer = %d %s (%s), want %d %s", a.status, e.Code, e.Message, status, code)
	}
	for _, h := range hints {
		if !strings.Contains(e.Message, h) {
			t.Fatalf("message %q does not say %q", e.Message, h)
		}
	}
}

// wantCode checks the code of a client error.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// createEnv creates an environment through the Go client.
func (f *fixture) createEnv(t *testing.T, name string) *keyhold.Environment {
	t.Helper()
	e := &keyhold.Environment{DisplayName: name, Location: "unitedstates", SKU: keyhold.SKUProduction}
	if err := f.client.CreateEnvironment(context.Background(), e); err != nil {
		t.Fatalf("CreateEnvironment: %v", err)
	}
	return e
}

// discardLog silences net/http's own error log.
func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
