package platform

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// People's sign-in (keyhold.SignInService, issue 11): the device code
// grant, the authorization code grant with PKCE, and refresh tokens. The
// codes and tokens are random, kept only as hashes, sealed
// (crypt.RecordKey.SealSignInGrant), in the database so that any replica
// answers, and each is redeemed once: the store's conditional updates
// decide which of two racing redemptions wins.

var _ keyhold.SignInService = (*Tokens)(nil)

// Lifetimes and limits of the sign-in grants.
const (
	// DeviceCodeTTL is how long a person has to enter a user code.
	DeviceCodeTTL = 15 * time.Minute
	// DevicePollInterval is the least time between a client's polls;
	// each slow_down adds as much again (RFC 8628 section 3.5).
	DevicePollInterval = 5 * time.Second
	// AuthCodeTTL is how long an authorization code may wait for its
	// redemption (Entra ID allows 10 minutes; a browser redirect takes
	// seconds).
	AuthCodeTTL = 5 * time.Minute
	// RefreshTokenTTL is a refresh token's lifetime, renewed with each
	// use (sliding, as Entra ID's 90 days of inactivity).
	RefreshTokenTTL = 90 * 24 * time.Hour

	// userCodeLen is a user code's length (crypt.NewUserCode).
	userCodeLen = 8
)

// Entra ID's error numbers for the sign-in refusals, carried as the
// error's Inner so that the token endpoint quotes them (http/token.go).
const (
	aadstsBadCode          = "AADSTS70000"  // a code that is not valid
	aadstsPending          = "AADSTS70016"  // authorization pending
	aadstsExpiredDevice    = "AADSTS70019"  // the device code expired
	aadstsExpiredCode      = "AADSTS70008"  // an expired code or refresh token
	aadstsRedeemed         = "AADSTS54005"  // already redeemed
	aadstsRedirectMismatch = "AADSTS50011"  // redirect URI mismatch
	aadstsVerifier         = "AADSTS501481" // code verifier mismatch
	aadstsRevoked          = "AADSTS50173"  // revoked: a new password, a removed user, a reuse
	aadstsUnknownApp       = "AADSTS700016" // no such application in the tenant
	aadstsDeclined         = "AADSTS70000"  // the person declined
)

// oauthError is a sign-in refusal with its Entra ID error number.
func oauthError(code, aadsts, format string, args ...any) error {
	e := keyhold.Errorf(code, format, args...)
	e.Inner = aadsts
	return e
}

// resourceScope reads a sign-in's scope: exactly one "<resource>/.default"
// and, optionally, the OpenID scopes (openid, profile, offline_access),
// which Keyhold accepts and ignores (refresh tokens are always given).
// It returns the audience and the scope to grant.
func resourceScope(scope string) (keyhold.Audience, string, error) {
	var res []string
	for _, s := range strings.Fields(scope) {
		switch s {
		case "openid", "profile", "offline_access", "email":
		default:
			res = append(res, s)
		}
	}
	if len(res) != 1 {
		return "", "", scopeError(scope)
	}
	aud, ok := audienceForScope(res[0])
	if !ok {
		return "", "", scopeError(res[0])
	}
	return aud, string(aud) + "/.default", nil
}

// formatUserCode shows a user code as two groups, XXXX-XXXX.
func formatUserCode(c string) string { return c[:4] + "-" + c[4:] }

// normalizeUserCode is what a person typed, without case, spaces and
// dashes.
func normalizeUserCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// checkTenant refuses a tenant id that is not a tenant's.
func checkTenant(ctx context.Context, tx keyhold.Tx, tenantID string) error {
	bad := oauthError(keyhold.CodeInvalidRequest, "AADSTS90002", "tenant %q not found: check the tenant id in the URL (keyhold login prints it)", keyhold.Clip(tenantID))
	if _, err := uuid.Parse(tenantID); err != nil {
		return bad
	}
	t, err := tx.Tenant(ctx, tenantID)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound || (err == nil && t.System) {
		return bad
	}
	return err
}

