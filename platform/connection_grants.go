package platform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// OAuth connections' grants (keyhold.ConnectionGrants, issue 15): a
// connection holds a refresh token of the principal who made it, issued
// and redeemed by the same code as the token endpoint's refresh grant
// (refreshCheck, refreshUse, storeRefresh), so that signing out
// everywhere, a new password, a removed user or a revoked grant stops
// the connection's actions exactly as it stops the person's own sign-ins.
// The tokens' client is keyhold.ConnectionClientID, which the token
// endpoint refuses: a connection's token works only in its connection.

var _ keyhold.ConnectionGrants = (*ConnectionGrants)(nil)

// ConnectionGrants keeps OAuth connections' refresh-token grants for the
// flows package. It is safe for concurrent use; each method works in its
// caller's transaction.
type ConnectionGrants struct {
	t *Tokens
}

// connectionNS is the UUID namespace of connections' token families.
var connectionNS = uuid.MustParse("b3f1c6e2-5d84-4a7b-9e20-6c1f0a8d3e57")

// connectionFamily is the token family of a connection: one per
// connection, so that its deletion (or a re-authentication) revokes every
// token it ever held without opening its seal.
func connectionFamily(connKey string) string {
	return uuid.NewSHA1(connectionNS, []byte(connKey)).String()
}

// connectionScope is what a connection's grant is good for: the data plane.
const connectionScope = string(keyhold.AudiencePowerApps) + "/.default"

// GrantConnection stores the first token of connKey's family for the
// caller id, after revoking the family's earlier tokens.
func (g *ConnectionGrants) GrantConnection(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, connKey, token string) error {
	if id == nil || token == "" {
		return errors.New("platform: GrantConnection needs the caller and a token")
	}
	pr, err := tx.Principal(ctx, id.PrincipalID)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound || (err == nil && pr.TenantID != id.TenantID) {
		return keyhold.Errorf(keyhold.CodeUnauthorized, "principal %s of your token was not found in tenant %s: sign in again", id.PrincipalID, id.TenantID)
	} else if err != nil {
		return err
	}
	var acct *keyhold.UserAccount
	if pr.Type == keyhold.PrincipalUser {
		if acct, err = tx.UserAccount(ctx, pr.ID); keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return keyhold.Errorf(keyhold.CodeForbidden, "user %s has no account to sign in with, so an OAuth connection can't act as them: give the user a password first", pr.ID)
		} else if err != nil {
			return err
		}
	}
	now := g.t.clock.Now().UTC()
	family := connectionFamily(connKey)
	if _, err := tx.RevokeRefreshTokens(ctx, family); err != nil {
		return err
	}
	if err := storeRefresh(ctx, g.t, tx, pr, acct, keyhold.ConnectionClientID, connectionScope, family, token, now); err != nil {
		return err
	}
	_, err = keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: now, TenantID: pr.TenantID, ActorID: pr.ID, Action: "connection.grant",
		Target: "/connections/" + connKey, Detail: "granted a refresh token to the connection; family " + family})
	return err
}

// RedeemConnection redeems a connection's token with the refresh grant's
// checks, stores next as its successor and returns the principal's access
// identity for the data plane.
func (g *ConnectionGrants) RedeemConnection(ctx context.Context, tx keyhold.Tx, tenantID, connKey, token, next string) (*keyhold.Identity, error) {
	now := g.t.clock.Now().UTC()
	var tamper tampered
	u, why, err := refreshCheck(ctx, g.t, tx, tenantID, keyhold.ConnectionClientID, token, now, &tamper)
	if err != nil {
		return nil, errors.Join(err, tamperIn(ctx, g.t, tx, tamper))
	}
	if err := sameConnection(u.rt, connKey); err != nil {
		return nil, err
	}
	refused, err := refreshUse(ctx, g.t, tx, u, why, now)
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	if err := storeRefresh(ctx, g.t, tx, u.holder, u.acct, keyhold.ConnectionClientID, u.rt.Scope, u.rt.FamilyID, next, now); err != nil {
		return nil, err
	}
	aud, _, err := resourceScope(u.rt.Scope)
	if err != nil {
		return nil, err
	}
	return &keyhold.Identity{TenantID: u.holder.TenantID, PrincipalID: u.holder.ID, AppID: u.holder.AppID, Type: u.holder.Type, Audience: aud}, nil
}

