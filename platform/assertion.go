package platform

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Client assertions (RFC 7523 client authentication, Entra ID's
// certificate credentials): a JWT the application signs with its
// certificate's key, RS256 or PS256, whose header names the certificate
// (x5t#S256 or x5t) and whose claims are aud = the token endpoint,
// iss = sub = the client id, a jti, exp and nbf. Each refusal is
// CodeInvalidClient with Entra ID's AADSTS number in Inner, and is
// audited (signIn.clientAssertion, Result Failed) when the tenant exists;
// so is each success.

// Limits of client assertions.
const (
	// assertionSkew is the clock skew allowed on exp and nbf.
	assertionSkew = time.Minute
	// maxAssertionLifetime bounds exp - now: a replayed jti must be
	// remembered until exp, so a far exp would pin cache entries.
	maxAssertionLifetime = time.Hour
	// maxJTIs bounds the replay cache. Only assertions whose signature
	// verified are remembered, so only holders of a registered key can
	// fill it; when it is full of unexpired entries new assertions are
	// refused (temporarily unavailable) rather than replays let through.
	maxJTIs = 100_000
	// maxAssertionBytes bounds what is parsed.
	maxAssertionBytes = 16 << 10
)

// AADSTS numbers of client assertion refusals, as Entra ID answers them.
const (
	aadstsMalformed   = "AADSTS50027"  // not a valid JWT
	aadstsBadProof    = "AADSTS700027" // signature, certificate, audience or replay
	aadstsTimeRange   = "AADSTS700024" // not within its valid time range
	aadstsIssMismatch = "AADSTS700021" // iss/sub is not the client_id
)

// jtiCache remembers the jti of each accepted assertion until it expires,
// so that an assertion is good for one token only. It is safe for
// concurrent use; the zero value is ready.
type jtiCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // key → exp
}

// admit records key until exp, unless it is recorded already (false) or
// the cache is full (an error).
func (c *jtiCache) admit(key string, exp, now time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]time.Time)
	}
	if e, ok := c.seen[key]; ok && now.Before(e.Add(assertionSkew)) {
		return false, nil
	}
	if len(c.seen) >= maxJTIs {
		for k, e := range c.seen {
			if !now.Before(e.Add(assertionSkew)) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= maxJTIs {
			return false, keyhold.Errorf(keyhold.CodeServiceUnavailable, "too many client assertions are in use at once: retry in a minute")
		}
	}
	c.seen[key] = exp.Add(assertionSkew)
	return true, nil
}

// assertionClaims are a client assertion's claims.
type assertionClaims struct {
	jwt.RegisteredClaims
}

// refuse is a refused assertion.
func refuse(aadsts, format string, args ...any) *keyhold.Error {
	e := keyhold.Errorf(keyhold.CodeInvalidClient, format, args...)
	e.Inner = aadsts
	return e
}

// IssueAssertionToken checks a client-credentials grant proven by a client
// assertion (keyhold.AssertionTokenIssuer) and returns a token for the
// audience scope names.
func (p *Tokens) IssueAssertionToken(ctx context.Context, tenantID, clientID, assertion, scope string) (*keyhold.Token, error) {
	aud, ok := audienceForScope(scope)
	if !ok {
		return nil, scopeError(scope)
	}
	sp, federated, err := p.checkAssertion(ctx, tenantID, clientID, assertion)
	if err != nil {
		if keyhold.ErrorCode(err) == keyhold.CodeInvalidClient {
			p.auditAssertion(ctx, tenantID, clientID, sp, federated, keyhold.ErrorMessage(err))
		}
		return nil, err
	}
	tok, err := p.mint(sp, "", aud)
	if err != nil {
		return nil, err
	}
	p.auditAssertion(ctx, tenantID, clientID, sp, federated, "")
	return tok, nil
}

// checkAssertion verifies an assertion and returns its service principal
// (also with some refusals, for the audit, once it is known).
func (p *Tokens) checkAssertion(ctx context.Context, tenantID, clientID, assertion string) (sp *keyhold.Principal, federated bool, err error) {
	sp, err = p.checkCertAssertion(ctx, tenantID, clientID, assertion, &federated)
	return sp, federated, err
}

