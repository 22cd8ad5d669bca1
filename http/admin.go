package http

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// The admin center (issue 17): server-rendered pages at /admin over the
// same services the API serves, so that every refusal shows the API's
// message.
//
// Sign-in is the authorization code grant with PKCE (signin.go), as an
// application the tenant registered with the redirect URI
// {server}/admin/callback: the admin center is that application's client,
// redeems the code in-process and keeps the tokens in memory only, in a
// session named by a random cookie (__Host-, Secure, HttpOnly,
// SameSite=Strict). Sessions end with sign-out, after adminSessionTTL, or
// when the server restarts; a cookie's value is never stored, only its
// SHA-256.
//
// Every form carries the session's CSRF token (the sign-in form, before
// there is a session, the sign-in page's double-submit cookie); a POST
// without it is refused and changes nothing. The pages load their style
// and script from /admin/static only (CSP: no inline script or style), are
// never framed, and send no Referer.

//go:embed admin/*.html admin/*.css admin/*.js admin/*.json
var adminFiles embed.FS

var adminTmpl = template.Must(template.New("admin").Funcs(template.FuncMap{
	// dict passes named values to a sub-template.
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	// rotationDays is a rotation policy's period in days (admin_vault_more.go).
	"rotationDays": rotationDays,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
}).ParseFS(adminFiles, "admin/*.html"))