// CheckConnection says whether a connection's token would redeem.
func (g *ConnectionGrants) CheckConnection(ctx context.Context, tx keyhold.Tx, tenantID, connKey, token string) error {
	var tamper tampered
	u, why, err := refreshCheck(ctx, g.t, tx, tenantID, keyhold.ConnectionClientID, token, g.t.clock.Now().UTC(), &tamper)
	if tamper.err != nil {
		g.t.log.ErrorContext(ctx, "refused a record changed outside Keyhold", "action", "a connection's status", "target", tamper.target, "err", keyhold.ErrorMessage(tamper.err))
	}
	if err != nil {
		return err
	}
	if err := sameConnection(u.rt, connKey); err != nil {
		return err
	}
	if why != "" {
		return oauthError(keyhold.CodeInvalidGrant, aadstsRevoked, "%s: the grant is no longer valid", why)
	}
	return nil
}

// sameConnection refuses a token of another connection's family: a
// connection restored or copied into another environment holds its
// original's token, which it must neither use nor (as a token used twice)
// revoke.
func sameConnection(rt *keyhold.RefreshToken, connKey string) error {
	if rt.FamilyID != connectionFamily(connKey) {
		return oauthError(keyhold.CodeInvalidGrant, aadstsBadCode, "the grant was made for another connection (this one is a copy, or was restored elsewhere)")
	}
	return nil
}

// RevokeConnection revokes every token of connKey's family.
func (g *ConnectionGrants) RevokeConnection(ctx context.Context, tx keyhold.Tx, connKey string) error {
	_, err := tx.RevokeRefreshTokens(ctx, connectionFamily(connKey))
	return err
}

// tamperIn audits t, if any, in tx (the caller's, which commits a refusal's
// writes), as auditTamper does in a transaction of its own.
func tamperIn(ctx context.Context, p *Tokens, tx keyhold.Tx, t tampered) error {
	if t.err == nil {
		return nil
	}
	p.log.ErrorContext(ctx, "refused a record changed outside Keyhold", "action", "a connection's action", "target", t.target, "err", keyhold.ErrorMessage(t.err))
	_, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: p.clock.Now(), TenantID: t.tenant, ActorID: systemActorID,
		Action: auditIntegrity, Target: t.target, Result: keyhold.CodeRecordIntegrity,
		Detail: fmt.Sprintf("a connection's action refused: %s", keyhold.ErrorMessage(t.err))})
	return err
}

// heldRefresh is a refresh token that passed refreshCheck, and its holder
// (acct nil: a connection's service principal or managed identity).
type heldRefresh struct {
	rt     *keyhold.RefreshToken
	holder *keyhold.Principal
	acct   *keyhold.UserAccount
}

