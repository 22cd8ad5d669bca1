package platform

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
)

// hookServer is a tenant's webhook receiver over real HTTPS: it answers
// with status (200 unless set) and keeps every request it got.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	got    []hookRequest
}

type hookRequest struct {
	header http.Header
	body   []byte
}

func newHookServer(t *testing.T, f *cmkFixture) *hookServer {
	h := &hookServer{status: http.StatusOK}
	h.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.got = append(h.got, hookRequest{r.Header.Clone(), body})
		if h.status/100 == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(h.status)
		io.WriteString(w, `{"error":"receiver says no"}`)
	}))
	t.Cleanup(h.Close)
	f.allowEgress(t, h.Certificate(), nil, "127.0.0.1/32")
	return h
}

// allowEgress gives the platform the egress policy an operator would
// configure with --egress-allow allow (the receivers of these tests are on
// loopback, which the default refuses), resolving names with res (nil:
// the system's), and the product's webhook client through it, trusting
// cert.
func (f *cmkFixture) allowEgress(t *testing.T, cert *x509.Certificate, res egress.Resolver, allow ...string) {
	t.Helper()
	pol, err := egress.New(egress.Options{Allow: allow, Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if cert != nil {
		roots.AddCert(cert)
	}
	f.p.egress = pol
	f.p.hookClient = NewWebhookClient(roots, pol)
}

func (h *hookServer) setStatus(s int) { h.mu.Lock(); h.status = s; h.mu.Unlock() }

func (h *hookServer) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.got...)
}