// checkClient refuses a client id that is neither the keyhold CLI's nor
// an application of the tenant, and returns the application's principal
// (nil for the CLI).
func checkClient(ctx context.Context, tx keyhold.Tx, tenantID, clientID string) (*keyhold.Principal, error) {
	if clientID == keyhold.CLIClientID {
		return nil, nil
	}
	bad := oauthError(keyhold.CodeInvalidClient, aadstsUnknownApp,
		"application with identifier %q was not found in tenant %s: use the keyhold command line's client id %s, or the appId of a service principal of the tenant",
		keyhold.Clip(clientID), tenantID, keyhold.CLIClientID)
	if clientID == "" {
		return nil, bad
	}
	sp, err := tx.PrincipalByAppID(ctx, tenantID, clientID)
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
		return nil, bad
	case err != nil:
		return nil, err
	case sp.Type != keyhold.PrincipalServicePrincipal:
		return nil, bad
	}
	return sp, nil
}

// StartDeviceCode begins a device code sign-in (RFC 8628 section 3.2).
func (p *Tokens) StartDeviceCode(ctx context.Context, tenantID, clientID, scope string) (*keyhold.DeviceAuthorization, error) {
	_, granted, err := resourceScope(scope)
	if err != nil {
		return nil, err
	}
	now := p.clock.Now().UTC()
	var out *keyhold.DeviceAuthorization
	// A user code already pending (about one in 10^10 per pending code)
	// is a conflict: try again with another, in a new transaction (a
	// failed insert ends a PostgreSQL transaction).
	for try := 0; ; try++ {
		err = p.startDeviceCode(ctx, tenantID, clientID, granted, now, &out)
		if keyhold.ErrorCode(err) != keyhold.CodeConflict || try == 2 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// startDeviceCode stores one new device code grant.
func (p *Tokens) startDeviceCode(ctx context.Context, tenantID, clientID, granted string, now time.Time, out **keyhold.DeviceAuthorization) error {
	return p.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := checkTenant(ctx, tx, tenantID); err != nil {
			return err
		}
		if _, err := checkClient(ctx, tx, tenantID, clientID); err != nil {
			return err
		}
		// Expired grants go as new ones come, so the table holds only
		// the last few minutes' sign-ins.
		if _, err := tx.DeleteSignInGrants(ctx, now); err != nil {
			return err
		}
		device, user := crypt.NewSignInSecret(), crypt.NewUserCode(userCodeLen)
		g := &keyhold.SignInGrant{IDHash: crypt.SignInHash(device), Kind: keyhold.GrantDevice, UserCodeHash: crypt.SignInHash(user),
			TenantID: tenantID, ClientID: clientID, Scope: granted, State: keyhold.GrantPending,
			Interval: int(DevicePollInterval / time.Second), CreatedAt: now, ExpiresAt: now.Add(DeviceCodeTTL)}
		g.MAC = p.rec.SealSignInGrant(g)
		if err := tx.CreateSignInGrant(ctx, g); err != nil {
			return err
		}
		*out = &keyhold.DeviceAuthorization{DeviceCode: device, UserCode: formatUserCode(user),
			ExpiresIn: int(DeviceCodeTTL / time.Second), Interval: g.Interval}
		return nil
	})
}

// grant reads the grant of a code and checks its seal, kind and tenant.
// Any mismatch is the same invalid_grant: the code tells nothing.
// A broken seal is kept in *tamper, for auditTamper to record after the
// transaction (it writes in one of its own).
func (p *Tokens) grant(ctx context.Context, tx keyhold.Tx, kind, tenantID, code, what string, tamper *tampered) (*keyhold.SignInGrant, error) {
	bad := oauthError(keyhold.CodeInvalidGrant, aadstsBadCode, "the %s is not valid: it may be mistyped, or for another tenant; start the sign-in again", what)
	if code == "" {
		return nil, bad
	}
	g, err := tx.SignInGrant(ctx, crypt.SignInHash(code))
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
		return nil, bad
	case err != nil:
		return nil, err
	case g.Kind != kind || g.TenantID != tenantID:
		return nil, bad
	case p.rec.CheckSignInGrant(g) != nil:
		*tamper = tampered{g.TenantID, "sign-in grant", p.rec.CheckSignInGrant(g)}
		return nil, bad
	}
	return g, nil
}