// checkCertAssertion is checkAssertion; it sets *federated when the
// assertion is another issuer's token.
func (p *Tokens) checkCertAssertion(ctx context.Context, tenantID, clientID, assertion string, federated *bool) (*keyhold.Principal, error) {
	if len(assertion) > maxAssertionBytes {
		return nil, refuse(aadstsMalformed, "the client assertion is %d bytes: a client assertion is a JWT of at most %d bytes", len(assertion), maxAssertionBytes)
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "PS256", "ES256"}))
	var claims assertionClaims
	unverified, _, err := parser.ParseUnverified(assertion, &claims)
	if err != nil {
		return nil, refuse(aadstsMalformed, "the client assertion is not a valid JWT (%s): send a JWT signed RS256 or PS256 with the certificate's key, as azidentity's ClientCertificateCredential does", jwtReason(err))
	}
	alg, _ := unverified.Header["alg"].(string)
	badAlg := refuse(aadstsMalformed, "the client assertion is signed %q: sign it RS256 or PS256 with the certificate's key", keyhold.Clip(alg))
	if !slices.Contains(federatedAlgs, alg) {
		return nil, badAlg
	}
	x5tS256, _ := unverified.Header["x5t#S256"].(string)
	x5t, _ := unverified.Header["x5t"].(string)
	if x5tS256 == "" && x5t == "" && claims.Issuer != clientID && claims.Issuer != "" {
		// Another issuer's token: a federated credential's (federated.go).
		kid, _ := unverified.Header["kid"].(string)
		*federated = true
		return p.checkFederatedAssertion(ctx, tenantID, clientID, assertion, alg, kid, &claims)
	}
	if alg == "ES256" {
		return nil, badAlg
	}
	if x5tS256 == "" && x5t == "" {
		return nil, refuse(aadstsMalformed, "the client assertion's header names no certificate: put the certificate's thumbprint in x5t#S256 (or x5t)")
	}
	notRegistered := refuse(aadstsBadProof, "the client assertion's certificate (x5t#S256 %q, x5t %q) is not registered for application %q in tenant %q: add it with `keyhold identity sp credential add --cert`",
		keyhold.Clip(x5tS256), keyhold.Clip(x5t), keyhold.Clip(clientID), keyhold.Clip(tenantID))
	if _, err := uuid.Parse(tenantID); err != nil {
		return nil, notRegistered
	}
	// The principal and its certificates.
	var (
		sp   *keyhold.Principal
		cred *keyhold.Credential
	)
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if sp, err = tx.PrincipalByAppID(ctx, tenantID, clientID); err != nil {
			return err
		}
		creds, err := tx.Credentials(ctx, sp.ID)
		if err != nil {
			return err
		}
		for _, c := range creds {
			if len(c.Certificate) == 0 {
				continue
			}
			if (x5tS256 != "" && crypt.MatchThumbprint(c.Certificate, x5tS256, true)) ||
				(x5tS256 == "" && crypt.MatchThumbprint(c.Certificate, x5t, false)) {
				cred = c
				return nil
			}
		}
		return nil
	})
	switch {
	case keyhold.IsNotFound(err):
		return nil, notRegistered
	case err != nil:
		return nil, err
	case cred == nil:
		return sp, notRegistered
	}
	cert, err := x509.ParseCertificate(cred.Certificate)
	if err != nil {
		return sp, keyhold.Errorf(keyhold.CodeInternal, "a stored client certificate of %s does not parse", sp.ID).WithCause(err)
	}
	now := p.clock.Now()
	// The signature, before anything the claims say is believed.
	verifier := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithoutClaimsValidation())
	if _, err := verifier.ParseWithClaims(assertion, &assertionClaims{}, func(*jwt.Token) (any, error) { return cert.PublicKey, nil }); err != nil {
		return sp, refuse(aadstsBadProof, "the client assertion's signature does not verify with certificate %s: sign it with that certificate's private key", certThumb(cert))
	}
	if !cred.ExpiresAt.IsZero() && !now.Before(cred.ExpiresAt) {
		return sp, refuse(aadstsBadProof, "certificate %s of application %q expired at %s: upload a new one with `keyhold identity sp credential add --cert`",
			certThumb(cert), clientID, cred.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if claims.Issuer != clientID || claims.Subject != clientID {
		return sp, refuse(aadstsIssMismatch, "the client assertion's iss %q and sub %q must both be the client_id %q", keyhold.Clip(claims.Issuer), keyhold.Clip(claims.Subject), keyhold.Clip(clientID))
	}
	endpoint := p.authorityFor(tenantID) + "/oauth2/v2.0/token"
	if len(claims.Audience) != 1 || claims.Audience[0] != endpoint {
		return sp, refuse(aadstsBadProof, "the client assertion's audience %q is not this token endpoint: set aud to %q", keyhold.Clip(strings.Join(claims.Audience, " ")), endpoint)
	}
	if err := p.checkAssertionTimes(&claims, now); err != nil {
		return sp, err
	}
	fresh, err := p.jtis.admit(tenantID+"\x00"+clientID+"\x00"+claims.ID, claims.ExpiresAt.Time, now)
	if err != nil {
		return sp, err
	} else if !fresh {
		return sp, refuse(aadstsBadProof, "the client assertion with jti %q was already used: sign a new assertion, with a new jti, for each token request", keyhold.Clip(claims.ID))
	}
	return sp, nil
}

// checkAssertionTimes checks an assertion's exp, nbf and jti claims at
// now: an exp, not past and at most maxAssertionLifetime ahead, an nbf (if
// any) not ahead, each with assertionSkew, and a jti.
func (p *Tokens) checkAssertionTimes(claims *assertionClaims, now time.Time) error {
	switch {
	case claims.ExpiresAt == nil:
		return refuse(aadstsTimeRange, "the client assertion has no exp: give it one, at most %s ahead", maxAssertionLifetime)
	case !now.Before(claims.ExpiresAt.Add(assertionSkew)):
		return refuse(aadstsTimeRange, "the client assertion is not within its valid time range: it expired at %s (now %s); sign a new one for each token request",
			claims.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case claims.NotBefore != nil && now.Add(assertionSkew).Before(claims.NotBefore.Time):
		return refuse(aadstsTimeRange, "the client assertion is not within its valid time range: it is valid from %s (now %s); check the client's clock",
			claims.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case claims.ExpiresAt.Sub(now) > maxAssertionLifetime:
		return refuse(aadstsTimeRange, "the client assertion expires at %s, more than %s ahead: give it a shorter exp", claims.ExpiresAt.UTC().Format(time.RFC3339), maxAssertionLifetime)
	case claims.ID == "":
		return refuse(aadstsMalformed, "the client assertion has no jti: give each assertion a unique jti (a GUID)")
	}
	return nil
}

func certThumb(c *x509.Certificate) string {
	s1, _ := crypt.CertThumbprints(c.Raw)
	return s1
}

// auditAssertion records a client assertion sign-in, succeeded (reason
// empty) or refused, in the tenant's audit log (auditAppSignIn).
func (p *Tokens) auditAssertion(ctx context.Context, tenantID, clientID string, sp *keyhold.Principal, federated bool, reason string) {
	if federated {
		p.auditAppSignIn(ctx, "signIn.federatedCredential", "token issued for another issuer's token matching a federated credential", tenantID, clientID, sp, reason)
		return
	}
	p.auditAppSignIn(ctx, "signIn.clientAssertion", "token issued for a client assertion signed by a registered certificate", tenantID, clientID, sp, reason)
}

// auditAppSignIn records an application's sign-in (action, with detail on
// success), succeeded (reason empty) or refused, in the tenant's audit
// log. Nothing is recorded for a tenant that does not exist. A failure to
// write it is logged, not returned: the answer to the client does not
// depend on it.
func (p *Tokens) auditAppSignIn(ctx context.Context, action, detail, tenantID, clientID string, sp *keyhold.Principal, reason string) {
	if _, err := uuid.Parse(tenantID); err != nil {
		return
	}
	e := keyhold.AuditEntry{At: p.clock.Now(), TenantID: tenantID, Action: action,
		Target: "/servicePrincipals/appId=" + keyhold.Clip(clientID), Result: "Succeeded",
		Detail: detail}
	if sp != nil {
		e.ActorID, e.Target = sp.ID, "/servicePrincipals/"+sp.ID
	}
	if reason != "" {
		e.Result, e.Detail = "Failed", reason
	}
	err := p.store.Update(ctx, func(tx keyhold.Tx) error {
		if _, err := tx.Tenant(ctx, tenantID); err != nil {
			return err
		}
		_, err := keyhold.Audit(ctx, tx, e)
		return err
	})
	if err != nil && !keyhold.IsNotFound(err) {
		p.log.ErrorContext(ctx, "platform: auditing a sign-in", "action", action, "tenant", tenantID, "err", err)
	}
}
