package http

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// testIssuer is an OpenID issuer run by the test over real HTTPS: its
// discovery document and JWKS (one RSA key, kid "k1"), and what it
// answers instead when mode says so.
type testIssuer struct {
	url   string // the issuer, https://127.0.0.1:port/issuer
	key   *rsa.PrivateKey
	mode  atomic.Value // "" (good), "garbage", "otherIssuer", "down"
	hits  atomic.Int64
	close func()
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	_, tlsConf := testCA()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss := &testIssuer{url: "https://" + ln.Addr().String() + "/issuer", key: testRSAKeys()[1]}
	iss.mode.Store("")
	mux := nethttp.NewServeMux()
	mux.HandleFunc("GET /issuer/.well-known/openid-configuration", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		iss.hits.Add(1)
		switch iss.mode.Load() {
		case "garbage":
			w.Write([]byte("<html>not json</html>"))
			return
		case "down":
			w.WriteHeader(nethttp.StatusServiceUnavailable)
			return
		}
		name := iss.url
		if iss.mode.Load() == "otherIssuer" {
			name = "https://elsewhere.example/issuer"
		}
		json.NewEncoder(w).Encode(map[string]string{"issuer": name, "jwks_uri": iss.url + "/keys"})
	})
	mux.HandleFunc("GET /issuer/keys", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		iss.hits.Add(1)
		pub := iss.key.PublicKey
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "use": "sig", "kid": "k1",
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}}})
	})
	hs := &nethttp.Server{Handler: mux, TLSConfig: tlsConf, ErrorLog: discardLog()}
	go hs.ServeTLS(ln, "", "")
	iss.close = func() { hs.Close() }
	t.Cleanup(iss.close)
	return iss
}

// sign signs claims RS256 with key under kid "k1", as a workload
// identity's token is.
func (iss *testIssuer) sign(t *testing.T, key *rsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testFederatedSubject = "system:serviceaccount:payments:api"

// claims are a good federated assertion's claims at now.
func (iss *testIssuer) claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": iss.url, "sub": testFederatedSubject, "aud": keyhold.FederatedAudience, "jti": uuid.NewString(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
}

// withFederation lets the platform fetch issuers' documents from
// loopback, trusting the test CA; the sign-in limits are raised so that
// the refusals a test makes on purpose don't lock the application out.
func withFederation(f *fixture) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.ca)
	pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.1"}})
	if err != nil {
		panic(err)
	}
	f.p.SetFederationClient(platform.NewFederationClient(pool, pol))
	f.srv.SignInLimits = SignInLimits{AccountFailures: 1000, SourceFailures: 1000}
}

// postFederated posts a client-credentials grant with assertion for the
// bootstrap application.
func postFederated(t *testing.T, f *fixture, assertion string) answer {
	t.Helper()
	return f.form(t, "/"+f.creds.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID}, "scope": {"https://vault.azure.net/.default"},
		"client_assertion_type": {clientAssertionType}, "client_assertion": {assertion}})
}

// wantOAuthRefusal checks a 401 invalid_client whose description names
// aadsts and holds each hint, and that no token came with it.
func wantOAuthRefusal(t *testing.T, a answer, aadsts string, hints ...string) {
	t.Helper()
	var e oauthErrorJSON
	if err := json.Unmarshal(a.body, &e); err != nil || a.status != 401 || e.Error != "invalid_client" {
		t.Fatalf("answer %d %s; want 401 invalid_client", a.status, a.body)
	}
	if strings.Contains(string(a.body), "access_token") {
		t.Fatalf("a refusal carries a token: %s", a.body)
	}
	if !strings.HasPrefix(e.ErrorDescription, aadsts+":") {
		t.Fatalf("error_description %q, want %s", e.ErrorDescription, aadsts)
	}
	for _, h := range hints {
		if !strings.Contains(e.ErrorDescription, h) {
			t.Fatalf("error_description %q does not say %q", e.ErrorDescription, h)
		}
	}
}