// tampered is a sign-in record whose seal failed, to audit.
type tampered struct {
	tenant, target string
	err            error
}

// audit records t, if any, as auditTamper does for other records.
func (t tampered) audit(ctx context.Context, p *Tokens) {
	if t.err != nil {
		p.auditTamper(ctx, t.tenant, t.target, "a sign-in", t.err)
	}
}

// RedeemDeviceCode answers a device code poll (RFC 8628 section 3.4).
func (p *Tokens) RedeemDeviceCode(ctx context.Context, tenantID, clientID, deviceCode string) (*keyhold.Token, error) {
	now := p.clock.Now().UTC()
	var (
		tok    *keyhold.Token
		answer error // a refusal that still commits (the poll's time)
		tamper tampered
	)
	defer func() { tamper.audit(ctx, p) }()
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		tok, answer = nil, nil
		g, err := p.grant(ctx, tx, keyhold.GrantDevice, tenantID, deviceCode, "device code", &tamper)
		if err != nil {
			return err
		}
		if g.ClientID != clientID {
			return oauthError(keyhold.CodeInvalidGrant, aadstsBadCode, "the device code was issued to another client: poll with the client_id that asked for it")
		}
		switch {
		case g.State == keyhold.GrantRedeemed:
			return oauthError(keyhold.CodeInvalidGrant, aadstsRedeemed, "the device code was already redeemed: a code signs in once; start a new sign-in")
		case g.State == keyhold.GrantDenied:
			return oauthError(keyhold.CodeAccessDenied, aadstsDeclined, "the person declined the sign-in on the verification page")
		case !now.Before(g.ExpiresAt):
			return oauthError(keyhold.CodeExpiredDeviceCode, aadstsExpiredDevice, "the device code expired at %s: start a new sign-in", g.ExpiresAt.Format(time.RFC3339))
		case g.State == keyhold.GrantPending:
			was := g.LastPoll
			g.LastPoll = now
			answer = oauthError(keyhold.CodeAuthorizationPending, aadstsPending, "the person has not yet entered the code on the verification page: keep polling every %d seconds", g.Interval)
			if !was.IsZero() && now.Sub(was) < time.Duration(g.Interval)*time.Second {
				g.Interval += int(DevicePollInterval / time.Second)
				answer = oauthError(keyhold.CodeSlowDown, aadstsPending, "polled too fast: poll every %d seconds", g.Interval)
			}
			// Interval and LastPoll are left out of the seal; a conflict
			// means the person approved meanwhile: the next poll sees it.
			if err := tx.UpdateSignInGrant(ctx, g, keyhold.GrantPending); err != nil && keyhold.ErrorCode(err) != keyhold.CodeConflict {
				return err
			}
			return nil
		}
		tok, err = p.redeem(ctx, tx, g, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	if answer != nil {
		return nil, answer
	}
	return tok, nil
}

// redeem marks an approved grant redeemed and issues its person's token
// and the first refresh token of a new family, in tx.
func (p *Tokens) redeem(ctx context.Context, tx keyhold.Tx, g *keyhold.SignInGrant, now time.Time) (*keyhold.Token, error) {
	g.State = keyhold.GrantRedeemed
	g.MAC = p.rec.SealSignInGrant(g)
	if err := tx.UpdateSignInGrant(ctx, g, keyhold.GrantApproved); err != nil {
		if keyhold.ErrorCode(err) == keyhold.CodeConflict {
			return nil, oauthError(keyhold.CodeInvalidGrant, aadstsRedeemed, "the code was already redeemed: a code signs in once; start a new sign-in")
		}
		return nil, err
	}
	user, acct, err := userOf(ctx, tx, g.PrincipalID)
	if err != nil {
		return nil, err
	}
	return p.issueUserToken(ctx, tx, user, acct, g.ClientID, g.Scope, uuid.NewString(), now)
}

// userOf returns a user principal and its account; a removed one is an
// invalid_grant.
func userOf(ctx context.Context, tx keyhold.Tx, principalID string) (*keyhold.Principal, *keyhold.UserAccount, error) {
	gone := oauthError(keyhold.CodeInvalidGrant, aadstsRevoked, "the user was removed or their account changed: sign in again")
	acct, err := tx.UserAccount(ctx, principalID)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil, nil, gone
	} else if err != nil {
		return nil, nil, err
	}
	user, err := tx.Principal(ctx, principalID)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound || (err == nil && user.Type != keyhold.PrincipalUser) {
		return nil, nil, gone
	} else if err != nil {
		return nil, nil, err
	}
	return user, acct, nil
}

