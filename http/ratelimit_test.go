package http

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	nethttp "net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// withThrottleClock makes the sign-in lockouts follow the fixture's clock.
func withThrottleClock(f *fixture) { f.srv.Clock = f.clock }

// wantLocked checks a 429 lockout answer in Entra ID's shape.
func wantLocked(t *testing.T, a answer, oauthCode, retryAfter, hint string) {
	t.Helper()
	var e oauthErrorJSON
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("answer %d is not an OAuth2 error: %s", a.status, a.body)
	}
	if a.status != nethttp.StatusTooManyRequests || e.Error != oauthCode || len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != 50053 ||
		!strings.HasPrefix(e.ErrorDescription, "AADSTS50053: ") || !strings.Contains(e.ErrorDescription, hint) {
		t.Fatalf("answer %d %+v; want 429 %s with AADSTS50053 saying %q", a.status, e, oauthCode, hint)
	}
	if got := a.header.Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After = %q, want %q", got, retryAfter)
	}
}

func wantStatus(t *testing.T, a answer, status int, what string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: %d %s; want %d", what, a.status, a.body, status)
	}
}

// TestSignInLockout: after five wrong client secrets the sixth attempt is
// answered 429 with Retry-After and AADSTS50053, and so is the right
// secret while the lockout runs; another account signs in meanwhile. Once
// the clock passes the lockout the right secret works; a further failure
// locks for twice as long; a success clears the count. The password grant
// locks users the same way.
func TestSignInLockout(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixtureOn(t, open(t), withARM(nil), withThrottleClock)
		tenantPath := "/" + f.creds.TenantID + "/oauth2/v2.0/token"
		tok := f.mgmtToken(t)
		var sp servicePrincipalJSON
		f.jsonCall(t, "POST", "/v1.0/servicePrincipals", tok, `{"displayName":"other"}`).decode(t, 201, &sp)
		other := url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_secret": {sp.PasswordCredentials[0].SecretText},
			"scope": {"https://management.azure.com/.default"}}
		const pw = "ochre lantern quilt 42"
		f.jsonCall(t, "POST", "/v1.0/users", tok, `{"displayName":"Ada","userPrincipalName":"ada@contoso.example","passwordProfile":{"password":"`+pw+`"}}`).decode(t, 201, &userJSON{})
		f.secrets = append(f.secrets, pw)

		good := url.Values{"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID}, "client_secret": {f.creds.ClientSecret},
			"scope": {"https://management.azure.com/.default"}}
		wrong := url.Values{}
		for k, v := range good {
			wrong[k] = v
		}
		wrong.Set("client_secret", "not-the-secret")

		for i := 1; i <= DefaultAccountFailures; i++ {
			wantStatus(t, f.form(t, tenantPath, wrong), 401, "a wrong secret")
		}
		wantLocked(t, f.form(t, tenantPath, wrong), "invalid_client", "60", "the account is locked")
		wantLocked(t, f.form(t, tenantPath, good), "invalid_client", "60", "retry after 60 seconds")
		wantStatus(t, f.form(t, tenantPath, other), 200, "another account during the lockout")

		f.clock.Advance(30 * time.Second)
		wantLocked(t, f.form(t, tenantPath, good), "invalid_client", "30", "retry after 30 seconds")
		f.clock.Advance(31 * time.Second)
		wantStatus(t, f.form(t, tenantPath, wrong), 401, "a wrong secret after the lockout")
		wantLocked(t, f.form(t, tenantPath, good), "invalid_client", "120", "the account is locked") // doubled
		f.clock.Advance(121 * time.Second)
		wantStatus(t, f.form(t, tenantPath, good), 200, "the right secret after the lockout")
		for i := 1; i <= DefaultAccountFailures-1; i++ { // the success cleared the count
			wantStatus(t, f.form(t, tenantPath, wrong), 401, "a wrong secret after a success")
		}
		wantStatus(t, f.form(t, tenantPath, good), 200, "the right secret before a new lockout")

		// Users, with the password grant.
		ropc := url.Values{"grant_type": {"password"}, "username": {"ADA@contoso.example"}, "password": {pw},
			"scope": {"https://management.azure.com/.default"}}
		bad := url.Values{"grant_type": {"password"}, "username": {"ada@contoso.example"}, "password": {"not the password"},
			"scope": {"https://management.azure.com/.default"}}
		for i := 1; i <= DefaultAccountFailures; i++ {
			wantStatus(t, f.form(t, tenantPath, bad), 400, "a wrong password")
		}
		wantLocked(t, f.form(t, tenantPath, ropc), "invalid_grant", "60", "the account is locked")
		f.clock.Advance(61 * time.Second)
		wantStatus(t, f.form(t, tenantPath, ropc), 200, "the right password after the lockout")
	})
}

// TestSignInSourceLimit: one address that sends too many wrong secrets,
// across accounts that need not exist, is blocked for every account, the
// right secret too; another address is not.
func TestSignInSourceLimit(t *testing.T) {
	f := newFixture(t, withThrottleClock, func(f *fixture) {
		f.srv.SignInLimits = SignInLimits{SourceFailures: 3, AccountFailures: 100}
	})
	tenantPath := "/" + f.creds.TenantID + "/oauth2/v2.0/token"
	try := func(clientID, secret string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
			"scope": {"https://management.azure.com/.default"}}
	}
	for _, id := range []string{"spray-1", "spray-2", "spray-3"} {
		wantStatus(t, f.form(t, tenantPath, try(id, "guess")), 401, "a guessed secret")
	}
	wantLocked(t, f.form(t, tenantPath, try("spray-4", "guess")), "invalid_client", "60", "from this address")
	wantLocked(t, f.form(t, tenantPath, try(f.creds.ClientID, f.creds.ClientSecret)), "invalid_client", "60", "from this address")

	// From 127.0.0.2 (loopback too), the right secret works.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.ca)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c := &nethttp.Client{Transport: &nethttp.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	resp, err := c.PostForm(f.url+tenantPath, try(f.creds.ClientID, f.creds.ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the right secret from another address: %d", resp.StatusCode)
	}
	f.clock.Advance(61 * time.Second)
	wantStatus(t, f.form(t, tenantPath, try(f.creds.ClientID, f.creds.ClientSecret)), 200, "the right secret after the block")
}
