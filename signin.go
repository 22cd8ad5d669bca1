package keyhold

import (
	"context"
	"time"
)

// People's sign-in (issue 11): the OAuth2 device code grant (RFC 8628),
// the authorization code grant with PKCE (RFC 7636), and refresh tokens,
// in Entra ID's shape at /{tenant}/oauth2/v2.0/…. A person proves who they
// are on a page Keyhold serves, with the user name and password of their
// user account; the client that started the sign-in never sees them.

// CLIClientID is the client (application) id of the keyhold command line,
// the public client that every tenant accepts for the device code grant
// without registering it, as Entra ID accepts the Azure CLI's. Its tokens
// carry it as their appid.
const CLIClientID = "5f0b3c47-9a1e-4d6b-8c2f-6a7e1d9b0c43"

// Kinds and states of a SignInGrant.
const (
	GrantDevice = "device" // a device code
	GrantCode   = "code"   // an authorization code

	GrantPending  = "pending"  // a device code waiting for its person
	GrantApproved = "approved" // signed in; the client may redeem it once
	GrantDenied   = "denied"   // the person declined
	GrantRedeemed = "redeemed" // a token was issued: never again
)

// SignInGrant is a device code or an authorization code. The codes
// themselves are never stored: IDHash is the SHA-256 of the code and
// UserCodeHash that of the device code's user code, so that a copy of the
// database redeems nothing. A grant is approved by the person it then
// names (PrincipalID), and redeemed once.
type SignInGrant struct {
	IDHash       []byte
	Kind         string // GrantDevice or GrantCode
	UserCodeHash []byte // GrantDevice only
	TenantID     string
	ClientID     string
	Scope        string
	// RedirectURI and CodeChallenge (S256) are the authorization
	// request's (GrantCode only).
	RedirectURI   string
	CodeChallenge string
	State         string // GrantPending, …
	PrincipalID   string // who approved it; "" until then
	UPN           string
	Interval      int       // the least seconds between polls (GrantDevice)
	LastPoll      time.Time // zero until the first poll
	CreatedAt     time.Time
	ExpiresAt     time.Time
	// MAC seals the grant's identity fields under a key derived from the
	// master key (crypt.RecordKey.SealSignIn), so that a grant written
	// into the database by someone without the master key redeems
	// nothing.
	MAC []byte
}

// RefreshToken is a person's refresh token, stored as the SHA-256 of the
// opaque token. Tokens descend from one sign-in in a family: each use
// marks the token used and issues its successor, and the use of a token
// already used (a stolen copy, or the thief's) revokes the family.
type RefreshToken struct {
	Hash        []byte
	FamilyID    string
	TenantID    string
	PrincipalID string
	ClientID    string
	Scope       string
	// AccountStamp is the SHA-256 of the user's password hash when the
	// family began: a new password (or a removed account) ends it.
	AccountStamp []byte
	CreatedAt    time.Time
	ExpiresAt    time.Time
	UsedAt       time.Time // zero until it was exchanged
	Revoked      bool
	MAC          []byte // as SignInGrant's
}

// SignInTx is the part of a store transaction that keeps sign-in grants,
// refresh tokens and applications' redirect URIs. Lookups of missing items
// return CodeNotFound.
type SignInTx interface {
	// CreateSignInGrant stores a new grant: CodeConflict if its IDHash or
	// UserCodeHash is taken.
	CreateSignInGrant(ctx context.Context, g *SignInGrant) error
	SignInGrant(ctx context.Context, idHash []byte) (*SignInGrant, error)
	SignInGrantByUserCode(ctx context.Context, userCodeHash []byte) (*SignInGrant, error)
	// UpdateSignInGrant writes g's State, PrincipalID, UPN, Interval,
	// LastPoll and MAC if the stored State is still was: CodeConflict
	// otherwise, so that two redemptions of one code can't both win.
	UpdateSignInGrant(ctx context.Context, g *SignInGrant, was string) error
	// DeleteSignInGrants removes grants that expired before t.
	DeleteSignInGrants(ctx context.Context, expiredBefore time.Time) (int, error)

	// CreateRefreshToken stores a token: CodeNotFound if its principal is
	// unknown (deleting a principal deletes its tokens).
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	RefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error)
	// UseRefreshToken marks a token used at t if it was neither used nor
	// revoked: CodeConflict otherwise.
	UseRefreshToken(ctx context.Context, hash []byte, at time.Time) error
	// RevokeRefreshTokens revokes every token of a family.
	RevokeRefreshTokens(ctx context.Context, familyID string) (int, error)
	// RevokePrincipalRefreshTokens revokes every token of a principal.
	RevokePrincipalRefreshTokens(ctx context.Context, principalID string) (int, error)
	// DeleteRefreshTokens removes the tokens that expired before t.
	DeleteRefreshTokens(ctx context.Context, expiredBefore time.Time) (int, error)

	// AddRedirectURI registers a redirect URI on an application's
	// principal: CodeConflict if it is there, CodeNotFound if the
	// principal is unknown.
	AddRedirectURI(ctx context.Context, r *RedirectURI) error
	RemoveRedirectURI(ctx context.Context, principalID, uri string) error
	// RedirectURIs lists a principal's redirect URIs, by URI.
	RedirectURIs(ctx context.Context, principalID string) ([]*RedirectURI, error)
}

