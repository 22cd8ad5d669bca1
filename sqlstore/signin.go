package sqlstore

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
)

// People's sign-in (keyhold.SignInTx): device and authorization codes,
// refresh tokens and redirect URIs, kept by hash. The platform seals and
// checks each row's mac; the store only keeps it.

// nullBlob is b, or NULL for an empty b, so that a unique index over the
// column ignores rows without a value.
func nullBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// CreateSignInGrant stores a new grant.
func (t *tx) CreateSignInGrant(ctx context.Context, g *keyhold.SignInGrant) error {
	if err := checkTimes(g.LastPoll, g.CreatedAt, g.ExpiresAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO signin_grants (id_hash, kind, user_code_hash, tenant_id, client_id, scope, redirect_uri, code_challenge,
		state, principal_id, upn, poll_interval, last_poll, created_at, expires_at, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		blob(g.IDHash), g.Kind, nullBlob(g.UserCodeHash), g.TenantID, g.ClientID, g.Scope, g.RedirectURI, g.CodeChallenge,
		g.State, g.PrincipalID, g.UPN, g.Interval, nanos(g.LastPoll), nanos(g.CreatedAt), nanos(g.ExpiresAt), g.MAC)
	if t.class(err) == ErrUnique {
		return keyhold.Errorf(keyhold.CodeConflict, "a sign-in grant with this code exists").WithCause(err)
	} else if err != nil {
		return t.fail("create sign-in grant", err)
	}
	return nil
}

const grantCols = `id_hash, kind, user_code_hash, tenant_id, client_id, scope, redirect_uri, code_challenge,
	state, principal_id, upn, poll_interval, last_poll, created_at, expires_at, mac`

func scanGrant(sc scanner) (*keyhold.SignInGrant, error) {
	g := &keyhold.SignInGrant{}
	err := sc.Scan(&g.IDHash, &g.Kind, &g.UserCodeHash, &g.TenantID, &g.ClientID, &g.Scope, &g.RedirectURI, &g.CodeChallenge,
		&g.State, &g.PrincipalID, &g.UPN, &g.Interval, timeCol{&g.LastPoll}, timeCol{&g.CreatedAt}, timeCol{&g.ExpiresAt}, &g.MAC)
	return g, err
}

// SignInGrant returns the grant whose code hashes to idHash.
func (t *tx) SignInGrant(ctx context.Context, idHash []byte) (*keyhold.SignInGrant, error) {
	g, err := get(t, ctx, "get sign-in grant", scanGrant, `SELECT `+grantCols+` FROM signin_grants WHERE id_hash = ?`, blob(idHash))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "no such sign-in grant"))
	}
	return g, nil
}

// SignInGrantByUserCode returns the device code grant whose user code
// hashes to userCodeHash.
func (t *tx) SignInGrantByUserCode(ctx context.Context, userCodeHash []byte) (*keyhold.SignInGrant, error) {
	g, err := get(t, ctx, "get sign-in grant by user code", scanGrant, `SELECT `+grantCols+` FROM signin_grants WHERE user_code_hash = ?`, blob(userCodeHash))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "no such user code"))
	}
	return g, nil
}

// UpdateSignInGrant writes g's changing fields if its stored state is was.
func (t *tx) UpdateSignInGrant(ctx context.Context, g *keyhold.SignInGrant, was string) error {
	if err := checkTimes(g.LastPoll); err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE signin_grants SET state = ?, principal_id = ?, upn = ?, poll_interval = ?, last_poll = ?, mac = ?
		WHERE id_hash = ? AND state = ?`, g.State, g.PrincipalID, g.UPN, g.Interval, nanos(g.LastPoll), g.MAC, blob(g.IDHash), was)
	if err != nil {
		return t.fail("update sign-in grant", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "the sign-in grant is no longer %s", was)
	}
	return nil
}

// DeleteSignInGrants removes the grants that expired before at.
func (t *tx) DeleteSignInGrants(ctx context.Context, at time.Time) (int, error) {
	n, err := t.execN(ctx, `DELETE FROM signin_grants WHERE expires_at < ?`, nanos(at))
	if err != nil {
		return 0, t.fail("delete sign-in grants", err)
	}
	return int(n), nil
}

// CreateRefreshToken stores a refresh token.
func (t *tx) CreateRefreshToken(ctx context.Context, r *keyhold.RefreshToken) error {
	if err := checkTimes(r.CreatedAt, r.ExpiresAt, r.UsedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, principal_id, client_id, scope, account_stamp,
		created_at, expires_at, used_at, revoked, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		blob(r.Hash), r.FamilyID, r.TenantID, r.PrincipalID, r.ClientID, r.Scope, blob(r.AccountStamp),
		nanos(r.CreatedAt), nanos(r.ExpiresAt), nanos(r.UsedAt), r.Revoked, r.MAC)
	switch {
	case err == nil:
		return nil
	case t.class(err) == ErrForeignKey:
		return keyhold.Errorf(keyhold.CodeNotFound, "principal %q not found", r.PrincipalID).WithCause(err)
	case t.class(err) == ErrUnique:
		return keyhold.Errorf(keyhold.CodeConflict, "the refresh token exists").WithCause(err)
	}
	return t.fail("create refresh token", err)
}

// RefreshToken returns the refresh token that hashes to hash.
func (t *tx) RefreshToken(ctx context.Context, hash []byte) (*keyhold.RefreshToken, error) {
	r, err := get(t, ctx, "get refresh token", func(sc scanner) (*keyhold.RefreshToken, error) {
		r := &keyhold.RefreshToken{}
		err := sc.Scan(&r.Hash, &r.FamilyID, &r.TenantID, &r.PrincipalID, &r.ClientID, &r.Scope, &r.AccountStamp,
			timeCol{&r.CreatedAt}, timeCol{&r.ExpiresAt}, timeCol{&r.UsedAt}, boolCol{&r.Revoked}, &r.MAC)
		return r, err
	}, `SELECT token_hash, family_id, tenant_id, principal_id, client_id, scope, account_stamp, created_at, expires_at, used_at, revoked, mac
		FROM refresh_tokens WHERE token_hash = ?`, blob(hash))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "no such refresh token"))
	}
	return r, nil
}

// UseRefreshToken marks a token used, once.
func (t *tx) UseRefreshToken(ctx context.Context, hash []byte, at time.Time) error {
	if err := checkTimes(at); err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at = ? AND revoked = ?`,
		nanos(at), blob(hash), nanos(time.Time{}), false)
	if err != nil {
		return t.fail("use refresh token", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "the refresh token was used or revoked")
	}
	return nil
}

