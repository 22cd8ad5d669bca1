package platform

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestTokenAudienceForms: tokens carry aud as a string, as Entra ID's do;
// a token from before (aud a one-element array) still authenticates until
// it expires, and one naming two audiences does not.
func TestTokenAudienceForms(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	bg := context.Background()
	tok, err := f.p.IssueToken(bg, f.creds.TenantID, f.creds.ClientID, f.creds.ClientSecret, "https://vault.azure.net/.default openid profile offline_access")
	if err != nil {
		t.Fatal(err)
	}
	c := tokenPayload(t, tok.AccessToken)
	if c["aud"] != "https://vault.azure.net" || c["ver"] != "2.0" || c["azp"] != f.creds.ClientID {
		t.Fatalf("claims = %v", c)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, jwt.MapClaims{})
	if err != nil || parsed.Header["kid"] != f.p.signingKID() {
		t.Fatalf("kid = %v, want %s (%v)", parsed.Header["kid"], f.p.signingKID(), err)
	}
	old := func(aud []string) string {
		now := f.clock.Now()
		claims := jwt.MapClaims{"iss": f.p.issuerFor(f.creds.TenantID), "aud": aud, "tid": f.creds.TenantID, "oid": "p1",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "idtyp": "app"}
		s, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(f.p.signer)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	id, err := f.p.Authenticate(bg, old([]string{"https://management.azure.com"}))
	if err != nil || id.Audience != keyhold.AudienceManagement {
		t.Fatalf("a token with aud as an array: %+v, %v", id, err)
	}
	_, err = f.p.Authenticate(bg, old([]string{"https://management.azure.com", "https://vault.azure.net"}))
	wantCode(t, err, keyhold.CodeInvalidToken)
}

// TestOpenIDTenant: the issuer and authority of a tenant; an unknown one
// is CodeInvalidTenant.
func TestOpenIDTenant(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ot, err := f.p.OpenIDTenant(context.Background(), f.creds.TenantID)
	if err != nil || ot.Issuer != f.p.issuerFor(f.creds.TenantID) || ot.Authority+"/v2.0" != ot.Issuer {
		t.Fatalf("OpenIDTenant = %+v, %v", ot, err)
	}
	for _, bad := range []string{"00000000-0000-0000-0000-000000000001", "common", ""} {
		_, err := f.p.OpenIDTenant(context.Background(), bad)
		wantCode(t, err, keyhold.CodeInvalidTenant)
	}
}