// refreshCheck is the refresh grant's checks of a token, in tx, writing
// nothing: an error refuses it outright; why, if not "", is a refusal
// that revokes the token's family when the token is used (refreshUse): a
// token used before, a removed user, a changed password.
func refreshCheck(ctx context.Context, p *Tokens, tx keyhold.Tx, tenantID, clientID, token string, now time.Time, tamper *tampered) (*heldRefresh, string, error) {
	bad := oauthError(keyhold.CodeInvalidGrant, aadstsBadCode, "the refresh token is not valid: it may be cut off, or for another tenant; sign in again")
	if token == "" {
		return nil, "", bad
	}
	rt, err := tx.RefreshToken(ctx, crypt.SignInHash(token))
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
		return nil, "", bad
	case err != nil:
		return nil, "", err
	case rt.TenantID != tenantID:
		return nil, "", bad
	case p.rec.CheckRefreshToken(rt) != nil:
		*tamper = tampered{rt.TenantID, "refresh token", p.rec.CheckRefreshToken(rt)}
		return nil, "", bad
	case rt.ClientID != clientID:
		return nil, "", oauthError(keyhold.CodeInvalidGrant, aadstsBadCode, "the refresh token was issued to another client: refresh with the client_id that signed in")
	case rt.Revoked:
		return nil, "", oauthError(keyhold.CodeInvalidGrant, aadstsRevoked, "the refresh token was revoked: sign in again")
	case !now.Before(rt.ExpiresAt):
		return nil, "", oauthError(keyhold.CodeInvalidGrant, aadstsExpiredCode, "the refresh token expired at %s: sign in again", rt.ExpiresAt.Format(time.RFC3339))
	}
	u := &heldRefresh{rt: rt}
	if !rt.UsedAt.IsZero() {
		return u, "the refresh token was already used (a copy of it is in other hands)", nil
	}
	u.holder, u.acct, err = holderOf(ctx, tx, rt)
	if keyhold.ErrorClass(err) == keyhold.ClassInvalid {
		return u, "the user was removed", nil
	} else if err != nil {
		return nil, "", err
	}
	if !crypt.SameStamp(holderStamp(u.holder, u.acct), rt.AccountStamp) {
		return u, "the user's password changed since this sign-in", nil
	}
	return u, "", nil
}

// refreshUse marks a checked token used, in tx, or revokes its family
// (why, or a racing use of the same token): refused is then the refusal,
// whose revocation the caller commits.
func refreshUse(ctx context.Context, p *Tokens, tx keyhold.Tx, u *heldRefresh, why string, now time.Time) (refused, err error) {
	revoke := func(why string) (error, error) {
		if _, err := tx.RevokeRefreshTokens(ctx, u.rt.FamilyID); err != nil {
			return nil, err
		}
		_, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: now, TenantID: u.rt.TenantID, ActorID: u.rt.PrincipalID, Action: "signin.refresh.revoke",
			Target: "/tenants/" + u.rt.TenantID + "/principals/" + u.rt.PrincipalID, Result: "Failed", Detail: why + "; family " + u.rt.FamilyID})
		if err != nil {
			return nil, err
		}
		return oauthError(keyhold.CodeInvalidGrant, aadstsRevoked, "%s: every refresh token of this sign-in is revoked; sign in again", why), nil
	}
	if why != "" {
		return revoke(why)
	}
	if err := tx.UseRefreshToken(ctx, u.rt.Hash, now); err != nil {
		if keyhold.ErrorCode(err) == keyhold.CodeConflict { // a racing use of the same token
			return revoke("the refresh token was already used (a copy of it is in other hands)")
		}
		return nil, err
	}
	return nil, nil
}

// holderOf returns the principal a refresh token was issued to: a user
// and their account, or, for a connection's grant, also a service
// principal or managed identity (which have no account). A removed one is
// an invalid_grant.
func holderOf(ctx context.Context, tx keyhold.Tx, rt *keyhold.RefreshToken) (*keyhold.Principal, *keyhold.UserAccount, error) {
	if rt.ClientID == keyhold.ConnectionClientID {
		pr, err := tx.Principal(ctx, rt.PrincipalID)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return nil, nil, oauthError(keyhold.CodeInvalidGrant, aadstsRevoked, "the principal was removed: sign in again")
		} else if err != nil {
			return nil, nil, err
		}
		if pr.Type != keyhold.PrincipalUser {
			return pr, nil, nil
		}
	}
	return userOf(ctx, tx, rt.PrincipalID)
}

// holderStamp is a refresh token's account stamp: the user's password
// hash's, so that a new password ends the family; a principal without an
// account (a connection's service principal) has one that never changes:
// its grants end when revoked or when it is removed.
func holderStamp(holder *keyhold.Principal, acct *keyhold.UserAccount) []byte {
	if acct != nil {
		return crypt.AccountStamp(acct.PasswordHash)
	}
	return crypt.AccountStamp([]byte("keyhold principal without an account " + holder.ID))
}
