package http

// OpenID Connect discovery, per tenant, as Entra ID serves it:
//
//	GET /{tenantId}/v2.0/.well-known/openid-configuration   200, public
//	GET /{tenantId}/discovery/v2.0/keys                     200, public
//
// MSAL (and so azidentity) reads the configuration before its first token
// request when instance discovery is off, and posts to the token endpoint
// it names; it checks that the issuer's scheme and host are the
// authority's. MSAL for Go reads only the v2.0 document, never the v1
// path /{tenantId}/.well-known/openid-configuration, so Keyhold serves
// only the v2.0 one. An unknown tenant is answered in the OAuth2 error
// shape with AADSTS90002, as Entra ID does.

import (
	nethttp "net/http"
	"time"

	"github.com/keyhold/keyhold"
)

// openIDConfigJSON is the discovery document, field for field as Entra
// ID's v2.0 one (those a client reads).
type openIDConfigJSON struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
	CloudGraphHostName                string   `json:"cloud_graph_host_name"`
	MSGraphHost                       string   `json:"msgraph_host"`
}

// oidcRoutes declares the discovery routes when the token service
// publishes OpenID metadata; the key set also needs Keys.
func (s *Server) oidcRoutes() []route {
	if _, ok := s.Tokens.(keyhold.OpenIDProvider); !ok {
		return nil
	}
	rs := []route{{Method: "GET", Pattern: "/{tenantId}/v2.0/.well-known/openid-configuration", Timeout: 10 * time.Second, OAuthErrors: true, Identity: true, Handler: s.openIDConfiguration}}
	if s.Keys != nil {
		rs = append(rs, route{Method: "GET", Pattern: "/{tenantId}/discovery/v2.0/keys", Timeout: 10 * time.Second, OAuthErrors: true, Identity: true, Handler: s.tenantSigningKeys})
	}
	return rs
}

// openIDConfiguration: GET /{tenantId}/v2.0/.well-known/openid-configuration.
// The endpoints are under the tenant's authority, which comes from the
// token service's issuer (the configured public URL), so that the
// issuer the document names is the one in the tokens. The authorization
// and device authorization endpoints are where users' sign-in is served.
func (s *Server) openIDConfiguration(w nethttp.ResponseWriter, r *nethttp.Request) error {
	t, err := s.Tokens.(keyhold.OpenIDProvider).OpenIDTenant(r.Context(), r.PathValue("tenantId"))
	if err != nil {
		return err
	}
	grants := []string{"client_credentials"}
	if _, ok := s.Tokens.(keyhold.PasswordTokenIssuer); ok {
		grants = append(grants, "password")
	}
	doc := openIDConfigJSON{
		Issuer:                            t.Issuer,
		AuthorizationEndpoint:             t.Authority + "/oauth2/v2.0/authorize",
		TokenEndpoint:                     t.Authority + "/oauth2/v2.0/token",
		DeviceAuthorizationEndpoint:       t.Authority + "/oauth2/v2.0/devicecode",
		JWKSURI:                           t.Authority + "/discovery/v2.0/keys",
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post", "client_secret_basic", "private_key_jwt"},
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query", "fragment", "form_post"},
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"ES256"},
		GrantTypesSupported:               grants,
		ClaimsSupported:                   []string{"sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "azp", "idtyp", "ver", "upn"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		CloudInstanceName:                 "keyhold",
	}
	w.Header().Set("Cache-Control", "max-age=86400, private")
	writeJSON(w, nethttp.StatusOK, doc)
	return nil
}

// tenantSigningKeys: GET /{tenantId}/discovery/v2.0/keys, the jwks_uri of
// the tenant's discovery document: the platform's keys, which sign every
// tenant's tokens, refused for a tenant that does not exist.
func (s *Server) tenantSigningKeys(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if _, err := s.Tokens.(keyhold.OpenIDProvider).OpenIDTenant(r.Context(), r.PathValue("tenantId")); err != nil {
		return err
	}
	return s.signingKeys(w, r)
}