// verifyHook checks a webhook request as a receiver would: the signature
// verifies with the platform's published key, and binds the body, the
// event id and the receiving URL.
func verifyHook(t *testing.T, p *Platform, url string, req hookRequest) keyhold.EventView {
	t.Helper()
	keys := p.SigningKeys()
	if len(keys) != 1 {
		t.Fatalf("signing keys %v, want 1", keys)
	}
	k := keys[0]
	xb, _ := base64.RawURLEncoding.DecodeString(k.X)
	yb, _ := base64.RawURLEncoding.DecodeString(k.Y)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
	if err != nil {
		t.Fatalf("published signing key %s: %v", k.Kid, err)
	}
	var claims webhookClaims
	tok, err := jwt.ParseWithClaims(req.header.Get("Keyhold-Signature"), &claims, func(tok *jwt.Token) (any, error) {
		if tok.Header["kid"] != k.Kid {
			t.Errorf("signature kid %v, want %s", tok.Header["kid"], k.Kid)
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(url), jwt.WithTimeFunc(p.clock.Now))
	if err != nil || !tok.Valid {
		t.Fatalf("webhook signature does not verify: %v", err)
	}
	sum := sha256.Sum256(req.body)
	if claims.BodySHA256 != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Errorf("signature's body_sha256 %s does not match the body", claims.BodySHA256)
	}
	var ev keyhold.EventView
	if err := json.Unmarshal(req.body, &ev); err != nil {
		t.Fatalf("webhook body %s: %v", req.body, err)
	}
	if claims.ID != ev.ID || req.header.Get("Keyhold-Event-Id") != ev.ID {
		t.Errorf("signature jti %s, header %s, body id %s: want all equal", claims.ID, req.header.Get("Keyhold-Event-Id"), ev.ID)
	}
	return ev
}

func (f *cmkFixture) events(t *testing.T) []*keyhold.Event {
	t.Helper()
	es, err := f.p.ListEvents(f.ctx, 0, 100)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	return es
}

func (f *cmkFixture) settings(t *testing.T, patch keyhold.TenantSettingsPatch) *keyhold.TenantSettings {
	t.Helper()
	s, err := f.p.UpdateTenantSettings(f.ctx, patch)
	if err != nil {
		t.Fatalf("UpdateTenantSettings: %v", err)
	}
	return s
}

// TestLockEventsAndWebhook: a revocation makes a PolicyHealthChanged and an
// EnvironmentLocked event that say what changed in the vault and who
// changed it; both reach the tenant's webhook, signed; re-enabling makes
// an EnvironmentEnabled event.
func TestLockEventsAndWebhook(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		hook := newHookServer(t, f)
		w := f.lockWorld(t, "ev")
		f.health(t, w.pol, keyhold.HealthHealthy)
		f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new(hook.URL + "/keyhold")})
		before := len(f.events(t))

		f.revoke(t, w.grantSc, w.grantNme)
		// A busy data plane after the revocation: its audit entries must not
		// hide the change from the search for what changed.
		if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
			for i := range 1500 {
				if err := tx.AppendAudit(context.Background(), &keyhold.AuditEntry{At: f.clock.Now(), TenantID: w.pol.TenantID, ActorID: f.adminID(),
					Action: "row.put", Target: fmt.Sprintf("rows/busy-%d", i), EnvID: w.env.ID, Result: "Succeeded"}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		es := f.events(t)
		if len(es) != before+2 {
			t.Fatalf("%d new events, want 2 (health, lock): %+v", len(es)-before, es[:len(es)-before])
		}
		lock, health := es[0], es[1]
		if health.Kind != keyhold.EventPolicyHealthChanged || health.PolicyID != w.pol.ID() || !strings.Contains(health.Summary, "Healthy -> Unhealthy") {
			t.Errorf("health event %+v, want PolicyHealthChanged Healthy -> Unhealthy of %s", health, w.pol.ID())
		}
		if lock.Kind != keyhold.EventEnvironmentLocked || lock.EnvID != w.env.ID || lock.PolicyID != w.pol.ID() {
			t.Errorf("lock event %+v, want EnvironmentLocked of %s under %s", lock, w.env.ID, w.pol.ID())
		}
		for _, e := range []*keyhold.Event{lock, health} {
			if len(e.Changes) != 1 {
				t.Fatalf("%s event changes %+v, want the one role assignment removal", e.Kind, e.Changes)
			}
			c := e.Changes[0]
			if c.Action != "roleAssignment.delete" || c.ActorID != f.adminID() || c.ActorName == "" || !strings.Contains(strings.ToLower(c.Target), strings.ToLower(w.grantNme)) {
				t.Errorf("%s event change %+v: want roleAssignment.delete of %s by %s, named", e.Kind, c, w.grantNme, f.adminID())
			}
			if e.Delivery != keyhold.DeliveryPending {
				t.Errorf("%s event delivery %s, want Pending (the tenant has a webhook)", e.Kind, e.Delivery)
			}
		}

		n, err := f.p.DeliverEvents(context.Background())
		if err != nil || n != 2 {
			t.Fatalf("DeliverEvents = %d, %v; want 2", n, err)
		}
		reqs := hook.requests()
		if len(reqs) != 2 {
			t.Fatalf("webhook got %d requests, want 2", len(reqs))
		}
		kinds := map[string]keyhold.EventView{}
		for _, r := range reqs {
			ev := verifyHook(t, f.p, hook.URL+"/keyhold", r)
			kinds[ev.Kind] = ev
		}
		if got := kinds[keyhold.EventEnvironmentLocked]; got.EnvironmentID != w.env.ID || len(got.Changes) != 1 || got.Delivery != nil {
			t.Errorf("webhook lock event %+v: want the environment, the change, and no delivery state", got)
		}
		for _, e := range f.events(t)[:2] {
			if e.Delivery != keyhold.DeliveryDelivered || e.Attempts != 1 {
				t.Errorf("event %d after delivery: %s after %d attempts, want Delivered after 1", e.ID, e.Delivery, e.Attempts)
			}
		}
		if n, err := f.p.DeliverEvents(context.Background()); err != nil || n != 0 || len(hook.requests()) != 2 {
			t.Errorf("a second DeliverEvents = %d, %v and %d requests; want nothing sent again", n, err, len(hook.requests()))
		}

		w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
		f.health(t, w.pol, keyhold.HealthHealthy)
		if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
			t.Fatal(err)
		}
		es = f.events(t)
		if es[0].Kind != keyhold.EventEnvironmentEnabled || es[0].EnvID != w.env.ID || len(es[0].Changes) != 0 {
			t.Errorf("newest event %+v, want EnvironmentEnabled of %s", es[0], w.env.ID)
		}
		if es[1].Kind != keyhold.EventPolicyHealthChanged || !strings.Contains(es[1].Summary, "Unhealthy -> Healthy") {
			t.Errorf("event before it %+v, want the policy Healthy again", es[1])
		}
		f.check(t, w.env.ID, w.data)
	})
}