// RedirectURI is a redirect URI registered on an application.
type RedirectURI struct {
	PrincipalID string    `json:"-"`
	URI         string    `json:"uri"`
	AddedAt     time.Time `json:"addedAt"`
	MAC         []byte    `json:"-"` // as SignInGrant's
}

// DeviceAuthorization is the answer to a device authorization request,
// less the verification URI, which the http package knows.
type DeviceAuthorization struct {
	DeviceCode string
	UserCode   string
	ExpiresIn  int // seconds
	Interval   int // seconds between polls
}

// SignInAttempt is a person's credentials as entered on the sign-in page,
// and where they came from (for the audit trail).
type SignInAttempt struct {
	TenantID string
	UserName string // userPrincipalName, in any case
	Password string
	Source   string // the client's address
}

// AuthorizeRequest is an authorization code request (response_type=code).
type AuthorizeRequest struct {
	TenantID      string
	ClientID      string
	RedirectURI   string
	Scope         string
	CodeChallenge string // S256 only
}

// SignInService is people's sign-in. The platform implements it; the http
// package serves it at /{tenant}/oauth2/v2.0/… and on the sign-in page.
// Wrong user names or passwords are CodeInvalidGrant (one message for
// both); a code that is unknown, expired, redeemed or used by another
// client is CodeInvalidGrant too, and issues nothing.
type SignInService interface {
	// StartDeviceCode begins a device code sign-in for a public client.
	StartDeviceCode(ctx context.Context, tenantID, clientID, scope string) (*DeviceAuthorization, error)
	// RedeemDeviceCode is the client's poll: CodeAuthorizationPending
	// until the person approves, CodeSlowDown when polled faster than the
	// interval, CodeExpiredDeviceCode, CodeAccessDenied; then a token
	// with a refresh token, once.
	RedeemDeviceCode(ctx context.Context, tenantID, clientID, deviceCode string) (*Token, error)
	// ApproveDeviceCode signs the person in and approves (or, with
	// approve false, declines) the device code whose user code they
	// entered. Every attempt is audited.
	ApproveDeviceCode(ctx context.Context, a SignInAttempt, userCode string, approve bool) error

	// CheckAuthorize checks an authorization request before the sign-in
	// page is shown: a registered client and redirect URI, an S256 code
	// challenge, a known scope.
	CheckAuthorize(ctx context.Context, req *AuthorizeRequest) error
	// Authorize signs the person in and returns an authorization code
	// for req (checked again). Every attempt is audited.
	Authorize(ctx context.Context, a SignInAttempt, req *AuthorizeRequest) (code string, err error)
	// RedeemCode exchanges an authorization code, once, for a token with
	// a refresh token: the client, redirect URI and code verifier must
	// match the request's.
	RedeemCode(ctx context.Context, tenantID, clientID, code, redirectURI, verifier string) (*Token, error)

	// Refresh exchanges a refresh token for a new access token and the
	// refresh token's successor. scope "" keeps the family's scope.
	Refresh(ctx context.Context, tenantID, clientID, refreshToken, scope string) (*Token, error)
}

// RedirectURIs are the redirect URIs registered on applications, which
// the authorization code grant sends codes to (and nowhere else).
type RedirectURIs interface {
	// AddRedirectURI registers uri on the application whose client id is
	// appID (https, or http on a loopback address; no fragment).
	AddRedirectURI(ctx context.Context, appID, uri string) error
	RemoveRedirectURI(ctx context.Context, appID, uri string) error
	ListRedirectURIs(ctx context.Context, appID string) ([]string, error)
}
