package platform

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

const (
	signinPW    = "correct horse battery staple"
	signinScope = "https://service.powerapps.com/.default offline_access"
)

// wantAADSTS checks a sign-in refusal's code and Entra ID number, and
// that its message leaks no secret.
func wantAADSTS(t *testing.T, err error, code, aadsts string, secrets ...string) {
	t.Helper()
	wantCode(t, err, code)
	e, ok := errors.AsType[*keyhold.Error](err)
	if !ok || (aadsts != "" && e.Inner != aadsts) {
		t.Fatalf("error %v: want Inner %s", err, aadsts)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(keyhold.ErrorMessage(err), s) {
			t.Fatalf("the error %q holds a secret", keyhold.ErrorMessage(err))
		}
	}
}

// grantState reads the state of the grant of a code.
func (f *fixture) grantState(t *testing.T, code string) string {
	t.Helper()
	var g *keyhold.SignInGrant
	err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) {
		g, err = tx.SignInGrant(context.Background(), crypt.SignInHash(code))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return g.State
}

// signinAudit lists the tenant's audit entries of sign-ins.
func (f *fixture) signinAudit(t *testing.T) []*keyhold.AuditEntry {
	t.Helper()
	es, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{ActionPrefixes: []string{"signin."}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestDeviceCodeSignIn walks RFC 8628 on both stores: pending, slow_down,
// refused approvals that change nothing, approval, one token with a
// refresh token, and a replay that gets none.
func TestDeviceCodeSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		bg, tenant := context.Background(), f.creds.TenantID
		user := f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", signinPW)
		da, err := f.p.StartDeviceCode(bg, tenant, keyhold.CLIClientID, signinScope)
		if err != nil {
			t.Fatal(err)
		}
		if len(da.UserCode) != 9 || da.UserCode[4] != '-' || strings.ContainsAny(da.UserCode, "AEIOU01258") || da.Interval != 5 || da.ExpiresIn != 900 {
			t.Fatalf("device authorization %+v", da)
		}
		// Only hashes are stored.
		err = f.store.View(bg, func(tx keyhold.Tx) error {
			g, err := tx.SignInGrantByUserCode(bg, crypt.SignInHash(strings.ReplaceAll(da.UserCode, "-", "")))
			if err == nil && (strings.Contains(string(g.IDHash), da.DeviceCode) || g.State != keyhold.GrantPending) {
				t.Fatalf("grant %+v", g)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		_, err = f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
		wantAADSTS(t, err, keyhold.CodeAuthorizationPending, aadstsPending)
		_, err = f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
		wantAADSTS(t, err, keyhold.CodeSlowDown, aadstsPending)
		f.clock.Advance(11 * time.Second)

		a := keyhold.SignInAttempt{TenantID: tenant, UserName: "ADA@contoso.example", Password: signinPW, Source: "192.0.2.1"}
		wrongPW := a
		wrongPW.Password = "wrong password"
		err = f.p.ApproveDeviceCode(bg, wrongPW, da.UserCode, true)
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, "AADSTS50126", wrongPW.Password)
		err = f.p.ApproveDeviceCode(bg, a, "CDFG-HJKM", true)
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode, signinPW)
		if got := f.grantState(t, da.DeviceCode); got != keyhold.GrantPending {
			t.Fatalf("after refused approvals the grant is %s, want pending", got)
		}
		_, err = f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
		wantAADSTS(t, err, keyhold.CodeAuthorizationPending, aadstsPending)

		// A user code as typed: lower case, no dash.
		if err := f.p.ApproveDeviceCode(bg, a, strings.ToLower(strings.ReplaceAll(da.UserCode, "-", "")), true); err != nil {
			t.Fatalf("ApproveDeviceCode: %v", err)
		}
		// Polled by another client: refused, and the grant still redeems.
		_, err = f.p.RedeemDeviceCode(bg, tenant, "00000000-0000-0000-0000-000000000000", da.DeviceCode)
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode)
		f.clock.Advance(10 * time.Second)
		tok, err := f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
		if err != nil {
			t.Fatalf("RedeemDeviceCode: %v", err)
		}
		id, err := f.p.Authenticate(bg, tok.AccessToken)
		if err != nil || id.PrincipalID != user.ID || id.Type != keyhold.PrincipalUser || id.Audience != keyhold.AudiencePowerApps {
			t.Fatalf("Authenticate = %+v, %v", id, err)
		}
		if tok.RefreshToken == "" || tok.Scope != "https://service.powerapps.com/.default" {
			t.Fatalf("token %+v: want a refresh token and the granted scope", tok)
		}
		// Replayed: no token.
		again, err := f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsRedeemed)
		if again != nil {
			t.Fatal("a replayed device code got a token")
		}
		// Every attempt on the page is audited: two failures, one success.
		var ok, failed int
		for _, e := range f.signinAudit(t) {
			if e.Action == "signin.device" {
				if e.Result == "Failed" {
					failed++
				} else {
					ok++
					if e.ActorID != user.ID || !strings.Contains(e.Detail, "192.0.2.1") {
						t.Fatalf("audit entry %+v", e)
					}
				}
				if strings.Contains(e.Detail, signinPW) {
					t.Fatal("the audit holds the password")
				}
			}
		}
		if ok != 1 || failed != 2 {
			t.Fatalf("audit: %d successes, %d failures; want 1 and 2", ok, failed)
		}
	})
}