// TestWebhookRetries: a webhook that fails is retried with backoff on the
// injected clock, and given up after webhookMaxAttempts; an event written
// with no webhook set is never sent.
func TestWebhookRetries(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		hook := newHookServer(t, f)
		w := f.lockWorld(t, "rt")
		f.health(t, w.pol, keyhold.HealthHealthy) // no webhook yet: None
		if es := f.events(t); es[0].Delivery != keyhold.DeliveryNone {
			t.Fatalf("event without a webhook: %s, want None", es[0].Delivery)
		}
		f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new(hook.URL)})
		hook.setStatus(http.StatusServiceUnavailable)
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		ctx := context.Background()

		if n, err := f.p.DeliverEvents(ctx); err != nil || n != 0 {
			t.Fatalf("DeliverEvents to a failing webhook = %d, %v; want 0, nil", n, err)
		}
		e := f.events(t)[0]
		if e.Delivery != keyhold.DeliveryPending || e.Attempts != 1 || !strings.Contains(e.LastError, "503") ||
			!e.NextAttemptAt.Equal(f.clock.Now().UTC().Add(webhookBackoff(1))) {
			t.Fatalf("after a failed attempt: %+v; want Pending, 1 attempt, the 503, retry in %v", e, webhookBackoff(1))
		}
		sent := len(hook.requests())
		f.p.DeliverEvents(ctx) // not due yet
		if len(hook.requests()) != sent {
			t.Fatalf("an event was retried before its backoff ended")
		}
		for i := 2; i <= webhookMaxAttempts; i++ {
			f.clock.Advance(webhookBackoff(i-1) + time.Second)
			f.p.DeliverEvents(ctx)
		}
		for _, e := range f.events(t)[:2] {
			if e.Delivery != keyhold.DeliveryFailed || e.Attempts != webhookMaxAttempts {
				t.Errorf("event %d: %s after %d attempts, want Failed after %d", e.ID, e.Delivery, e.Attempts, webhookMaxAttempts)
			}
		}
		if webhookBackoff(1) != 30*time.Second || webhookBackoff(3) != 2*time.Minute || webhookBackoff(40) != 4*time.Hour {
			t.Errorf("backoff 1, 3, 40 = %v, %v, %v; want 30s, 2m, 4h", webhookBackoff(1), webhookBackoff(3), webhookBackoff(40))
		}

		// A later event to a webhook that recovers is delivered.
		hook.setStatus(http.StatusNoContent)
		w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
		f.health(t, w.pol, keyhold.HealthHealthy)
		if n, err := f.p.DeliverEvents(ctx); err != nil || n != 1 {
			t.Errorf("DeliverEvents after recovery = %d, %v; want 1", n, err)
		}
	})
}

