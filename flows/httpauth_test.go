package flows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// authFlow calls base+"/basic" with the connection reference "basic" and
// base+"/key" with "key", as the Http action's authentication.
func authFlow(base string) string {
	return `{
  "triggers": {"manual": {"type": "Request", "kind": "Button"}},
  "actions": {
    "Call_basic": {"type": "Http", "inputs": {"method": "GET", "uri": "` + base + `/basic", "authentication": {"type": "Connection", "connectionName": "basic"}}},
    "Call_key": {"type": "Http", "inputs": {"method": "POST", "uri": "` + base + `/key", "body": {"x": 1}, "authentication": {"type": "Connection", "connectionName": "key"}}, "runAfter": {"Call_basic": ["Succeeded"]}}
  }
}`
}

const authRefs = `{"basic": {"apiName": "shared_http", "connectionName": "partner-basic"}, "key": {"apiName": "shared_http", "connectionName": "partner-key"}}`

// tlsRecorder is a real HTTPS test server recording the credentials each
// path received; it never echoes them.
type tlsRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]http.Header
}

func newTLSRecorder(t *testing.T) *tlsRecorder {
	r := &tlsRecorder{seen: map[string]http.Header{}}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen[req.URL.Path] = req.Header.Clone()
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *tlsRecorder) header(path, name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.seen[path]; h != nil {
		return h.Get(name)
	}
	return ""
}

// tlsEngine is an engine that trusts srv's certificate.
func (w *world) tlsEngine(t *testing.T, srv *httptest.Server) *flows.Service {
	t.Helper()
	w.fl.Close()
	pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := srv.Client().Transport.(*http.Transport)
	fl, err := flows.New(flows.Config{Store: w.store, Sealer: w.p.Sealer, Data: w.p, Clock: w.clock, Egress: pol, Owner: "engine-tls",
		TLSConfig: tr.TLSClientConfig, LeaseTTL: 3 * time.Second, PollInterval: 50 * time.Millisecond,
		Sleep: func(ctx context.Context, d time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	fl.Start()
	t.Cleanup(fl.Close)
	return fl
}

// TestHttpActionConnectionCredentials: an Http action authenticates with
// non-OAuth connections by reference: the real HTTPS server receives the
// basic credentials and the API key (in the connection's header), while
// the definition, the run's recorded actions and the SQLite files never
// hold the secrets.
func TestHttpActionConnectionCredentials(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		var store keyhold.Store
		path := ""
		if strings.HasSuffix(t.Name(), "sqlite") {
			store, path = storetest.OpenSQLiteAt(t)
		} else {
			store = open(t)
		}
		w := newWorld(t, store)
		srv := newTLSRecorder(t)
		fl := w.tlsEngine(t, srv.Server)
		marker := fmt.Sprintf("sekrit%d", time.Now().UnixNano())
		if _, err := fl.PutConnection(w.ctx, w.env.ID, "shared_http", "partner-basic", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth,
			Parameters: map[string]string{"username": "svc", "password": marker + "-pw"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := fl.PutConnection(w.ctx, w.env.ID, "shared_http", "partner-key", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth,
			Parameters: map[string]string{"apiKey": marker + "-key", "headerName": "Ocp-Apim-Subscription-Key"}}); err != nil {
			t.Fatal(err)
		}
		f := w.putFlow(t, fl, "auth", authFlow(srv.URL), authRefs)
		run, err := fl.RunTrigger(w.ctx, w.env.ID, "auth", "manual", nil)
		if err != nil {
			t.Fatal(err)
		}
		if end := w.wait(t, fl, "auth", run.ID); end.Status != keyhold.RunSucceeded {
			acts, _ := fl.RunActions(w.ctx, w.env.ID, "auth", run.ID)
			out, _ := json.Marshal(acts)
			t.Fatalf("run %s: %s", end.Status, out)
		}
		if u, p, ok := (&http.Request{Header: http.Header{"Authorization": {srv.header("/basic", "Authorization")}}}).BasicAuth(); !ok || u != "svc" || p != marker+"-pw" {
			t.Errorf("the server got basic credentials %q %q (%v)", u, p, ok)
		}
		if got := srv.header("/key", "Ocp-Apim-Subscription-Key"); got != marker+"-key" {
			t.Errorf("the server got API key %q", got)
		}
		acts, err := fl.RunActions(w.ctx, w.env.ID, "auth", run.ID)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(acts)
		if bytes.Contains(out, []byte(marker)) || !bytes.Contains(out, []byte(`"connectionName":"key"`)) {
			t.Errorf("the run's actions hold the secret, or not the reference: %s", out)
		}
		if def, _ := json.Marshal(f); bytes.Contains(def, []byte(marker)) {
			t.Errorf("the flow holds the secret: %s", def)
		}
		if path == "" {
			return
		}
		files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("%s holds the secret in plaintext", filepath.Base(name))
			}
		}
	})
}

