package flows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// world is a platform (the real custody core and data plane) over one
// store, an environment, and a flows service on it whose egress policy
// allows loopback (the tests' servers).
type world struct {
	store keyhold.Store
	p     *platform.Platform
	clock *clocktest.Clock
	ctx   context.Context // the bootstrap administrator
	env   *keyhold.Environment
	fl    *flows.Service
}

func newWorld(t *testing.T, store keyhold.Store) *world {
	t.Helper()
	return newWorldWith(t, store, nil)
}

// newWorldWith is newWorld with the platform's configuration changed by
// configure (if not nil) before it opens.
func newWorldWith(t *testing.T, store keyhold.Store, configure func(*platform.Config)) *world {
	t.Helper()
	master, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Destroy)
	clock := clocktest.New(time.Now().UTC())
	cfg := platform.Config{Store: store, MasterKey: master, Clock: clock, Issuer: "https://keyhold.test"}
	if configure != nil {
		configure(&cfg)
	}
	p, err := platform.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	creds, _, err := p.BootstrapCustomer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.IssueToken(context.Background(), creds.TenantID, creds.ClientID, creds.ClientSecret, string(keyhold.AudienceFlow)+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Authenticate(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{store: store, p: p, clock: clock, ctx: keyhold.NewContext(context.Background(), id)}
	w.env = &keyhold.Environment{DisplayName: "flows", Location: "europe", SKU: keyhold.SKUProduction}
	if err := p.CreateEnvironment(w.ctx, w.env); err != nil {
		t.Fatal(err)
	}
	w.fl = w.engine(t, "engine-1", nil)
	return w
}

// engine starts a flows service (an engine) on the world's store.
func (w *world) engine(t *testing.T, owner string, store keyhold.Store) *flows.Service {
	t.Helper()
	if store == nil {
		store = w.store
	}
	pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := flows.New(flows.Config{Store: store, Sealer: w.p.Sealer, Data: w.p, Clock: w.clock, Egress: pol, Owner: owner,
		LeaseTTL: 3 * time.Second, PollInterval: 50 * time.Millisecond, InvokeWait: 10 * time.Second,
		Sleep: func(ctx context.Context, d time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	fl.Start()
	t.Cleanup(fl.Close)
	return fl
}

// counter is a loopback HTTP server counting calls by path.
type counter struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
	hold  chan struct{} // if set, /hold waits for it
}

func newCounter(t *testing.T) *counter {
	c := &counter{calls: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.calls[r.URL.Path+"?"+r.URL.RawQuery]++
		hold := c.hold
		c.mu.Unlock()
		if r.URL.Path == "/hold" && hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"ok":true}`, r.URL.Path)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *counter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[key]
}

// fiveActions is a manual (Button) flow of five actions: Compose, Http to
// base+"/one", Http to base+second, Compose, Response.
func fiveActions(base, second string) string {
	return `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {
    "Compose_in": {"type": "Compose", "inputs": "@concat('hello ', triggerBody()?['name'])", "runAfter": {}},
    "Call_one": {"type": "Http", "inputs": {"method": "POST", "uri": "` + base + `/one", "body": {"greeting": "@outputs('Compose_in')"}}, "runAfter": {"Compose_in": ["Succeeded"]}},
    "Call_two": {"type": "Http", "inputs": {"method": "GET", "uri": "` + base + second + `"}, "runAfter": {"Call_one": ["Succeeded"]}},
    "Compose_out": {"type": "Compose", "inputs": {"one": "@body('Call_one')?['ok']", "greeting": "@outputs('Compose_in')"}, "runAfter": {"Call_two": ["Succeeded"]}},
    "Response": {"type": "Response", "kind": "Http", "inputs": {"statusCode": 200, "body": "@outputs('Compose_out')"}, "runAfter": {"Compose_out": ["Succeeded"]}}
  }
}`
}

func (w *world) putFlow(t *testing.T, fl *flows.Service, id, def string, refs string) *keyhold.Flow {
	t.Helper()
	name := "Flow " + id
	in := &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(def)}
	if refs != "" {
		in.ConnectionReferences = json.RawMessage(refs)
	}
	f, err := fl.PutFlow(w.ctx, w.env.ID, id, in)
	if err != nil {
		t.Fatalf("PutFlow %s: %v", id, err)
	}
	return f
}

// wait polls a run until it has finished.
func (w *world) wait(t *testing.T, fl *flows.Service, flowID, runID string) *keyhold.FlowRun {
	t.Helper()
	return w.waitIn(t, fl, w.env.ID, flowID, runID)
}

// waitIn polls a run of any environment until it has finished.
func (w *world) waitIn(t *testing.T, fl *flows.Service, envID, flowID, runID string) *keyhold.FlowRun {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := fl.GetRun(w.ctx, envID, flowID, runID)
		if err != nil {
			t.Fatalf("GetRun: %v", err)
		}
		switch r.Status {
		case keyhold.RunSucceeded, keyhold.RunFailed, keyhold.RunCancelled, keyhold.RunSkipped:
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s", runID, r.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestManualRunEndToEnd: a five-action flow runs from its manual trigger
// to the end on both databases; its actions show their status, timing,
// inputs and outputs; the Http actions reached the loopback server once
// each.
func TestManualRunEndToEnd(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv := newCounter(t)
		w.putFlow(t, w.fl, "five", fiveActions(srv.URL, "/two"), "")
		run, err := w.fl.RunTrigger(w.ctx, w.env.ID, "five", "manual", json.RawMessage(`{"name":"Ada"}`))
		if err != nil {
			t.Fatal(err)
		}
		end := w.wait(t, w.fl, "five", run.ID)
		if end.Status != keyhold.RunSucceeded || end.EndTime.IsZero() {
			t.Fatalf("run = %+v", end)
		}
		acts, err := w.fl.RunActions(w.ctx, w.env.ID, "five", run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(acts) != 5 {
			t.Fatalf("%d actions, want 5: %+v", len(acts), acts)
		}
		for _, a := range acts {
			if a.Status != "Succeeded" || a.StartTime.IsZero() || a.EndTime.IsZero() {
				t.Errorf("action %s: %+v", a.Path, a)
			}
		}
		out, _ := json.Marshal(acts)
		if !bytes.Contains(out, []byte(`"greeting":"hello Ada"`)) {
			t.Errorf("actions' inputs and outputs don't show the greeting: %s", out)
		}
		if srv.count("/one?") != 1 || srv.count("/two?") != 1 {
			t.Errorf("calls = %v, want one each", srv.calls)
		}
	})
}

// TestBadDefinitionRefused: a malformed definition, an unknown function
// and a runAfter cycle are refused naming the path, and nothing is
// stored.
func TestBadDefinitionRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		name := "bad"
		for what, def := range map[string]string{
			"not JSON":         `{"triggers":`,
			"unknown function": strings.Replace(fiveActions("http://127.0.0.1:1", "/two"), "@concat(", "@nosuchfunction(", 1),
			"runAfter cycle":   strings.Replace(fiveActions("http://127.0.0.1:1", "/two"), `"runAfter": {}`, `"runAfter": {"Response": ["Succeeded"]}`, 1),
		} {
			_, err := w.fl.PutFlow(w.ctx, w.env.ID, "bad", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(def)})
			if keyhold.ErrorCode(err) != keyhold.CodeInvalidFlowDefinition {
				t.Errorf("%s: err = %v, want %s", what, err, keyhold.CodeInvalidFlowDefinition)
			}
		}
		list, err := w.fl.ListFlows(w.ctx, w.env.ID)
		if err != nil || len(list) != 0 {
			t.Fatalf("flows after refusals: %v, %v", list, err)
		}
	})
}

// TestRequestTriggerSignature: the callback URL's signature is checked: a
// right one runs the flow and answers its Response; a wrong, missing or
// regenerated-away one is 401 and starts no run.
func TestRequestTriggerSignature(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv := newCounter(t)
		w.putFlow(t, w.fl, "hook", fiveActions(srv.URL, "/two"), "")
		cb, err := w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", false)
		if err != nil {
			t.Fatal(err)
		}
		sig := func(cb *keyhold.FlowCallback) keyhold.FlowSignature {
			u, err := url.Parse(cb.Value)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			return keyhold.FlowSignature{APIVersion: q.Get("api-version"), SP: q.Get("sp"), SV: q.Get("sv"), Sig: q.Get("sig")}
		}
		good := sig(cb)
		resp, err := w.fl.InvokeTrigger(context.Background(), w.env.ID, "hook", "manual", good, json.RawMessage(`{"name":"Bo"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "hello Bo") {
			t.Fatalf("response %d %s", resp.StatusCode, body)
		}
		runs := func() int {
			rs, err := w.fl.ListRuns(w.ctx, w.env.ID, "hook")
			if err != nil {
				t.Fatal(err)
			}
			return len(rs)
		}
		bad := good
		bad.Sig = good.Sig[:len(good.Sig)-2] + "AA"
		missing := good
		missing.Sig = ""
		otherFlow := good
		for what, s := range map[string]keyhold.FlowSignature{"wrong": bad, "missing": missing} {
			_, err := w.fl.InvokeTrigger(context.Background(), w.env.ID, "hook", "manual", s, nil)
			if keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
				t.Errorf("%s signature: err = %v", what, err)
			}
		}
		w.putFlow(t, w.fl, "other", fiveActions(srv.URL, "/two"), "")
		if _, err := w.fl.InvokeTrigger(context.Background(), w.env.ID, "other", "manual", otherFlow, nil); keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
			t.Errorf("another flow's signature: err = %v", err)
		}
		if _, err := w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", true); err != nil {
			t.Fatal(err)
		}
		if _, err := w.fl.InvokeTrigger(context.Background(), w.env.ID, "hook", "manual", good, nil); keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
			t.Errorf("signature of a regenerated key: err = %v", err)
		}
		if n := runs(); n != 1 {
			t.Fatalf("%d runs, want the one good invoke's", n)
		}
		big := json.RawMessage(`"` + strings.Repeat("x", keyhold.MaxTriggerBodyBytes) + `"`)
		cb, _ = w.fl.CallbackURL(w.ctx, w.env.ID, "hook", "manual", false)
		if _, err := w.fl.InvokeTrigger(context.Background(), w.env.ID, "hook", "manual", sig(cb), big); keyhold.ErrorCode(err) != keyhold.CodeRequestTooLarge {
			t.Errorf("huge body: err = %v", err)
		}
		if n := runs(); n != 1 {
			t.Fatalf("%d runs after the refusals, want 1", n)
		}
	})
}

