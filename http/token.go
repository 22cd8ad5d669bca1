package http

import (
	"errors"
	"fmt"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// tokenJSON is the token endpoint's answer, field for field as Entra ID's.
type tokenJSON struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"` // people's sign-ins (signin.go)
	Scope        string `json:"scope,omitempty"`
}

// oauthErrorJSON is Entra ID's token error body.
type oauthErrorJSON struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes,omitempty"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// aadsts are the Entra ID error numbers of the OAuth2 codes, which Entra
// quotes in error_codes and at the start of error_description.
var aadsts = map[string]int{
	keyhold.CodeInvalidClient:        7000215,
	keyhold.CodeUnsupportedGrantType: 70003,
	keyhold.CodeInvalidScope:         70011,
	keyhold.CodeInvalidGrant:         50126,
	keyhold.CodeSignInLocked:         aadstsLocked,
	keyhold.CodeInvalidTenant:        90002,
}

// scopes lists the scopes a client may ask for, for messages.
var scopes = strings.Join([]string{
	string(keyhold.AudienceManagement) + "/.default",
	string(keyhold.AudienceVault) + "/.default",
	string(keyhold.AudiencePowerApps) + "/.default",
	string(keyhold.AudienceManagedHSM) + "/.default",
	string(keyhold.AudienceFlow) + "/.default",
}, ", ")

// issueToken: POST /{tenantId}/oauth2/v2.0/token, the client-credentials
// grant, and the password grant for users when the token service offers
// it (keyhold.PasswordTokenIssuer). Client credentials come in the form,
// or as HTTP Basic authentication (client_secret_basic).
func (s *Server) issueToken(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := r.ParseForm(); err != nil {
		if mb, ok := errors.AsType[*nethttp.MaxBytesError](err); ok {
			return tooLarge(mb.Limit, "it was cut off there")
		}
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the token request body is not a valid form: %v; send grant_type, client_id, client_secret and scope as application/x-www-form-urlencoded", err)
	}
	f := r.PostForm // OAuth2 parameters come in the body, never the URL
	missing := func(name, hint string) error {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter '%s': %s", name, hint)
	}
	grant := f.Get("grant_type")
	ropc, hasROPC := s.Tokens.(keyhold.PasswordTokenIssuer)
	grants := "use grant_type=client_credentials"
	if hasROPC {
		grants += ", or grant_type=password for a user"
	}
	si, hasSignIn := s.Tokens.(keyhold.SignInService)
	if hasSignIn {
		grants += ", or for people " + GrantDeviceCode + ", authorization_code or refresh_token"
	}
	switch {
	case grant == "":
		return missing("grant_type", grants)
	case grant == "password" && hasROPC:
		return s.passwordGrant(w, r, ropc)
	case hasSignIn && (grant == GrantDeviceCode || grant == "authorization_code" || grant == "refresh_token"):
		return s.signInGrant(w, r, si, grant) // signin.go
	case grant != "client_credentials":
		return keyhold.Errorf(keyhold.CodeUnsupportedGrantType, "grant_type %q is not supported: %s", keyhold.Clip(grant), grants)
	}
	if f.Has("client_assertion") || f.Has("client_assertion_type") {
		return s.assertionGrant(w, r)
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok && clientID == "" && secret == "" {
		// RFC 6749 2.3.1: both are form-encoded before Basic encoding.
		clientID, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	if clientID == "" {
		return missing("client_id", "send the application (client) id of the service principal")
	}
	if secret == "" {
		return keyhold.Errorf(keyhold.CodeInvalidClient, "the request body must contain the parameter 'client_secret' or 'client_assertion': send the service principal's client secret, or a client assertion signed by its certificate")
	}
	scope := f.Get("scope")
	if scope == "" {
		return missing("scope", "use one of "+scopes)
	}
	try := newSignIn(r, "app", r.PathValue("tenantId"), clientID, keyhold.CodeInvalidClient)
	if err := s.throttle.admit(w, try); err != nil {
		return err
	}
	tok, err := s.Tokens.IssueToken(r.Context(), r.PathValue("tenantId"), clientID, secret, s.tokenScope(scope))
	s.throttle.record(try, err)
	if err != nil {
		return err
	}
	writeToken(w, tok)
	return nil
}

// clientAssertionType is the only client_assertion_type (RFC 7523).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionGrant answers grant_type=client_credentials proven by a client
// assertion (a JWT signed by the application's certificate key), when the
// token service takes them (keyhold.AssertionTokenIssuer). Wrong
// assertions count against the sign-in limits as wrong secrets do.
func (s *Server) assertionGrant(w nethttp.ResponseWriter, r *nethttp.Request) error {
	f := r.PostForm
	issuer, ok := s.Tokens.(keyhold.AssertionTokenIssuer)
	if !ok {
		return keyhold.Errorf(keyhold.CodeInvalidClient, "client assertions are not accepted by this server: send client_secret")
	}
	if t := f.Get("client_assertion_type"); t != clientAssertionType {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "client_assertion_type %q is not supported: send %s with client_assertion", keyhold.Clip(t), clientAssertionType)
	}
	clientID, assertion := f.Get("client_id"), f.Get("client_assertion")
	if clientID == "" {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter 'client_id': send the application (client) id of the service principal")
	}
	if assertion == "" {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter 'client_assertion': send a JWT signed by the application's certificate key")
	}
	if f.Get("client_secret") != "" {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "send either client_secret or client_assertion, not both")
	}
	scope := f.Get("scope")
	if scope == "" {
		return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter 'scope': use one of %s", scopes)
	}
	try := newSignIn(r, "app", r.PathValue("tenantId"), clientID, keyhold.CodeInvalidClient)
	if err := s.throttle.admit(w, try); err != nil {
		return err
	}
	tok, err := issuer.IssueAssertionToken(r.Context(), r.PathValue("tenantId"), clientID, assertion, s.tokenScope(scope))
	s.throttle.record(try, err)
	if err != nil {
		return err
	}
	writeToken(w, tok)
	return nil
}