// TestFederatedCredentialAzidentity: a federated credential added through
// the Graph route lets azidentity's ClientAssertionCredential sign in as
// the application with another issuer's token; the sign-in is audited;
// once the credential is removed the same kind of token signs no one in.
func TestFederatedCredentialAzidentity(t *testing.T) {
	forEachBackendWith(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		iss := newTestIssuer(t)
		fc, err := f.client.AddFederatedCredential(ctx, f.creds.ClientID, &keyhold.FederatedCredential{Issuer: iss.url, Subject: testFederatedSubject})
		if err != nil {
			t.Fatalf("AddFederatedCredential: %v", err)
		}
		if fc.ID == "" || !strings.HasPrefix(fc.Name, "federated-") || len(fc.Audiences) != 1 || fc.Audiences[0] != keyhold.FederatedAudience {
			t.Fatalf("added %+v: want an id, a derived name and the default audience", fc)
		}
		cred, err := azidentity.NewClientAssertionCredential(f.creds.TenantID, f.creds.ClientID,
			func(context.Context) (string, error) { return iss.sign(t, iss.key, iss.claims(f.clock.Now())), nil },
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: f.sdkClientOptions(), DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		at, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		f.secrets = append(f.secrets, at.Token)
		c := decodeClaims(t, at.Token)
		if c["appid"] != f.creds.ClientID || c["aud"] != "https://vault.azure.net" || c["tid"] != f.creds.TenantID {
			t.Fatalf("claims = %v", c)
		}
		entries, err := f.client.ListAudit(ctx, keyhold.AuditFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !hasAudit(entries, "signIn.federatedCredential", "Succeeded", "") || !hasAudit(entries, "application.addFederatedCredential", "Succeeded", "") {
			t.Fatalf("no audit entries of the credential and the sign-in: %+v", entries)
		}
		list, err := f.client.ListFederatedCredentials(ctx, f.creds.ClientID)
		if err != nil || len(list) != 1 || list[0].ID != fc.ID || list[0].Issuer != iss.url || list[0].Subject != testFederatedSubject {
			t.Fatalf("ListFederatedCredentials = %+v, %v", list, err)
		}
		if err := f.client.DeleteFederatedCredential(ctx, f.creds.ClientID, fc.Name); err != nil {
			t.Fatalf("DeleteFederatedCredential: %v", err)
		}
		wantOAuthRefusal(t, postFederated(t, f, iss.sign(t, iss.key, iss.claims(f.clock.Now()))), "AADSTS70021", "issuer")
		err = f.client.DeleteFederatedCredential(ctx, f.creds.ClientID, fc.Name)
		wantCode(t, err, keyhold.CodeNotFound)
	}, withDirectory, withFederation)
}

// TestFederatedAssertionRefusals: each way a federated assertion can be
// wrong is refused with its AADSTS number and a description that says
// what to fix, and no token; a good one still works after them all.
func TestFederatedAssertionRefusals(t *testing.T) {
	f := newFixture(t, withDirectory, withFederation)
	ctx := context.Background()
	iss := newTestIssuer(t)
	if _, err := f.client.AddFederatedCredential(ctx, f.creds.ClientID, &keyhold.FederatedCredential{Name: "payments", Issuer: iss.url, Subject: testFederatedSubject}); err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	with := func(k string, v any) jwt.MapClaims {
		c := iss.claims(now)
		c[k] = v
		return c
	}
	replayed := iss.sign(t, iss.key, iss.claims(now))
	if a := postFederated(t, f, replayed); a.status != 200 {
		t.Fatalf("a good assertion: %d %s", a.status, a.body)
	}
	cases := []struct {
		name, assertion, aadsts, hint string
	}{
		{"issuer mismatch", iss.sign(t, iss.key, with("iss", "https://elsewhere.example/issuer")), "AADSTS70021", "https://elsewhere.example/issuer"},
		{"unknown subject", iss.sign(t, iss.key, with("sub", "system:serviceaccount:other:app")), "AADSTS70021", "subject"},
		{"wrong audience", iss.sign(t, iss.key, with("aud", f.url+"/"+f.creds.TenantID+"/oauth2/v2.0/token")), "AADSTS70021", "audience"},
		{"expired", iss.sign(t, iss.key, with("exp", now.Add(-10*time.Minute).Unix())), "AADSTS700024", "expired"},
		{"not yet valid", iss.sign(t, iss.key, with("nbf", now.Add(10*time.Minute).Unix())), "AADSTS700024", "valid from"},
		{"bad signature", iss.sign(t, testRSAKeys()[2], iss.claims(now)), "AADSTS700027", "does not verify"},
		{"no jti", iss.sign(t, iss.key, with("jti", "")), "AADSTS50027", "jti"},
		{"replayed", replayed, "AADSTS700027", "already used"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantOAuthRefusal(t, postFederated(t, f, c.assertion), c.aadsts, c.hint) })
	}
	if a := postFederated(t, f, iss.sign(t, iss.key, iss.claims(now))); a.status != 200 {
		t.Fatalf("a good assertion after the refusals: %d %s", a.status, a.body)
	}
}

