package http

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	nethttp "net/http"
	"net/url"
	"strings"

	"github.com/keyhold/keyhold"
)

// People's sign-in (issue 11): the device authorization endpoint, the
// sign-in page where a person enters a device's user code or answers an
// authorization request, and the token endpoint's grants for them
// (device_code, authorization_code, refresh_token). The protocol is the
// service's (keyhold.SignInService); this file speaks HTTP and HTML.
//
// The page is server-rendered, with no script at all. Its answers carry a
// strict Content-Security-Policy (nothing but the page's own style,
// allowed by its hash; forms post only to the page itself, and for an
// authorization request to its registered redirect URI's origin), are
// never framed, and send no Referer. The form carries a CSRF token that
// must equal the one in a __Host- cookie (Secure, HttpOnly,
// SameSite=Strict): a form posted from another site carries no cookie, and
// no other host (a vault's, under the vault domain) can set one.

//go:embed signin/signin.html signin/signin.css
var signinFiles embed.FS

var (
	signinTmpl = template.Must(template.ParseFS(signinFiles, "signin/signin.html"))
	signinCSS  = mustRead(signinFiles, "signin/signin.css")
	// signinCSP allows the page's style by its hash, and nothing else.
	signinStyleHash = func() string {
		h := sha256.Sum256([]byte(signinCSS))
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}()
)

