package platform

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestAuthenticateRemembersVerifiedTokens: a token presented again is
// answered from the cache of verified tokens, with the same identity, a
// copy the caller may change; it is still refused once expired; a token
// that differs by one byte is verified afresh and refused.
func TestAuthenticateRemembersVerifiedTokens(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	c := f.creds
	bg := context.Background()
	tok, err := f.p.IssueToken(bg, c.TenantID, c.ClientID, c.ClientSecret, "https://service.powerapps.com/.default")
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.p.Authenticate(bg, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.p.Tokens.verified.get(tok.AccessToken, f.clock.Now()); !ok {
		t.Fatal("a verified token was not remembered")
	}
	first.PrincipalID = "changed by the caller"
	again, err := f.p.Authenticate(bg, tok.AccessToken)
	if err != nil || again.PrincipalID == first.PrincipalID || again.TenantID != c.TenantID || again.Audience != keyhold.AudiencePowerApps {
		t.Fatalf("Authenticate again = %+v, %v: want the token's own identity", again, err)
	}

	// The cache answers only for the exact token: a forged signature
	// still fails.
	_, err = f.p.Authenticate(bg, tok.AccessToken[:len(tok.AccessToken)-3]+"AAA")
	wantCode(t, err, keyhold.CodeInvalidToken)

	// Expiry holds for a remembered token.
	f.clock.Advance(DefaultTokenTTL + time.Second)
	_, err = f.p.Authenticate(bg, tok.AccessToken)
	wantCode(t, err, keyhold.CodeExpiredToken)
}

// TestVerifiedTokensBounded: the cache never holds more than
// maxVerifiedTokens; expired entries go first.
func TestVerifiedTokensBounded(t *testing.T) {
	var v verifiedTokens
	now := time.Now()
	id := &keyhold.Identity{TenantID: "t"}
	for i := range maxVerifiedTokens {
		exp := now.Add(time.Hour)
		if i%2 == 0 {
			exp = now.Add(time.Second)
		}
		v.put(strconv.Itoa(i)+"-token", id, exp, now)
	}
	later := now.Add(time.Minute)
	v.put("one more", id, later.Add(time.Hour), later)
	if n := len(v.m); n != maxVerifiedTokens/2+1 {
		t.Fatalf("after filling the cache with half of it expired, it holds %d, want %d", n, maxVerifiedTokens/2+1)
	}
	if _, ok := v.get("one more", later); !ok {
		t.Fatal("the newest token was not kept")
	}
}
