package keyhold

import "context"

// OpenID Connect metadata: what a client library (MSAL, and so azidentity)
// reads before it asks for a token. With DisableInstanceDiscovery and an
// authority host that is not Microsoft's, MSAL reads
// {authority}/{tenant}/v2.0/.well-known/openid-configuration, checks that
// the issuer's host is the authority's, and then posts to the token
// endpoint the document names.

// OpenIDTenant is a tenant's OpenID Connect identity: the issuer its
// tokens carry, and the authority (the base URL followed by the tenant
// id) under which its endpoints are served.
type OpenIDTenant struct {
	TenantID  string
	Issuer    string // e.g. https://host:8443/{tenant}/v2.0, the tokens' iss
	Authority string // e.g. https://host:8443/{tenant}
}

// OpenIDProvider is a token service that publishes OpenID Connect
// metadata (the platform is one; the http package serves the discovery
// document and the key set when its token service is one).
type OpenIDProvider interface {
	// OpenIDTenant returns tenantID's issuer and authority. A tenant id
	// that names no tenant is CodeInvalidTenant.
	OpenIDTenant(ctx context.Context, tenantID string) (*OpenIDTenant, error)
}
