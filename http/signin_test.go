package http

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	nethttp "net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// browser is a client with a cookie jar that does not follow redirects,
// as a person's browser posting the sign-in page.
type browser struct {
	t *testing.T
	f *fixture
	c *nethttp.Client
}

func (f *fixture) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.ca)
	tr := &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, f: f, c: &nethttp.Client{Jar: jar, Transport: tr,
		CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) answer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := nethttp.NewRequest(method, b.f.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf reads the page's CSRF token.
func (a answer) csrf(t *testing.T) string {
	t.Helper()
	m := csrfRE.FindSubmatch(a.body)
	if m == nil {
		t.Fatalf("the page has no CSRF token: %s", a.body)
	}
	return string(m[1])
}

// wantPage checks a sign-in page answer: its status, its security
// headers, no script, and that it says each of hints.
func wantPage(t *testing.T, a answer, status int, hints ...string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("page %d, want %d: %s", a.status, status, a.body)
	}
	csp := a.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "style-src 'sha256-"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || a.header.Get("X-Frame-Options") != "DENY" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
		t.Fatalf("headers %v", a.header)
	}
	if strings.Contains(strings.ToLower(string(a.body)), "<script") {
		t.Fatal("the page has a script")
	}
	for _, h := range hints {
		if !strings.Contains(string(a.body), h) {
			t.Fatalf("the page does not say %q: %s", h, a.body)
		}
	}
}

// wantOAuth checks an OAuth2 error answer: status, error, AADSTS number.
func wantOAuth(t *testing.T, a answer, status int, code string, aadsts int) {
	t.Helper()
	var e oauthErrorJSON
	if err := json.Unmarshal(a.body, &e); err != nil || a.status != status || e.Error != code ||
		(aadsts != 0 && (len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != aadsts || !strings.HasPrefix(e.ErrorDescription, "AADSTS"))) {
		t.Fatalf("answer %d %s; want %d %s AADSTS%d", a.status, a.body, status, code, aadsts)
	}
	if strings.Contains(string(a.body), "access_token") || strings.Contains(string(a.body), "refresh_token") {
		t.Fatalf("a refusal carries a token: %s", a.body)
	}
}

// newUser makes a user through the directory API and returns its password.
func (f *fixture) newUser(t *testing.T, upn string) string {
	t.Helper()
	pw := "pw of " + upn + " that is long enough"
	f.jsonCall(t, "POST", "/v1.0/users", f.mgmtToken(t), `{"displayName":"`+upn+`","userPrincipalName":"`+upn+`","passwordProfile":{"password":"`+pw+`"}}`).decode(t, 201, &userJSON{})
	f.secrets = append(f.secrets, pw)
	return pw
}

