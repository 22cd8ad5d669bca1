package http

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// appCert is an application's certificate and its key.
type appCert struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// testRSAKeys are RSA-2048 keys, made once for all tests.
var testRSAKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// newAppCert makes a self-signed certificate for key, valid from
// notBefore to notAfter.
func newAppCert(t *testing.T, key crypto.Signer, cn string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// withDirectory serves the resource manager and directory.
func withDirectory(f *fixture) { withARM(nil)(f) }

// certFixture is a fixture whose administrator also has a certificate,
// registered through the client.
type certFixture struct {
	*fixture
	app     appCert
	adminID string
}

func newCertFixture(t *testing.T, f *fixture) *certFixture {
	t.Helper()
	key := testRSAKeys()[0]
	now := f.clock.Now()
	cf := &certFixture{fixture: f, app: appCert{key: key, cert: newAppCert(t, key, "contoso-automation", now.Add(-time.Hour), now.Add(30*24*time.Hour))}}
	cc, err := f.client.AddClientCertificate(context.Background(), f.creds.ClientID, pemCert(cf.app.cert))
	if err != nil {
		t.Fatalf("AddClientCertificate: %v", err)
	}
	s1 := sha1.Sum(cf.app.cert.Raw)
	if cc.Thumbprint != strings.ToUpper(fmtHex(s1[:])) || cc.Subject != "CN=contoso-automation" {
		t.Fatalf("AddClientCertificate = %+v", cc)
	}
	err = f.store.View(context.Background(), func(tx keyhold.Tx) error {
		p, err := tx.PrincipalByAppID(context.Background(), f.creds.TenantID, f.creds.ClientID)
		if err == nil {
			cf.adminID = p.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func (cf *certFixture) tokenEndpoint() string {
	return cf.url + "/" + cf.creds.TenantID + "/oauth2/v2.0/token"
}

// assertion signs claims with key, naming cert in the header as MSAL
// does (x5t#S256, standard base64); method is PS256 or RS256.
func assertion(t *testing.T, method jwt.SigningMethod, key *rsa.PrivateKey, cert *x509.Certificate, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if method == jwt.SigningMethodRS256 {
		s := sha1.Sum(cert.Raw)
		tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(s[:])
	} else {
		s := sha256.Sum256(cert.Raw)
		tok.Header["x5t#S256"] = base64.StdEncoding.EncodeToString(s[:])
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// claims are a good assertion's claims at the fixture's now.
func (cf *certFixture) claims() jwt.MapClaims {
	now := cf.clock.Now()
	return jwt.MapClaims{"aud": cf.tokenEndpoint(), "iss": cf.creds.ClientID, "sub": cf.creds.ClientID, "jti": uuid.NewString(),
		"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}

// post posts an assertion grant.
func (cf *certFixture) post(t *testing.T, assertion string) answer {
	t.Helper()
	return cf.form(t, "/"+cf.creds.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {cf.creds.ClientID}, "scope": {"https://management.azure.com/.default openid profile offline_access"},
		"client_assertion_type": {clientAssertionType}, "client_assertion": {assertion}})
}

// TestAssertionAzidentityCertificate: azidentity's ClientCertificateCredential
// signs in with the certificate uploaded through the client, and its token
// carries the principal.
func TestAssertionAzidentityCertificate(t *testing.T) {
	forEachBackendWith(t, func(t *testing.T, f *fixture) {
		cf := newCertFixture(t, f)
		certs, key, err := azidentity.ParseCertificates(append(pemCert(cf.app.cert), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, cf.app.key)})...), nil)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := azidentity.NewClientCertificateCredential(f.creds.TenantID, f.creds.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: f.sdkClientOptions(), DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		at, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		f.secrets = append(f.secrets, at.Token)
		c := decodeClaims(t, at.Token)
		if c["oid"] != cf.adminID || c["appid"] != f.creds.ClientID || c["aud"] != "https://vault.azure.net" || c["tid"] != f.creds.TenantID {
			t.Fatalf("claims = %v", c)
		}
		entries, err := f.client.ListAudit(context.Background(), keyhold.AuditFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !hasAudit(entries, "signIn.clientAssertion", "Succeeded", "") {
			t.Fatalf("no audit entry of the sign-in: %+v", entries)
		}
	}, withDirectory, withKeys)
}

// forEachBackendWith runs fn against a fixture with opts over each
// storage backend.
func forEachBackendWith(t *testing.T, fn func(t *testing.T, f *fixture), opts ...option) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newFixtureOn(t, open(t), opts...))
	})
}

func mustPKCS8(t *testing.T, k *rsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hasAudit(entries []*keyhold.AuditEntry, action, result, detail string) bool {
	for _, e := range entries {
		if e.Action == action && e.Result == result && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

// TestAssertionRefusals: each bad assertion is refused with its AADSTS
// number and a message that says how to fix it, gets no token, and is
// audited; the good assertion still works after them (each refusal
// changed nothing, and its jti was not spent).
func TestAssertionRefusals(t *testing.T) {
	f := newFixture(t, withDirectory, func(f *fixture) { f.srv.SignInLimits = SignInLimits{AccountFailures: 100, SourceFailures: 100} })
	cf := newCertFixture(t, f)
	keys := testRSAKeys()
	now := f.clock.Now()
	stranger := newAppCert(t, keys[1], "stranger", now.Add(-time.Hour), now.Add(time.Hour))
	with := func(edit func(c jwt.MapClaims)) jwt.MapClaims {
		c := cf.claims()
		edit(c)
		return c
	}
	reused := cf.claims()
	reusedJWT := assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, reused)
	if a := cf.post(t, reusedJWT); a.status != 200 {
		t.Fatalf("first use: %d %s", a.status, a.body)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, cf.claims())
	hs.Header["x5t#S256"] = "x"
	hsJWT, _ := hs.SignedString([]byte("0123456789abcdef0123456789abcdef"))
	noThumb, _ := jwt.NewWithClaims(jwt.SigningMethodPS256, cf.claims()).SignedString(cf.app.key)

	cases := []struct {
		name      string
		assertion string
		aadsts    int
		hint      string
	}{
		{"malformed", "not.a.jwt", 50027, "not a valid JWT"},
		{"hmac", hsJWT, 50027, "sign it RS256 or PS256"},
		{"no thumbprint", noThumb, 50027, "x5t#S256"},
		{"wrong audience", assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, with(func(c jwt.MapClaims) { c["aud"] = "https://login.microsoftonline.com/x/oauth2/v2.0/token" })), 700027, "set aud to \"" + cf.tokenEndpoint() + "\""},
		{"expired", assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), 700024, "expired at"},
		{"not yet valid", assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), 700024, "valid from"},
		{"too long", assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, with(func(c jwt.MapClaims) { c["exp"] = now.Add(2 * time.Hour).Unix() })), 700024, "shorter exp"},
		{"unknown thumbprint", assertion(t, jwt.SigningMethodPS256, keys[1], stranger, cf.claims()), 700027, "identity sp credential add --cert"},
		{"bad signature", assertion(t, jwt.SigningMethodPS256, keys[1], cf.app.cert, cf.claims()), 700027, "does not verify"},
		{"other issuer", assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, with(func(c jwt.MapClaims) { c["iss"] = uuid.NewString() })), 700021, "must both be the client_id"},
		{"no jti", assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, with(func(c jwt.MapClaims) { delete(c, "jti") })), 50027, "no jti"},
		{"replayed", reusedJWT, 700027, "already used"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := cf.post(t, c.assertion)
			oauthAnswer(t, a, 401, keyhold.CodeInvalidClient, c.aadsts, c.hint)
			if strings.Contains(string(a.body), "access_token") {
				t.Fatal("a refusal holds a token")
			}
		})
	}
	entries, err := f.client.ListAudit(context.Background(), keyhold.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"does not verify", "already used", "expired at"} {
		if !hasAudit(entries, "signIn.clientAssertion", "Failed", h) {
			t.Errorf("no Failed audit entry saying %q", h)
		}
	}
	// A refused assertion does not spend its jti: the good assertion with
	// the same jti is still taken.
	jti := uuid.NewString()
	wrongAud := with(func(c jwt.MapClaims) { c["jti"], c["aud"] = jti, "https://elsewhere.example/token" })
	oauthAnswer(t, cf.post(t, assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, wrongAud)), 401, keyhold.CodeInvalidClient, 700027)
	if a := cf.post(t, assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, with(func(c jwt.MapClaims) { c["jti"] = jti }))); a.status != 200 {
		t.Fatalf("a good assertion with a refused one's jti: %d %s", a.status, a.body)
	}
	// RS256 with x5t (SHA-1), as ADFS-style clients send, works too.
	if a := cf.post(t, assertion(t, jwt.SigningMethodRS256, cf.app.key, cf.app.cert, cf.claims())); a.status != 200 {
		t.Fatalf("RS256 with x5t: %d %s", a.status, a.body)
	}
	// A client secret that is the certificate is no secret.
	a := f.form(t, "/"+f.creds.TenantID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID},
		"client_secret": {string(cf.app.cert.Raw)}, "scope": {"https://management.azure.com/.default"}})
	oauthAnswer(t, a, 401, keyhold.CodeInvalidClient, 7000215)
}

