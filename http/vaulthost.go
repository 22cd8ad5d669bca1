package http

// Vaults addressed by host, as Azure Key Vault's are: a request to
// https://{vault}.{vault-domain}[:{port}]/keys/... is the request
// /vaults/{vault}/keys/... of the path form, which stays an alias (curl,
// and clients configured before host-form vaults).

import (
	"context"
	nethttp "net/http"
	"net/url"
	"strings"

	"github.com/keyhold/keyhold"
)

// hostFormKey marks, in a request's context, a request that named its
// vault by host.
type hostFormKey struct{}

// byHost reports whether r named its vault by host.
func byHost(r *nethttp.Request) bool {
	ok, _ := r.Context().Value(hostFormKey{}).(bool)
	return ok
}

// vaultAddress is how vault URIs and key ids are rendered for r: the
// public address (or r's host) and the vault domain.
func (s *Server) vaultAddress(r *nethttp.Request) keyhold.VaultAddress {
	return keyhold.VaultAddress{PublicURL: s.baseURL(r), Domain: s.VaultDomain}
}

// routeByHost rewrites a request whose Host names a vault,
// {vault}.{domain}[:{port}], for the vault's data plane (/keys…,
// /deletedkeys…) to the path form /vaults/{vault}{path}, and marks it
// (byHost); any other request is returned as it is, so that the rest of
// the API (the token endpoint the challenge names, /healthz) answers on a
// vault's host too, as on the server's.
func (s *Server) routeByHost(r *nethttp.Request) *nethttp.Request {
	if r2, ok := s.routeHSMByHost(r); ok { // managedhsm.go
		return r2
	}
	if s.KeyVault.Lookup == nil {
		return r
	}
	name, ok := s.vaultAddress(r).VaultOfHost(r.Host)
	if !ok || !dataPlanePath(r.URL.Path) {
		return r
	}
	r2 := r.WithContext(context.WithValue(r.Context(), hostFormKey{}, true))
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	prefix := "/vaults/" + name
	r2.URL.Path = prefix + r.URL.Path
	if r.URL.RawPath != "" {
		r2.URL.RawPath = prefix + r.URL.RawPath
	}
	return r2
}

// dataPlanePath reports whether path is under a vault's /keys or
// /deletedkeys.
func dataPlanePath(path string) bool {
	for _, p := range []string{"/keys", "/deletedkeys"} {
		if rest, ok := strings.CutPrefix(path, p); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}

// vaultResource is the resource a vault's bearer challenge names. A
// request by host gets https://{domain}[:{port}], its host less the
// vault's label, which the Azure SDKs' challenge verification accepts
// (the request's host, port included, must end with "." and the
// resource's host), and the token endpoint grants the scope
// "{resource}/.default" as the vault audience (tokenScope). A request of
// the path form gets Key Vault's own resource, https://vault.azure.net,
// and its clients must turn that verification off.
func vaultResource(r *nethttp.Request) string {
	if byHost(r) {
		return keyhold.ChallengeResource(r.Host)
	}
	return string(keyhold.AudienceVault)
}

// tokenScope returns the scope a token request asks for, with the scope
// that a host-form vault's challenge makes the SDKs ask for,
// https://{vault-domain}[:{port}]/.default, read as the vault audience's.
// A scope list (MSAL adds "openid offline_access profile") is mapped
// element by element.
func (s *Server) tokenScope(scope string) string {
	fields := strings.Fields(scope)
	if len(fields) == 0 {
		return scope
	}
	for i, f := range fields {
		if keyhold.IsVaultScope(f, s.VaultDomain) {
			fields[i] = string(keyhold.AudienceVault) + "/.default"
		} else if keyhold.IsVaultScope(f, keyhold.ManagedHSMDomain(s.VaultDomain)) {
			fields[i] = string(keyhold.AudienceManagedHSM) + "/.default" // managedhsm.go
		}
	}
	return strings.Join(fields, " ")
}
