package platform

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// tokenClaims are the claims of an access token, named as Entra ID names
// them so that tools which read tokens find what they expect.
type tokenClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	AppID    string `json:"appid,omitempty"`
	IDType   string `json:"idtyp"`
}

var audiences = []keyhold.Audience{keyhold.AudienceManagement, keyhold.AudienceVault, keyhold.AudiencePowerApps}

// audienceForScope maps an OAuth2 scope ("<resource>/.default") to its
// audience. A trailing slash on the resource is accepted, as Entra does.
func audienceForScope(scope string) (keyhold.Audience, bool) {
	res, ok := strings.CutSuffix(strings.TrimSpace(scope), "/.default")
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

func (p *Platform) issuerFor(tenantID string) string {
	return strings.TrimSuffix(p.issuer, "/") + "/" + tenantID + "/v2.0"
}

// IssueToken checks a client-credentials grant and returns a signed token.
func (p *Platform) IssueToken(ctx context.Context, tenantID, clientID, clientSecret, scope string) (*keyhold.Token, error) {
	aud, ok := audienceForScope(scope)
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeInvalidScope, "scope %q is not supported: ask for one of %s/.default, %s/.default or %s/.default",
			scope, keyhold.AudienceManagement, keyhold.AudienceVault, keyhold.AudiencePowerApps)
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
			if crypt.CheckClientSecret(c.SecretHash, clientSecret) && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)) {
				return nil
			}
		}
		return badClient
	})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil, badClient
	} else if err != nil {
		return nil, err
	}
	now := p.clock.Now().Truncate(time.Second)
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    p.issuerFor(tenantID),
			Subject:   sp.ID,
			Audience:  jwt.ClaimStrings{string(aud)},
			ExpiresAt: jwt.NewNumericDate(now.Add(p.tokTTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		TenantID: tenantID,
		ObjectID: sp.ID,
		AppID:    sp.AppID,
		IDType:   "app",
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(p.signer)
	if err != nil {
		return nil, err
	}
	secs := int(p.tokTTL / time.Second)
	return &keyhold.Token{AccessToken: signed, TokenType: "Bearer", ExpiresIn: secs, ExtExpires: secs}, nil
}

// Authenticate verifies a bearer token and returns its identity.
func (p *Platform) Authenticate(ctx context.Context, bearer string) (*keyhold.Identity, error) {
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
	case claims.Issuer != p.issuerFor(claims.TenantID) || len(claims.Audience) != 1:
		return nil, keyhold.Errorf(keyhold.CodeInvalidToken, "the access token was not issued by this server: get one from its token endpoint")
	}
	return &keyhold.Identity{
		TenantID:    claims.TenantID,
		PrincipalID: claims.ObjectID,
		AppID:       claims.AppID,
		Type:        keyhold.PrincipalServicePrincipal,
		Audience:    keyhold.Audience(claims.Audience[0]),
	}, nil
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
