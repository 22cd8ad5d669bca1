package platform

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
)

// Federated credentials at the token endpoint (Entra ID's workload
// identity federation): an application's client assertion may be a token
// of another OpenID issuer, with no x5t header, whose iss, sub and aud
// match one of the application's federated credentials
// (keyhold.FederatedCredential). The issuer's discovery document
// ({iss}/.well-known/openid-configuration) and JWKS are fetched over
// HTTPS, through the egress policy, and cached; the signature must verify
// with the key the header's kid names, the times must hold as for
// certificate assertions, and the jti is good for one token. Each refusal
// is CodeInvalidClient with Entra ID's AADSTS number in Inner, audited as
// signIn.federatedCredential like certificate assertions are.

// AADSTS numbers of federated assertion refusals.
const (
	aadstsNoFederated = "AADSTS70021" // no federated credential matches iss/sub/aud
	aadstsOIDCFailed  = "AADSTS50166" // the issuer's discovery document or keys can't be had
)

// Limits of the issuer documents' cache.
const (
	// federationTTL is how long an issuer's keys are trusted without
	// fetching them again.
	federationTTL = 10 * time.Minute
	// federationRefetch is how soon an unknown kid may fetch the keys
	// again (the issuer rotated): at most once per this, per issuer, so
	// assertions with made-up kids can't make Keyhold hammer an issuer.
	federationRefetch = 30 * time.Second
	// maxFederationIssuers bounds the cache (each entry is an issuer some
	// administrator registered); the oldest is evicted.
	maxFederationIssuers = 256
	// maxFederationDoc bounds a discovery document or JWKS read.
	maxFederationDoc = 256 << 10
	// federationTimeout bounds each fetch.
	federationTimeout = 10 * time.Second
)

// NewFederationClient returns the client that fetches issuers' discovery
// documents and keys: every connection goes through policy (nil:
// egress.Default(), public addresses only), roots verify the issuers'
// certificates (nil: the system's), a 10 s timeout, and no redirects (an
// issuer's documents are at its URL or nowhere).
func NewFederationClient(roots *x509.CertPool, policy *egress.Policy) *http.Client {
	if policy == nil {
		policy = egress.Default()
	}
	return policy.Client(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, federationTimeout, 0)
}

// SetFederationClient replaces the client that fetches issuers' documents
// (default NewFederationClient(nil, Config.Egress)), and forgets the
// cached ones. Tests give a client that trusts their CA and reaches
// loopback.
func (p *Tokens) SetFederationClient(c *http.Client) {
	p.fed.mu.Lock()
	defer p.fed.mu.Unlock()
	p.fed.client, p.fed.issuers = c, nil
}

// federation fetches and caches issuers' signing keys. Safe for concurrent
// use; the zero value fetches with NewFederationClient(nil, nil).
type federation struct {
	mu      sync.Mutex
	client  *http.Client
	issuers map[string]*issuerKeys
}

// issuerKeys are an issuer's keys as last fetched.
type issuerKeys struct {
	keys    map[string]any // kid → *rsa.PublicKey or *ecdsa.PublicKey
	fetched time.Time
}

// key returns the key kid names in iss's JWKS (the only key, if kid is ""
// and there is one), fetching the documents when they are not cached, are
// older than federationTTL, or lack kid and were fetched more than
// federationRefetch ago.
func (f *federation) key(ctx context.Context, iss, kid string, now time.Time) (any, error) {
	f.mu.Lock()
	client, ik := f.client, f.issuers[iss]
	f.mu.Unlock()
	if ik != nil && now.Sub(ik.fetched) < federationTTL {
		if k, ok := ik.find(kid); ok {
			return k, nil
		}
		if now.Sub(ik.fetched) < federationRefetch {
			return nil, refuse(aadstsBadProof, "the client assertion's signing key (kid %q) is not among issuer %s's keys: sign it with a key of the issuer's JWKS", keyhold.Clip(kid), iss)
		}
	}
	if client == nil {
		client = NewFederationClient(nil, nil)
	}
	keys, err := fetchIssuerKeys(ctx, client, iss)
	if err != nil {
		return nil, err
	}
	ik = &issuerKeys{keys: keys, fetched: now}
	f.mu.Lock()
	if f.issuers == nil {
		f.issuers = make(map[string]*issuerKeys)
	}
	if _, ok := f.issuers[iss]; !ok && len(f.issuers) >= maxFederationIssuers {
		oldest := ""
		for k, v := range f.issuers {
			if oldest == "" || v.fetched.Before(f.issuers[oldest].fetched) {
				oldest = k
			}
		}
		delete(f.issuers, oldest)
	}
	f.issuers[iss] = ik
	f.mu.Unlock()
	if k, ok := ik.find(kid); ok {
		return k, nil
	}
	return nil, refuse(aadstsBadProof, "the client assertion's signing key (kid %q) is not among issuer %s's keys: sign it with a key of the issuer's JWKS", keyhold.Clip(kid), iss)
}

