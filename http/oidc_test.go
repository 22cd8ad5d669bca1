package http

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"math/big"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// withKeys serves the platform's key sets.
func withKeys(f *fixture) { f.srv.Keys = f.p }

// sdkCloud is the cloud.Configuration a program points at Keyhold: the
// authority host and the resource manager, nothing else.
func (f *fixture) sdkCloud() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: f.url + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: f.url, Audience: string(keyhold.AudienceManagement)},
		},
	}
}

// sdkClientOptions are the azcore options of every SDK client in these
// tests: Keyhold's cloud and the test CA in the transport, nothing else.
func (f *fixture) sdkClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Cloud: f.sdkCloud(), Transport: f.raw}
}

// secretCredential is azidentity's client secret credential of the
// bootstrap administrator, with instance discovery off.
func (f *fixture) secretCredential(t *testing.T) *azidentity.ClientSecretCredential {
	t.Helper()
	c, err := azidentity.NewClientSecretCredential(f.creds.TenantID, f.creds.ClientID, f.creds.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: f.sdkClientOptions(), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oauthAnswer decodes an OAuth2 error answer and checks its status, error
// and AADSTS number, and that its description holds each of hints.
func oauthAnswer(t *testing.T, a answer, status int, code string, aadsts int, hints ...string) oauthErrorJSON {
	t.Helper()
	var e oauthErrorJSON
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("answer %d is not an OAuth2 error: %s", a.status, a.body)
	}
	if a.status != status || e.Error != code || len(e.ErrorCodes) != 1 || e.ErrorCodes[0] != aadsts {
		t.Fatalf("answer = %d %s %v (%s), want %d %s [%d]", a.status, e.Error, e.ErrorCodes, e.ErrorDescription, status, code, aadsts)
	}
	for _, h := range hints {
		if !strings.Contains(e.ErrorDescription, h) {
			t.Fatalf("description %q does not say %q", e.ErrorDescription, h)
		}
	}
	return e
}

func TestOIDCDiscoveryDocument(t *testing.T) {
	f := newFixture(t, withKeys)
	tenant := f.creds.TenantID
	a := f.call(t, "GET", "/"+tenant+"/v2.0/.well-known/openid-configuration", "", "", nil)
	if a.status != 200 {
		t.Fatalf("openid-configuration: %d %s", a.status, a.body)
	}
	var doc openIDConfigJSON
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	authority := f.url + "/" + tenant
	want := map[string]string{
		"issuer": authority + "/v2.0", "token_endpoint": authority + "/oauth2/v2.0/token",
		"jwks_uri": authority + "/discovery/v2.0/keys", "authorization_endpoint": authority + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint": authority + "/oauth2/v2.0/devicecode",
	}
	got := map[string]string{"issuer": doc.Issuer, "token_endpoint": doc.TokenEndpoint, "jwks_uri": doc.JWKSURI,
		"authorization_endpoint": doc.AuthorizationEndpoint, "device_authorization_endpoint": doc.DeviceAuthorizationEndpoint}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.Contains(string(a.body), `"tenant_region_scope":null`) ||
		strings.Join(doc.TokenEndpointAuthMethodsSupported, " ") != "client_secret_post client_secret_basic private_key_jwt" ||
		strings.Join(doc.IDTokenSigningAlgValuesSupported, " ") != "ES256" {
		t.Errorf("document = %s", a.body)
	}

	// The key set verifies a token, picked by the kid in its header.
	k := f.call(t, "GET", strings.TrimPrefix(doc.JWKSURI, f.url), "", "", nil)
	if k.status != 200 {
		t.Fatalf("jwks: %d %s", k.status, k.body)
	}
	var set struct{ Keys []keyhold.JWK }
	if err := json.Unmarshal(k.body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks = %s, %v", k.body, err)
	}
	raw := f.token(t, string(keyhold.AudienceManagement)+"/.default")
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		for _, jk := range set.Keys {
			if jk.Kid == tok.Header["kid"] {
				return jwkPublicKey(t, jk), nil
			}
		}
		t.Fatalf("the token's kid %v is not in the key set %s", tok.Header["kid"], k.body)
		return nil, nil
	}, jwt.WithIssuer(doc.Issuer), jwt.WithAudience(string(keyhold.AudienceManagement)))
	if err != nil || !tok.Valid {
		t.Fatalf("the token does not verify with the published key set: %v", err)
	}
}