// TestDeviceCodeEndpoints: the device code flow over HTTPS, with the
// page a person uses, on both stores: pending and slow_down while they
// haven't approved, refusals on the page that change nothing (no CSRF
// token, a wrong password, a wrong code), approval, one token with a
// refresh token, a replay refused, the refresh token rotating and a
// reused one refused.
func TestDeviceCodeEndpoints(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t), withARM(nil))
		tenant := f.creds.TenantID
		base := "/" + tenant + "/oauth2/v2.0/"
		pw := f.newUser(t, "ada@contoso.example")

		var da deviceAuthJSON
		f.form(t, base+"devicecode", url.Values{"client_id": {keyhold.CLIClientID}, "scope": {"https://service.powerapps.com/.default offline_access"}}).decode(t, 200, &da)
		page := f.url + base + "deviceauth"
		if da.VerificationURI != page || da.Interval != 5 || da.ExpiresIn != 900 || len(da.UserCode) != 9 ||
			!strings.Contains(da.Message, page) || !strings.Contains(da.Message, da.UserCode) {
			t.Fatalf("device authorization %+v", da)
		}
		poll := url.Values{"grant_type": {GrantDeviceCode}, "client_id": {keyhold.CLIClientID}, "device_code": {da.DeviceCode}}
		wantOAuth(t, f.form(t, base+"token", poll), 400, "authorization_pending", 70016)
		wantOAuth(t, f.form(t, base+"token", poll), 400, "slow_down", 70016)

		b := f.browser(t)
		get := b.do("GET", base+"deviceauth", nil)
		wantPage(t, get, 200, "Sign in to a device", `name="user_code"`)
		cookie := get.header.Get("Set-Cookie")
		for _, want := range []string{csrfCookie + "=", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(cookie, want) {
				t.Fatalf("Set-Cookie %q lacks %q", cookie, want)
			}
		}
		form := url.Values{"csrf_token": {get.csrf(t)}, "user_code": {da.UserCode}, "username": {"ada@contoso.example"}, "password": {pw}, "action": {"approve"}}
		noCSRF := url.Values{}
		for k, v := range form {
			noCSRF[k] = v
		}
		noCSRF.Del("csrf_token")
		wantPage(t, b.do("POST", base+"deviceauth", noCSRF), 403, "expired or was sent from another site")
		wrongPW := url.Values{}
		for k, v := range form {
			wrongPW[k] = v
		}
		wrongPW.Set("password", "not the password at all")
		wantPage(t, b.do("POST", base+"deviceauth", wrongPW), 400, "AADSTS50126", "invalid username or password")
		wrongCode := url.Values{}
		for k, v := range form {
			wrongCode[k] = v
		}
		wrongCode.Set("user_code", "CDFG-HJKM")
		wantPage(t, b.do("POST", base+"deviceauth", wrongCode), 400, "CDFG-HJKM", "is not valid or has expired")
		f.clock.Advance(10 * time.Second)
		wantOAuth(t, f.form(t, base+"token", poll), 400, "authorization_pending", 70016)

		wantPage(t, b.do("POST", base+"deviceauth", form), 200, "You have signed in as ada@contoso.example")
		f.clock.Advance(10 * time.Second)
		var tok tokenJSON
		f.form(t, base+"token", poll).decode(t, 200, &tok)
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Scope != "https://service.powerapps.com/.default" {
			t.Fatalf("token %+v", tok)
		}
		id, err := f.p.Authenticate(context.Background(), tok.AccessToken)
		if err != nil || id.Type != keyhold.PrincipalUser {
			t.Fatalf("Authenticate = %+v, %v", id, err)
		}
		wantOAuth(t, f.form(t, base+"token", poll), 400, "invalid_grant", 54005)

		refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {keyhold.CLIClientID}, "refresh_token": {tok.RefreshToken},
			"scope": {"https://management.azure.com/.default"}}
		var next tokenJSON
		f.form(t, base+"token", refresh).decode(t, 200, &next)
		if next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
			t.Fatalf("refreshed %+v: want a new refresh token", next)
		}
		wantOAuth(t, f.form(t, base+"token", refresh), 400, "invalid_grant", 50173)
		refresh.Set("refresh_token", next.RefreshToken)
		wantOAuth(t, f.form(t, base+"token", refresh), 400, "invalid_grant", 50173) // the family is revoked

		// Bad requests at the endpoints.
		wantOAuth(t, f.form(t, base+"devicecode", url.Values{"client_id": {"no-such-app"}, "scope": {"https://service.powerapps.com/.default"}}), 401, "invalid_client", 700016)
		wantOAuth(t, f.form(t, base+"devicecode", url.Values{"client_id": {keyhold.CLIClientID}}), 400, "invalid_request", 0)
		wantOAuth(t, f.form(t, base+"token", url.Values{"grant_type": {GrantDeviceCode}, "client_id": {keyhold.CLIClientID}}), 400, "invalid_request", 0)
	})
}

