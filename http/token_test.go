package http

import (
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestTokenIssueAndUse: a client-credentials grant answers Entra ID's field
// set, and the token it returns opens the API.
func TestTokenIssueAndUse(t *testing.T) {
	f := newFixture(t)
	a := f.form(t, "/"+f.creds.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID},
		"client_secret": {f.creds.ClientSecret}, "scope": {"https://service.powerapps.com/.default"},
	})
	if a.status != nethttp.StatusOK {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	var fields map[string]any
	if err := json.Unmarshal(a.body, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"token_type", "expires_in", "ext_expires_in", "access_token"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("token answer %s lacks %q", a.body, k)
		}
	}
	if len(fields) != 4 || fields["token_type"] != "Bearer" || fields["expires_in"] != float64(3600) {
		t.Fatalf("token answer fields = %v, want exactly Entra ID's four, Bearer, 3600 s", fields)
	}
	if got := a.header.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("Cache-Control = %q, want no-store", got)
	}
	tok := fields["access_token"].(string)
	if got := f.call(t, "GET", adminEnvPrefix, tok, "", nil); got.status != nethttp.StatusOK {
		t.Fatalf("list with the token: %d %s", got.status, got.body)
	}

	// client_secret_basic works too.
	req, _ := nethttp.NewRequest("POST", f.url+"/"+f.creds.TenantID+"/oauth2/v2.0/token",
		strings.NewReader("grant_type=client_credentials&scope=https%3A%2F%2Fservice.powerapps.com%2F.default"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.creds.ClientID, f.creds.ClientSecret)
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != nethttp.StatusOK {
		t.Fatalf("token with HTTP Basic client authentication: %d", resp.StatusCode)
	}
}

// TestTokenErrors: the token endpoint's failures answer in Entra ID's
// OAuth2 shape, with Entra's statuses, and never echo the secret.
func TestTokenErrors(t *testing.T) {
	f := newFixture(t)
	good := func() url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID},
			"client_secret": {f.creds.ClientSecret}, "scope": {"https://service.powerapps.com/.default"}}
	}
	tenantPath := "/" + f.creds.TenantID + "/oauth2/v2.0/token"
	tests := []struct {
		name   string
		path   string
		ct     string
		body   func() string
		status int
		code   string
		hint   string
	}{
		{"wrong secret", tenantPath, "", func() string { v := good(); v.Set("client_secret", "not-the-secret"); return v.Encode() },
			401, "invalid_client", "check the tenant id, client id and client secret"},
		{"unknown tenant", "/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token", "", func() string { return good().Encode() },
			401, "invalid_client", "tenant"},
		{"unknown scope", tenantPath, "", func() string { v := good(); v.Set("scope", "https://graph.microsoft.com/.default"); return v.Encode() },
			400, "invalid_scope", "https://service.powerapps.com/.default"},
		{"saml bearer grant", tenantPath, "", func() string {
			v := good()
			v.Set("grant_type", "urn:ietf:params:oauth:grant-type:saml2-bearer")
			return v.Encode()
		}, 400, "unsupported_grant_type", "grant_type=password"},
		// The device code grant is served (signin.go): without its code
		// it is a bad request.
		{"device code grant without a code", tenantPath, "", func() string {
			v := good()
			v.Set("grant_type", "urn:ietf:params:oauth:grant-type:device_code")
			return v.Encode()
		}, 400, "invalid_request", "device_code"},
		{"password grant without a user name", tenantPath, "", func() string { v := good(); v.Set("grant_type", "password"); return v.Encode() },
			400, "invalid_request", "'username'"},
		{"password grant for an unknown user", tenantPath, "", func() string {
			return url.Values{"grant_type": {"password"}, "username": {"nobody@contoso.example"}, "password": {"whatever-it-is"},
				"scope": {"https://management.azure.com/.default"}}.Encode()
		}, 400, "invalid_grant", "invalid username or password"},
		{"no grant type", tenantPath, "", func() string { v := good(); v.Del("grant_type"); return v.Encode() },
			400, "invalid_request", "'grant_type'"},
		{"no scope", tenantPath, "", func() string { v := good(); v.Del("scope"); return v.Encode() },
			400, "invalid_request", "'scope'"},
		{"no secret", tenantPath, "", func() string { v := good(); v.Del("client_secret"); return v.Encode() },
			401, "invalid_client", "'client_secret'"},
		{"JSON body", tenantPath, "application/json", func() string { return `{"grant_type":"client_credentials"}` },
			400, "invalid_request", "application/x-www-form-urlencoded"},
		{"oversized form", tenantPath, "", func() string { v := good(); v.Set("pad", strings.Repeat("x", maxFormBytes)); return v.Encode() },
			400, "invalid_request", "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.ct
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			a := f.call(t, "POST", tt.path, "", ct, strings.NewReader(tt.body()))
			var e oauthErrorJSON
			if err := json.Unmarshal(a.body, &e); err != nil {
				t.Fatalf("answer %d is not an OAuth2 error: %s", a.status, a.body)
			}
			if a.status != tt.status || e.Error != tt.code {
				t.Fatalf("answer = %d %s (%s), want %d %s", a.status, e.Error, e.ErrorDescription, tt.status, tt.code)
			}
			if !strings.Contains(e.ErrorDescription, tt.hint) {
				t.Fatalf("error_description %q does not say %q", e.ErrorDescription, tt.hint)
			}
			if e.TraceID != a.header.Get("x-ms-request-id") || e.CorrelationID == "" {
				t.Fatalf("trace_id %q, correlation_id %q: want the request id %q and a correlation id", e.TraceID, e.CorrelationID, a.header.Get("x-ms-request-id"))
			}
			if _, err := time.Parse("2006-01-02 15:04:05Z", e.Timestamp); err != nil {
				t.Fatalf("timestamp %q is not Entra's format: %v", e.Timestamp, err)
			}
			if tt.code == "invalid_client" && (len(e.ErrorCodes) != 1 || !strings.HasPrefix(e.ErrorDescription, "AADSTS")) {
				t.Fatalf("invalid_client error_codes = %v, description %q: want Entra's AADSTS number", e.ErrorCodes, e.ErrorDescription)
			}
		})
	}
}

