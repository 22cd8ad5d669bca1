package platform

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Tokens is the token and identity service: access tokens for client
// credentials, users' passwords and managed identities (keyhold.TokenService),
// and the first start's customer tenant (identity.go).
type Tokens struct {
	*core
	tokTTL time.Duration // the lifetime of access tokens
	jtis   jtiCache      // client assertions already used (assertion.go)
	fed    federation    // federated issuers' keys (federated.go)
	// verified holds the tokens Authenticate has verified (verified.go).
	verified verifiedTokens
}

// tokenClaims are the claims of an access token, named as Entra ID names
// them so that tools which read tokens find what they expect.
type tokenClaims struct {
	jwt.RegisteredClaims
	// Aud is the one audience, a JSON string as Entra ID sends it (some
	// verifiers read aud only as a string); it shadows the embedded
	// Audience, which jwt would write as an array.
	Aud      audClaim `json:"aud"`
	TenantID string   `json:"tid"`
	ObjectID string   `json:"oid"`
	AppID    string   `json:"appid,omitempty"`
	// AZP is the v2.0 name of appid (the client the token was issued
	// to); both are sent, as services read either.
	AZP    string `json:"azp,omitempty"`
	IDType string `json:"idtyp"`
	// Version is "2.0": the issuer is the v2.0 one
	// ({base}/{tenant}/v2.0), and Entra ID pairs them so.
	Version string `json:"ver"`
	// UPN is a user's sign-in name, as Entra ID's "upn" claim.
	UPN string `json:"upn,omitempty"`
	// PType is the principal's type (keyhold.PrincipalType): Entra ID's
	// idtyp says only "app" or "user", which can't tell a managed
	// identity from a service principal.
	PType string `json:"keyhold_ptype,omitempty"`
}

// audClaim is the aud claim: written as a string, read as a string or,
// from tokens issued before it was a string, a one-element array.
type audClaim string

func (a *audClaim) UnmarshalJSON(b []byte) error {
	var s jwt.ClaimStrings
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if len(s) != 1 {
		return errors.New("the token must name exactly one audience")
	}
	*a = audClaim(s[0])
	return nil
}

var audiences = []keyhold.Audience{keyhold.AudienceManagement, keyhold.AudienceVault, keyhold.AudiencePowerApps, keyhold.AudienceManagedHSM, keyhold.AudienceFlow}

// oidcScopes are the OpenID Connect scopes MSAL adds to every request
// ("openid offline_access profile"); an access token's audience comes from
// the one resource scope beside them.
var oidcScopes = []string{"openid", "offline_access", "profile", "email"}

// audienceForScope maps an OAuth2 scope ("<resource>/.default") to its
// audience. A trailing slash on the resource is accepted, as Entra does.
// The scope may be a space-separated list, as MSAL sends it: the OpenID
// Connect scopes in it are ignored, and exactly one resource scope must
// remain.
func audienceForScope(scope string) (keyhold.Audience, bool) {
	var resource string
	for _, sc := range strings.Fields(scope) {
		if slices.Contains(oidcScopes, sc) {
			continue
		}
		if resource != "" {
			return "", false // two resources: Entra refuses them too
		}
		resource = sc
	}
	res, ok := strings.CutSuffix(resource, "/.default")
	if !ok {
		return "", false
	}
	res = strings.TrimSuffix(res, "/")
	for _, a := range audiences {
		if string(a) == res {
			return a, true
		}
	}
	return "", false
}

func (p *Tokens) issuerFor(tenantID string) string {
	return p.authorityFor(tenantID) + "/v2.0"
}

// authorityFor is the URL under which tenantID's identity endpoints are
// served: the issuer base followed by the tenant id.
func (p *Tokens) authorityFor(tenantID string) string {
	return strings.TrimSuffix(p.issuer, "/") + "/" + tenantID
}

// OpenIDTenant returns the issuer and authority of a tenant
// (keyhold.OpenIDProvider). A tenant id that names no tenant, including
// one that is not a GUID, is CodeInvalidTenant, with Entra ID's words.
func (p *Tokens) OpenIDTenant(ctx context.Context, tenantID string) (*keyhold.OpenIDTenant, error) {
	notFound := keyhold.Errorf(keyhold.CodeInvalidTenant, "Tenant '%s' not found. Check that the tenant id in the authority URL is the directory (tenant) id of a Keyhold tenant; `keyhold login` prints it.", keyhold.Clip(tenantID))
	id, err := uuid.Parse(tenantID)
	if err != nil || id.String() != strings.ToLower(tenantID) {
		return nil, notFound
	}
	tenantID = id.String()
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		_, err := tx.Tenant(ctx, tenantID)
		return err
	})
	switch {
	case keyhold.IsNotFound(err):
		return nil, notFound
	case err != nil:
		return nil, err
	}
	return &keyhold.OpenIDTenant{TenantID: tenantID, Issuer: p.issuerFor(tenantID), Authority: p.authorityFor(tenantID)}, nil
}