// passwordGrant answers grant_type=password: a user's userPrincipalName
// and password. client_id names the public client application in Entra
// ID; Keyhold has no application registry, so it is accepted and not
// checked.
func (s *Server) passwordGrant(w nethttp.ResponseWriter, r *nethttp.Request, ropc keyhold.PasswordTokenIssuer) error {
	f := r.PostForm
	for _, p := range []struct{ name, hint string }{
		{"username", "send the user's userPrincipalName"},
		{"password", "send the user's password"},
		{"scope", "use one of " + scopes},
	} {
		if f.Get(p.name) == "" {
			return keyhold.Errorf(keyhold.CodeInvalidRequest, "the request body must contain the parameter '%s': %s", p.name, p.hint)
		}
	}
	try := newSignIn(r, "user", r.PathValue("tenantId"), f.Get("username"), keyhold.CodeInvalidGrant)
	if err := s.throttle.admit(w, try); err != nil {
		return err
	}
	tok, err := ropc.IssuePasswordToken(r.Context(), r.PathValue("tenantId"), f.Get("username"), f.Get("password"), s.tokenScope(f.Get("scope")))
	s.throttle.record(try, err)
	if err != nil {
		return err
	}
	writeToken(w, tok)
	return nil
}

// writeToken answers a token in Entra ID's shape.
func writeToken(w nethttp.ResponseWriter, tok *keyhold.Token) {
	out := tokenJSON{TokenType: tok.TokenType, ExpiresIn: tok.ExpiresIn, ExtExpiresIn: tok.ExtExpires, AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, Scope: tok.Scope}
	if out.TokenType == "" {
		out.TokenType = "Bearer"
	}
	if out.ExtExpiresIn == 0 {
		out.ExtExpiresIn = out.ExpiresIn
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, nethttp.StatusOK, out)
}

// writeOAuthError answers a token endpoint error in Entra ID's shape:
// invalid_client is 401, other client errors 400 (invalid_request unless
// they have an OAuth2 code of their own), server errors keep their status.
func (s *Server) writeOAuthError(w nethttp.ResponseWriter, r *nethttp.Request, st *reqState, err error) {
	e, internal := clientError(err)
	code, status := e.Code, StatusOf(e.Code)
	aadstsN, hasAADSTS := aadsts[e.Code]
	if n, ok := strings.CutPrefix(e.Inner, "AADSTS"); ok {
		// A refusal with an Entra ID number of its own (client assertions).
		if v, err := strconv.Atoi(n); err == nil {
			aadstsN, hasAADSTS = v, true
		}
	}
	switch {
	case code == keyhold.CodeSignInLocked: // throttled (ratelimit.go)
		code = e.Inner
	case code == keyhold.CodeInvalidClient:
		status = nethttp.StatusUnauthorized
	case code == keyhold.CodeUnsupportedGrantType, code == keyhold.CodeInvalidScope, code == keyhold.CodeInvalidRequest, code == keyhold.CodeInvalidGrant, code == keyhold.CodeInvalidTenant,
		code == keyhold.CodeAuthorizationPending, code == keyhold.CodeSlowDown, code == keyhold.CodeExpiredDeviceCode, code == keyhold.CodeAccessDenied:
		status = nethttp.StatusBadRequest
	case status == nethttp.StatusServiceUnavailable:
		code = "temporarily_unavailable"
	case status >= 500:
		code = "server_error"
	default:
		code, status = keyhold.CodeInvalidRequest, nethttp.StatusBadRequest
	}
	s.logError(r, st, err, status, internal)
	body := oauthErrorJSON{
		Error:            code,
		ErrorDescription: e.Message,
		Timestamp:        time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		TraceID:          st.requestID,
		CorrelationID:    w.Header().Get("x-ms-correlation-request-id"),
	}
	// A sign-in refusal names its own Entra ID number (platform/signin.go).
	if n, err := strconv.Atoi(strings.TrimPrefix(e.Inner, "AADSTS")); err == nil && strings.HasPrefix(e.Inner, "AADSTS") {
		aadstsN, hasAADSTS = n, true
	}
	if hasAADSTS {
		body.ErrorCodes = []int{aadstsN}
		body.ErrorDescription = fmt.Sprintf("AADSTS%d: %s", aadstsN, e.Message)
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, body)
}