// TestTenantSettingsRefusals: only an administrator changes settings; a
// webhook URL that events should not go to is refused; each refusal
// changes nothing; a change is audited.
func TestTenantSettingsRefusals(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		def, err := f.p.TenantSettings(f.ctx)
		if err != nil || def.AutoReenable || def.WebhookURL != "" {
			t.Fatalf("default settings %+v, %v; want auto re-enable off and no webhook", def, err)
		}
		good := f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new("https://hooks.contoso.com/keyhold")})
		for _, tc := range []struct{ url, want string }{
			{"ftp://hooks.contoso.com/x", "https"},
			{"http://hooks.contoso.com/x", "loopback"},
			{"https://user:pw@hooks.contoso.com/x", "credentials"},
			{"/relative", "absolute"},
			{"https://hooks.contoso.com/x#frag", "fragment"},
			{"https://h/" + strings.Repeat("a", maxWebhookURLLen), "bytes"},
		} {
			_, err := f.p.UpdateTenantSettings(f.ctx, keyhold.TenantSettingsPatch{WebhookURL: new(tc.url), AutoReenable: new(true)})
			if keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(keyhold.ErrorMessage(err), tc.want) {
				t.Errorf("webhook URL %.40q: %v; want BadRequest naming %q", tc.url, err, tc.want)
			}
		}
		notAdmin, _ := f.platformAdmin(t, "")
		if _, err := f.p.UpdateTenantSettings(notAdmin, keyhold.TenantSettingsPatch{AutoReenable: new(true)}); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Errorf("UpdateTenantSettings by a non-administrator: %v, want Forbidden", err)
		}
		if _, err := f.p.ListEvents(notAdmin, 0, 10); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Errorf("ListEvents by a non-administrator: %v, want Forbidden", err)
		}
		got, err := f.p.TenantSettings(f.ctx)
		if err != nil || *got != *good {
			t.Errorf("settings after refusals %+v, %v; want unchanged %+v", got, err, good)
		}
		// Loopback only once the operator allows it.
		if _, err := f.p.UpdateTenantSettings(f.ctx, keyhold.TenantSettingsPatch{WebhookURL: new("http://127.0.0.1:9/hook")}); keyhold.ErrorCode(err) != keyhold.CodeBadRequest ||
			!strings.Contains(keyhold.ErrorMessage(err), "--egress-allow") {
			t.Errorf("loopback webhook without the allowlist: %v; want BadRequest naming --egress-allow", err)
		}
		f.allowEgress(t, nil, nil, "127.0.0.1")
		ok := f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new("http://127.0.0.1:9/hook")})
		if ok.WebhookURL != "http://127.0.0.1:9/hook" || ok.AutoReenable {
			t.Errorf("loopback http webhook: %+v", ok)
		}
		var found bool
		f.store.View(context.Background(), func(tx keyhold.Tx) error {
			es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: ok.TenantID, Limit: 5})
			for _, e := range es {
				found = found || (e.Action == auditTenantSettings && strings.Contains(e.Detail, "127.0.0.1:9"))
			}
			return err
		})
		if !found {
			t.Errorf("no %s audit entry for the change", auditTenantSettings)
		}
	})
}

// waitState polls until the environment reaches want or the deadline.
func (f *cmkFixture) waitState(t *testing.T, envID string, want keyhold.RuntimeState, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if f.env(t, envID).State == want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("environment %s did not become %s within %v (it is %s)", envID, want, within, f.env(t, envID).State)
	return 0
}

// TestChangeFeedLocksAtOnce: with the change feed running, a change in the
// vault locks the environment without waiting for the periodic check; a
// change elsewhere leaves another policy alone.
func TestChangeFeedLocksAtOnce(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "fd")
		other := f.lockWorld(t, "other")
		f.health(t, w.pol, keyhold.HealthHealthy)
		f.health(t, other.pol, keyhold.HealthHealthy)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.p.RunChangeFeed(ctx, 20*time.Millisecond) }()
		defer func() { cancel(); <-done }()
		time.Sleep(50 * time.Millisecond) // the feed has found the end of the log

		off := false
		if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, w.key, "", keyhold.KeyAttributes{Enabled: &off}, nil, nil); err != nil {
			t.Fatal(err)
		}
		took := f.waitState(t, w.env.ID, keyhold.StateLocked, 10*time.Second)
		t.Logf("locked %v after the key was disabled", took)
		if s := f.env(t, other.env.ID).State; s != keyhold.StateEnabled {
			t.Errorf("the other policy's environment is %s, want Enabled", s)
		}
		if n := f.healthAudits(t, other.pol); n != 1 {
			t.Errorf("the other policy has %d health changes, want 1 (its first check)", n)
		}
	})
}

// TestLiveFailureWakesMonitor: a failed unwrap on a live path asks for a
// health check at once, even when the feed would not read the log for an
// hour.
func TestLiveFailureWakesMonitor(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "kick")
		f.health(t, w.pol, keyhold.HealthHealthy)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		// A feed that would not read the log for an hour on its own.
		go func() { defer close(done); f.p.RunChangeFeed(ctx, time.Hour) }()
		defer func() { cancel(); <-done }()
		f.revoke(t, w.grantSc, w.grantNme)
		f.p.DropKeys(w.env.ID)
		if _, err := f.p.GetRow(f.ctx, w.env.ID, "accounts", "r0000"); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("GetRow after the revocation, before the lock: %v, want the vault's Forbidden", err)
		}
		f.waitState(t, w.env.ID, keyhold.StateLocked, 10*time.Second)
	})
}