// Paths, cookies and limits of the admin center.
const (
	adminPrefix      = "/admin"
	adminCallback    = adminPrefix + "/callback"
	adminCookie      = "__Host-keyhold-admin"
	adminStateCookie = "__Host-keyhold-admin-state"
	adminScope       = "https://management.azure.com/.default"
	// adminSessionTTL bounds a session, whatever its refresh token
	// allows: a forgotten browser tab doesn't stay signed in for days.
	adminSessionTTL = 8 * time.Hour
	// adminPendingTTL bounds a sign-in between the redirect to the
	// authorize page and the callback.
	adminPendingTTL = 10 * time.Minute
	// adminCSP: the page's own style and script only, forms post to the
	// server itself, never framed.
	adminCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// adminSession is a signed-in person's session: their tokens, kept in
// memory only.
type adminSession struct {
	// mu guards the tokens and notes, and is held across a refresh: two
	// requests must not both redeem one refresh token, as the second
	// redemption would end the sign-in (a reused refresh token revokes
	// its family).
	mu             sync.Mutex
	tenant, client string
	upn            string
	access         string
	refresh        string
	csrf           string
	expires        time.Time
	notes          map[string][]string // warnings of operations it started, by id
	// tokens are access tokens for audiences other than the management
	// one (the vault's data plane), got with the refresh token.
	tokens map[keyhold.Audience]string
}

// adminPending is a sign-in on its way through the authorize page.
type adminPending struct {
	tenant, client, verifier, redirect string
	expires                            time.Time
}

// adminSessions holds the admin center's sessions and pending sign-ins,
// keyed by the SHA-256 of the cookie's value or of the state.
type adminSessions struct {
	mu       sync.Mutex
	sessions map[[32]byte]*adminSession
	pending  map[[32]byte]*adminPending
}

func (s *Server) adminStore() *adminSessions {
	s.adminOnce.Do(func() {
		s.admin = &adminSessions{sessions: map[[32]byte]*adminSession{}, pending: map[[32]byte]*adminPending{}}
	})
	return s.admin
}

func (s *Server) now() time.Time {
	if s.Clock != nil {
		return s.Clock.Now()
	}
	return time.Now()
}

// adminRoutes are the admin center's pages; none unless the token
// service signs people in.
func (s *Server) adminRoutes() []route {
	if _, ok := s.Tokens.(keyhold.SignInService); !ok {
		return nil
	}
	get := func(p string, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		return route{Method: "GET", Pattern: adminPrefix + p, Timeout: apiTimeout, Handler: h}
	}
	post := func(p string, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		return route{Method: "POST", Pattern: adminPrefix + p, Body: bodyForm, MaxBody: maxSigninBodyLen, Timeout: apiTimeout, Handler: h}
	}
	return []route{
		get("/{$}", s.adminHome),
		get("/static/{file}", s.adminStatic),
		post("/signin", s.adminSignIn),
		get("/callback", s.adminCallbackPage),
		post("/signout", s.adminPage(s.adminSignOut)),
		get("/environments", s.adminPage(s.adminEnvironments)),
		get("/environments/{envId}", s.adminPage(s.adminEnvironment)),
		post("/environments/{envId}", s.adminPage(s.adminEnvironmentAction)),
		get("/cmk", s.adminPage(s.adminCMK)),
		get("/cmk/policies/{sub}/{rg}/{name}", s.adminPage(s.adminPolicy)),
		post("/cmk/policies/{sub}/{rg}/{name}", s.adminPage(s.adminPolicyAction)),
		get("/operations/{opId}", s.adminPage(s.adminOperation)),
		get("/operations/{opId}/status", s.adminPage(s.adminOperationStatus)),
		get("/audit", s.adminPage(s.adminAudit)),
		get("/vaults", s.adminPage(s.adminVaults)),
		post("/vaults", s.adminPage(s.adminVaultsAction)),
		get("/vaults/{sub}/{rg}/{name}", s.adminPage(s.adminVault)),
		post("/vaults/{sub}/{rg}/{name}", s.adminPage(s.adminVaultAction)),
		get("/cmk/new", s.adminPage(s.adminNewPolicy)),
		post("/cmk/new", s.adminPage(s.adminNewPolicy)),
		post("/access", s.adminPage(s.adminAccessAction)),
		// Backups, restore and copy; coverage; events (the second part).
		{Method: "POST", Pattern: adminPrefix + "/environments/{envId}/backups", Body: bodyForm, MaxBody: maxSigninBodyLen, Timeout: backupTimeout,
			Handler: s.adminPage(s.adminBackupCreate)},
		get("/environments/{envId}/restore", s.adminPage(s.adminOverwritePage("restore"))),
		post("/environments/{envId}/restore", s.adminPage(s.adminOverwrite("restore"))),
		get("/environments/{envId}/copy", s.adminPage(s.adminOverwritePage("copy"))),
		post("/environments/{envId}/copy", s.adminPage(s.adminOverwrite("copy"))),
		get("/environments/{envId}/coverage", s.adminPage(s.adminCoverage)),
		get("/events", s.adminPage(s.adminEvents)),
		post("/events", s.adminPage(s.adminEventsAction)),
	}
}

// adminView is what every admin page shows; Data is the page's own.
type adminView struct {
	Title  string
	Nav    string // the current section, for aria-current
	User   string
	CSRF   string
	Error  string
	Done   string
	Tenant string
	Client string
	Data   any
	sess   *adminSession
}

// renderAdmin answers an admin page with its security headers.
func renderAdmin(w nethttp.ResponseWriter, status int, name string, v adminView) error {
	h := w.Header()
	h.Set("Content-Security-Policy", adminCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return adminTmpl.ExecuteTemplate(w, name, v)
}

// adminStatic serves the embedded style sheet and script.
func (s *Server) adminStatic(w nethttp.ResponseWriter, r *nethttp.Request) error {
	name := r.PathValue("file")
	types := map[string]string{"admin.css": "text/css; charset=utf-8", "admin.js": "text/javascript; charset=utf-8"}
	ct, ok := types[name]
	if !ok {
		return keyhold.Errorf(keyhold.CodeNotFound, "no file %q in the admin center's static files", keyhold.Clip(name))
	}
	b, err := adminFiles.ReadFile("admin/" + name)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ct)
	_, err = w.Write(b)
	return err
}

// adminHome: GET /admin/ shows the sign-in form, or goes to the
// environments when signed in.
func (s *Server) adminHome(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if sess, _ := s.adminSessionOf(r); sess != nil {
		nethttp.Redirect(w, r, adminPrefix+"/environments", nethttp.StatusSeeOther)
		return nil
	}
	q := r.URL.Query()
	return renderAdmin(w, nethttp.StatusOK, "signin", adminView{Title: "Sign in", CSRF: csrfToken(w, r),
		Tenant: keyhold.Clip(q.Get("tenant")), Client: keyhold.Clip(q.Get("client_id")), Done: signedOutNote(q.Get("signedout"))})
}

func signedOutNote(v string) string {
	if v == "1" {
		return "You have signed out."
	}
	return ""
}

// adminSignIn: POST /admin/signin starts the authorization code grant:
// it keeps a PKCE verifier for the state it sends, and redirects to the
// tenant's authorize page.
func (s *Server) adminSignIn(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := r.ParseForm(); err != nil {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the form could not be read: %v", err)
	}
	f := r.PostForm
	v := adminView{Title: "Sign in", Tenant: keyhold.Clip(strings.TrimSpace(f.Get("tenant"))), Client: keyhold.Clip(strings.TrimSpace(f.Get("client_id")))}
	if !checkCSRF(r) {
		v.Error, v.CSRF = csrfRefused, csrfToken(w, r)
		return renderAdmin(w, nethttp.StatusForbidden, "signin", v)
	}
	v.CSRF = csrfToken(w, r)
	si := s.Tokens.(keyhold.SignInService)
	redirect := s.baseURL(r) + adminCallback
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	tenant, client := strings.TrimSpace(f.Get("tenant")), strings.TrimSpace(f.Get("client_id"))
	if tenant == "" || client == "" {
		v.Error = "Enter your tenant ID and the admin center's application (client) ID: keyhold login prints the tenant ID; register the application's redirect URI " + redirect + " with keyhold identity sp redirect-uri add."
		return renderAdmin(w, nethttp.StatusBadRequest, "signin", v)
	}
	req := &keyhold.AuthorizeRequest{TenantID: tenant, ClientID: client, RedirectURI: redirect, Scope: adminScope, CodeChallenge: challenge}
	if err := si.CheckAuthorize(r.Context(), req); err != nil {
		e, internal := clientError(err)
		if internal {
			return err
		}
		v.Error = e.Message
		if strings.HasPrefix(e.Inner, "AADSTS") {
			v.Error = e.Inner + ": " + e.Message
		}
		return renderAdmin(w, nethttp.StatusBadRequest, "signin", v)
	}
	state := rand.Text()
	st := s.adminStore()
	now := s.now()
	st.mu.Lock()
	for k, p := range st.pending {
		if now.After(p.expires) {
			delete(st.pending, k)
		}
	}
	st.pending[sha256.Sum256([]byte(state))] = &adminPending{tenant: tenant, client: client, verifier: verifier, redirect: redirect, expires: now.Add(adminPendingTTL)}
	st.mu.Unlock()
	// The state is bound to this browser: the callback must carry the
	// cookie as well as the query parameter.
	nethttp.SetCookie(w, &nethttp.Cookie{Name: adminStateCookie, Value: state, Path: "/", MaxAge: int(adminPendingTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: nethttp.SameSiteStrictMode})
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {adminScope},
		"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	nethttp.Redirect(w, r, "/"+url.PathEscape(tenant)+"/oauth2/v2.0/authorize?"+q.Encode(), nethttp.StatusSeeOther)
	return nil
}

// adminCallbackPage: GET /admin/callback?code=…&state=… redeems the code
// with the kept verifier and starts a session.
func (s *Server) adminCallbackPage(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	v := adminView{Title: "Sign in"}
	state := q.Get("state")
	c, err := r.Cookie(adminStateCookie)
	st := s.adminStore()
	st.mu.Lock()
	key := sha256.Sum256([]byte(state))
	p := st.pending[key]
	delete(st.pending, key)
	st.mu.Unlock()
	nethttp.SetCookie(w, &nethttp.Cookie{Name: adminStateCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: nethttp.SameSiteStrictMode})
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 || p == nil || s.now().After(p.expires) {
		v.Error, v.CSRF = "This sign-in has expired or was started in another browser. Sign in again.", csrfToken(w, r)
		return renderAdmin(w, nethttp.StatusBadRequest, "signin", v)
	}
	v.Tenant, v.Client = p.tenant, p.client
	tok, err := s.Tokens.(keyhold.SignInService).RedeemCode(r.Context(), p.tenant, p.client, q.Get("code"), p.redirect, p.verifier)
	if err != nil {
		e, internal := clientError(err)
		if internal {
			return err
		}
		v.Error, v.CSRF = e.Message, csrfToken(w, r)
		return renderAdmin(w, nethttp.StatusBadRequest, "signin", v)
	}
	id, err := s.Tokens.Authenticate(r.Context(), tok.AccessToken)
	if err != nil || id == nil {
		return keyhold.Errorf(keyhold.CodeInternal, "the admin center's new token did not verify").WithCause(err)
	}
	value := rand.Text() + rand.Text()
	sess := &adminSession{tenant: p.tenant, client: p.client, upn: tokenUPN(tok.AccessToken, id.PrincipalID), access: tok.AccessToken, refresh: tok.RefreshToken,
		csrf: rand.Text() + rand.Text(), expires: s.now().Add(adminSessionTTL)}
	st.mu.Lock()
	for k, old := range st.sessions {
		if s.now().After(old.expires) {
			delete(st.sessions, k)
		}
	}
	st.sessions[sha256.Sum256([]byte(value))] = sess
	st.mu.Unlock()
	setAdminCookie(w, value, adminSessionTTL)
	nethttp.Redirect(w, r, adminPrefix+"/environments", nethttp.StatusSeeOther)
	return nil
}

// setAdminCookie sets (or, with ttl < 0, clears) the session cookie.
func setAdminCookie(w nethttp.ResponseWriter, value string, ttl time.Duration) {
	nethttp.SetCookie(w, &nethttp.Cookie{Name: adminCookie, Value: value, Path: "/", MaxAge: int(ttl / time.Second),
		Secure: true, HttpOnly: true, SameSite: nethttp.SameSiteStrictMode})
}

// adminSessionOf returns the request's session and its caller, or nil
// when it has none that still works (signed out, expired, revoked).
func (s *Server) adminSessionOf(r *nethttp.Request) (*adminSession, *keyhold.Identity) {
	c, err := r.Cookie(adminCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	st := s.adminStore()
	key := sha256.Sum256([]byte(c.Value))
	st.mu.Lock()
	sess := st.sessions[key]
	if sess != nil && s.now().After(sess.expires) {
		delete(st.sessions, key)
		sess = nil
	}
	st.mu.Unlock()
	if sess == nil {
		return nil, nil
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	id, err := s.Tokens.Authenticate(r.Context(), sess.access)
	if err == nil && id != nil {
		return sess, id
	}
	// The access token expired (or the account changed): its refresh
	// token gets the next one, once; a refusal ends the session.
	tok, err := s.Tokens.(keyhold.SignInService).Refresh(r.Context(), sess.tenant, sess.client, sess.refresh, adminScope)
	if err == nil {
		id, err = s.Tokens.Authenticate(r.Context(), tok.AccessToken)
	}
	if err != nil || id == nil {
		st.mu.Lock()
		delete(st.sessions, key)
		st.mu.Unlock()
		return nil, nil
	}
	sess.access, sess.refresh = tok.AccessToken, tok.RefreshToken
	return sess, id
}

// adminHandler is a page handler of a signed-in person.
type adminHandler func(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error

// adminPage runs h as the session's person (the identity in r's
// context, as the API's routes run), after the CSRF check on a POST.
// Without a session a GET goes to the sign-in form.
func (s *Server) adminPage(h adminHandler) func(nethttp.ResponseWriter, *nethttp.Request) error {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		sess, id := s.adminSessionOf(r)
		if sess == nil {
			if r.Method == "GET" {
				nethttp.Redirect(w, r, adminPrefix+"/", nethttp.StatusSeeOther)
				return nil
			}
			return renderAdmin(w, nethttp.StatusUnauthorized, "signin", adminView{Title: "Sign in", CSRF: csrfToken(w, r),
				Error: "Your session has ended: sign in again. Nothing was changed."})
		}
		v := adminView{User: sess.upn, CSRF: sess.csrf, Tenant: sess.tenant, sess: sess}
		if r.Method == "POST" {
			if err := r.ParseForm(); err != nil {
				return keyhold.Errorf(keyhold.CodeInvalidRequest, "the form could not be read: %v", err)
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get(csrfField)), []byte(sess.csrf)) != 1 {
				v.Title, v.Error = "Refused", csrfRefused+" Nothing was changed."
				return renderAdmin(w, nethttp.StatusForbidden, "refused", v)
			}
		}
		return h(w, r.WithContext(keyhold.NewContext(r.Context(), id)), v)
	}
}

// adminSignOut: POST /admin/signout ends the session here and revokes
// nothing else.
func (s *Server) adminSignOut(w nethttp.ResponseWriter, r *nethttp.Request, _ adminView) error {
	if c, err := r.Cookie(adminCookie); err == nil {
		st := s.adminStore()
		st.mu.Lock()
		delete(st.sessions, sha256.Sum256([]byte(c.Value)))
		st.mu.Unlock()
	}
	setAdminCookie(w, "", -1)
	nethttp.Redirect(w, r, adminPrefix+"/?signedout=1", nethttp.StatusSeeOther)
	return nil
}

// adminRefusal turns a service's refusal into the page's message (the
// API's own) and status; a server fault is returned as it is.
func adminRefusal(err error) (string, int, error) {
	e, internal := clientError(err)
	if internal {
		return "", 0, err
	}
	return e.Message, StatusOf(e.Code), nil
}

// tokenUPN reads the upn claim of an access token that Authenticate has
// just verified, for the page's header; fallback when it has none.
func tokenUPN(tok, fallback string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fallback
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		UPN string `json:"upn"`
	}
	if err != nil || json.Unmarshal(raw, &c) != nil || c.UPN == "" {
		return fallback
	}
	return c.UPN
}

// adminAs returns r's context with the session's identity for another
// audience (the vault's data plane), getting a token for it with the
// refresh token the first time, as a client would.
func (s *Server) adminAs(r *nethttp.Request, sess *adminSession, aud keyhold.Audience) (context.Context, error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if tok := sess.tokens[aud]; tok != "" {
		if id, err := s.Tokens.Authenticate(r.Context(), tok); err == nil && id != nil {
			return keyhold.NewContext(r.Context(), id), nil
		}
	}
	t, err := s.Tokens.(keyhold.SignInService).Refresh(r.Context(), sess.tenant, sess.client, sess.refresh, string(aud)+"/.default")
	if err != nil {
		return nil, err
	}
	// The family's refresh token rotated: keep its successor.
	sess.refresh = t.RefreshToken
	id, err := s.Tokens.Authenticate(r.Context(), t.AccessToken)
	if err != nil {
		return nil, err
	}
	if sess.tokens == nil {
		sess.tokens = map[keyhold.Audience]string{}
	}
	sess.tokens[aud] = t.AccessToken
	return keyhold.NewContext(r.Context(), id), nil
}
