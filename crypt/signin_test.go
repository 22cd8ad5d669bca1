package crypt

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestS256Vectors: RFC 7636 appendix B's verifier and challenge, and the
// cases that must fail.
func TestS256Vectors(t *testing.T) {
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	if !ValidS256Challenge(challenge) || !S256Matches(challenge, verifier) {
		t.Fatal("RFC 7636 appendix B does not verify")
	}
	for _, c := range []struct{ name, challenge, verifier string }{
		{"other verifier", challenge, verifier[:42] + "Y"},
		{"verifier too short", challenge, verifier[:42]},
		{"verifier too long", challenge, strings.Repeat("a", 129)},
		{"verifier with a space", challenge, verifier[:40] + " ab"},
		{"plain method", verifier, verifier},
		{"empty", "", ""},
	} {
		if S256Matches(c.challenge, c.verifier) {
			t.Errorf("%s: matched", c.name)
		}
	}
	for _, bad := range []string{"", "plain", challenge + "=", challenge[:42], "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"} {
		if ValidS256Challenge(bad) {
			t.Errorf("ValidS256Challenge(%q) = true", bad)
		}
	}
}

// TestSignInHashVector: what the store keeps of a code is its SHA-256.
func TestSignInHashVector(t *testing.T) {
	if got := hex.EncodeToString(SignInHash("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("SignInHash(abc) = %s", got)
	}
}

// TestUserCode: the alphabet only, and every symbol of it in a few codes.
func TestUserCode(t *testing.T) {
	seen := map[rune]bool{}
	for range 200 {
		c := NewUserCode(8)
		if len(c) != 8 || strings.ContainsFunc(c, func(r rune) bool { return !strings.ContainsRune(userCodeAlphabet, r) }) {
			t.Fatalf("user code %q", c)
		}
		for _, r := range c {
			seen[r] = true
		}
	}
	if len(seen) != len(userCodeAlphabet) {
		t.Fatalf("200 codes used %d of %d symbols", len(seen), len(userCodeAlphabet))
	}
	if a, b := NewSignInSecret(), NewSignInSecret(); len(a) != 52 || a == b {
		t.Fatalf("secrets %q, %q", a, b)
	}
}

// TestSignInSeals: each seal verifies its record, and a change of any
// sealed field (here, who it signs in or where it redirects), another
// record key, or no seal is CodeRecordIntegrity.
func TestSignInSeals(t *testing.T) {
	k1 := testRecordKey(t)
	k2, err := NewRecordKey(testKey(t, 0x42))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	g := &keyhold.SignInGrant{IDHash: SignInHash("code"), Kind: keyhold.GrantCode, TenantID: "t", ClientID: "c", Scope: "s",
		RedirectURI: "https://a/cb", CodeChallenge: "x", State: keyhold.GrantApproved, PrincipalID: "p", UPN: "u", ExpiresAt: now}
	g.MAC = k1.SealSignInGrant(g)
	rt := &keyhold.RefreshToken{Hash: SignInHash("rt"), FamilyID: "f", TenantID: "t", PrincipalID: "p", ClientID: "c", Scope: "s",
		AccountStamp: AccountStamp([]byte("$argon2id$…")), ExpiresAt: now}
	rt.MAC = k1.SealRefreshToken(rt)
	ru := &keyhold.RedirectURI{PrincipalID: "p", URI: "https://a/cb"}
	ru.MAC = k1.SealRedirectURI(ru)
	if k1.CheckSignInGrant(g) != nil || k1.CheckRefreshToken(rt) != nil || k1.CheckRedirectURI(ru) != nil {
		t.Fatal("a seal does not verify its record")
	}
	wantIntegrity := func(name string, err error) {
		t.Helper()
		if keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Errorf("%s: %v, want %s", name, err, keyhold.CodeRecordIntegrity)
		}
	}
	wantIntegrity("grant under another key", k2.CheckSignInGrant(g))
	g2 := *g
	g2.PrincipalID = "attacker"
	wantIntegrity("grant for another principal", k1.CheckSignInGrant(&g2))
	rt2 := *rt
	rt2.PrincipalID = "attacker"
	wantIntegrity("refresh token of another principal", k1.CheckRefreshToken(&rt2))
	rt3 := *rt
	rt3.MAC = nil
	wantIntegrity("refresh token without a seal", k1.CheckRefreshToken(&rt3))
	ru2 := *ru
	ru2.URI = "https://evil/cb"
	wantIntegrity("redirect URI changed", k1.CheckRedirectURI(&ru2))
	// The changing fields are not sealed: a poll or a use needs no reseal.
	g3 := *g
	g3.LastPoll, g3.Interval = now, 10
	if k1.CheckSignInGrant(&g3) != nil {
		t.Error("the last poll is sealed")
	}
}