// TestAutoReenable: with the tenant's setting on, a health check that
// finds the key accessible again re-enables the Locked environment,
// audited as the platform's; with it off (the default) it stays Locked.
func TestAutoReenable(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "ar")
		f.health(t, w.pol, keyhold.HealthHealthy)
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
		f.health(t, w.pol, keyhold.HealthHealthy)
		if s := f.env(t, w.env.ID).State; s != keyhold.StateLocked {
			t.Fatalf("with auto re-enable off, the environment is %s after access came back; want Locked", s)
		}
		f.settings(t, keyhold.TenantSettingsPatch{AutoReenable: new(true)})
		f.health(t, w.pol, keyhold.HealthHealthy)
		if s := f.env(t, w.env.ID).State; s != keyhold.StateEnabled {
			t.Fatalf("with auto re-enable on, the environment is %s; want Enabled", s)
		}
		f.check(t, w.env.ID, w.data)
		es := f.events(t)
		if es[0].Kind != keyhold.EventEnvironmentEnabled {
			t.Errorf("newest event %s, want EnvironmentEnabled", es[0].Kind)
		}
		var actor string
		f.store.View(context.Background(), func(tx keyhold.Tx) error {
			as, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{EnvID: w.env.ID, Limit: 1})
			if len(as) == 1 {
				actor = as[0].ActorID
			}
			return err
		})
		if actor != systemActorID {
			t.Errorf("re-enable audited as %q, want the platform (%s)", actor, systemActorID)
		}

		// A second revocation locks again, and the setting brings it back
		// again.
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
		f.health(t, w.pol, keyhold.HealthHealthy)
		if s := f.env(t, w.env.ID).State; s != keyhold.StateEnabled {
			t.Errorf("second round: environment %s, want Enabled again", s)
		}
	})
}

// TestStaleProbeDropped: a probe that found the key revoked, but whose
// result arrives after an administrator re-enabled the environment (the
// policy changed after the probe started), locks nothing; a fresh result
// does.
func TestStaleProbeDropped(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "stale")
		f.health(t, w.pol, keyhold.HealthHealthy)
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
		started := f.clock.Now() // a probe starts, still seeing the revocation
		f.clock.Advance(time.Second)
		if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
			t.Fatal(err)
		}
		revoked := keyhold.Errorf(keyhold.CodeForbidden, "revoked, as the probe saw it")
		if err := f.p.setPolicyHealth(context.Background(), w.pol.ID(), started, keyhold.HealthUnhealthy, revoked, w.kid); err != nil {
			t.Fatal(err)
		}
		if s := f.env(t, w.env.ID).State; s != keyhold.StateEnabled {
			t.Fatalf("a stale probe result locked the re-enabled environment: %s", s)
		}
		f.check(t, w.env.ID, w.data)
		if err := f.p.setPolicyHealth(context.Background(), w.pol.ID(), f.clock.Now(), keyhold.HealthUnhealthy, revoked, w.kid); err != nil {
			t.Fatal(err)
		}
		if s := f.env(t, w.env.ID).State; s != keyhold.StateLocked {
			t.Fatalf("a fresh Unhealthy result left the environment %s, want Locked", s)
		}
	})
}

// TestWebhookNoRedirect: a webhook that answers with a redirect is not
// followed (the signed event would go to a URL the tenant never set): the
// attempt fails with the status, and the receiver saw one request.
func TestWebhookNoRedirect(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		hook := newHookServer(t, f)
		hook.setStatus(http.StatusTemporaryRedirect)
		f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new(hook.URL + "/keyhold")})
		env := f.managedEnv(t, "redirected")
		if err := f.p.DeleteEnvironment(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := f.p.DeliverEvents(context.Background()); err != nil || n != 0 {
			t.Fatalf("DeliverEvents to a redirecting webhook = %d, %v; want 0 delivered", n, err)
		}
		if reqs := hook.requests(); len(reqs) != 1 {
			t.Errorf("the receiver got %d requests, want 1: the redirect must not be followed", len(reqs))
		}
		e := f.events(t)[0]
		if e.Kind != keyhold.EventEnvironmentDeleted || e.Delivery != keyhold.DeliveryPending || !strings.Contains(e.LastError, "307") {
			t.Errorf("event %s: %s, %q; want Pending with the 307", e.Kind, e.Delivery, e.LastError)
		}
	})
}