// TestFederatedIssuerDocuments: an issuer whose documents can't be had or
// don't hold (unreachable, garbage, a discovery document naming another
// issuer) signs no one in; the documents are fetched again once the
// cache's refetch interval has passed, not on every assertion.
func TestFederatedIssuerDocuments(t *testing.T) {
	f := newFixture(t, withDirectory, withFederation)
	ctx := context.Background()
	iss := newTestIssuer(t)
	if _, err := f.client.AddFederatedCredential(ctx, f.creds.ClientID, &keyhold.FederatedCredential{Issuer: iss.url, Subject: testFederatedSubject}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"garbage", "otherIssuer", "down"} {
		t.Run(mode, func(t *testing.T) {
			iss.mode.Store(mode)
			wantOAuthRefusal(t, postFederated(t, f, iss.sign(t, iss.key, iss.claims(f.clock.Now()))), "AADSTS50166", iss.url)
		})
	}
	iss.mode.Store("")
	if a := postFederated(t, f, iss.sign(t, iss.key, iss.claims(f.clock.Now()))); a.status != 200 {
		t.Fatalf("a good assertion: %d %s", a.status, a.body)
	}
	// Cached: an assertion with an unknown kid fetches nothing more
	// within the refetch interval.
	hits := iss.hits.Load()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, iss.claims(f.clock.Now()))
	tok.Header["kid"] = "k2"
	s, err := tok.SignedString(iss.key)
	if err != nil {
		t.Fatal(err)
	}
	wantOAuthRefusal(t, postFederated(t, f, s), "AADSTS700027", "k2")
	if a := postFederated(t, f, iss.sign(t, iss.key, iss.claims(f.clock.Now()))); a.status != 200 || iss.hits.Load() != hits {
		t.Fatalf("answer %d, %d fetches: want 200 and the cached keys (%d fetches)", a.status, iss.hits.Load(), hits)
	}
	iss.close()
	f.clock.Advance(11 * time.Minute)
	wantOAuthRefusal(t, postFederated(t, f, iss.sign(t, iss.key, iss.claims(f.clock.Now()))), "AADSTS50166", "can't be read")
}

// TestFederatedCredentialAddRefusals: bad input is refused with an error
// that quotes it, and the application's credentials stay as they were.
func TestFederatedCredentialAddRefusals(t *testing.T) {
	forEachBackendWith(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		good := keyhold.FederatedCredential{Name: "kept", Issuer: "https://issuer.example/t/v2.0", Subject: "sub-1"}
		if _, err := f.client.AddFederatedCredential(ctx, f.creds.ClientID, &good); err != nil {
			t.Fatal(err)
		}
		before, err := f.client.ListFederatedCredentials(ctx, f.creds.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, app string
			c         keyhold.FederatedCredential
			code      string
			hint      string
		}{
			{"http issuer", f.creds.ClientID, keyhold.FederatedCredential{Issuer: "http://issuer.example/x", Subject: "s"}, keyhold.CodeBadRequest, "http://issuer.example/x"},
			{"no subject", f.creds.ClientID, keyhold.FederatedCredential{Issuer: "https://issuer.example/x"}, keyhold.CodeBadRequest, "subject"},
			{"bad name", f.creds.ClientID, keyhold.FederatedCredential{Name: "-x y", Issuer: "https://issuer.example/x", Subject: "s"}, keyhold.CodeBadRequest, "-x y"},
			{"two audiences", f.creds.ClientID, keyhold.FederatedCredential{Issuer: "https://issuer.example/x", Subject: "s", Audiences: []string{"a", "b"}}, keyhold.CodeBadRequest, "a,b"},
			{"same name", f.creds.ClientID, keyhold.FederatedCredential{Name: "kept", Issuer: "https://issuer.example/y", Subject: "s"}, keyhold.CodeConflict, "kept"},
			{"same issuer and subject", f.creds.ClientID, keyhold.FederatedCredential{Name: "other", Issuer: good.Issuer, Subject: good.Subject}, keyhold.CodeConflict, good.Subject},
			{"unknown app", uuid.NewString(), keyhold.FederatedCredential{Issuer: "https://issuer.example/x", Subject: "s"}, keyhold.CodeNotFound, "no application"},
		}
		for _, c := range cases {
			_, err := f.client.AddFederatedCredential(ctx, c.app, &c.c)
			wantCode(t, err, c.code)
			if !strings.Contains(keyhold.ErrorMessage(err), c.hint) {
				t.Fatalf("%s: %v does not say %q", c.name, err, c.hint)
			}
		}
		after, err := f.client.ListFederatedCredentials(ctx, f.creds.ClientID)
		if err != nil || len(after) != len(before) || after[0].ID != before[0].ID {
			t.Fatalf("credentials after the refusals = %+v, %v; want %+v", after, err, before)
		}
	}, withDirectory)
}