// RevokeRefreshTokens revokes a family.
func (t *tx) RevokeRefreshTokens(ctx context.Context, familyID string) (int, error) {
	n, err := t.execN(ctx, `UPDATE refresh_tokens SET revoked = ? WHERE family_id = ? AND revoked = ?`, true, familyID, false)
	if err != nil {
		return 0, t.fail("revoke refresh tokens", err)
	}
	return int(n), nil
}

// RevokePrincipalRefreshTokens revokes every token of a principal.
func (t *tx) RevokePrincipalRefreshTokens(ctx context.Context, principalID string) (int, error) {
	n, err := t.execN(ctx, `UPDATE refresh_tokens SET revoked = ? WHERE principal_id = ? AND revoked = ?`, true, principalID, false)
	if err != nil {
		return 0, t.fail("revoke refresh tokens", err)
	}
	return int(n), nil
}

// DeleteRefreshTokens removes the refresh tokens that expired before at.
func (t *tx) DeleteRefreshTokens(ctx context.Context, at time.Time) (int, error) {
	n, err := t.execN(ctx, `DELETE FROM refresh_tokens WHERE expires_at < ?`, nanos(at))
	if err != nil {
		return 0, t.fail("delete refresh tokens", err)
	}
	return int(n), nil
}

// AddRedirectURI registers a redirect URI on an application's principal.
func (t *tx) AddRedirectURI(ctx context.Context, r *keyhold.RedirectURI) error {
	if err := checkTimes(r.AddedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO redirect_uris (principal_id, uri, added_at, mac) VALUES (?, ?, ?, ?)`,
		r.PrincipalID, r.URI, nanos(r.AddedAt), r.MAC)
	switch {
	case err == nil:
		return nil
	case t.class(err) == ErrUnique:
		return keyhold.Errorf(keyhold.CodeConflict, "redirect URI %q is already registered", keyhold.Clip(r.URI)).WithCause(err)
	case t.class(err) == ErrForeignKey:
		return keyhold.Errorf(keyhold.CodeNotFound, "principal %q not found", r.PrincipalID).WithCause(err)
	}
	return t.fail("add redirect URI", err)
}

// RemoveRedirectURI removes a registered redirect URI, or answers
// CodeNotFound.
func (t *tx) RemoveRedirectURI(ctx context.Context, principalID, uri string) error {
	n, err := t.execN(ctx, `DELETE FROM redirect_uris WHERE principal_id = ? AND uri = ?`, principalID, uri)
	if err != nil {
		return t.fail("remove redirect URI", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "redirect URI %q is not registered", keyhold.Clip(uri))
	}
	return nil
}

// RedirectURIs lists a principal's redirect URIs by URI.
func (t *tx) RedirectURIs(ctx context.Context, principalID string) ([]*keyhold.RedirectURI, error) {
	return list(t, ctx, "list redirect URIs", func(sc scanner) (*keyhold.RedirectURI, error) {
		r := &keyhold.RedirectURI{}
		err := sc.Scan(&r.PrincipalID, &r.URI, timeCol{&r.AddedAt}, &r.MAC)
		return r, err
	}, `SELECT principal_id, uri, added_at, mac FROM redirect_uris WHERE principal_id = ? ORDER BY uri`, principalID)
}