func mustRead(fs embed.FS, name string) string {
	b, err := fs.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// GrantDeviceCode is the device code grant's grant_type (RFC 8628).
const GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// Paths of the sign-in endpoints, under /{tenantId}.
const (
	signinPrefix     = "/{tenantId}/oauth2/v2.0/"
	devicePagePath   = "deviceauth"
	csrfCookie       = "__Host-keyhold-signin"
	csrfField        = "csrf_token"
	maxSigninBodyLen = 16 << 10
	// redirectURIsPath lists an application's redirect URIs (Keyhold's
	// own shape: Graph keeps them inside the application object).
	redirectURIsPath   = graphPrefix + "/applications/{appId}/redirectUris"
	exampleRedirectURI = `{"uri":"https://app.contoso.example/callback"}`
)

// signInRoutes are the sign-in endpoints, when the token service signs
// people in, and the registration of applications' redirect URIs.
func (s *Server) signInRoutes() []route {
	if _, ok := s.Tokens.(keyhold.SignInService); !ok {
		return nil
	}
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	return []route{
		armRoute("GET", redirectURIsPath, mgmt, s.listRedirectURIs),
		armRoute("POST", redirectURIsPath, mgmt, s.addRedirectURI),
		armRoute("DELETE", redirectURIsPath, mgmt, s.removeRedirectURI),

		{Method: "POST", Pattern: signinPrefix + "devicecode", Body: bodyForm, MaxBody: maxFormBytes, Timeout: apiTimeout, OAuthErrors: true, Handler: s.deviceCode},
		{Method: "GET", Pattern: signinPrefix + devicePagePath, Timeout: apiTimeout, Handler: s.devicePage},
		{Method: "POST", Pattern: signinPrefix + devicePagePath, Body: bodyForm, MaxBody: maxSigninBodyLen, Timeout: apiTimeout, Handler: s.devicePage},
		{Method: "GET", Pattern: signinPrefix + "authorize", Timeout: apiTimeout, Handler: s.authorizePage},
		{Method: "POST", Pattern: signinPrefix + "authorize", Body: bodyForm, MaxBody: maxSigninBodyLen, Timeout: apiTimeout, Handler: s.authorizePage},
	}
}

// deviceAuthJSON is the device authorization answer (RFC 8628 section
// 3.2), with Entra ID's message.
type deviceAuthJSON struct {
	DeviceCode      string `json:"device_code"`
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int    `json:"expires_in"`
	Interval        int    `json:"interval"`
	Message         string `json:"message"`
}

// deviceCode: POST /{tenantId}/oauth2/v2.0/devicecode (client_id, scope).
func (s *Server) deviceCode(w nethttp.ResponseWriter, r *nethttp.Request) error {
	si := s.Tokens.(keyhold.SignInService)
	if err := parseOAuthForm(r); err != nil {
		return err
	}
	f := r.PostForm
	if f.Get("client_id") == "" {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter 'client_id': send the keyhold command line's client id %s, or an application's appId", keyhold.CLIClientID)
	}
	if f.Get("scope") == "" {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter 'scope': use one of %s", scopes)
	}
	tenant := r.PathValue("tenantId")
	da, err := si.StartDeviceCode(r.Context(), tenant, f.Get("client_id"), s.tokenScope(f.Get("scope")))
	if err != nil {
		return err
	}
	uri := s.baseURL(r) + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/" + devicePagePath
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, nethttp.StatusOK, deviceAuthJSON{DeviceCode: da.DeviceCode, UserCode: da.UserCode, VerificationURI: uri,
		ExpiresIn: da.ExpiresIn, Interval: da.Interval,
		Message: fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", uri, da.UserCode)})
	return nil
}

// parseOAuthForm parses a form body, with the token endpoint's error.
func parseOAuthForm(r *nethttp.Request) error {
	if err := r.ParseForm(); err != nil {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body is not a valid form: %v; send the parameters as application/x-www-form-urlencoded", err)
	}
	return nil
}

// signInGrant answers the token endpoint's grants for people.
func (s *Server) signInGrant(w nethttp.ResponseWriter, r *nethttp.Request, si keyhold.SignInService, grant string) error {
	f := r.PostForm
	need := map[string][]struct{ name, hint string }{
		GrantDeviceCode:      {{"device_code", "send the device_code that /devicecode answered"}},
		"authorization_code": {{"code", "send the code the redirect carried"}, {"redirect_uri", "send the authorization request's redirect_uri"}, {"code_verifier", "send the PKCE code verifier whose S256 hash was the code_challenge"}},
		"refresh_token":      {{"refresh_token", "send the refresh token of the last answer"}},
	}[grant]
	need = append(need, struct{ name, hint string }{"client_id", "send the client id that signed in"})
	for _, p := range need {
		if f.Get(p.name) == "" {
			return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter '%s': %s", p.name, p.hint)
		}
	}
	tenant, client, ctx := r.PathValue("tenantId"), f.Get("client_id"), r.Context()
	var (
		tok *keyhold.Token
		err error
	)
	switch grant {
	case GrantDeviceCode:
		tok, err = si.RedeemDeviceCode(ctx, tenant, client, f.Get("device_code"))
	case "authorization_code":
		tok, err = si.RedeemCode(ctx, tenant, client, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"))
	default:
		tok, err = si.Refresh(ctx, tenant, client, f.Get("refresh_token"), s.tokenScope(f.Get("scope")))
	}
	if err != nil {
		return err
	}
	writeToken(w, tok)
	return nil
}

// pageData is what the sign-in page shows.
type pageData struct {
	Title    string
	CSS      template.CSS
	Error    string
	Done     string
	Action   string
	CSRF     string
	Device   bool
	UserCode string
	UserName string
	ClientID string
	Hidden   []hidden
}

type hidden struct{ Name, Value string }

// renderPage answers the sign-in page, with its security headers.
// formTarget is an extra origin the form may end up at (an authorization
// request's redirect URI), or "".
func (s *Server) renderPage(w nethttp.ResponseWriter, r *nethttp.Request, status int, d pageData, formTarget string) error {
	d.CSS = template.CSS(signinCSS)
	if d.Title == "" {
		d.Title = "Sign in"
	}
	if d.CSRF == "" && d.Done == "" {
		d.CSRF = csrfToken(w, r)
	}
	formAction := "'self'"
	if formTarget != "" {
		formAction += " " + formTarget
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+signinStyleHash+"; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return signinTmpl.Execute(w, d)
}

// csrfToken returns the request's CSRF cookie, setting a new one if it
// has none.
func csrfToken(w nethttp.ResponseWriter, r *nethttp.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 26 {
		return c.Value
	}
	v := rand.Text()
	nethttp.SetCookie(w, &nethttp.Cookie{Name: csrfCookie, Value: v, Path: "/", Secure: true, HttpOnly: true, SameSite: nethttp.SameSiteStrictMode})
	return v
}

// checkCSRF reports whether the form's token is the cookie's.
func checkCSRF(r *nethttp.Request) bool {
	c, err := r.Cookie(csrfCookie)
	form := r.PostForm.Get(csrfField)
	return err == nil && len(c.Value) >= 26 && subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) == 1
}

// csrfRefused is the page's message for a form without the right token.
const csrfRefused = "This form has expired or was sent from another site. Reload the page and try again."

// pageError answers a refusal on the page, with its status; a server
// fault goes to the caller (which answers it as any route's).
func (s *Server) pageError(w nethttp.ResponseWriter, r *nethttp.Request, d pageData, err error, formTarget string) error {
	e, internal := clientError(err)
	if internal {
		return err
	}
	status := StatusOf(e.Code)
	if e.Code == keyhold.CodeSignInLocked {
		status = nethttp.StatusTooManyRequests
	} else if status == nethttp.StatusUnauthorized {
		status = nethttp.StatusBadRequest
	}
	d.Error = e.Message
	if strings.HasPrefix(e.Inner, "AADSTS") {
		d.Error = e.Inner + ": " + e.Message
	}
	return s.renderPage(w, r, status, d, formTarget)
}

// attempt reads a sign-in attempt from the form, and admits it past the
// sign-in limits (ratelimit.go), shared with the password grant.
func (s *Server) attempt(w nethttp.ResponseWriter, r *nethttp.Request) (keyhold.SignInAttempt, signIn, error) {
	tenant := r.PathValue("tenantId")
	a := keyhold.SignInAttempt{TenantID: tenant, UserName: strings.TrimSpace(r.PostForm.Get("username")),
		Password: r.PostForm.Get("password"), Source: sourceKey(r.RemoteAddr)}
	try := newSignIn(r, "user", tenant, a.UserName, keyhold.CodeInvalidGrant)
	if a.UserName == "" || a.Password == "" {
		return a, try, keyhold.Errorf(keyhold.CodeInvalidRequest, "enter your user name (such as someone@contoso.com) and your password")
	}
	return a, try, s.throttle.admit(w, try)
}

// devicePage: GET and POST /{tenantId}/oauth2/v2.0/deviceauth, where a
// person enters a device's user code and signs in.
func (s *Server) devicePage(w nethttp.ResponseWriter, r *nethttp.Request) error {
	si := s.Tokens.(keyhold.SignInService)
	d := pageData{Title: "Sign in to a device", Device: true, Action: devicePagePath}
	if r.Method == "GET" {
		d.UserCode = keyhold.Clip(r.URL.Query().Get("user_code"))
		return s.renderPage(w, r, nethttp.StatusOK, d, "")
	}
	if err := r.ParseForm(); err != nil {
		return s.pageError(w, r, d, keyhold.Errorf(keyhold.CodeInvalidRequest, "the form could not be read: %v", err), "")
	}
	d.UserCode, d.UserName = keyhold.Clip(r.PostForm.Get("user_code")), keyhold.Clip(r.PostForm.Get("username"))
	if !checkCSRF(r) {
		d.Error = csrfRefused
		return s.renderPage(w, r, nethttp.StatusForbidden, d, "")
	}
	a, try, err := s.attempt(w, r)
	if err != nil {
		return s.pageError(w, r, d, err, "")
	}
	approve := r.PostForm.Get("action") != "deny"
	err = si.ApproveDeviceCode(r.Context(), a, r.PostForm.Get("user_code"), approve)
	s.throttle.record(try, err)
	if err != nil {
		return s.pageError(w, r, d, err, "")
	}
	d.Done = "You have signed in as " + a.UserName + " and allowed the device. You can close this window and return to it."
	if !approve {
		d.Done = "You declined the sign-in. The device gets no access; you can close this window."
	}
	return s.renderPage(w, r, nethttp.StatusOK, d, "")
}

// authorizeParams are an authorization request's parameters, kept in
// the page's form between its two requests.
var authorizeParams = []string{"client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method", "response_type"}

// authorizePage: GET /{tenantId}/oauth2/v2.0/authorize starts an
// authorization code request (response_type=code, S256 PKCE) and shows
// the sign-in form; its POST signs the person in and redirects to the
// registered redirect URI with the code and state.
func (s *Server) authorizePage(w nethttp.ResponseWriter, r *nethttp.Request) error {
	si := s.Tokens.(keyhold.SignInService)
	params := r.URL.Query()
	if r.Method == "POST" {
		if err := r.ParseForm(); err != nil {
			return s.pageError(w, r, pageData{}, keyhold.Errorf(keyhold.CodeInvalidRequest, "the form could not be read: %v", err), "")
		}
		params = r.PostForm
	}
	req := &keyhold.AuthorizeRequest{TenantID: r.PathValue("tenantId"), ClientID: params.Get("client_id"),
		RedirectURI: params.Get("redirect_uri"), Scope: params.Get("scope"), CodeChallenge: params.Get("code_challenge")}
	d := pageData{Action: "authorize", ClientID: keyhold.Clip(req.ClientID)}
	for _, p := range authorizeParams {
		if v := params.Get(p); v != "" {
			d.Hidden = append(d.Hidden, hidden{p, v})
		}
	}
	// Errors are shown on the page, never sent to a redirect URI that
	// may not be the application's.
	switch {
	case params.Get("response_type") != "code":
		return s.pageError(w, r, d, keyhold.Errorf(keyhold.CodeInvalidRequest, "response_type %q is not supported: use response_type=code", keyhold.Clip(params.Get("response_type"))), "")
	case params.Get("code_challenge_method") != "S256":
		return s.pageError(w, r, d, keyhold.Errorf(keyhold.CodeInvalidRequest, "code_challenge_method %q is not supported: use code_challenge_method=S256 with a code_challenge (PKCE is required)", keyhold.Clip(params.Get("code_challenge_method"))), "")
	}
	if err := si.CheckAuthorize(r.Context(), req); err != nil {
		return s.pageError(w, r, d, err, "")
	}
	target := redirectOrigin(req.RedirectURI)
	if r.Method == "GET" {
		return s.renderPage(w, r, nethttp.StatusOK, d, target)
	}
	d.UserName = keyhold.Clip(r.PostForm.Get("username"))
	if !checkCSRF(r) {
		d.Error = csrfRefused
		return s.renderPage(w, r, nethttp.StatusForbidden, d, target)
	}
	a, try, err := s.attempt(w, r)
	if err != nil {
		return s.pageError(w, r, d, err, target)
	}
	code, err := si.Authorize(r.Context(), a, req)
	s.throttle.record(try, err)
	if err != nil {
		return s.pageError(w, r, d, err, target)
	}
	u, _ := url.Parse(req.RedirectURI) // checked: a registered URI
	q := u.Query()
	q.Set("code", code)
	if st := params.Get("state"); st != "" {
		q.Set("state", st)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Referrer-Policy", "no-referrer")
	nethttp.Redirect(w, r, u.String(), nethttp.StatusSeeOther)
	return nil
}

// redirectOrigin is a redirect URI's scheme://host[:port], for the
// page's form-action.
func redirectOrigin(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// redirectURIs is the server's registry of redirect URIs.
func (s *Server) redirectURIs() keyhold.RedirectURIs {
	ru, _ := s.Tokens.(keyhold.RedirectURIs)
	return ru
}

// listRedirectURIs: GET /v1.0/applications/{appId}/redirectUris.
func (s *Server) listRedirectURIs(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ru := s.redirectURIs()
	if ru == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server registers no redirect URIs")
	}
	uris, err := ru.ListRedirectURIs(r.Context(), r.PathValue("appId"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, listJSON[string]{Value: uris})
	return nil
}

type redirectURIJSON struct {
	URI string `json:"uri"`
}

// addRedirectURI: POST /v1.0/applications/{appId}/redirectUris, 201.
func (s *Server) addRedirectURI(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ru := s.redirectURIs()
	if ru == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server registers no redirect URIs")
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in redirectURIJSON
	if err := decodeJSON(body, &in, exampleRedirectURI); err != nil {
		return err
	}
	if err := ru.AddRedirectURI(r.Context(), r.PathValue("appId"), in.URI); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, in)
	return nil
}

// removeRedirectURI: DELETE /v1.0/applications/{appId}/redirectUris?uri=…, 204.
func (s *Server) removeRedirectURI(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ru := s.redirectURIs()
	if ru == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server registers no redirect URIs")
	}
	uri := r.URL.Query().Get("uri")
	if uri == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "name the redirect URI to remove in the query: ?uri=https://…")
	}
	if err := ru.RemoveRedirectURI(r.Context(), r.PathValue("appId"), uri); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}
