package http

import (
	"context"
	"html/template"
	nethttp "net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// adminApp registers the admin center's application in the fixture's
// tenant (a service principal with the redirect URI /admin/callback) and
// returns its app id.
func (f *fixture) adminApp(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	sp, err := f.client.CreateServicePrincipal(ctx, "Keyhold admin center")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.AddRedirectURI(ctx, sp.Principal.AppID, f.url+adminCallback); err != nil {
		t.Fatal(err)
	}
	return sp.Principal.AppID
}

// adminUser makes a user and, with admin, gives them Power Platform
// Administrator; it returns their password.
func (f *fixture) adminUser(t *testing.T, upn string, admin bool) string {
	t.Helper()
	pw := "pw of " + upn + " that is long enough"
	var u userJSON
	f.jsonCall(t, "POST", "/v1.0/users", f.mgmtToken(t), `{"displayName":"`+upn+`","userPrincipalName":"`+upn+`","passwordProfile":{"password":"`+pw+`"}}`).decode(t, 201, &u)
	f.secrets = append(f.secrets, pw)
	if admin {
		if _, err := f.client.AssignDirectoryRole(context.Background(), u.ID, keyhold.RolePowerPlatformAdministrator); err != nil {
			t.Fatal(err)
		}
	}
	return pw
}

// location is an answer's redirect, relative to the server.
func (b *browser) location(a answer, status int) string {
	b.t.Helper()
	if a.status != status {
		b.t.Fatalf("answer %d, want %d: %s", a.status, status, a.body)
	}
	return strings.TrimPrefix(a.header.Get("Location"), b.f.url)
}

// adminSignIn walks the admin center's sign-in as upn: the form, the
// authorize page, the callback. It returns the callback's answer.
func (b *browser) adminSignIn(app, upn, pw string) answer {
	b.t.Helper()
	home := b.do("GET", "/admin/", nil)
	wantAdminPage(b.t, home, 200, "Tenant ID")
	authorize := b.location(b.do("POST", "/admin/signin", url.Values{csrfField: {home.csrf(b.t)}, "tenant": {b.f.creds.TenantID}, "client_id": {app}}), 303)
	if !strings.HasPrefix(authorize, "/"+b.f.creds.TenantID+"/oauth2/v2.0/authorize?") {
		b.t.Fatalf("sign-in went to %q", authorize)
	}
	page := b.do("GET", authorize, nil)
	u, _ := url.Parse(authorize)
	form := u.Query()
	if form.Get("code_challenge_method") != "S256" || form.Get("code_challenge") == "" || form.Get("redirect_uri") != b.f.url+adminCallback {
		b.t.Fatalf("authorization request %v: want S256 PKCE to %s", form, adminCallback)
	}
	form.Set(csrfField, page.csrf(b.t))
	form.Set("username", upn)
	form.Set("password", pw)
	cb := b.location(b.do("POST", "/"+b.f.creds.TenantID+"/oauth2/v2.0/authorize", form), 303)
	if !strings.HasPrefix(cb, adminCallback+"?") {
		b.t.Fatalf("authorize redirected to %q", cb)
	}
	return b.do("GET", cb, nil)
}

var inlineScript = regexp.MustCompile(`(?i)<script(\s[^>]*)?>[^<]|<script>|<style|<[^>]*\s(style|on[a-z]+)=`)

// wantAdminPage checks an admin center page: its status, its security
// headers (strict CSP, no framing, no Referer), no inline script or
// style, and that it says each of hints.
func wantAdminPage(t *testing.T, a answer, status int, hints ...string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("page %d, want %d: %s", a.status, status, a.body)
	}
	csp := a.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("Referrer-Policy") != "no-referrer" ||
		!strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", a.header)
	}
	if m := inlineScript.Find(a.body); m != nil {
		t.Fatalf("the page has inline script or style %q: %s", m, a.body)
	}
	for _, h := range hints {
		if !strings.Contains(string(a.body), h) {
			t.Fatalf("the page does not say %q: %s", h, a.body)
		}
	}
}

// wantSessionCookie checks the Set-Cookie of the admin center's session:
// __Host- (no Domain, Path /), Secure, HttpOnly, SameSite=Strict.
func wantSessionCookie(t *testing.T, h nethttp.Header) *nethttp.Cookie {
	t.Helper()
	for _, line := range h.Values("Set-Cookie") {
		c, err := nethttp.ParseSetCookie(line)
		if err != nil || c.Name != adminCookie {
			continue
		}
		if err := checkCookieFlags(c); err != nil {
			t.Fatalf("session cookie %q: %v", line, err)
		}
		return c
	}
	t.Fatalf("no %s cookie in %v", adminCookie, h.Values("Set-Cookie"))
	return nil
}