// TestEgressRefused: an Http action to an address the policy does not
// allow fails (EgressRefused), and nothing reaches it.
func TestEgressRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv := newCounter(t)
		// localhost by name resolves to loopback, which only 127.0.0.1
		// by address is allowed... use [::1] instead: not allowed.
		u, _ := url.Parse(srv.URL)
		refused := "http://[::1]:" + u.Port()
		w.putFlow(t, w.fl, "out", fiveActions(refused, "/two"), "")
		run, err := w.fl.RunTrigger(w.ctx, w.env.ID, "out", "manual", nil)
		if err != nil {
			t.Fatal(err)
		}
		end := w.wait(t, w.fl, "out", run.ID)
		acts, _ := w.fl.RunActions(w.ctx, w.env.ID, "out", run.ID)
		var one *keyhold.FlowRunAction
		for _, a := range acts {
			if a.Path == "Call_one" {
				one = a
			}
		}
		if end.Status != keyhold.RunFailed || one == nil || one.Error == nil || one.Error.Code != "EgressRefused" {
			t.Fatalf("run %s, Call_one %+v", end.Status, one)
		}
	})
}

// lockEnv sets the environment's state past the platform (as a revoked
// key's lock does) and drops its cached keys.
func (w *world) setState(t *testing.T, st keyhold.RuntimeState) {
	t.Helper()
	if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error {
		e, err := tx.Environment(context.Background(), w.env.ID)
		if err != nil {
			return err
		}
		e.State = st
		return tx.UpdateEnvironment(context.Background(), e)
	}); err != nil {
		t.Fatal(err)
	}
	w.p.DropKeys(w.env.ID)
}

