package crypt

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"github.com/keyhold/keyhold"
)

// Sign-in records (issue 11): device and authorization codes, refresh
// tokens and redirect URIs. Each row names who it signs in (or where it
// sends a code); the seal covers those fields, so that a row inserted
// into the database without the master key signs no one in. The fields
// that change (a grant's last poll, a token's use) are left out: the
// store's conditional updates guard them.
const (
	labelSignInGrant  = "keyhold record signin-grant v1\x00"
	labelRefreshToken = "keyhold record refresh-token v1\x00"
	labelRedirectURI  = "keyhold record redirect-uri v1\x00"
)

func grantEncoding(g *keyhold.SignInGrant) []byte {
	var e recordEncoder
	e.bytes(g.IDHash)
	e.str(g.Kind)
	e.bytes(g.UserCodeHash)
	for _, s := range []string{g.TenantID, g.ClientID, g.Scope, g.RedirectURI, g.CodeChallenge, g.State, g.PrincipalID, g.UPN} {
		e.str(s)
	}
	e.time(g.ExpiresAt)
	return e.b
}

// SealSignInGrant returns the seal of a grant: its code's hash, kind,
// tenant, client, scope, redirect URI, challenge, state, who approved it
// and its expiry.
func (r *RecordKey) SealSignInGrant(g *keyhold.SignInGrant) []byte {
	return r.mac(labelSignInGrant, grantEncoding(g))
}

// CheckSignInGrant returns keyhold.CodeRecordIntegrity unless g.MAC is
// SealSignInGrant's seal of g.
func (r *RecordKey) CheckSignInGrant(g *keyhold.SignInGrant) error {
	return r.check(labelSignInGrant, grantEncoding(g), g.MAC, "sign-in grant")
}

func refreshEncoding(t *keyhold.RefreshToken) []byte {
	var e recordEncoder
	e.bytes(t.Hash)
	for _, s := range []string{t.FamilyID, t.TenantID, t.PrincipalID, t.ClientID, t.Scope} {
		e.str(s)
	}
	e.bytes(t.AccountStamp)
	e.time(t.ExpiresAt)
	return e.b
}

// SealRefreshToken returns the seal of a refresh token: its hash, family,
// tenant, principal, client, scope, account stamp and expiry.
func (r *RecordKey) SealRefreshToken(t *keyhold.RefreshToken) []byte {
	return r.mac(labelRefreshToken, refreshEncoding(t))
}

// CheckRefreshToken returns keyhold.CodeRecordIntegrity unless t.MAC is
// SealRefreshToken's seal of t.
func (r *RecordKey) CheckRefreshToken(t *keyhold.RefreshToken) error {
	return r.check(labelRefreshToken, refreshEncoding(t), t.MAC, "refresh token")
}

func redirectEncoding(u *keyhold.RedirectURI) []byte {
	var e recordEncoder
	e.str(u.PrincipalID)
	e.str(u.URI)
	return e.b
}

// SealRedirectURI returns the seal of a redirect URI's registration on
// an application.
func (r *RecordKey) SealRedirectURI(u *keyhold.RedirectURI) []byte {
	return r.mac(labelRedirectURI, redirectEncoding(u))
}

// CheckRedirectURI returns keyhold.CodeRecordIntegrity unless u.MAC is
// SealRedirectURI's seal of u.
func (r *RecordKey) CheckRedirectURI(u *keyhold.RedirectURI) error {
	return r.check(labelRedirectURI, redirectEncoding(u), u.MAC, "redirect URI")
}

// SignInHash is the SHA-256 of a device code, user code, authorization
// code or refresh token: what the store keeps instead of the code. The
// codes are random (a user code, short, is tried only under the sign-in
// limits and expires in minutes), so no stretching is needed.
func SignInHash(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// NewSignInSecret returns a random device code, authorization code or
// refresh token: 260 bits, base32.
func NewSignInSecret() string { return rand.Text() + rand.Text() }

// userCodeAlphabet has no vowels (no words), and none of 0/O, 1/I/L, 5/S,
// 2/Z or 8/B to confuse: 20 symbols.
const userCodeAlphabet = "CDFGHJKMNPQRTVWXY346"

// NewUserCode returns a random user code of n symbols of
// userCodeAlphabet (8 ≈ 34.6 bits: enough against guesses held to a few
// a minute by the sign-in limits over a code's minutes).
func NewUserCode(n int) string {
	b := make([]byte, n)
	var c [1]byte
	for i := range b {
		for { // 240 is the largest multiple of 20 in a byte: no bias
			rand.Read(c[:])
			if c[0] < 240 {
				b[i] = userCodeAlphabet[int(c[0])%len(userCodeAlphabet)]
				break
			}
		}
	}
	return string(b)
}

// ValidS256Challenge reports whether s is an S256 code challenge (RFC
// 7636): base64url without padding of a SHA-256.
func ValidS256Challenge(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// S256Matches reports whether verifier (43 to 128 unreserved characters)
// hashes to challenge under S256 (RFC 7636 section 4.6), comparing in
// constant time.
func S256Matches(challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 || strings.ContainsFunc(verifier, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r))
	}) {
		return false
	}
	h := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(h[:])), []byte(challenge)) == 1
}

// AccountStamp is the SHA-256 of a user's password hash, kept with a
// refresh token family: a new password changes it and so ends the family.
func AccountStamp(passwordHash []byte) []byte {
	h := sha256.Sum256(passwordHash)
	return h[:]
}

// SameStamp compares two account stamps in constant time.
func SameStamp(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