// TestFederatedCredentialInsertedInDatabase: a federated credential
// inserted in the database without the master key trusts no one: the
// assertion it would match is refused as if it were not there.
func TestFederatedCredentialInsertedInDatabase(t *testing.T) {
	forEachBackendWith(t, func(t *testing.T, f *fixture) {
		iss := newTestIssuer(t)
		storetest.Exec(t, f.store, `INSERT INTO federated_credentials (id, principal_id, name, issuer, subject, audiences, description, created_at)
			SELECT ?, id, 'planted', ?, ?, ?, '', 0 FROM principals WHERE app_id = ?`,
			uuid.NewString(), iss.url, testFederatedSubject, `["`+keyhold.FederatedAudience+`"]`, f.creds.ClientID)
		wantOAuthRefusal(t, postFederated(t, f, iss.sign(t, iss.key, iss.claims(f.clock.Now()))), "AADSTS70021", "issuer")
		if n := iss.hits.Load(); n != 0 {
			t.Fatalf("the planted credential made the server fetch the issuer's documents %d times", n)
		}
	}, withDirectory, withFederation)
}

// createManagedIdentity adds a managed identity to the fixture's tenant,
// as an enterprise policy's creation does, and returns its object id.
func createManagedIdentity(t *testing.T, f *fixture, name string) string {
	t.Helper()
	mi := &keyhold.Principal{ID: uuid.NewString(), TenantID: f.creds.TenantID, Type: keyhold.PrincipalManagedIdentity,
		DisplayName: name, AppID: uuid.NewString(), CreatedAt: f.clock.Now()}
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error { return tx.CreatePrincipal(context.Background(), mi) }); err != nil {
		t.Fatal(err)
	}
	return mi.ID
}

// TestFederatedManagedIdentityAcrossKeyholds: two Keyhold servers, no
// shared secret. The platform Keyhold signs an assertion for its managed
// identity; the customer Keyhold, whose application has a federated
// credential naming the platform's issuer and the identity's object id,
// exchanges it (through azidentity's ClientAssertionCredential) for a
// token of its application. An assertion for another identity, or one
// for a principal that is not a managed identity, gets nothing.
func TestFederatedManagedIdentityAcrossKeyholds(t *testing.T) {
	forEachBackendWith(t, func(t *testing.T, pf *fixture) {
		ctx := context.Background()
		cust := newFixture(t, withDirectory, withFederation)
		miID := createManagedIdentity(t, pf, "cmk-policy")
		otherMI := createManagedIdentity(t, pf, "other-policy")
		issuer := pf.url + "/" + pf.creds.TenantID + "/v2.0"
		if _, err := cust.client.AddFederatedCredential(ctx, cust.creds.ClientID, &keyhold.FederatedCredential{Name: "platform-cmk", Issuer: issuer, Subject: miID}); err != nil {
			t.Fatal(err)
		}

		a, err := pf.p.ManagedIdentityAssertion(ctx, miID)
		if err != nil {
			t.Fatalf("ManagedIdentityAssertion: %v", err)
		}
		c := decodeClaims(t, a)
		exp, _ := c["exp"].(float64)
		if c["iss"] != issuer || c["sub"] != miID || !strings.Contains(fmt.Sprint(c["aud"]), keyhold.FederatedAudience) ||
			time.Unix(int64(exp), 0).Sub(pf.clock.Now()) > 10*time.Minute {
			t.Fatalf("assertion claims = %v", c)
		}
		cred, err := azidentity.NewClientAssertionCredential(cust.creds.TenantID, cust.creds.ClientID,
			func(ctx context.Context) (string, error) { return pf.p.ManagedIdentityAssertion(ctx, miID) },
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: cust.sdkClientOptions(), DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		at, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err != nil {
			t.Fatalf("GetToken across the boundary: %v", err)
		}
		cust.secrets = append(cust.secrets, at.Token)
		if tc := decodeClaims(t, at.Token); tc["appid"] != cust.creds.ClientID || tc["tid"] != cust.creds.TenantID {
			t.Fatalf("token claims = %v", tc)
		}

		other, err := pf.p.ManagedIdentityAssertion(ctx, otherMI)
		if err != nil {
			t.Fatal(err)
		}
		wantOAuthRefusal(t, postFederated(t, cust, other), "AADSTS70021", "subject")
		_, err = pf.p.ManagedIdentityAssertion(ctx, cust.creds.ClientID)
		wantCode(t, err, keyhold.CodeNotFound)
		var admin *keyhold.Principal
		if err := pf.store.View(ctx, func(tx keyhold.Tx) error {
			var err error
			admin, err = tx.PrincipalByAppID(ctx, pf.creds.TenantID, pf.creds.ClientID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_, err = pf.p.ManagedIdentityAssertion(ctx, admin.ID)
		wantCode(t, err, keyhold.CodeForbidden)
	}, withDirectory, withKeys)
}