// heldRun puts flowID, five actions whose second call waits on the
// returned server's hold, on fl and triggers it; it returns once that
// call has started (the save before it committed).
func (w *world) heldRun(t *testing.T, fl *flows.Service, flowID string) (*counter, string) {
	t.Helper()
	srv := newCounter(t)
	srv.hold = make(chan struct{})
	w.putFlow(t, fl, flowID, fiveActions(srv.URL, "/hold"), "")
	run, err := fl.RunTrigger(w.ctx, w.env.ID, flowID, "manual", json.RawMessage(`{"name":"Cy"}`))
	if err != nil {
		t.Fatal(err)
	}
	for srv.count("/hold?") == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	return srv, run.ID
}

// runRecord reads a run's record as the store holds it.
func (w *world) runRecord(t *testing.T, flowID, runID string) *keyhold.FlowRunRecord {
	t.Helper()
	return storetest.Read(t, w.store, func(ctx context.Context, tx keyhold.Tx) (*keyhold.FlowRunRecord, error) {
		return tx.FlowRun(ctx, w.env.ID, flowID, runID)
	})
}

// TestLockedPausesAndResumes: while the environment is locked a trigger is
// refused (EnvironmentLocked, no run stored), and a run in flight pauses
// at its next step; after re-enabling it resumes and finishes, without
// repeating the action completed before the lock.
func TestLockedPausesAndResumes(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		srv, runID := w.heldRun(t, w.fl, "long")
		w.setState(t, keyhold.StateLocked)
		if _, err := w.fl.RunTrigger(w.ctx, w.env.ID, "long", "manual", nil); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
			t.Fatalf("trigger while locked: %v", err)
		}
		close(srv.hold) // Call_two ends; saving it needs the key: the run pauses
		time.Sleep(300 * time.Millisecond)
		if rec := w.runRecord(t, "long", runID); rec.Terminal() {
			t.Fatalf("run finished while locked: %s", rec.Status)
		}
		rs, _ := w.fl.ListRuns(w.ctx, w.env.ID, "long")
		if len(rs) != 1 {
			t.Fatalf("%d runs, want 1: the locked trigger stored none", len(rs))
		}
		w.setState(t, keyhold.StateEnabled)
		w.clock.Advance(10 * time.Second) // past the pause
		end := w.wait(t, w.fl, "long", runID)
		if end.Status != keyhold.RunSucceeded {
			t.Fatalf("run after re-enable: %+v", end)
		}
		if srv.count("/one?") != 1 {
			t.Fatalf("Call_one ran %d times, want once", srv.count("/one?"))
		}
	})
}