// resolverMap resolves the names it holds to its addresses and no other:
// a DNS rebind on demand, which a test can't get from real DNS.
type resolverMap map[string]string

func (r resolverMap) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// deletedEvent makes an EnvironmentDeleted event and runs one delivery,
// returning the event as it then is.
func (f *cmkFixture) deletedEvent(t *testing.T, name string) *keyhold.Event {
	t.Helper()
	env := f.managedEnv(t, name)
	if err := f.p.DeleteEnvironment(f.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.DeliverEvents(context.Background()); err != nil {
		t.Fatalf("DeliverEvents: %v", err)
	}
	e := f.events(t)[0]
	if e.Kind != keyhold.EventEnvironmentDeleted || e.Attempts != 1 {
		t.Fatalf("newest event %s after %d attempts; want EnvironmentDeleted after 1", e.Kind, e.Attempts)
	}
	return e
}

// TestWebhookEgress: a webhook URL whose host is a loopback, link-local
// (metadata), private, unspecified, CGNAT or IPv4-mapped address, or
// localhost, is refused when set, naming the allowlist flag, and changes
// neither the settings nor the audit log; a name that resolves to
// loopback when the event is sent (a rebind) is refused at the
// connection, and the receiver gets nothing; a receiver's answer, its
// reason phrase or a non-HTTP reply never reaches lastError, which names
// the status code only.
func TestWebhookEgress(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		good := f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new("https://hooks.contoso.com/keyhold")})
		audit := func() int {
			t.Helper()
			var n int
			f.store.View(context.Background(), func(tx keyhold.Tx) error {
				es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: good.TenantID, Limit: 1000})
				n = len(es)
				return err
			})
			return n
		}
		before := audit()
		for _, raw := range []string{
			"https://127.0.0.1/hook", "http://127.0.0.1:8080/hook", "https://[::1]/hook", "http://169.254.169.254/latest/meta-data/",
			"https://[fe80::1]/hook", "https://10.0.0.5/hook", "https://172.16.0.1/hook", "https://192.168.0.10/hook", "https://[fd00::5]/hook",
			"https://0.0.0.0/hook", "https://100.64.1.1/hook", "https://[::ffff:127.0.0.1]/hook", "https://[::ffff:a9fe:a9fe]/hook",
			"https://localhost/hook", "http://localhost:9/hook", "https://0x7f.1/hook",
		} {
			_, err := f.p.UpdateTenantSettings(f.ctx, keyhold.TenantSettingsPatch{WebhookURL: new(raw), AutoReenable: new(true)})
			if msg := keyhold.ErrorMessage(err); keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(msg, fmt.Sprintf("%q", raw)) ||
				!strings.Contains(msg, "--egress-allow") {
				t.Errorf("webhook URL %s: %v; want BadRequest quoting it and naming --egress-allow", raw, err)
			}
		}
		if got, err := f.p.TenantSettings(f.ctx); err != nil || *got != *good {
			t.Fatalf("settings after the refusals %+v, %v; want unchanged %+v", got, err, good)
		}
		if n := audit(); n != before {
			t.Fatalf("the refusals wrote %d audit entries, want none", n-before)
		}

		// A rebind: the name is accepted, and refused where it connects.
		hook := newHookServer(t, f)
		_, port, _ := net.SplitHostPort(hook.Listener.Addr().String())
		f.allowEgress(t, hook.Certificate(), resolverMap{"hooks.rebind.test": "127.0.0.1"})
		f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new("https://hooks.rebind.test:" + port + "/keyhold")})
		e := f.deletedEvent(t, "rebound")
		if e.Delivery != keyhold.DeliveryPending || !strings.Contains(e.LastError, "hooks.rebind.test resolves to 127.0.0.1, a loopback address") ||
			!strings.Contains(e.LastError, "--egress-allow") {
			t.Errorf("delivery to a name resolving to loopback: %s, %q; want Pending with the refusal", e.Delivery, e.LastError)
		}
		if n := len(hook.requests()); n != 0 {
			t.Fatalf("the receiver behind the rebound name got %d requests, want none", n)
		}

		// The operator allows loopback: the answer's body is not kept.
		f.allowEgress(t, hook.Certificate(), nil, "127.0.0.1/32")
		f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new(hook.URL + "/keyhold")})
		hook.setStatus(http.StatusInternalServerError)
		e = f.deletedEvent(t, "answered")
		if len(hook.requests()) != 1 || e.LastError != "the webhook answered 500 Internal Server Error" {
			t.Errorf("lastError %q after %d requests; want the status code alone", e.LastError, len(hook.requests()))
		}

		// A raw answer: a reason phrase of the receiver's, then no HTTP at
		// all (a banner of some other service).
		for _, tc := range []struct{ reply, want string }{
			{"HTTP/1.1 503 SECRET-REASON\r\nContent-Length: 6\r\nConnection: close\r\n\r\nSECRET", "the webhook answered 503 Service Unavailable"},
			{"SSH-2.0-SECRET-BANNER\r\n\r\n", "not a valid HTTP response"},
		} {
			raw := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				c, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				io.WriteString(c, tc.reply)
			}))
			f.allowEgress(t, raw.Certificate(), nil, "127.0.0.1/32")
			f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new(raw.URL + "/keyhold")})
			e := f.deletedEvent(t, "raw")
			raw.Close()
			if strings.Contains(e.LastError, "SECRET") || !strings.Contains(e.LastError, tc.want) {
				t.Errorf("reply %.20q: lastError %q; want %q and nothing the receiver sent", tc.reply, e.LastError, tc.want)
			}
		}
	})
}