// checkCookieFlags says what a session cookie lacks.
func checkCookieFlags(c *nethttp.Cookie) error {
	switch {
	case !c.Secure:
		return errorf("not Secure")
	case !c.HttpOnly:
		return errorf("not HttpOnly")
	case c.SameSite != nethttp.SameSiteStrictMode:
		return errorf("SameSite is not Strict")
	case c.Path != "/" || c.Domain != "" || !strings.HasPrefix(c.Name, "__Host-"):
		return errorf("not a __Host- cookie of path /")
	}
	return nil
}

type errorf string

func (e errorf) Error() string { return string(e) }

// TestAdminCookieFlagsCheck: the cookie check fails a cookie that lacks
// any one flag (so that the sign-in test would fail with it).
func TestAdminCookieFlagsCheck(t *testing.T) {
	good := nethttp.Cookie{Name: adminCookie, Value: "v", Path: "/", Secure: true, HttpOnly: true, SameSite: nethttp.SameSiteStrictMode}
	if err := checkCookieFlags(&good); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(c *nethttp.Cookie){
		"Secure": func(c *nethttp.Cookie) { c.Secure = false }, "HttpOnly": func(c *nethttp.Cookie) { c.HttpOnly = false },
		"SameSite": func(c *nethttp.Cookie) { c.SameSite = nethttp.SameSiteLaxMode }, "Domain": func(c *nethttp.Cookie) { c.Domain = "example.com" },
	} {
		c := good
		spoil(&c)
		if checkCookieFlags(&c) == nil {
			t.Errorf("a session cookie without %s passed", name)
		}
	}
}

// TestAdminSignIn: the admin center's sign-in (authorization code with
// PKCE), its session cookie, sign-out, and its refusals, which change
// nothing: a form without the CSRF token, an unregistered application, a
// callback from another browser, a cookie after sign-out.
func TestAdminSignIn(t *testing.T) {
	f := newFixture(t, withARM(nil))
	app := f.adminApp(t)
	pw := f.adminUser(t, "pat@contoso.example", true)
	b := f.browser(t)

	// Refusals before signing in.
	home := b.do("GET", "/admin/", nil)
	wantAdminPage(t, home, 200)
	wantAdminPage(t, b.do("POST", "/admin/signin", url.Values{"tenant": {f.creds.TenantID}, "client_id": {app}}), 403, "Reload the page")
	wantAdminPage(t, b.do("POST", "/admin/signin", url.Values{csrfField: {home.csrf(t)}, "tenant": {f.creds.TenantID}, "client_id": {"not-an-app"}}), 400,
		"AADSTS700016", "not-an-app")
	wantAdminPage(t, b.do("POST", "/admin/signin", url.Values{csrfField: {home.csrf(t)}, "tenant": {f.creds.TenantID}, "client_id": {f.creds.ClientID}}), 400,
		"AADSTS50011", "is not registered")
	wantAdminPage(t, b.do("GET", adminCallback+"?code=x&state=y", nil), 400, "Sign in again")
	if a := b.do("GET", "/admin/environments", nil); a.status != 303 || a.header.Get("Location") != "/admin/" {
		t.Fatalf("signed out, the environments page answered %d %v", a.status, a.header)
	}

	// A sign-in that another browser finishes is refused: the state is
	// bound to the browser that started it.
	other := f.browser(t)
	oh := other.do("GET", "/admin/", nil)
	authorize := other.location(other.do("POST", "/admin/signin", url.Values{csrfField: {oh.csrf(t)}, "tenant": {f.creds.TenantID}, "client_id": {app}}), 303)
	u, _ := url.Parse(authorize)
	form := u.Query()
	form.Set(csrfField, b.do("GET", authorize, nil).csrf(t))
	form.Set("username", "pat@contoso.example")
	form.Set("password", pw)
	cb := b.location(b.do("POST", "/"+f.creds.TenantID+"/oauth2/v2.0/authorize", form), 303)
	wantAdminPage(t, b.do("GET", cb, nil), 400, "started in another browser")
	if a := b.do("GET", "/admin/environments", nil); a.status != 303 {
		t.Fatalf("a refused callback signed in: %d", a.status)
	}

	// Signing in.
	cbAnswer := b.adminSignIn(app, "pat@contoso.example", pw)
	if loc := b.location(cbAnswer, 303); loc != "/admin/environments" {
		t.Fatalf("the callback went to %q", loc)
	}
	session := wantSessionCookie(t, cbAnswer.header)
	envs := b.do("GET", "/admin/environments", nil)
	wantAdminPage(t, envs, 200, "pat@contoso.example", "Sign out")

	// Sign-out without the CSRF token: refused, still signed in.
	wantAdminPage(t, b.do("POST", "/admin/signout", url.Values{}), 403, "Nothing was changed")
	wantAdminPage(t, b.do("GET", "/admin/environments", nil), 200, "pat@contoso.example")
	out := b.do("POST", "/admin/signout", url.Values{csrfField: {envs.csrf(t)}})
	if loc := b.location(out, 303); loc != "/admin/?signedout=1" {
		t.Fatalf("sign-out went to %q", loc)
	}
	if a := b.do("GET", "/admin/environments", nil); a.status != 303 {
		t.Fatalf("after sign-out the environments page answered %d", a.status)
	}
	// The old cookie, replayed, is no session any more.
	replay := f.browser(t)
	base, _ := url.Parse(f.url)
	replay.c.Jar.SetCookies(base, []*nethttp.Cookie{{Name: adminCookie, Value: session.Value, Path: "/", Secure: true}})
	if a := replay.do("GET", "/admin/environments", nil); a.status != 303 {
		t.Fatalf("a signed-out session's cookie still works: %d", a.status)
	}
}