// IssueToken checks a client-credentials grant and returns a signed token.
func (p *Tokens) IssueToken(ctx context.Context, tenantID, clientID, clientSecret, scope string) (*keyhold.Token, error) {
	aud, ok := audienceForScope(scope)
	if !ok {
		return nil, scopeError(scope)
	}
	badClient := keyhold.Errorf(keyhold.CodeInvalidClient, "invalid client credentials for tenant %q: check the tenant id, client id and client secret", tenantID)
	if _, err := uuid.Parse(tenantID); err != nil {
		return nil, badClient
	}
	var sp *keyhold.Principal
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if sp, err = tx.PrincipalByAppID(ctx, tenantID, clientID); err != nil {
			return err
		}
		creds, err := tx.Credentials(ctx, sp.ID)
		if err != nil {
			return err
		}
		now := p.clock.Now()
		for _, c := range creds {
			if len(c.Certificate) > 0 {
				continue // a certificate credential signs assertions; it is no secret
			}
			if crypt.CheckClientSecret(c.SecretHash, clientSecret) && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)) {
				return nil
			}
		}
		return badClient
	})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		err = badClient
	}
	if keyhold.ErrorCode(err) == keyhold.CodeInvalidClient {
		p.auditAppSignIn(ctx, "signIn.clientSecret", "", tenantID, clientID, sp, "wrong client id or secret, or an expired secret")
		return nil, err
	} else if err != nil {
		return nil, err
	}
	p.auditAppSignIn(ctx, "signIn.clientSecret", "token issued for a client secret", tenantID, clientID, sp, "")
	return p.mint(sp, "", aud)
}