// TestDeviceCodeRefusals: an expired code, a declined one, an unknown
// client, a tenant that doesn't exist, a code entered in another tenant.
func TestDeviceCodeRefusals(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	bg, tenant := context.Background(), f.creds.TenantID
	f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", signinPW)
	a := keyhold.SignInAttempt{TenantID: tenant, UserName: "ada@contoso.example", Password: signinPW, Source: "192.0.2.1"}

	da, err := f.p.StartDeviceCode(bg, tenant, keyhold.CLIClientID, signinScope)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(DeviceCodeTTL)
	_, err = f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
	wantAADSTS(t, err, keyhold.CodeExpiredDeviceCode, aadstsExpiredDevice)
	err = f.p.ApproveDeviceCode(bg, a, da.UserCode, true)
	wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode)

	da, err = f.p.StartDeviceCode(bg, tenant, keyhold.CLIClientID, signinScope)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.ApproveDeviceCode(bg, a, da.UserCode, false); err != nil {
		t.Fatal(err)
	}
	_, err = f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
	wantAADSTS(t, err, keyhold.CodeAccessDenied, aadstsDeclined)

	_, err = f.p.StartDeviceCode(bg, tenant, "not-an-app", signinScope)
	wantAADSTS(t, err, keyhold.CodeInvalidClient, aadstsUnknownApp)
	_, err = f.p.StartDeviceCode(bg, "11111111-2222-3333-4444-555555555555", keyhold.CLIClientID, signinScope)
	wantAADSTS(t, err, keyhold.CodeInvalidRequest, "AADSTS90002")
	_, err = f.p.StartDeviceCode(bg, tenant, keyhold.CLIClientID, "https://graph.microsoft.com/.default")
	wantCode(t, err, keyhold.CodeInvalidScope)
	_, err = f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, "made-up")
	wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode)
}

// pkcePair returns a code verifier and its S256 challenge.
func pkcePair(seed string) (string, string) {
	v := strings.Repeat(seed, 50)[:64]
	h := sha256.Sum256([]byte(v))
	return v, base64.RawURLEncoding.EncodeToString(h[:])
}

// TestAuthorizationCodePKCE: only a registered redirect URI and an S256
// challenge are accepted; a code redeems once, for its client, redirect
// URI and verifier; each refusal leaves the code redeemable.
func TestAuthorizationCodePKCE(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		bg, tenant := context.Background(), f.creds.TenantID
		f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", signinPW)
		app := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "khs_app-secret", "")
		const uri = "https://app.contoso.example/callback"
		verifier, challenge := pkcePair("abc-")
		req := &keyhold.AuthorizeRequest{TenantID: tenant, ClientID: app.AppID, RedirectURI: uri, Scope: signinScope, CodeChallenge: challenge}

		wantAADSTS(t, f.p.CheckAuthorize(bg, req), keyhold.CodeInvalidRequest, aadstsRedirectMismatch)
		wantCode(t, f.p.AddRedirectURI(f.ctx, app.AppID, "http://app.contoso.example/callback"), keyhold.CodeBadRequest)
		if err := f.p.AddRedirectURI(f.ctx, app.AppID, uri); err != nil {
			t.Fatal(err)
		}
		if got, err := f.p.ListRedirectURIs(f.ctx, app.AppID); err != nil || len(got) != 1 || got[0] != uri {
			t.Fatalf("ListRedirectURIs = %v, %v", got, err)
		}
		if err := f.p.CheckAuthorize(bg, req); err != nil {
			t.Fatalf("CheckAuthorize: %v", err)
		}
		plain := *req
		plain.CodeChallenge = "plain-challenge"
		wantCode(t, f.p.CheckAuthorize(bg, &plain), keyhold.CodeInvalidRequest)

		a := keyhold.SignInAttempt{TenantID: tenant, UserName: "ada@contoso.example", Password: signinPW, Source: "192.0.2.7"}
		bad := a
		bad.Password = "nope nope nope"
		_, err := f.p.Authorize(bg, bad, req)
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, "AADSTS50126")
		code, err := f.p.Authorize(bg, a, req)
		if err != nil {
			t.Fatalf("Authorize: %v", err)
		}
		otherVerifier, _ := pkcePair("xyz.")
		for _, c := range []struct {
			name, client, redirect, verifier, aadsts string
		}{
			{"wrong verifier", app.AppID, uri, otherVerifier, aadstsVerifier},
			{"no verifier", app.AppID, uri, "", aadstsVerifier},
			{"wrong redirect", app.AppID, uri + "x", verifier, aadstsRedirectMismatch},
			{"wrong client", keyhold.CLIClientID, uri, verifier, aadstsBadCode},
		} {
			_, err := f.p.RedeemCode(bg, tenant, c.client, code, c.redirect, c.verifier)
			wantAADSTS(t, err, keyhold.CodeInvalidGrant, c.aadsts, code)
			if got := f.grantState(t, code); got != keyhold.GrantApproved {
				t.Fatalf("%s: the code is %s after the refusal, want approved", c.name, got)
			}
		}
		tok, err := f.p.RedeemCode(bg, tenant, app.AppID, code, uri, verifier)
		if err != nil || tok.RefreshToken == "" {
			t.Fatalf("RedeemCode = %+v, %v", tok, err)
		}
		_, err = f.p.RedeemCode(bg, tenant, app.AppID, code, uri, verifier)
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsRedeemed)

		// An expired code.
		code, err = f.p.Authorize(bg, a, req)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(AuthCodeTTL)
		_, err = f.p.RedeemCode(bg, tenant, app.AppID, code, uri, verifier)
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsExpiredCode)
	})
}