// xssName is a display name made of markup: the pages must show it as
// text.
const xssName = `"><img src=x onerror=alert(1)><script>alert(2)</script>`

// TestAdminEnvironments: the environments list with its filters and the
// environment page, as a Power Platform Administrator; names made of
// markup are text; the Managed Environment toggle changes the
// environment with the CSRF token and, without it, is refused and
// changes nothing; a person without the role sees the API's refusal.
func TestAdminEnvironments(t *testing.T) {
	f := newFixture(t, withARM(nil))
	app := f.adminApp(t)
	pw := f.adminUser(t, "pat@contoso.example", true)
	ctx := context.Background()
	xss := &keyhold.Environment{DisplayName: xssName, Location: "europe", SKU: keyhold.SKUProduction}
	plain := &keyhold.Environment{DisplayName: "Fabrikam sandbox", Location: "unitedstates", SKU: keyhold.SKUSandbox, Managed: true}
	for _, e := range []*keyhold.Environment{xss, plain} {
		if err := f.client.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	b := f.browser(t)
	b.location(b.adminSignIn(app, "pat@contoso.example", pw), 303)

	list := b.do("GET", "/admin/environments", nil)
	wantAdminPage(t, list, 200, "2 of 2 environments", "Fabrikam sandbox", "&lt;script&gt;alert(2)&lt;/script&gt;", "/admin/environments/"+xss.ID)
	if strings.Contains(string(list.body), "<img") || strings.Contains(string(list.body), "<script>alert") {
		t.Fatalf("the list shows markup of a name: %s", list.body)
	}
	for q, want := range map[string][]string{
		"q=fabrikam":                      {"1 of 2", "Fabrikam sandbox"},
		"q=" + url.QueryEscape("<script"): {"1 of 2", "&lt;script&gt;"},
		"managed=no":                      {"1 of 2", "&lt;script&gt;"},
		"state=Locked":                    {"0 of 2", "No environment matches"},
		"keyManagedBy=Microsoft&state=Enabled&managed=yes": {"1 of 2", "Fabrikam sandbox"},
	} {
		a := b.do("GET", "/admin/environments?"+q, nil)
		wantAdminPage(t, a, 200, want...)
		if want[0] == "1 of 2" && strings.Contains(string(a.body), "Fabrikam") == strings.Contains(string(a.body), "&lt;script&gt;alert") {
			t.Fatalf("?%s shows both or neither: %s", q, a.body)
		}
	}

	page := b.do("GET", "/admin/environments/"+xss.ID, nil)
	wantAdminPage(t, page, 200, "Environment encryption", "Microsoft", "Managed Environment is off", "Turn on Managed Environment", "&lt;script&gt;alert(2)")
	if strings.Contains(string(page.body), "<img") || strings.Contains(string(page.body), "lock-banner") {
		t.Fatalf("the environment page: %s", page.body)
	}
	managed := func() bool {
		e, err := f.client.FindEnvironment(ctx, xss.ID)
		if err != nil {
			t.Fatal(err)
		}
		return e.Managed
	}
	// Without the token, or with another's: refused, nothing changes.
	for _, tok := range []string{"", "wrong-" + page.csrf(t)} {
		a := b.do("POST", "/admin/environments/"+xss.ID, url.Values{csrfField: {tok}, "action": {"managed"}, "managed": {"on"}})
		wantAdminPage(t, a, 403, "Nothing was changed")
		if managed() {
			t.Fatal("a form without the CSRF token turned Managed Environment on")
		}
	}
	a := b.do("POST", "/admin/environments/"+xss.ID, url.Values{csrfField: {page.csrf(t)}, "action": {"managed"}, "managed": {"on"}})
	if loc := b.location(a, 303); loc != "/admin/environments/"+xss.ID+"?done=managed-on" {
		t.Fatalf("the toggle went to %q", loc)
	}
	if !managed() {
		t.Fatal("the toggle did not turn Managed Environment on")
	}
	wantAdminPage(t, b.do("GET", "/admin/environments/"+xss.ID+"?done=managed-on", nil), 200, "Managed Environment is on.", "Turn off Managed Environment")
	// A refusal of the service shows its message; nothing changes.
	wantAdminPage(t, b.do("POST", "/admin/environments/"+xss.ID, url.Values{csrfField: {page.csrf(t)}, "action": {"enable"}}), StatusOf(keyhold.CodeNotSupported), "can&#39;t re-enable")
	wantAdminPage(t, b.do("POST", "/admin/environments/"+xss.ID, url.Values{csrfField: {page.csrf(t)}, "action": {"<b>x"}}), 400, "&lt;b&gt;x")
	wantAdminPage(t, b.do("GET", "/admin/environments/no-such-env", nil), 404, "no-such-env")

	// The audit timeline: the toggle is there, filters narrow it, a bad
	// filter gets the service's message, as text.
	audit := b.do("GET", "/admin/audit", nil)
	wantAdminPage(t, audit, 200, "signin.authorize", xss.ID)
	signins := b.do("GET", "/admin/audit?action=signin", nil)
	wantAdminPage(t, signins, 200, "signin.authorize")
	if strings.Contains(string(signins.body), xss.ID) {
		t.Fatalf("action=signin shows the environment's entries: %s", signins.body)
	}
	wantAdminPage(t, b.do("GET", "/admin/audit?env="+xss.ID+"&action=signin", nil), 200, "No entry matches")
	wantAdminPage(t, b.do("GET", "/admin/audit?before=x", nil), 400, "Older link")
	bad := b.do("GET", "/admin/audit?action="+url.QueryEscape("<b>x"), nil)
	if bad.status != 400 || !strings.Contains(string(bad.body), "&lt;b&gt;x") {
		t.Fatalf("a bad action filter: %d %s", bad.status, bad.body)
	}
	wantAdminPage(t, bad, 400)

	// A person without an admin role sees the API's own refusal.
	pw2 := f.adminUser(t, "rita@contoso.example", false)
	r := f.browser(t)
	r.location(r.adminSignIn(app, "rita@contoso.example", pw2), 303)
	refused := r.do("GET", "/admin/environments", nil)
	tok := f.userToken(t, "rita@contoso.example", pw2)
	api := f.call(t, "GET", adminEnvPrefix+"?api-version=2020-10-01", tok, "", nil)
	msg := api.azureError(t).Message
	wantAdminPage(t, refused, api.status, template.HTMLEscapeString(msg))
}

// userToken is a management token of a user (the password grant).
func (f *fixture) userToken(t *testing.T, upn, pw string) string {
	t.Helper()
	var tok tokenJSON
	f.form(t, "/"+f.creds.TenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {upn}, "password": {pw}, "scope": {adminScope}}).decode(t, 200, &tok)
	f.secrets = append(f.secrets, tok.AccessToken)
	return tok.AccessToken
}

// TestAdminSessionRefresh: once the session's access token expires, the
// next requests get a new one with the refresh token, once, even when
// several arrive together (a second redemption of one refresh token
// would end the sign-in); signing out ends it.
func TestAdminSessionRefresh(t *testing.T) {
	f := newFixture(t, withARM(nil))
	app := f.adminApp(t)
	pw := f.adminUser(t, "pat@contoso.example", true)
	b := f.browser(t)
	b.location(b.adminSignIn(app, "pat@contoso.example", pw), 303)
	wantAdminPage(t, b.do("GET", "/admin/environments", nil), 200, "pat@contoso.example")
	f.clock.Advance(3 * time.Hour) // past the access token's lifetime
	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Go(func() { statuses[i] = b.do("GET", "/admin/environments", nil).status })
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("request %d after the token expired: %d (statuses %v)", i, st, statuses)
		}
	}
	wantAdminPage(t, b.do("GET", "/admin/environments", nil), 200, "pat@contoso.example")
}