// TestWebhookTest: an administrator's test event is refused without a
// webhook, and by a non-administrator, writing nothing; with one it is a
// WebhookTest event (with its audit entry), Pending, that the delivery
// loop posts, signed, as any other, and that ends Delivered.
func TestWebhookTest(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		hook := newHookServer(t, f)
		before := len(f.events(t))
		if _, err := f.p.TestWebhook(f.ctx); keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(keyhold.ErrorMessage(err), "no webhook") {
			t.Fatalf("TestWebhook without a webhook: %v; want BadRequest naming no webhook", err)
		}
		f.settings(t, keyhold.TenantSettingsPatch{WebhookURL: new(hook.URL + "/keyhold")})
		notAdmin, _ := f.platformAdmin(t, "")
		if _, err := f.p.TestWebhook(notAdmin); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("TestWebhook by a non-administrator: %v; want Forbidden", err)
		}
		if n := len(f.events(t)); n != before {
			t.Fatalf("refused tests wrote %d events", n-before)
		}
		ev, err := f.p.TestWebhook(f.ctx)
		if err != nil || ev.Kind != keyhold.EventWebhookTest || ev.Delivery != keyhold.DeliveryPending || ev.EnvID != "" || ev.PolicyID != "" || ev.AuditID == 0 {
			t.Fatalf("TestWebhook = %+v, %v; want a Pending WebhookTest event", ev, err)
		}
		entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{TenantID: ev.TenantID, ActionPrefixes: []string{auditWebhookTest}, Limit: 10})
		if err != nil || len(entries) != 1 || entries[0].ID != ev.AuditID {
			t.Fatalf("the test's audit entries: %+v, %v", entries, err)
		}
		if n, err := f.p.DeliverEvents(context.Background()); err != nil || n != 1 {
			t.Fatalf("DeliverEvents = %d, %v; want 1", n, err)
		}
		reqs := hook.requests()
		if len(reqs) != 1 || !strings.Contains(string(reqs[0].body), `"kind":"WebhookTest"`) || reqs[0].header.Get("Keyhold-Signature") == "" {
			t.Fatalf("the webhook got %d requests: %+v", len(reqs), reqs)
		}
		if es := f.events(t); es[0].ID != ev.ID || es[0].Delivery != keyhold.DeliveryDelivered {
			t.Fatalf("the test event after delivery: %+v", es[0])
		}
	})
}