// TestHttpActionConnectionRefusals: an OAuth connection or a missing one
// fails the Http action with a clear error and sends nothing; an inline
// credential is refused at save, and a non-OAuth connection without
// usable parameters is refused when it is saved; nothing is stored.
func TestHttpActionConnectionRefusals(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv := newTLSRecorder(t)
		fl := w.tlsEngine(t, srv.Server)
		for what, params := range map[string]map[string]string{
			"nothing":    {"token": "x"},
			"half basic": {"username": "u"},
			"both":       {"username": "u", "password": "p", "apiKey": "k"},
			"bad header": {"apiKey": "k", "headerName": "X Bad: y"},
		} {
			_, err := fl.PutConnection(w.ctx, w.env.ID, "shared_http", "partner-key", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth, Parameters: params})
			if keyhold.ErrorCode(err) != keyhold.CodeInvalidRequestContent || !strings.Contains(err.Error(), "parameterValues") {
				t.Errorf("%s: err = %v", what, err)
			}
		}
		if cs, _ := fl.ListConnections(w.ctx, w.env.ID); len(cs) != 0 {
			t.Fatalf("connections after refusals: %d", len(cs))
		}
		name := "inline"
		inline := strings.Replace(authFlow(srv.URL), `{"type": "Connection", "connectionName": "basic"}`, `{"type": "Basic", "username": "u", "password": "p"}`, 1)
		if _, err := fl.PutFlow(w.ctx, w.env.ID, "inline", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(inline), ConnectionReferences: json.RawMessage(authRefs)}); keyhold.ErrorCode(err) != keyhold.CodeInvalidFlowDefinition || !strings.Contains(err.Error(), "actions.Call_basic.inputs.authentication") {
			t.Errorf("inline credentials: err = %v", err)
		}
		if _, err := fl.PutFlow(w.ctx, w.env.ID, "noref", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(authFlow(srv.URL))}); keyhold.ErrorCode(err) != keyhold.CodeInvalidFlowDefinition || !strings.Contains(err.Error(), `"basic"`) {
			t.Errorf("missing reference: err = %v", err)
		}
		// An OAuth connection under the reference: the action fails.
		if _, err := fl.PutConnection(w.ctx, w.env.ID, "shared_http", "partner-basic", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		w.putFlow(t, fl, "auth", authFlow(srv.URL), authRefs)
		run, err := fl.RunTrigger(w.ctx, w.env.ID, "auth", "manual", nil)
		if err != nil {
			t.Fatal(err)
		}
		end := w.wait(t, fl, "auth", run.ID)
		acts, _ := fl.RunActions(w.ctx, w.env.ID, "auth", run.ID)
		var basic *keyhold.FlowRunAction
		for _, a := range acts {
			if a.Path == "Call_basic" {
				basic = a
			}
		}
		if end.Status != keyhold.RunFailed || basic == nil || basic.Error == nil || basic.Error.Code != "ConnectionKindNotSupported" {
			t.Fatalf("run %s, Call_basic %+v", end.Status, basic)
		}
		srv.mu.Lock()
		n := len(srv.seen)
		srv.mu.Unlock()
		if n != 0 {
			t.Fatalf("the server was called %d times", n)
		}
	})
}

// TestHttpActionCredentialStaysOnHost: a server that redirects the Http
// action to another host gets the API key; the host redirected to does
// not (Go would forward an API key's own header).
func TestHttpActionCredentialStaysOnHost(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		other := newTLSRecorder(t)
		first := newTLSRecorder(t)
		first.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			first.mu.Lock()
			first.seen[req.URL.Path] = req.Header.Clone()
			first.mu.Unlock()
			http.Redirect(rw, req, other.URL+"/landing", http.StatusFound)
		})
		fl := w.tlsEngine(t, first.Server)
		if _, err := fl.PutConnection(w.ctx, w.env.ID, "shared_http", "partner-key", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth,
			Parameters: map[string]string{"apiKey": "the-key"}}); err != nil {
			t.Fatal(err)
		}
		def := `{"triggers": {"manual": {"type": "Request", "kind": "Button"}},
  "actions": {"Call": {"type": "Http", "inputs": {"method": "GET", "uri": "` + first.URL + `/start", "authentication": {"type": "Connection", "connectionName": "key"}}}}}`
		w.putFlow(t, fl, "redirect", def, `{"key": {"apiName": "shared_http", "connectionName": "partner-key"}}`)
		run, err := fl.RunTrigger(w.ctx, w.env.ID, "redirect", "manual", nil)
		if err != nil {
			t.Fatal(err)
		}
		if end := w.wait(t, fl, "redirect", run.ID); end.Status != keyhold.RunSucceeded {
			t.Fatalf("run %s", end.Status)
		}
		if got := first.header("/start", "X-API-Key"); got != "the-key" {
			t.Fatalf("the named host got API key %q", got)
		}
		other.mu.Lock()
		h := other.seen["/landing"]
		other.mu.Unlock()
		if h == nil {
			t.Fatal("the redirect was not followed: the check proves nothing")
		}
		if got := h.Get("X-API-Key"); got != "" {
			t.Fatalf("the host redirected to got the API key %q", got)
		}
	})
}