// TestSignInPageLockout: wrong passwords on the page lock the account
// out as at the token endpoint (they share the limits): past the limit
// the right password is refused too, with 429, and the device code stays
// pending until the lockout ends.
func TestSignInPageLockout(t *testing.T) {
	f := newFixture(t, withARM(nil), withThrottleClock)
	tenant := f.creds.TenantID
	base := "/" + tenant + "/oauth2/v2.0/"
	pw := f.newUser(t, "ada@contoso.example")
	var da deviceAuthJSON
	f.form(t, base+"devicecode", url.Values{"client_id": {keyhold.CLIClientID}, "scope": {"https://service.powerapps.com/.default"}}).decode(t, 200, &da)
	b := f.browser(t)
	csrf := b.do("GET", base+"deviceauth", nil).csrf(t)
	try := func(password string) answer {
		return b.do("POST", base+"deviceauth", url.Values{"csrf_token": {csrf}, "user_code": {da.UserCode}, "username": {"ada@contoso.example"}, "password": {password}})
	}
	for i := 0; i < DefaultAccountFailures; i++ {
		wantPage(t, try("guess number "+string(rune('a'+i))), 400, "invalid username or password")
	}
	locked := try(pw)
	wantPage(t, locked, 429, "the account is locked")
	if locked.header.Get("Retry-After") != "60" {
		t.Fatalf("Retry-After = %q", locked.header.Get("Retry-After"))
	}
	poll := url.Values{"grant_type": {GrantDeviceCode}, "client_id": {keyhold.CLIClientID}, "device_code": {da.DeviceCode}}
	wantOAuth(t, f.form(t, base+"token", poll), 400, "authorization_pending", 70016)
	// The password grant shares the lockout.
	ropc := url.Values{"grant_type": {"password"}, "username": {"ada@contoso.example"}, "password": {pw}, "scope": {"https://management.azure.com/.default"}}
	wantStatus(t, f.form(t, base+"token", ropc), 429, "the password grant during the lockout")
	f.clock.Advance(61 * time.Second)
	wantPage(t, try(pw), 200, "You have signed in")
	f.clock.Advance(10 * time.Second)
	wantStatus(t, f.form(t, base+"token", poll), 200, "the poll after the approval")
}