func (ik *issuerKeys) find(kid string) (any, bool) {
	if kid == "" && len(ik.keys) == 1 {
		for _, k := range ik.keys {
			return k, true
		}
	}
	k, ok := ik.keys[kid]
	return k, ok
}

// fetchIssuerKeys reads iss's discovery document, checks that it names iss
// as its issuer, and reads the keys of its jwks_uri (https only).
func fetchIssuerKeys(ctx context.Context, client *http.Client, iss string) (map[string]any, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	discURL := strings.TrimSuffix(iss, "/") + "/.well-known/openid-configuration"
	if err := getJSON(ctx, client, discURL, &disc); err != nil {
		return nil, refuse(aadstsOIDCFailed, "Request to External OIDC endpoint failed: the discovery document of issuer %s can't be read (%s); check that the issuer is reachable from this server and serves %s", iss, err, discURL)
	}
	if disc.Issuer != iss {
		return nil, refuse(aadstsOIDCFailed, "the discovery document at %s names issuer %q, not %q: the federated credential's issuer must be the issuer exactly as its discovery document and tokens name it", discURL, keyhold.Clip(disc.Issuer), iss)
	}
	if u, err := url.Parse(disc.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, refuse(aadstsOIDCFailed, "the discovery document of issuer %s names jwks_uri %q, which is not an https URL", iss, keyhold.Clip(disc.JWKSURI))
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, client, disc.JWKSURI, &set); err != nil {
		return nil, refuse(aadstsOIDCFailed, "Request to External OIDC endpoint failed: the keys of issuer %s can't be read from %s (%s)", iss, disc.JWKSURI, err)
	}
	keys := make(map[string]any)
	for _, raw := range set.Keys {
		kid, k, err := parseJWK(raw)
		if err == nil {
			keys[kid] = k
		}
	}
	if len(keys) == 0 {
		return nil, refuse(aadstsOIDCFailed, "the JWKS of issuer %s at %s holds no usable RSA or P-256 key", iss, disc.JWKSURI)
	}
	return keys, nil
}

// getJSON GETs u and decodes its JSON body, of at most maxFederationDoc.
func getJSON(ctx context.Context, client *http.Client, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFederationDoc+1))
	if err != nil {
		return err
	}
	if len(b) > maxFederationDoc {
		return fmt.Errorf("the answer is larger than %d bytes", maxFederationDoc)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the answer is not the expected JSON: %v", err)
	}
	return nil
}

// parseJWK returns a JWK's kid and public key: RSA (at least 2048 bits) or
// EC P-256.
func parseJWK(raw json.RawMessage) (string, any, error) {
	var j struct {
		Kty, Kid, Crv, N, E, X, Y, Use string
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return "", nil, err
	}
	if j.Use != "" && j.Use != "sig" {
		return "", nil, fmt.Errorf("key %s is not for signatures", j.Kid)
	}
	b := func(s string) (*big.Int, error) {
		v, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(v) == 0 {
			return nil, fmt.Errorf("bad base64url")
		}
		return new(big.Int).SetBytes(v), nil
	}
	switch j.Kty {
	case "RSA":
		n, err := b(j.N)
		if err != nil {
			return "", nil, err
		}
		e, err := b(j.E)
		if err != nil || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return "", nil, fmt.Errorf("bad exponent")
		}
		if n.BitLen() < 2048 {
			return "", nil, fmt.Errorf("RSA key of %d bits", n.BitLen())
		}
		return j.Kid, &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		if j.Crv != "P-256" {
			return "", nil, fmt.Errorf("curve %s", j.Crv)
		}
		xb, err1 := base64.RawURLEncoding.DecodeString(j.X)
		yb, err2 := base64.RawURLEncoding.DecodeString(j.Y)
		if err1 != nil || err2 != nil || len(xb) != 32 || len(yb) != 32 {
			return "", nil, fmt.Errorf("bad P-256 point")
		}
		pt := append(append([]byte{4}, xb...), yb...)
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return "", nil, err
		}
		return j.Kid, k, nil
	}
	return "", nil, fmt.Errorf("key type %q", j.Kty)
}

// federatedAlgs are the signature algorithms a federated assertion may use.
var federatedAlgs = []string{"RS256", "PS256", "ES256"}