// deviceToken signs user in with a device code and returns the token.
func (f *fixture) deviceToken(t *testing.T, upn string) *keyhold.Token {
	t.Helper()
	bg, tenant := context.Background(), f.creds.TenantID
	da, err := f.p.StartDeviceCode(bg, tenant, keyhold.CLIClientID, signinScope)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.ApproveDeviceCode(bg, keyhold.SignInAttempt{TenantID: tenant, UserName: upn, Password: signinPW}, da.UserCode, true); err != nil {
		t.Fatal(err)
	}
	tok, err := f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestRefreshTokenRotation: a refresh token is exchanged once for a new
// access token and its successor, for any of Keyhold's audiences; a
// reused one revokes its whole family; removing the user ends them.
func TestRefreshTokenRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		bg, tenant := context.Background(), f.creds.TenantID
		user := f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", signinPW)
		first := f.deviceToken(t, "ada@contoso.example")

		_, err := f.p.Refresh(bg, tenant, "00000000-0000-0000-0000-000000000000", first.RefreshToken, "")
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode, first.RefreshToken)
		second, err := f.p.Refresh(bg, tenant, keyhold.CLIClientID, first.RefreshToken, "https://management.azure.com/.default")
		if err != nil {
			t.Fatalf("Refresh after a refusal: %v", err)
		}
		if id, err := f.p.Authenticate(bg, second.AccessToken); err != nil || id.PrincipalID != user.ID || id.Audience != keyhold.AudienceManagement {
			t.Fatalf("Authenticate = %+v, %v", id, err)
		}
		if second.RefreshToken == first.RefreshToken || second.RefreshToken == "" {
			t.Fatal("the refresh token did not rotate")
		}
		third, err := f.p.Refresh(bg, tenant, keyhold.CLIClientID, second.RefreshToken, "")
		if err != nil {
			t.Fatal(err)
		}
		// The first token again: a thief's copy, or the thief has the
		// new ones. Nobody gets a token, and the family is revoked.
		got, err := f.p.Refresh(bg, tenant, keyhold.CLIClientID, first.RefreshToken, "")
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsRevoked)
		if got != nil {
			t.Fatal("a reused refresh token got a token")
		}
		_, err = f.p.Refresh(bg, tenant, keyhold.CLIClientID, third.RefreshToken, "")
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsRevoked)

		// Another sign-in is another family, untouched by that; it ends
		// when the user is removed.
		other := f.deviceToken(t, "ada@contoso.example")
		if err := f.store.Update(bg, func(tx keyhold.Tx) error { return tx.DeletePrincipal(bg, user.ID) }); err != nil {
			t.Fatal(err)
		}
		_, err = f.p.Refresh(bg, tenant, keyhold.CLIClientID, other.RefreshToken, "")
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode)

		// Expiry.
		f.newPrincipal(t, keyhold.PrincipalUser, "bob@contoso.example", signinPW)
		bob := f.deviceToken(t, "bob@contoso.example")
		f.clock.Advance(RefreshTokenTTL)
		_, err = f.p.Refresh(bg, tenant, keyhold.CLIClientID, bob.RefreshToken, "")
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsExpiredCode)
		// The next sign-in deletes the expired tokens.
		f.clock.Advance(time.Second)
		f.deviceToken(t, "bob@contoso.example")
		_, err = f.p.Refresh(bg, tenant, keyhold.CLIClientID, bob.RefreshToken, "")
		wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode)
	})
}