// issueUserToken mints user's access token for scope and stores a new
// refresh token of family, in tx.
func (p *Tokens) issueUserToken(ctx context.Context, tx keyhold.Tx, user *keyhold.Principal, acct *keyhold.UserAccount, clientID, scope, family string, now time.Time) (*keyhold.Token, error) {
	aud, granted, err := resourceScope(scope)
	if err != nil {
		return nil, err
	}
	tok, err := p.mint(user, acct.UserPrincipalName, aud)
	if err != nil {
		return nil, err
	}
	refresh := crypt.NewSignInSecret()
	if err := storeRefresh(ctx, p, tx, user, acct, clientID, granted, family, refresh, now); err != nil {
		return nil, err
	}
	tok.RefreshToken, tok.Scope = refresh, granted
	return tok, nil
}

// storeRefresh stores secret (kept as its hash) as a refresh token of
// family for holder, in tx: people's sign-ins and connections' grants
// (connection_grants.go) alike.
func storeRefresh(ctx context.Context, p *Tokens, tx keyhold.Tx, holder *keyhold.Principal, acct *keyhold.UserAccount, clientID, granted, family, secret string, now time.Time) error {
	rt := &keyhold.RefreshToken{Hash: crypt.SignInHash(secret), FamilyID: family, TenantID: holder.TenantID, PrincipalID: holder.ID,
		ClientID: clientID, Scope: granted, AccountStamp: holderStamp(holder, acct), CreatedAt: now, ExpiresAt: now.Add(RefreshTokenTTL)}
	rt.MAC = p.rec.SealRefreshToken(rt)
	// Expired tokens go as new ones come: a used token is kept (for
	// reuse detection) only until it would have expired anyway.
	if _, err := tx.DeleteRefreshTokens(ctx, now); err != nil {
		return err
	}
	return tx.CreateRefreshToken(ctx, rt)
}

// checkUser checks a person's user name and password: the principal and
// account, or invalid_grant with one message for a wrong name and a
// wrong password, so that names can't be probed. The password is hashed
// either way (argon2id), so that the time tells nothing either.
func (p *Tokens) checkUser(ctx context.Context, tx keyhold.Tx, a keyhold.SignInAttempt) (*keyhold.Principal, *keyhold.UserAccount, error) {
	bad := keyhold.Errorf(keyhold.CodeInvalidGrant, "error validating credentials due to invalid username or password in tenant %q", keyhold.Clip(a.TenantID))
	bad.Inner = "AADSTS50126"
	acct, err := tx.UserAccountByUPN(ctx, a.TenantID, a.UserName)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		crypt.CheckNoPassword(a.Password)
		return nil, nil, bad
	} else if err != nil {
		return nil, nil, err
	}
	user, err := tx.Principal(ctx, acct.PrincipalID)
	if err != nil {
		return nil, nil, err
	}
	if user.Type != keyhold.PrincipalUser || !crypt.CheckPassword(acct.PasswordHash, a.Password) {
		return nil, nil, bad
	}
	return user, acct, nil
}