// mint signs a token for principal pr (upn: a user's sign-in name) and
// audience aud.
func (p *Tokens) mint(pr *keyhold.Principal, upn string, aud keyhold.Audience) (*keyhold.Token, error) {
	now := p.clock.Now().Truncate(time.Second)
	idType := "app"
	if pr.Type == keyhold.PrincipalUser {
		idType = "user"
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    p.issuerFor(pr.TenantID),
			Subject:   pr.ID,
			ExpiresAt: jwt.NewNumericDate(now.Add(p.tokTTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Aud:      audClaim(aud),
		TenantID: pr.TenantID,
		ObjectID: pr.ID,
		AppID:    pr.AppID,
		AZP:      pr.AppID,
		IDType:   idType,
		Version:  "2.0",
		UPN:      upn,
		PType:    string(pr.Type),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	// The key set at {authority}/discovery/v2.0/keys names the key by
	// this kid, so that a verifier picks it as it does Entra ID's.
	tok.Header["kid"] = p.signingKID()
	signed, err := tok.SignedString(p.signer)
	if err != nil {
		return nil, err
	}
	secs := int(p.tokTTL / time.Second)
	return &keyhold.Token{AccessToken: signed, TokenType: "Bearer", ExpiresIn: secs, ExtExpires: secs}, nil
}

// scopeError is the error for a scope Keyhold does not serve.
func scopeError(scope string) error {
	return keyhold.Errorf(keyhold.CodeInvalidScope, "scope %q is not supported: ask for one of %s/.default, %s/.default or %s/.default",
		scope, keyhold.AudienceManagement, keyhold.AudienceVault, keyhold.AudiencePowerApps)
}

// IssuePasswordToken checks a resource owner password credentials (ROPC)
// grant: a user's sign-in name (userPrincipalName, in any case) and
// password. It returns a token for the audience scope names. A wrong or
// unknown user name or password is CodeInvalidGrant, with one message for
// both so that names can't be probed; an unknown scope is CodeInvalidScope.
// Checking a password is deliberately slow (argon2id).
func (p *Tokens) IssuePasswordToken(ctx context.Context, tenantID, username, password, scope string) (*keyhold.Token, error) {
	aud, ok := audienceForScope(scope)
	if !ok {
		return nil, scopeError(scope)
	}
	badGrant := keyhold.Errorf(keyhold.CodeInvalidGrant, "error validating credentials due to invalid username or password in tenant %q", tenantID)
	if _, err := uuid.Parse(tenantID); err != nil {
		crypt.CheckNoPassword(password)
		return nil, badGrant
	}
	var (
		user *keyhold.Principal
		acct *keyhold.UserAccount
	)
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if acct, err = tx.UserAccountByUPN(ctx, tenantID, username); err != nil {
			return err
		}
		user, err = tx.Principal(ctx, acct.PrincipalID)
		return err
	})
	switch {
	case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
		crypt.CheckNoPassword(password)
		return nil, badGrant
	case err != nil:
		return nil, err
	case user.Type != keyhold.PrincipalUser || !crypt.CheckPassword(acct.PasswordHash, password):
		return nil, badGrant
	}
	return p.mint(user, acct.UserPrincipalName, aud)
}

// TokenFor mints a token for one of the platform's own managed identities,
// which have no secret: the platform acts as them, in-process (for example
// to reach a customer's key vault as an enterprise policy's identity). It
// refuses (CodeForbidden) any principal that is not a managed identity, so
// that it can't be used to impersonate users or applications.
func (p *Tokens) TokenFor(ctx context.Context, principalID string, aud keyhold.Audience) (*keyhold.Token, error) {
	if !slices.Contains(audiences, aud) {
		return nil, scopeError(string(aud) + "/.default")
	}
	var pr *keyhold.Principal
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		pr, err = tx.Principal(ctx, principalID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if pr.Type != keyhold.PrincipalManagedIdentity {
		return nil, keyhold.Errorf(keyhold.CodeForbidden, "principal %s is a %s: the platform mints tokens only for its managed identities", principalID, pr.Type)
	}
	return p.mint(pr, "", aud)
}

// Authenticate verifies a bearer token and returns its identity.
func (p *Tokens) Authenticate(ctx context.Context, bearer string) (*keyhold.Identity, error) {
	now := p.clock.Now()
	if id, ok := p.verified.get(bearer, now); ok {
		return id, nil
	}
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(bearer, &claims, func(*jwt.Token) (any, error) { return &p.signer.PublicKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithTimeFunc(p.clock.Now),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, keyhold.Errorf(keyhold.CodeExpiredToken, "the access token expired at %s: get a new one from the token endpoint",
			claims.ExpiresAt.UTC().Format(time.RFC3339))
	case err != nil:
		return nil, keyhold.Errorf(keyhold.CodeInvalidToken, "the access token is not valid (%s): get a new one from POST /{tenantId}/oauth2/v2.0/token", jwtReason(err))
	case claims.Issuer != p.issuerFor(claims.TenantID) || claims.Aud == "":
		return nil, keyhold.Errorf(keyhold.CodeInvalidToken, "the access token was not issued by this server: get one from its token endpoint")
	}
	typ := keyhold.PrincipalType(claims.PType)
	switch typ {
	case keyhold.PrincipalUser, keyhold.PrincipalServicePrincipal, keyhold.PrincipalManagedIdentity:
	case "":
		typ = keyhold.PrincipalServicePrincipal // a token from before the claim existed
	default:
		return nil, keyhold.Errorf(keyhold.CodeInvalidToken, "the access token names an unknown principal type: get a new one from its token endpoint")
	}
	id := &keyhold.Identity{
		TenantID:    claims.TenantID,
		PrincipalID: claims.ObjectID,
		AppID:       claims.AppID,
		Type:        typ,
		Audience:    keyhold.Audience(claims.Aud),
	}
	p.verified.put(bearer, id, claims.ExpiresAt.Time, now)
	return id, nil
}

// jwtReason names a token failure without echoing the token.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	}
	return "rejected"
}

// sealAccessRecords installs the record key as the store's sealer of
// access records (keyhold.SealingStore): client secrets' and users'
// password hashes, role assignments and directory roles are sealed as
// they are written, and a record whose seal fails is treated as absent by
// every read, so that a secret hash inserted into the database signs no
// one in (the token endpoint answers as for a wrong secret) and an
// inserted grant authorizes nothing. Each such record is logged at Error
// level and audited (integrity.refused). Then, at the first start after
// the upgrade, it seals the records written before (see
// keyhold.SealingStore.SealAccessRecords), auditing each (integrity.seal).
// A store that is not a SealingStore is refused: the platform would
// otherwise trust whatever the database says about who may do what.
func (p *core) sealAccessRecords(ctx context.Context) error {
	ss, ok := p.store.(keyhold.SealingStore)
	if !ok {
		return keyhold.Errorf(keyhold.CodeInternal, "the store (%T) can't seal access records: use the sqlite or postgres store", p.store)
	}
	ss.SetRecordSealer(p.rec, func(ctx context.Context, rs []keyhold.RefusedRecord) {
		for _, r := range rs {
			p.auditTamper(ctx, r.TenantID, r.Target, "authentication or authorization with it", r.Err)
		}
	})
	sealed, left, err := ss.SealAccessRecords(ctx, func(tx keyhold.Tx, tenant, target string) error {
		_, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: p.clock.Now(), TenantID: tenant, ActorID: systemActorID,
			Action: "integrity.seal", Target: target,
			Detail: "sealed at the first start after the upgrade to sealed credentials and role assignments"})
		return err
	})
	if err != nil {
		return fmt.Errorf("sealing the credentials and role assignments written before this version: %w", err)
	}
	if sealed > 0 {
		p.log.WarnContext(ctx, "platform: sealed the credentials and role assignments written before this version; check the audit entries integrity.seal if the database may have been written by others before the upgrade", "records", sealed)
	}
	if left > 0 {
		p.log.ErrorContext(ctx, "platform: credentials or role assignments have no integrity seal although this server seals every one it writes: they were written outside Keyhold and are ignored", "records", left)
	}
	return nil
}