// killable is a store that can die: after kill, every transaction fails,
// as a process killed with SIGKILL writes nothing more.
type killable struct {
	keyhold.Store
	dead atomic.Bool
}

var errKilled = errors.New("killed")

func (k *killable) View(ctx context.Context, fn func(keyhold.Tx) error) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.View(ctx, fn)
}

func (k *killable) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.Update(ctx, fn)
}

// TestKilledEngineResumes: an engine dies mid-run (its store gone, its
// lease left behind); once the lease expires another engine claims the
// run and finishes it from the saved state: the action completed before
// the kill is not repeated.
func TestKilledEngineResumes(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.fl.Close() // the world's engine stays out of it
		k := &killable{Store: w.store}
		a := w.engine(t, "engine-a", k)
		srv, runID := w.heldRun(t, a, "crash")
		k.dead.Store(true) // kill -9: nothing more is written
		close(srv.hold)
		b := w.engine(t, "engine-b", nil)
		w.clock.Advance(5 * time.Second) // past engine-a's lease
		end := w.wait(t, b, "crash", runID)
		if end.Status != keyhold.RunSucceeded {
			t.Fatalf("resumed run: %+v", end)
		}
		if n := srv.count("/one?"); n != 1 {
			t.Fatalf("Call_one ran %d times, want once (completed before the kill)", n)
		}
		if n := srv.count("/hold?"); n != 2 {
			t.Fatalf("Call_two ran %d times, want twice (in flight at the kill, so again)", n)
		}
	})
}