// auditSignIn records a sign-in attempt on the page in tenant (which
// exists): who, from where, for which client, and the outcome.
func (p *Tokens) auditSignIn(ctx context.Context, tx keyhold.Tx, a keyhold.SignInAttempt, action, clientID, actor string, outcome error) error {
	e := keyhold.AuditEntry{At: p.clock.Now(), TenantID: a.TenantID, ActorID: actor, Action: action,
		Target: "/tenants/" + a.TenantID + "/users/" + keyhold.Clip(a.UserName),
		Detail: fmt.Sprintf("sign-in from %s for client %s", keyhold.Clip(a.Source), keyhold.Clip(clientID))}
	if outcome != nil {
		e.Result = "Failed"
		e.Detail += ": " + keyhold.ErrorMessage(outcome)
	}
	if e.ActorID == "" {
		e.ActorID = "anonymous"
	}
	_, err := keyhold.Audit(ctx, tx, e)
	return err
}

// signInPage runs one sign-in on the page: it checks the tenant, then
// calls fn in a transaction with the person signed in, and audits the
// attempt, with the change if it succeeds or alone if it fails.
func (p *Tokens) signInPage(ctx context.Context, a keyhold.SignInAttempt, action string, fn func(tx keyhold.Tx, user *keyhold.Principal, acct *keyhold.UserAccount) (clientID string, err error)) error {
	if err := p.store.View(ctx, func(tx keyhold.Tx) error { return checkTenant(ctx, tx, a.TenantID) }); err != nil {
		crypt.CheckNoPassword(a.Password)
		return err
	}
	var refused error
	clientID := ""
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		refused, clientID = nil, ""
		user, acct, err := p.checkUser(ctx, tx, a)
		actor := ""
		if err == nil {
			actor = user.ID
			clientID, err = fn(tx, user, acct)
		}
		switch {
		case err == nil:
			return p.auditSignIn(ctx, tx, a, action, clientID, actor, nil)
		case keyhold.ErrorClass(err) == keyhold.ClassInvalid || keyhold.ErrorClass(err) == keyhold.ClassUnauthorized:
			refused = err
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if refused != nil {
		// The refusal's audit entry commits alone: fn's changes (none
		// were made, as every refusal comes before them) don't.
		err := p.store.Update(ctx, func(tx keyhold.Tx) error {
			return p.auditSignIn(ctx, tx, a, action, clientID, "", refused)
		})
		if err != nil {
			return err
		}
		return refused
	}
	return nil
}

// ApproveDeviceCode signs a person in on the verification page and
// approves (or declines) the device code whose user code they typed.
func (p *Tokens) ApproveDeviceCode(ctx context.Context, a keyhold.SignInAttempt, userCode string, approve bool) error {
	now := p.clock.Now().UTC()
	var tamper tampered
	defer func() { tamper.audit(ctx, p) }()
	return p.signInPage(ctx, a, "signin.device", func(tx keyhold.Tx, user *keyhold.Principal, acct *keyhold.UserAccount) (string, error) {
		bad := oauthError(keyhold.CodeInvalidGrant, aadstsBadCode, "the code %q is not valid or has expired: type the code your device shows, or start its sign-in again", keyhold.Clip(userCode))
		code := normalizeUserCode(userCode)
		if len(code) != userCodeLen {
			return "", bad
		}
		g, err := tx.SignInGrantByUserCode(ctx, crypt.SignInHash(code))
		switch {
		case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
			return "", bad
		case err != nil:
			return "", err
		case g.TenantID != a.TenantID || g.Kind != keyhold.GrantDevice || g.State != keyhold.GrantPending || !now.Before(g.ExpiresAt):
			return g.ClientID, bad
		case p.rec.CheckSignInGrant(g) != nil:
			tamper = tampered{g.TenantID, "sign-in grant", p.rec.CheckSignInGrant(g)}
			return g.ClientID, bad
		}
		g.State, g.PrincipalID, g.UPN = keyhold.GrantApproved, user.ID, acct.UserPrincipalName
		if !approve {
			g.State = keyhold.GrantDenied
		}
		g.MAC = p.rec.SealSignInGrant(g)
		if err := tx.UpdateSignInGrant(ctx, g, keyhold.GrantPending); err != nil {
			if keyhold.ErrorCode(err) == keyhold.CodeConflict {
				return g.ClientID, bad
			}
			return "", err
		}
		return g.ClientID, nil
	})
}

// checkRedirectURI refuses a redirect URI that is not registered on the
// application (nil app: the CLI, which has none).
func (p *Tokens) checkRedirectURI(ctx context.Context, tx keyhold.Tx, app *keyhold.Principal, clientID, uri string) error {
	bad := oauthError(keyhold.CodeInvalidRequest, aadstsRedirectMismatch,
		"the redirect URI %q is not registered on application %s: register it with keyhold identity sp redirect-uri add", keyhold.Clip(uri), keyhold.Clip(clientID))
	if app == nil {
		return bad
	}
	uris, err := tx.RedirectURIs(ctx, app.ID)
	if err != nil {
		return err
	}
	for _, u := range uris {
		if u.URI == uri && p.rec.CheckRedirectURI(u) == nil {
			return nil
		}
	}
	return bad
}

// checkAuthorize checks an authorization request in tx.
func (p *Tokens) checkAuthorize(ctx context.Context, tx keyhold.Tx, req *keyhold.AuthorizeRequest) (string, error) {
	if err := checkTenant(ctx, tx, req.TenantID); err != nil {
		return "", err
	}
	app, err := checkClient(ctx, tx, req.TenantID, req.ClientID)
	if err != nil {
		return "", err
	}
	if err := p.checkRedirectURI(ctx, tx, app, req.ClientID, req.RedirectURI); err != nil {
		return "", err
	}
	if !crypt.ValidS256Challenge(req.CodeChallenge) {
		return "", oauthError(keyhold.CodeInvalidRequest, "AADSTS501491",
			"code_challenge %q is not valid: send the base64url SHA-256 of a code verifier (43 characters) with code_challenge_method=S256", keyhold.Clip(req.CodeChallenge))
	}
	_, granted, err := resourceScope(req.Scope)
	return granted, err
}

// CheckAuthorize checks an authorization request before the page shows.
func (p *Tokens) CheckAuthorize(ctx context.Context, req *keyhold.AuthorizeRequest) error {
	return p.store.View(ctx, func(tx keyhold.Tx) error {
		_, err := p.checkAuthorize(ctx, tx, req)
		return err
	})
}

// Authorize signs a person in on the page and returns an authorization
// code for req.
func (p *Tokens) Authorize(ctx context.Context, a keyhold.SignInAttempt, req *keyhold.AuthorizeRequest) (string, error) {
	if err := p.CheckAuthorize(ctx, req); err != nil {
		return "", err // a bad request, not a sign-in: nothing to audit
	}
	now := p.clock.Now().UTC()
	code := ""
	err := p.signInPage(ctx, a, "signin.authorize", func(tx keyhold.Tx, user *keyhold.Principal, acct *keyhold.UserAccount) (string, error) {
		granted, err := p.checkAuthorize(ctx, tx, req)
		if err != nil {
			return req.ClientID, err
		}
		code = crypt.NewSignInSecret()
		g := &keyhold.SignInGrant{IDHash: crypt.SignInHash(code), Kind: keyhold.GrantCode, TenantID: req.TenantID, ClientID: req.ClientID,
			Scope: granted, RedirectURI: req.RedirectURI, CodeChallenge: req.CodeChallenge, State: keyhold.GrantApproved,
			PrincipalID: user.ID, UPN: acct.UserPrincipalName, CreatedAt: now, ExpiresAt: now.Add(AuthCodeTTL)}
		g.MAC = p.rec.SealSignInGrant(g)
		if _, err := tx.DeleteSignInGrants(ctx, now); err != nil {
			return req.ClientID, err
		}
		return req.ClientID, tx.CreateSignInGrant(ctx, g)
	})
	if err != nil {
		return "", err
	}
	return code, nil
}

// RedeemCode exchanges an authorization code for a token (RFC 6749
// section 4.1.3, RFC 7636 section 4.6). A refusal changes nothing: the
// code still redeems for the client that holds the right verifier.
func (p *Tokens) RedeemCode(ctx context.Context, tenantID, clientID, code, redirectURI, verifier string) (*keyhold.Token, error) {
	now := p.clock.Now().UTC()
	var (
		tok    *keyhold.Token
		tamper tampered
	)
	defer func() { tamper.audit(ctx, p) }()
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		g, err := p.grant(ctx, tx, keyhold.GrantCode, tenantID, code, "authorization code", &tamper)
		if err != nil {
			return err
		}
		switch {
		case g.ClientID != clientID:
			return oauthError(keyhold.CodeInvalidGrant, aadstsBadCode, "the authorization code was issued to another client: redeem it with the client_id that asked for it")
		case g.State == keyhold.GrantRedeemed:
			return oauthError(keyhold.CodeInvalidGrant, aadstsRedeemed, "the authorization code was already redeemed: a code signs in once; sign in again")
		case !now.Before(g.ExpiresAt):
			return oauthError(keyhold.CodeInvalidGrant, aadstsExpiredCode, "the authorization code expired at %s: sign in again", g.ExpiresAt.Format(time.RFC3339))
		case redirectURI != g.RedirectURI:
			return oauthError(keyhold.CodeInvalidGrant, aadstsRedirectMismatch, "redirect_uri %q is not the one the code was issued for: send the authorization request's redirect_uri", keyhold.Clip(redirectURI))
		case !crypt.S256Matches(g.CodeChallenge, verifier):
			return oauthError(keyhold.CodeInvalidGrant, aadstsVerifier, "the code_verifier does not match the code_challenge of the authorization request: send the verifier whose S256 hash you sent")
		}
		tok, err = p.redeem(ctx, tx, g, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// Refresh exchanges a refresh token for an access token and its
// successor. A token used twice revokes its family: one of the two users
// is a thief, and neither gets a token. The checks are refreshCheck's,
// which connections' grants share (connection_grants.go).
func (p *Tokens) Refresh(ctx context.Context, tenantID, clientID, refreshToken, scope string) (*keyhold.Token, error) {
	if clientID == keyhold.ConnectionClientID {
		return nil, oauthError(keyhold.CodeInvalidClient, aadstsUnknownApp,
			"client %s is the grant of an OAuth connection, redeemed only by the connection's own actions: sign in with your own client", clientID)
	}
	now := p.clock.Now().UTC()
	var (
		tok     *keyhold.Token
		refused error // a refusal that commits a revocation
		tamper  tampered
	)
	defer func() { tamper.audit(ctx, p) }()
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		tok, refused = nil, nil
		u, why, err := refreshCheck(ctx, p, tx, tenantID, clientID, refreshToken, now, &tamper)
		if err != nil {
			return err
		}
		if scope == "" {
			scope = u.rt.Scope
		}
		if _, _, err := resourceScope(scope); err != nil {
			return err
		}
		if refused, err = refreshUse(ctx, p, tx, u, why, now); err != nil || refused != nil {
			return err
		}
		tok, err = p.issueUserToken(ctx, tx, u.holder, u.acct, u.rt.ClientID, scope, u.rt.FamilyID, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	return tok, nil
}

// validRedirectURI checks a redirect URI for registration: absolute,
// https (or http on a loopback address, for native apps, RFC 8252), no
// fragment.
func validRedirectURI(s string) error {
	u, err := url.Parse(s)
	bad := func(why string) error {
		return keyhold.Errorf(keyhold.CodeBadRequest, "redirect URI %q is not valid: %s", keyhold.Clip(s), why)
	}
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return bad("give an absolute URL such as https://app.example.com/callback")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return bad("it may not have a fragment (#…)")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && slices.Contains([]string{"127.0.0.1", "[::1]", "localhost"}, strings.TrimSuffix(u.Host, ":"+u.Port())):
		return nil
	}
	return bad("use https, or http only on 127.0.0.1, [::1] or localhost")
}

var _ keyhold.RedirectURIs = (*Tokens)(nil)

// app returns the caller's tenant's application whose client id is
// appID, after checking that the caller is a Global Administrator, who
// alone registers where an application's codes may go.
func (p *Tokens) app(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, appID, what string) (*keyhold.Principal, error) {
	roles, err := tx.DirectoryRoles(ctx, id.TenantID, id.PrincipalID)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(roles, keyhold.RoleGlobalAdministrator) {
		return nil, keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not %s: it needs the %s directory role", id.PrincipalID, what, keyhold.RoleGlobalAdministrator)
	}
	sp, err := tx.PrincipalByAppID(ctx, id.TenantID, appID)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound || (err == nil && sp.Type != keyhold.PrincipalServicePrincipal) {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "no application with app id %q in tenant %s: list them with keyhold identity sp list", keyhold.Clip(appID), id.TenantID)
	}
	return sp, err
}

// AddRedirectURI registers a redirect URI on an application.
func (p *Tokens) AddRedirectURI(ctx context.Context, appID, uri string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	if err := validRedirectURI(uri); err != nil {
		return err
	}
	now := p.clock.Now().UTC()
	return p.store.Update(ctx, func(tx keyhold.Tx) error {
		sp, err := p.app(ctx, tx, id, appID, "register redirect URIs")
		if err != nil {
			return err
		}
		r := &keyhold.RedirectURI{PrincipalID: sp.ID, URI: uri, AddedAt: now}
		r.MAC = p.rec.SealRedirectURI(r)
		if err := tx.AddRedirectURI(ctx, r); err != nil {
			return err
		}
		_, err = keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: now, TenantID: id.TenantID, ActorID: id.PrincipalID, Action: "servicePrincipal.redirectUri.add",
			Target: "/servicePrincipals/" + sp.ID, Detail: "registered redirect URI " + keyhold.Clip(uri)})
		return err
	})
}