// TestBearerErrors: a missing, garbage, expired or wrong-audience token is
// a 401 with the Azure body and a bearer challenge; nothing runs.
func TestBearerErrors(t *testing.T) {
	f := newFixture(t)
	powerApps := f.adminToken(t)
	vault := f.token(t, "https://vault.azure.net/.default")
	management := f.token(t, "https://management.azure.com/.default")
	env := f.createEnv(t, "Bearer")
	rowPath := "/environments/" + env.ID + "/tables/accounts/rows/r1"

	tests := []struct {
		name   string
		method string
		path   string
		auth   string // the Authorization header
		code   string
		hints  []string
		tenant string // in the challenge
	}{
		{"missing", "GET", adminEnvPrefix, "", keyhold.CodeUnauthorized,
			[]string{"no bearer token", "POST /{tenantId}/oauth2/v2.0/token", "https://service.powerapps.com/.default"}, "common"},
		{"basic scheme", "GET", adminEnvPrefix, "Basic dXNlcjpwYXNz", keyhold.CodeUnauthorized, []string{"no bearer token"}, "common"},
		{"garbage", "GET", adminEnvPrefix, "Bearer not.a.jwt", keyhold.CodeInvalidToken, []string{"get a new one"}, "common"},
		{"vault audience", "GET", adminEnvPrefix, "Bearer " + vault, keyhold.CodeInvalidToken,
			[]string{`"https://vault.azure.net"`, `"https://service.powerapps.com"`}, f.creds.TenantID},
		{"management audience on the data plane", "GET", rowPath, "Bearer " + management, keyhold.CodeInvalidToken,
			[]string{`"https://service.powerapps.com"`}, f.creds.TenantID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := nethttp.NewRequest(tt.method, f.url+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			a := do(t, f, req)
			a.wantError(t, nethttp.StatusUnauthorized, tt.code, tt.hints...)
			want := `Bearer authorization_uri="` + f.url + "/" + tt.tenant + `/oauth2/v2.0/authorize", error="invalid_token"`
			if got := a.header.Get("WWW-Authenticate"); got != want {
				t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}

	// The management audience is accepted on the BAP admin routes.
	if a := f.call(t, "GET", adminEnvPrefix, management, "", nil); a.status != nethttp.StatusOK {
		t.Fatalf("list with a management token: %d %s", a.status, a.body)
	}

	// Writes without a token are refused the same way and change nothing.
	state := func() string {
		envs := f.call(t, "GET", adminEnvPrefix, management, "", nil)
		row := f.call(t, "GET", rowPath, powerApps, "", nil)
		return string(envs.body) + "\n" + string(row.body)
	}
	unchanged := state()
	for _, w := range []struct{ method, path, body string }{
		{"POST", bapPrefix + "/environments", `{"location":"europe","properties":{"displayName":"Sneaky","environmentSku":"Sandbox"}}`},
		{"PUT", rowPath, `{"name":"sneaky"}`},
		{"DELETE", adminEnvPrefix + "/" + env.ID, ""},
	} {
		a := f.call(t, w.method, w.path, "", "application/json", strings.NewReader(w.body))
		a.wantError(t, nethttp.StatusUnauthorized, keyhold.CodeUnauthorized, "no bearer token")
	}
	if after := state(); after != unchanged {
		t.Fatalf("writes without a token changed state:\nbefore %s\nafter  %s", unchanged, after)
	}

	// Expiry, on the platform's clock.
	f.clock.Advance(2 * time.Hour)
	a := f.call(t, "GET", adminEnvPrefix, powerApps, "", nil)
	a.wantError(t, nethttp.StatusUnauthorized, keyhold.CodeExpiredToken, "expired", "get a new one")
	w := f.call(t, "PUT", rowPath, powerApps, "application/json", strings.NewReader(`{"name":"late"}`))
	w.wantError(t, nethttp.StatusUnauthorized, keyhold.CodeExpiredToken, "expired", "get a new one")
	powerApps, management = f.adminToken(t), f.token(t, "https://management.azure.com/.default")
	if after := state(); after != unchanged {
		t.Fatalf("a write with an expired token changed state:\nbefore %s\nafter  %s", unchanged, after)
	}
	if got := a.header.Get("WWW-Authenticate"); !strings.Contains(got, "/"+f.creds.TenantID+"/oauth2/v2.0/authorize") {
		t.Fatalf("WWW-Authenticate = %q, want the token's tenant", got)
	}

	// The Go client's cached token (valid on the client's clock) is now
	// refused: it gets a new one and retries, once.
	before := f.tokenRequests.Load()
	if _, err := f.client.ListEnvironments(context.Background()); err != nil {
		t.Fatalf("client after expiry: %v", err)
	}
	if got := f.tokenRequests.Load() - before; got != 1 {
		t.Fatalf("client fetched %d tokens after its token expired, want 1", got)
	}
}

func do(t *testing.T, f *fixture, req *nethttp.Request) answer {
	t.Helper()
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestClientTokenCache: the client asks for a token once per scope, shares
// it between concurrent callers, and refreshes it a minute before expiry.
func TestClientTokenCache(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.client.ListEnvironments(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := f.tokenRequests.Load(); got != 1 {
		t.Fatalf("8 concurrent calls fetched %d tokens, want 1", got)
	}

	start := time.Now()
	f.client.now = func() time.Time { return start.Add(58 * time.Minute) }
	if _, err := f.client.Token(ctx, powerAppsScope); err != nil {
		t.Fatal(err)
	}
	if got := f.tokenRequests.Load(); got != 1 {
		t.Fatalf("at 58 minutes the client fetched a new token (%d fetches), want the cached one", got)
	}
	f.client.now = func() time.Time { return start.Add(59*time.Minute + time.Second) }
	if _, err := f.client.Token(ctx, powerAppsScope); err != nil {
		t.Fatal(err)
	}
	if got := f.tokenRequests.Load(); got != 2 {
		t.Fatalf("less than a minute before expiry the client made %d fetches, want 2", got)
	}
	if _, err := f.client.Token(ctx, "https://vault.azure.net/.default"); err != nil {
		t.Fatal(err)
	}
	if got := f.tokenRequests.Load(); got != 3 {
		t.Fatalf("another scope made %d fetches in all, want 3", got)
	}

	// Wrong credentials: the Entra error decodes into a *keyhold.Error.
	bad, err := NewClient(f.url, f.ca, f.creds.TenantID, f.creds.ClientID, "wrong")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.ListEnvironments(ctx)
	wantCode(t, err, keyhold.CodeInvalidClient)
	if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, "client secret") {
		t.Fatalf("message %q does not say what to check", msg)
	}
	_, err = f.client.Token(ctx, "https://graph.microsoft.com/.default")
	wantCode(t, err, keyhold.CodeInvalidScope)
}

// TestNewClient: only https URLs; a CA that parses; a server outside the
// trusted roots is unreachable, not silently trusted.
func TestNewClient(t *testing.T) {
	tests := []struct {
		name string
		url  string
		ca   []byte
	}{
		{"plain http", "http://127.0.0.1:8443", nil},
		{"no host", "https://", nil},
		{"query", "https://127.0.0.1:8443?x=1", nil},
		{"bad CA", "https://127.0.0.1:8443", []byte("not PEM")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(tt.url, tt.ca, "t", "c", "s"); err == nil {
				t.Fatalf("NewClient(%q) succeeded", tt.url)
			}
		})
	}

	f := newFixture(t)
	c, err := NewClient(f.url, nil, f.creds.TenantID, f.creds.ClientID, f.creds.ClientSecret) // system roots
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListEnvironments(context.Background())
	wantCode(t, err, keyhold.CodeServiceUnavailable)
	if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, "certificate") {
		t.Fatalf("message %q does not name the certificate problem", msg)
	}
}