// TestTwoEnginesShareRuns: two engines on one database execute a burst of
// runs, each exactly once.
func TestTwoEnginesShareRuns(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		b := w.engine(t, "engine-2", nil)
		srv := newCounter(t)
		def := strings.Replace(fiveActions(srv.URL, "/two"), `/one"`, `/one?n=@{triggerBody()?['n']}"`, 1)
		w.putFlow(t, w.fl, "burst", def, "")
		const n = 20
		var ids []string
		for i := range n {
			fl := w.fl
			if i%2 == 1 {
				fl = b
			}
			r, err := fl.RunTrigger(w.ctx, w.env.ID, "burst", "manual", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		for _, id := range ids {
			if r := w.wait(t, w.fl, "burst", id); r.Status != keyhold.RunSucceeded {
				t.Fatalf("run %s: %+v", id, r)
			}
		}
		for i := range n {
			if c := srv.count(fmt.Sprintf("/one?n=%d", i)); c != 1 {
				t.Errorf("run %d called /one %d times", i, c)
			}
		}
	})
}

// TestNoPlaintextAtRest: a definition, a run's input and output and an
// OAuth connection's token never reach the SQLite files in plaintext.
func TestNoPlaintextAtRest(t *testing.T) {
	store, path := storetest.OpenSQLiteAt(t)
	w := newWorld(t, store)
	srv := newCounter(t)
	marker := "mk" + fmt.Sprint(time.Now().UnixNano())
	def := strings.Replace(fiveActions(srv.URL, "/two"), "hello ", "hello "+marker+"-def ", 1)
	w.putFlow(t, w.fl, "secret", def, "")
	run, err := w.fl.RunTrigger(w.ctx, w.env.ID, "secret", "manual", json.RawMessage(`{"name":"`+marker+`-input"}`))
	if err != nil {
		t.Fatal(err)
	}
	w.wait(t, w.fl, "secret", run.ID)
	if _, err := w.fl.PutConnection(w.ctx, w.env.ID, "shared_commondataserviceforapps", "c1", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth, Parameters: map[string]string{"token": marker + "-token"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.fl.PutConnection(w.ctx, w.env.ID, "shared_http", "c2", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": marker + "-apikey"}}); err != nil {
		t.Fatal(err)
	}
	// The OAuth connection's refresh token (its grant) is a secret too.
	token := w.connToken(t, w.connRecord(t, "shared_commondataserviceforapps", "c1"))
	if token == "" {
		t.Fatal("the OAuth connection holds no token")
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds the marker in plaintext", filepath.Base(f))
		}
		if bytes.Contains(b, []byte(token)) {
			t.Errorf("%s holds the OAuth connection's refresh token in plaintext", filepath.Base(f))
		}
	}
	// The check can fail: the output really carries the marker.
	acts, _ := w.fl.RunActions(w.ctx, w.env.ID, "secret", run.ID)
	if out, _ := json.Marshal(acts); !bytes.Contains(out, []byte(marker+"-input")) {
		t.Fatal("the run's actions don't carry the marker: the scan proves nothing")
	}
}