// RemoveRedirectURI unregisters a redirect URI of an application.
func (p *Tokens) RemoveRedirectURI(ctx context.Context, appID, uri string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	now := p.clock.Now().UTC()
	return p.store.Update(ctx, func(tx keyhold.Tx) error {
		sp, err := p.app(ctx, tx, id, appID, "remove redirect URIs")
		if err != nil {
			return err
		}
		if err := tx.RemoveRedirectURI(ctx, sp.ID, uri); err != nil {
			return err
		}
		_, err = keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: now, TenantID: id.TenantID, ActorID: id.PrincipalID, Action: "servicePrincipal.redirectUri.remove",
			Target: "/servicePrincipals/" + sp.ID, Detail: "removed redirect URI " + keyhold.Clip(uri)})
		return err
	})
}

// ListRedirectURIs lists an application's redirect URIs (those whose
// seal holds).
func (p *Tokens) ListRedirectURIs(ctx context.Context, appID string) ([]string, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{}
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		sp, err := p.app(ctx, tx, id, appID, "list redirect URIs")
		if err != nil {
			return err
		}
		uris, err := tx.RedirectURIs(ctx, sp.ID)
		for _, u := range uris {
			if p.rec.CheckRedirectURI(u) == nil {
				out = append(out, u.URI)
			}
		}
		return err
	})
	return out, err
}