// TestAuthorizeEndpoint: an authorization request is checked before the
// page shows (registered redirect URI, S256), the page posts to itself and
// redirects with the code and state; the code redeems once with the right
// verifier and redirect URI.
func TestAuthorizeEndpoint(t *testing.T) {
	f := newFixture(t, withARM(nil))
	tenant := f.creds.TenantID
	base := "/" + tenant + "/oauth2/v2.0/"
	pw := f.newUser(t, "ada@contoso.example")
	mgmt := f.mgmtToken(t)
	var sp servicePrincipalJSON
	f.jsonCall(t, "POST", "/v1.0/servicePrincipals", mgmt, `{"displayName":"web-ui"}`).decode(t, 201, &sp)
	const redirect = "https://ui.contoso.example/signed-in"
	verifier := strings.Repeat("v3rifier-", 6)
	h := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(h[:])
	q := url.Values{"response_type": {"code"}, "client_id": {sp.AppID}, "redirect_uri": {redirect}, "scope": {"https://management.azure.com/.default"},
		"state": {"xyz-state"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}

	b := f.browser(t)
	wantPage(t, b.do("GET", base+"authorize?"+q.Encode(), nil), 400, "AADSTS50011", "is not registered")
	// Registering a redirect URI: Graph-like routes, Global Administrator.
	f.jsonCall(t, "POST", "/v1.0/applications/"+sp.AppID+"/redirectUris", mgmt, `{"uri":"http://ui.contoso.example/x"}`).wantError(t, 400, keyhold.CodeBadRequest, "use https")
	f.jsonCall(t, "POST", "/v1.0/applications/"+sp.AppID+"/redirectUris", mgmt, `{"uri":"`+redirect+`"}`).decode(t, 201, &redirectURIJSON{})
	var list listJSON[string]
	f.call(t, "GET", "/v1.0/applications/"+sp.AppID+"/redirectUris", mgmt, "", nil).decode(t, 200, &list)
	if len(list.Value) != 1 || list.Value[0] != redirect {
		t.Fatalf("redirect URIs %v", list.Value)
	}
	plain := url.Values{}
	for k, v := range q {
		plain[k] = v
	}
	plain.Set("code_challenge_method", "plain")
	wantPage(t, b.do("GET", base+"authorize?"+plain.Encode(), nil), 400, "use code_challenge_method=S256")

	get := b.do("GET", base+"authorize?"+q.Encode(), nil)
	wantPage(t, get, 200, `value="xyz-state"`)
	if csp := get.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://ui.contoso.example;") {
		t.Fatalf("CSP %q: the form must be allowed to end at the redirect URI", csp)
	}
	form := url.Values{"csrf_token": {get.csrf(t)}, "username": {"ada@contoso.example"}, "password": {pw}}
	for k, v := range q {
		form[k] = v
	}
	ans := b.do("POST", base+"authorize", form)
	if ans.status != nethttp.StatusSeeOther {
		t.Fatalf("authorize POST %d: %s", ans.status, ans.body)
	}
	loc, err := url.Parse(ans.header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != redirect || loc.Query().Get("state") != "xyz-state" || loc.Query().Get("code") == "" {
		t.Fatalf("Location %q", ans.header.Get("Location"))
	}
	code := loc.Query().Get("code")
	redeem := url.Values{"grant_type": {"authorization_code"}, "client_id": {sp.AppID}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {strings.Repeat("wrong-ver", 6)}}
	wantOAuth(t, f.form(t, base+"token", redeem), 400, "invalid_grant", 501481)
	redeem.Set("code_verifier", verifier)
	redeem.Set("redirect_uri", redirect+"/other")
	wantOAuth(t, f.form(t, base+"token", redeem), 400, "invalid_grant", 50011)
	redeem.Set("redirect_uri", redirect)
	var tok tokenJSON
	f.form(t, base+"token", redeem).decode(t, 200, &tok)
	if tok.RefreshToken == "" {
		t.Fatalf("token %+v", tok)
	}
	wantOAuth(t, f.form(t, base+"token", redeem), 400, "invalid_grant", 54005)
}

// TestUserClientRefreshes: a Client signed in as a person gets its access
// tokens with the refresh token, again once they expire, and hands each
// rotated refresh token to save; the spent ones are refused.
func TestUserClientRefreshes(t *testing.T) {
	f := newFixture(t, withARM(nil))
	const pw = "ada's password, long enough"
	f.secrets = append(f.secrets, pw)
	mgmt := f.mgmtToken(t)
	var u userJSON
	f.jsonCall(t, "POST", "/v1.0/users", mgmt, `{"displayName":"Ada","userPrincipalName":"ada@contoso.example","passwordProfile":{"password":"`+pw+`"}}`).decode(t, 201, &u)
	f.jsonCall(t, "POST", "/v1.0/roleManagement/directory/roleAssignments", mgmt,
		`{"principalId":"`+u.ID+`","roleDefinitionId":"11648597-926c-4cf3-9c36-bcebb0ba8dcc","directoryScopeId":"/"}`).decode(t, 201, &struct{}{})
	ctx, tenant := context.Background(), f.creds.TenantID
	da, err := f.p.StartDeviceCode(ctx, tenant, keyhold.CLIClientID, "https://service.powerapps.com/.default")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.ApproveDeviceCode(ctx, keyhold.SignInAttempt{TenantID: tenant, UserName: "ada@contoso.example", Password: pw}, da.UserCode, true); err != nil {
		t.Fatal(err)
	}
	first, err := f.p.RedeemDeviceCode(ctx, tenant, keyhold.CLIClientID, da.DeviceCode)
	if err != nil {
		t.Fatal(err)
	}
	var saved []string
	c, err := NewUserClient(f.url, f.ca, tenant, keyhold.CLIClientID, first.RefreshToken, func(rt string) error {
		saved = append(saved, rt)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.hc.CloseIdleConnections)
	now := time.Now()
	c.now = func() time.Time { return now }
	if _, err := c.ListEnvironments(ctx); err != nil {
		t.Fatalf("ListEnvironments as the person: %v", err)
	}
	if _, err := c.ListEnvironments(ctx); err != nil || len(saved) != 1 {
		t.Fatalf("a cached token: %v, %d refreshes; want 1", err, len(saved))
	}
	now = now.Add(2 * time.Hour) // past the access token's hour
	if _, err := c.ListEnvironments(ctx); err != nil || len(saved) != 2 || saved[0] == saved[1] || saved[0] == first.RefreshToken {
		t.Fatalf("after expiry: %v, saved %d tokens; want a second, new one", err, len(saved))
	}
	_, err = f.p.Refresh(ctx, tenant, keyhold.CLIClientID, first.RefreshToken, "")
	wantCode(t, err, keyhold.CodeInvalidGrant)
	if _, err := NewUserClient(f.url, f.ca, tenant, keyhold.CLIClientID, "", nil); err == nil {
		t.Fatal("a user client without a refresh token")
	}
}
