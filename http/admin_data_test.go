package http

import (
	"context"
	"encoding/json"
	"html/template"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// withAdminData serves backups, operations, coverage and events from the
// fixture's platform, as server.Run wires them.
func withAdminData(f *fixture) {
	f.srv.Backups, f.srv.CMK, f.srv.Coverage, f.srv.Events = f.p, f.p, f.p, f.p
}

// apiRefusal is the API's own message refusing a call of upn's.
func (f *fixture) apiRefusal(t *testing.T, upn, pw, method, path, body string) string {
	t.Helper()
	a := f.call(t, method, path, f.userToken(t, upn, pw), "application/json", strings.NewReader(body))
	if a.status < 400 || a.status >= 500 {
		t.Fatalf("%s %s as %s: %d %s, want a refusal", method, path, upn, a.status, a.body)
	}
	return a.azureError(t).Message
}

// TestAdminBackups: an environment's backups section lists its backups
// with their key and expiry, and takes one (a label made of markup is
// text); a form without the CSRF token, a restore or copy without the
// confirmation, and a person without an admin role (the API's own
// message) are refused and change nothing.
func TestAdminBackups(t *testing.T) {
	f := newFixture(t, withARM(nil), withAdminData)
	app := f.adminApp(t)
	pw := f.adminUser(t, "pat@contoso.example", true)
	ctx := context.Background()
	env := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction}
	other := &keyhold.Environment{DisplayName: "Fabrikam", Location: "europe", SKU: keyhold.SKUSandbox}
	for _, e := range []*keyhold.Environment{env, other} {
		if err := f.client.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	backups := func() []*keyhold.Backup {
		t.Helper()
		bs, err := f.client.ListBackups(ctx, env.ID)
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	b := f.browser(t)
	b.location(b.adminSignIn(app, "pat@contoso.example", pw), 303)
	envPath := "/admin/environments/" + env.ID
	page := b.do("GET", envPath, nil)
	wantAdminPage(t, page, 200, "Backups", "No backup yet.", "Microsoft-managed key", "Back up now", "kept 28 days", "What my key protects")

	// Without the CSRF token: refused, no backup.
	wantAdminPage(t, b.do("POST", envPath+"/backups", url.Values{"label": {"x"}}), 403, "Nothing was changed")
	if n := len(backups()); n != 0 {
		t.Fatalf("a form without the CSRF token took %d backups", n)
	}
	// Back up now, with a label made of markup.
	if loc := b.location(b.do("POST", envPath+"/backups", url.Values{csrfField: {page.csrf(t)}, "label": {xssName}}), 303); loc != envPath+"?done=backup-created#backups" {
		t.Fatalf("Back up now went to %q", loc)
	}
	bs := backups()
	if len(bs) != 1 || bs[0].Label != xssName {
		t.Fatalf("backups after Back up now: %+v", bs)
	}
	page = b.do("GET", envPath+"?done=backup-created", nil)
	wantAdminPage(t, page, 200, "The backup is taken.", template.HTMLEscapeString(xssName), bs[0].ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"),
		"Microsoft-managed key", "/admin/environments/"+env.ID+"/restore?backup="+bs[0].ID)
	if strings.Contains(string(page.body), "<img") {
		t.Fatalf("the backups list shows a label's markup: %s", page.body)
	}
	// The service's refusal of a label: its message, no backup.
	long := strings.Repeat("x", keyhold.MaxBackupLabel+1)
	wantAdminPage(t, b.do("POST", envPath+"/backups", url.Values{csrfField: {page.csrf(t)}, "label": {long}}), 400, "at most")
	if n := len(backups()); n != 1 {
		t.Fatalf("a refused label took a backup: %d", n)
	}

	// Restore: the confirmation page names the rule; without the box
	// ticked nothing starts.
	restore := b.do("GET", envPath+"/restore?backup="+bs[0].ID, nil)
	wantAdminPage(t, restore, 200, "Restore backup", "is overwritten", "same customer-managed key", "Contoso (this environment)", "Fabrikam")
	before, _ := f.client.FindEnvironment(ctx, env.ID)
	a := b.do("POST", envPath+"/restore", url.Values{csrfField: {page.csrf(t)}, "backup": {bs[0].ID}, "target": {env.ID}})
	wantAdminPage(t, a, 400, "tick the box", env.ID, "nothing was started")
	if e, _ := f.client.FindEnvironment(ctx, env.ID); e.RestoreOperationID != "" || e.Version != before.Version {
		t.Fatalf("a restore without the confirmation changed the environment: %+v", e)
	}
	wantAdminPage(t, b.do("GET", envPath+"/restore?backup=nope", nil), 404, "&#34;nope&#34;")
	// Copy offers the others only; onto nothing is refused.
	cp := b.do("GET", envPath+"/copy", nil)
	wantAdminPage(t, cp, 200, "Copy environment", "Fabrikam", "Choose an environment")
	if strings.Contains(string(cp.body), "(this environment)") {
		t.Fatalf("Copy offers the environment itself: %s", cp.body)
	}
	wantAdminPage(t, b.do("POST", envPath+"/copy", url.Values{csrfField: {page.csrf(t)}, "confirm": {adminConfirm}}), 400, "choose the environment")
	if e, _ := f.client.FindEnvironment(ctx, other.ID); e.RestoreOperationID != "" {
		t.Fatalf("a refused copy started: %+v", e)
	}

	// Rita, no administrator: the API's refusal, word for word; nothing
	// taken.
	rpw := f.adminUser(t, "rita@contoso.example", false)
	r := f.browser(t)
	r.location(r.adminSignIn(app, "rita@contoso.example", rpw), 303)
	rp := r.do("GET", envPath, nil)
	msg := f.apiRefusal(t, "rita@contoso.example", rpw, "POST", adminEnvPrefix+"/"+env.ID+"/backups?api-version=2022-03-01-preview", `{}`)
	forced := r.do("POST", envPath+"/backups", url.Values{csrfField: {rp.csrf(t)}, "label": {"forced"}})
	wantAdminPage(t, forced, 403, template.HTMLEscapeString(msg))
	if n := len(backups()); n != 1 {
		t.Fatalf("a non-administrator's forced backup: %d backups", n)
	}
}

// TestAdminCoverageAndEvents: an environment's coverage report as a table
// (every store, its items and the key that holds them); the events page
// with the tenant's webhook, set, refused with the service's message when
// it is not https (nothing changed), and removed; a person without an
// admin role gets the API's own refusal on both and changes nothing.
func TestAdminCoverageAndEvents(t *testing.T) {
	f := newFixture(t, withARM(nil), withAdminData, withFlows(t))
	app := f.adminApp(t)
	pw := f.adminUser(t, "pat@contoso.example", true)
	ctx := context.Background()
	env := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction}
	if err := f.client.CreateEnvironment(ctx, env); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.PutRow(ctx, env.ID, "accounts", "a1", []byte(`{"name":"Fabrikam"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.CreateBackup(ctx, env.ID, "kept"); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	b.location(b.adminSignIn(app, "pat@contoso.example", pw), 303)
	cov := b.do("GET", "/admin/environments/"+env.ID+"/coverage", nil)
	wantAdminPage(t, cov, 200, "Encryption coverage", "Key managed by <strong>Microsoft</strong>", ">rows<", ">files<", ">backups<", ">audit<", ">flows<", ">preMigrationRuns<",
		`<td class="root-platform">Microsoft-managed key</td><td>—</td><td>1</td><td>1</td><td>—</td>`)
	wantAdminPage(t, cov, 200, "Flows that stay on the platform key", "Every flow of this environment goes under its key.")
	// A flow with an HTTP request trigger stays on the platform key: the
	// environment's page warns, the coverage page says why and the fix.
	def := json.RawMessage(strings.Replace(echoFlow, `"kind": "Button"`, `"kind": "Http"`, 1))
	name := "Orders <b>webhook</b>"
	if _, err := f.client.PutFlow(ctx, env.ID, "orders", &keyhold.FlowInput{DisplayName: &name, Definition: def}); err != nil {
		t.Fatal(err)
	}
	fs, err := f.client.PlatformFlows(ctx, env.ID)
	if err != nil || len(fs) != 1 {
		t.Fatalf("PlatformFlows = %v, %v", fs, err)
	}
	wantAdminPage(t, b.do("GET", "/admin/environments/"+env.ID, nil), 200, "1 flow stays on the platform key", "See which, why, and the fix")
	wantAdminPage(t, b.do("GET", "/admin/environments/"+env.ID+"/coverage", nil), 200, "Orders &lt;b&gt;webhook&lt;/b&gt;", keyhold.FlowCategoryRequestURL,
		template.HTMLEscapeString(fs[0].Reason), template.HTMLEscapeString(fs[0].Fix))

	webhook := func() string {
		t.Helper()
		s, err := f.client.TenantSettings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.WebhookURL
	}
	ev := b.do("GET", "/admin/events", nil)
	wantAdminPage(t, ev, 200, "No webhook", "No event yet.")
	bad := b.do("POST", "/admin/events", url.Values{csrfField: {ev.csrf(t)}, "action": {"webhook"}, "url": {"http://hooks.contoso.example/<b>"}})
	wantAdminPage(t, bad, 400, "http://hooks.contoso.example/&lt;b&gt;", "https")
	if got := webhook(); got != "" {
		t.Fatalf("a refused webhook was saved: %q", got)
	}
	wantAdminPage(t, b.do("POST", "/admin/events", url.Values{"action": {"webhook"}, "url": {"https://hooks.contoso.example/keyhold"}}), 403, "Nothing was changed")
	if loc := b.location(b.do("POST", "/admin/events", url.Values{csrfField: {ev.csrf(t)}, "action": {"webhook"}, "url": {"https://hooks.contoso.example/keyhold"}}), 303); loc != "/admin/events?done=webhook-set" {
		t.Fatalf("Save went to %q", loc)
	}
	if got := webhook(); got != "https://hooks.contoso.example/keyhold" {
		t.Fatalf("the webhook is %q", got)
	}
	wantAdminPage(t, b.do("GET", "/admin/events?done=webhook-set", nil), 200, "The webhook is saved", "posted, signed, to <code>https://hooks.contoso.example/keyhold</code>")
	wantAdminPage(t, b.do("GET", "/admin/events?before=x", nil), 400, "Older events")
	// Send a test event: a WebhookTest event, Pending, in the list.
	if loc := b.location(b.do("POST", "/admin/events", url.Values{csrfField: {ev.csrf(t)}, "action": {"test"}}), 303); loc != "/admin/events?done=webhook-tested" {
		t.Fatalf("Send a test event went to %q", loc)
	}
	wantAdminPage(t, b.do("GET", "/admin/events?done=webhook-tested", nil), 200, "A test event is written", "<strong>WebhookTest</strong>", "Webhook: Pending")
	events := func() int {
		t.Helper()
		es, err := f.client.ListEventViews(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	if n := events(); n != 1 {
		t.Fatalf("%d events after one test, want 1", n)
	}
	// The filters: by kind and by environment; a kind that isn't one is
	// refused, naming the kinds.
	wantAdminPage(t, b.do("GET", "/admin/events?kind=WebhookTest", nil), 200, "<strong>WebhookTest</strong>", `<option value="WebhookTest" selected>`, `id="events-clear"`)
	wantAdminPage(t, b.do("GET", "/admin/events?kind=EnvironmentLocked", nil), 200, "No event matches these filters.")
	wantAdminPage(t, b.do("GET", "/admin/events?environment="+env.ID, nil), 200, "No event matches these filters.")
	wantAdminPage(t, b.do("GET", "/admin/events?kind=%3Cb%3ELocked", nil), 400, "kind=&#34;&lt;b&gt;Locked&#34; is not an event kind", "EnvironmentLocked, EnvironmentEnabled")

	// Rita, no administrator: the API's messages; the webhook stays.
	rpw := f.adminUser(t, "rita@contoso.example", false)
	r := f.browser(t)
	r.location(r.adminSignIn(app, "rita@contoso.example", rpw), 303)
	msg := f.apiRefusal(t, "rita@contoso.example", rpw, "POST", bapPrefix+"/updateTenantSettings?api-version=2020-10-01",
		`{"customerManagedKeys":{"eventWebhookUrl":""}}`)
	rp := r.do("GET", "/admin/events", nil)
	wantAdminPage(t, rp, 403, template.HTMLEscapeString(msg))
	wantAdminPage(t, r.do("POST", "/admin/events", url.Values{csrfField: {rp.csrf(t)}, "action": {"webhook"}, "url": {""}}), 403, template.HTMLEscapeString(msg))
	wantAdminPage(t, r.do("POST", "/admin/events", url.Values{csrfField: {rp.csrf(t)}, "action": {"test"}}), 403, template.HTMLEscapeString(msg))
	if got := webhook(); got != "https://hooks.contoso.example/keyhold" {
		t.Fatalf("a non-administrator's forced POST changed the webhook to %q", got)
	}
	if n := events(); n != 1 {
		t.Fatalf("a non-administrator's forced test wrote an event: %d events", n)
	}
	covMsg := f.apiRefusal(t, "rita@contoso.example", rpw, "GET", bapPrefix+"/environments/"+env.ID+"/encryptionCoverage?api-version=2020-10-01", "")
	envMsg := f.apiRefusal(t, "rita@contoso.example", rpw, "GET", adminEnvPrefix+"/"+env.ID+"?api-version=2020-10-01", "")
	rc := r.do("GET", "/admin/environments/"+env.ID+"/coverage", nil)
	if !strings.Contains(string(rc.body), template.HTMLEscapeString(covMsg)) && !strings.Contains(string(rc.body), template.HTMLEscapeString(envMsg)) {
		t.Fatalf("Rita's coverage page doesn't say the API's refusal %q: %s", covMsg, rc.body)
	}

	// Removing the webhook.
	if loc := b.location(b.do("POST", "/admin/events", url.Values{csrfField: {ev.csrf(t)}, "action": {"webhook"}, "url": {""}}), 303); loc != "/admin/events?done=webhook-removed" {
		t.Fatalf("Save went to %q", loc)
	}
	if got := webhook(); got != "" {
		t.Fatalf("the webhook is %q after its removal", got)
	}
}

// TestWebhookTestRoute: POST …/scopes/admin/events/test answers 201 with
// a Pending WebhookTest event, which the event list then shows; without a
// webhook it is 400 in the Azure error shape saying how to set one, and by
// a non-administrator 403, both writing nothing.
func TestWebhookTestRoute(t *testing.T) {
	f := newFixture(t, withARM(nil), withAdminData)
	ctx := context.Background()
	const path = bapPrefix + "/scopes/admin/events/test?api-version=2020-10-01"
	a := f.call(t, "POST", path, f.adminToken(t), "", nil)
	if e := a.azureError(t); a.status != 400 || e.Code != keyhold.CodeBadRequest || !strings.Contains(e.Message, "eventWebhookUrl") {
		t.Fatalf("a test without a webhook: %d %s", a.status, a.body)
	}
	if _, err := f.client.UpdateTenantSettings(ctx, keyhold.TenantSettingsPatch{WebhookURL: new("https://hooks.contoso.example/keyhold")}); err != nil {
		t.Fatal(err)
	}
	pw := f.adminUser(t, "rita@contoso.example", false)
	if a := f.call(t, "POST", path, f.userToken(t, "rita@contoso.example", pw), "", nil); a.status != 403 || a.azureError(t).Code != keyhold.CodeForbidden {
		t.Fatalf("a non-administrator's test: %d %s", a.status, a.body)
	}
	if es, err := f.client.ListEventViews(ctx, 0, 10); err != nil || len(es) != 0 {
		t.Fatalf("refused tests wrote events: %+v, %v", es, err)
	}
	ev, err := f.client.TestWebhook(ctx)
	if err != nil || ev.Kind != keyhold.EventWebhookTest || ev.Delivery == nil || ev.Delivery.State != keyhold.DeliveryPending {
		t.Fatalf("TestWebhook = %+v, %v", ev, err)
	}
	if es, err := f.client.ListEventViews(ctx, 0, 10); err != nil || len(es) != 1 || es[0].ID != ev.ID {
		t.Fatalf("events after a test: %+v, %v", es, err)
	}
}