// TestRefreshTokenPasswordChange: a refresh token family ends when the
// user's password hash is no longer the one it began with (its account
// stamp), as after a password reset; the store has no password update
// yet, so the token is written sealed with an older stamp.
func TestRefreshTokenPasswordChange(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	bg, tenant := context.Background(), f.creds.TenantID
	user := f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", signinPW)
	now := f.clock.Now()
	old, err := crypt.HashPassword("the password before the reset")
	if err != nil {
		t.Fatal(err)
	}
	rt := &keyhold.RefreshToken{Hash: crypt.SignInHash("refresh-before-reset"), FamilyID: "fam", TenantID: tenant, PrincipalID: user.ID,
		ClientID: keyhold.CLIClientID, Scope: "https://service.powerapps.com/.default",
		AccountStamp: crypt.AccountStamp(old), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	rt.MAC = f.p.Tokens.rec.SealRefreshToken(rt)
	if err := f.store.Update(bg, func(tx keyhold.Tx) error { return tx.CreateRefreshToken(bg, rt) }); err != nil {
		t.Fatal(err)
	}
	_, err = f.p.Refresh(bg, tenant, keyhold.CLIClientID, "refresh-before-reset", "")
	wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsRevoked)
	if !strings.Contains(keyhold.ErrorMessage(err), "password changed") {
		t.Fatalf("message %q: want the reason", keyhold.ErrorMessage(err))
	}
}

// TestSignInRowsSealed: a grant or refresh token written into the
// database without the master key (here: with its seal broken) signs no
// one in.
func TestSignInRowsSealed(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	bg, tenant := context.Background(), f.creds.TenantID
	user := f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", signinPW)
	now := f.clock.Now()
	forged := &keyhold.RefreshToken{Hash: crypt.SignInHash("forged-refresh-token"), FamilyID: "fam", TenantID: tenant, PrincipalID: user.ID,
		ClientID: keyhold.CLIClientID, Scope: "https://service.powerapps.com/.default", AccountStamp: []byte("x"), CreatedAt: now,
		ExpiresAt: now.Add(time.Hour), MAC: []byte("not a seal")}
	code := &keyhold.SignInGrant{IDHash: crypt.SignInHash("forged-code"), Kind: keyhold.GrantDevice, UserCodeHash: crypt.SignInHash("CDFGHJKM"),
		TenantID: tenant, ClientID: keyhold.CLIClientID, Scope: forged.Scope, State: keyhold.GrantApproved, PrincipalID: user.ID,
		Interval: 5, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	err := f.store.Update(bg, func(tx keyhold.Tx) error {
		if err := tx.CreateRefreshToken(bg, forged); err != nil {
			return err
		}
		return tx.CreateSignInGrant(bg, code)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.p.Refresh(bg, tenant, keyhold.CLIClientID, "forged-refresh-token", "")
	wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode)
	_, err = f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, "forged-code")
	wantAADSTS(t, err, keyhold.CodeInvalidGrant, aadstsBadCode)
	if got := f.grantState(t, "forged-code"); got != keyhold.GrantApproved {
		t.Fatalf("the forged grant is %s", got)
	}
}

// TestDeviceCodeRedeemedOnce: replicas polling one approved device code at
// once (as a client retrying through a load balancer) get one token
// between them; the others get invalid_grant.
func TestDeviceCodeRedeemedOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		bg, tenant := context.Background(), f.creds.TenantID
		f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", signinPW)
		da, err := f.p.StartDeviceCode(bg, tenant, keyhold.CLIClientID, signinScope)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.p.ApproveDeviceCode(bg, keyhold.SignInAttempt{TenantID: tenant, UserName: "ada@contoso.example", Password: signinPW}, da.UserCode, true); err != nil {
			t.Fatal(err)
		}
		const n = 8
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := f.p.RedeemDeviceCode(bg, tenant, keyhold.CLIClientID, da.DeviceCode)
				errs <- err
			}()
		}
		won := 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				won++
			case keyhold.ErrorCode(err) != keyhold.CodeInvalidGrant:
				t.Errorf("a losing redemption: %v, want invalid_grant", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d redemptions got a token, want 1", won)
		}
	})
}