// TestAssertionSignInLimits: wrong assertions count against the
// account's sign-in limit, and once locked out even a good assertion is
// answered 429 without a token.
func TestAssertionSignInLimits(t *testing.T) {
	f := newFixture(t, withDirectory, func(f *fixture) { f.srv.SignInLimits = SignInLimits{AccountFailures: 3}; f.srv.Clock = f.clock })
	cf := newCertFixture(t, f)
	bad := assertion(t, jwt.SigningMethodPS256, testRSAKeys()[1], cf.app.cert, cf.claims())
	for range 3 {
		oauthAnswer(t, cf.post(t, bad), 401, keyhold.CodeInvalidClient, 700027)
	}
	a := cf.post(t, assertion(t, jwt.SigningMethodPS256, cf.app.key, cf.app.cert, cf.claims()))
	oauthAnswer(t, a, 429, keyhold.CodeInvalidClient, 50053)
	if a.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

// TestAssertionCertificateUpload: what the upload refuses, each leaving
// the principal's credentials as they were.
func TestAssertionCertificateUpload(t *testing.T) {
	forEachBackendWith(t, func(t *testing.T, f *fixture) {
		cf := newCertFixture(t, f)
		ctx := context.Background()
		count := func() int {
			n := 0
			err := f.store.View(ctx, func(tx keyhold.Tx) error {
				cs, err := tx.Credentials(ctx, cf.adminID)
				n = len(cs)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		now := f.clock.Now()
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		small, _ := rsa.GenerateKey(rand.Reader, 1024)
		b64 := func(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }
		tok := f.mgmtToken(t)
		for _, c := range []struct {
			name, sp, body string
			status         int
			code, hint     string
		}{
			{"ec key", f.creds.ClientID, `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"` + b64(newAppCert(t, ec, "ec", now.Add(-time.Hour), now.Add(time.Hour))) + `"}}`, 400, keyhold.CodeBadRequest, "RSA key of at least 2048"},
			{"small key", f.creds.ClientID, `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"` + b64(newAppCert(t, small, "small", now.Add(-time.Hour), now.Add(time.Hour))) + `"}}`, 400, keyhold.CodeBadRequest, "has 1024 bits"},
			{"expired", f.creds.ClientID, `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"` + b64(newAppCert(t, testRSAKeys()[2], "old", now.Add(-48*time.Hour), now.Add(-24*time.Hour))) + `"}}`, 400, keyhold.CodeBadRequest, "expired at"},
			{"not a certificate", f.creds.ClientID, `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"aGVsbG8="}}`, 400, keyhold.CodeBadRequest, "not an X.509 certificate"},
			{"not base64", f.creds.ClientID, `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"%%%"}}`, 400, keyhold.CodeBadRequest, "base64"},
			{"symmetric", f.creds.ClientID, `{"keyCredential":{"type":"Symmetric","usage":"Sign","key":"aGVsbG8="}}`, 400, keyhold.CodeBadRequest, "AsymmetricX509Cert"},
			{"again", f.creds.ClientID, `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"` + b64(cf.app.cert) + `"}}`, 409, keyhold.CodeConflict, "already has the certificate"},
			{"unknown principal", "nobody", `{"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"` + b64(cf.app.cert) + `"}}`, 404, keyhold.CodeNotFound, `"nobody"`},
		} {
			a := f.jsonCall(t, "POST", graphSPs+"/"+c.sp+"/addKey", tok, c.body)
			a.wantError(t, c.status, c.code, c.hint)
		}
		// A PEM with the private key is refused by the client: the key is
		// never sent.
		withKey := append(pemCert(cf.app.cert), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(t, cf.app.key)})...)
		if _, err := f.client.AddClientCertificate(ctx, f.creds.ClientID, withKey); keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(err.Error(), "private key") {
			t.Fatalf("upload with a private key = %v", err)
		}
		if n := count(); n != before {
			t.Fatalf("credentials = %d after refusals, want %d", n, before)
		}
	}, withDirectory)
}

// TestAssertionInsertedCertificate: a certificate inserted into the
// database (as someone who can write it but holds no master key would)
// signs no one in: its assertion is refused as an unknown certificate's,
// and so is a registered certificate's row whose certificate was swapped
// for the attacker's.
func TestAssertionInsertedCertificate(t *testing.T) {
	forEachBackendWith(t, func(t *testing.T, f *fixture) {
		cf := newCertFixture(t, f)
		now := f.clock.Now()
		evil := newAppCert(t, testRSAKeys()[1], "attacker", now.Add(-time.Hour), now.Add(time.Hour))
		storetest.Exec(t, f.store, `INSERT INTO credentials (principal_id, secret_hash, created_at, expires_at, certificate)
			SELECT id, ?, 0, ?, ? FROM principals WHERE app_id = ?`, crypt.HashClientCertificate(evil.Raw), now.Add(time.Hour).UnixNano(), evil.Raw, f.creds.ClientID)
		a := cf.post(t, assertion(t, jwt.SigningMethodPS256, testRSAKeys()[1], evil, cf.claims()))
		oauthAnswer(t, a, 401, keyhold.CodeInvalidClient, 700027, "is not registered")
		// The registered row, its certificate swapped.
		storetest.Exec(t, f.store, `UPDATE credentials SET certificate = ? WHERE secret_hash = ?`, evil.Raw, crypt.HashClientCertificate(cf.app.cert.Raw))
		a = cf.post(t, assertion(t, jwt.SigningMethodPS256, testRSAKeys()[1], evil, cf.claims()))
		oauthAnswer(t, a, 401, keyhold.CodeInvalidClient, 700027, "is not registered")
	}, withDirectory)
}