// jwkPublicKey turns a published EC key into a public key.
func jwkPublicKey(t *testing.T, k keyhold.JWK) *ecdsa.PublicKey {
	t.Helper()
	x, err1 := base64.RawURLEncoding.DecodeString(k.X)
	y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
	if err1 != nil || err2 != nil || k.Kty != "EC" || k.Crv != "P-256" {
		t.Fatalf("key %+v is not a P-256 JWK", k)
	}
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
}

// TestOIDCDiscoveryUnknownTenant: a tenant that does not exist, or a
// name that is no tenant id, is AADSTS90002 at both routes.
func TestOIDCDiscoveryUnknownTenant(t *testing.T) {
	f := newFixture(t, withKeys)
	for _, tenant := range []string{uuid.NewString(), "contoso.example", "00000000-0000-0000-0000-00000000000g"} {
		for _, p := range []string{"/v2.0/.well-known/openid-configuration", "/discovery/v2.0/keys"} {
			a := f.call(t, "GET", "/"+tenant+p, "", "", nil)
			oauthAnswer(t, a, 400, keyhold.CodeInvalidTenant, 90002, "Tenant '"+tenant+"' not found", "keyhold login")
		}
	}
	// The Entra-wide key set route is still served.
	if a := f.call(t, "GET", "/common/discovery/v2.0/keys", "", "", nil); a.status != 200 {
		t.Fatalf("common keys: %d %s", a.status, a.body)
	}
}

// TestTokenClaimsAzidentity: azidentity's ClientSecretCredential, told
// only the authority host, signs in (it reads the discovery document, and
// sends "openid offline_access profile" beside the resource scope), and
// the token carries the claims services check.
func TestTokenClaimsAzidentity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		cred := f.secretCredential(t)
		at, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{string(keyhold.AudienceManagement) + "/.default"}})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		f.secrets = append(f.secrets, at.Token)
		c := decodeClaims(t, at.Token)
		var adminID string
		err = f.store.View(ctx, func(tx keyhold.Tx) error {
			p, err := tx.PrincipalByAppID(ctx, f.creds.TenantID, f.creds.ClientID)
			if err == nil {
				adminID = p.ID
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		now := f.clock.Now().Unix()
		for k, v := range map[string]any{
			"iss": f.url + "/" + f.creds.TenantID + "/v2.0", "aud": string(keyhold.AudienceManagement), "tid": f.creds.TenantID,
			"oid": adminID, "sub": adminID, "appid": f.creds.ClientID, "azp": f.creds.ClientID, "ver": "2.0", "idtyp": "app",
		} {
			if c[k] != v {
				t.Errorf("claim %s = %v, want %v", k, c[k], v)
			}
		}
		for _, k := range []string{"iat", "nbf"} {
			if n, _ := c[k].(float64); int64(n) != now {
				t.Errorf("claim %s = %v, want %d", k, c[k], now)
			}
		}
		if n, _ := c["exp"].(float64); int64(n) <= now || !at.ExpiresOn.After(time.Now()) {
			t.Errorf("exp = %v, ExpiresOn = %v", c["exp"], at.ExpiresOn)
		}
		// And the token is accepted by the API.
		if a := f.call(t, "GET", adminEnvPrefix+"?api-version=2020-10-01", at.Token, "", nil); a.status != 200 {
			t.Fatalf("using azidentity's token: %d %s", a.status, a.body)
		}
	})
}

// decodeClaims returns a JWT's claims, unverified.
func decodeClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTokenScopeList: the token endpoint takes the scope list MSAL sends,
// and refuses two resources at once.
func TestTokenScopeList(t *testing.T) {
	f := newFixture(t)
	form := func(scope string) answer {
		return f.form(t, "/"+f.creds.TenantID+"/oauth2/v2.0/token", map[string][]string{
			"grant_type": {"client_credentials"}, "client_id": {f.creds.ClientID}, "client_secret": {f.creds.ClientSecret}, "scope": {scope}})
	}
	if a := form("https://vault.azure.net/.default openid offline_access profile"); a.status != nethttp.StatusOK {
		t.Fatalf("MSAL's scope list: %d %s", a.status, a.body)
	}
	a := form("https://vault.azure.net/.default https://management.azure.com/.default")
	oauthAnswer(t, a, 400, keyhold.CodeInvalidScope, 70011, "is not supported")
}
