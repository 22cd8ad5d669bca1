package keyhold

import "context"

// ConnectionClientID is the client id of the refresh tokens OAuth
// connections hold (issue 15): a grant of the sign-in machinery to the
// principal who made the connection, for that connection alone. The token
// endpoint refuses it, so a connection's token is redeemed only in
// process, by its connection's actions.
const ConnectionClientID = "7d3a9e21-4c6b-4f0e-b5a8-2e9c1f7d4b60"

// ConnectionGrants are the refresh-token grants OAuth connections hold
// (issue 15), kept by the sign-in machinery (platform) for the flows
// package, which never mints or checks a token itself. Each method works
// in the caller's transaction tx, so that the grant and the connection
// that holds it are written together. connKey names the connection
// (environment, api, name): every grant of one connection is of one
// family, so that revoking the connection's family revokes all of them.
//
// Tokens are chosen by the caller (random, crypt.NewSignInSecret) and
// sealed before tx begins, as a seal may unwrap a key and must not hold a
// write transaction open; the store keeps only their hashes.
//
// Refusals are CodeInvalidGrant with Entra ID's error number as the
// error's Inner (as the token endpoint's refresh grant: the same checks,
// the same code path), and they may have written a revocation to tx (a
// token used twice revokes its family) that the caller should commit.
type ConnectionGrants interface {
	// GrantConnection stores token as the first refresh token of
	// connKey's family for the caller id (its own principal, nobody
	// else's), scoped to the data plane, after revoking every earlier
	// token of the family (a re-authentication replaces the grant).
	GrantConnection(ctx context.Context, tx Tx, id *Identity, connKey, token string) error
	// RedeemConnection redeems token as the token endpoint redeems a
	// refresh token (revoked, expired, used twice, a removed principal,
	// a changed password: refused), stores next as its successor, and
	// returns the principal's short-lived access identity for the data
	// plane. A token of another connection's family (a copy's, restored
	// into another environment) is refused without being used, so that
	// the copy can't revoke the original's grant.
	RedeemConnection(ctx context.Context, tx Tx, tenantID, connKey, token, next string) (*Identity, error)
	// CheckConnection says whether token would redeem for connKey,
	// changing nothing: a connection's status.
	CheckConnection(ctx context.Context, tx Tx, tenantID, connKey, token string) error
	// RevokeConnection revokes every token of connKey's family (the
	// connection was deleted).
	RevokeConnection(ctx context.Context, tx Tx, connKey string) error
}