// checkFederatedAssertion verifies an assertion of another issuer against
// the application's federated credentials; claims are its claims as
// parsed without verification, and alg its header's alg.
func (p *Tokens) checkFederatedAssertion(ctx context.Context, tenantID, clientID, assertion, alg, kid string, claims *assertionClaims) (*keyhold.Principal, error) {
	noMatch := func(what string) *keyhold.Error {
		return refuse(aadstsNoFederated, "No matching federated identity record found for presented assertion %s. Assertion issuer %q, subject %q, audience %q: add a federated credential with that issuer, subject and audience to application %q (`keyhold identity sp federated-credential add`)",
			what, keyhold.Clip(claims.Issuer), keyhold.Clip(claims.Subject), keyhold.Clip(strings.Join(claims.Audience, " ")), keyhold.Clip(clientID))
	}
	if !slices.Contains(federatedAlgs, alg) {
		return nil, refuse(aadstsMalformed, "the client assertion is signed %q: a federated assertion is signed RS256, PS256 or ES256", keyhold.Clip(alg))
	}
	var (
		sp    *keyhold.Principal
		creds []*keyhold.FederatedCredential
	)
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if sp, err = tx.PrincipalByAppID(ctx, tenantID, clientID); err != nil {
			return err
		}
		creds, err = tx.FederatedCredentials(ctx, sp.ID)
		return err
	})
	if keyhold.IsNotFound(err) {
		return nil, noMatch("issuer")
	} else if err != nil {
		return nil, err
	}
	var byIssuer []*keyhold.FederatedCredential
	for _, c := range creds {
		if c.Issuer == claims.Issuer {
			byIssuer = append(byIssuer, c)
		}
	}
	if len(byIssuer) == 0 {
		return sp, noMatch("issuer")
	}
	var cred *keyhold.FederatedCredential
	for _, c := range byIssuer {
		if c.Subject == claims.Subject {
			cred = c
		}
	}
	if cred == nil {
		return sp, noMatch("subject")
	}
	if !slices.ContainsFunc(cred.Audiences, func(a string) bool { return slices.Contains(claims.Audience, a) }) {
		return sp, noMatch("audience")
	}
	now := p.clock.Now()
	key, err := p.fed.key(ctx, cred.Issuer, kid, now)
	if err != nil {
		return sp, err
	}
	verifier := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithoutClaimsValidation())
	if _, err := verifier.ParseWithClaims(assertion, &assertionClaims{}, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		return sp, refuse(aadstsBadProof, "the client assertion's signature does not verify with issuer %s's key %q: the assertion must be signed by the issuer", cred.Issuer, keyhold.Clip(kid))
	}
	if err := p.checkAssertionTimes(claims, now); err != nil {
		return sp, err
	}
	fresh, err := p.jtis.admit(tenantID+"\x00"+clientID+"\x00"+claims.Issuer+"\x00"+claims.ID, claims.ExpiresAt.Time, now)
	if err != nil {
		return sp, err
	} else if !fresh {
		return sp, refuse(aadstsBadProof, "the client assertion with jti %q was already used: get a new token from the issuer for each token request", keyhold.Clip(claims.ID))
	}
	return sp, nil
}

// ManagedIdentityAssertionTTL is the lifetime of the client assertions the
// platform signs for its managed identities: long enough for one token
// exchange, short enough that a leaked one is soon useless.
const ManagedIdentityAssertionTTL = 10 * time.Minute

// ManagedIdentityAssertion signs a client assertion for one of the
// platform's managed identities (an enterprise policy's), with which the
// identity signs in, as the app that a federated credential names, to a
// directory the operator doesn't run (the customer's Entra ID, or the
// customer's Keyhold): iss is the identity's tenant's issuer
// ({public url}/{tenant}/v2.0, whose discovery document and JWKS Keyhold
// serves), sub is the identity's principal (object) id, as Entra ID's
// managed identities use as federated credentials, aud is
// keyhold.FederatedAudience, and it expires after
// ManagedIdentityAssertionTTL. It is signed with the token-signing key,
// named by its kid. Any principal that is not a managed identity is
// refused (CodeForbidden): the platform signs for no one else.
func (p *Tokens) ManagedIdentityAssertion(ctx context.Context, principalID string) (string, error) {
	var pr *keyhold.Principal
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		pr, err = tx.Principal(ctx, principalID)
		return err
	})
	if err != nil {
		return "", err
	}
	if pr.Type != keyhold.PrincipalManagedIdentity {
		return "", keyhold.Errorf(keyhold.CodeForbidden, "principal %s is a %s: the platform signs assertions only for its managed identities", principalID, pr.Type)
	}
	now := p.clock.Now().Truncate(time.Second)
	claims := jwt.RegisteredClaims{
		Issuer:    p.issuerFor(pr.TenantID),
		Subject:   pr.ID,
		Audience:  jwt.ClaimStrings{keyhold.FederatedAudience},
		ExpiresAt: jwt.NewNumericDate(now.Add(ManagedIdentityAssertionTTL)),
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        uuid.NewString(),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = p.signingKID()
	return tok.SignedString(p.signer)
}
