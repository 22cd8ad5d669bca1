package http

// The key vault routes: the Microsoft.KeyVault/vaults resource under the
// resource manager (keyvault_arm.go), and the Azure Key Vault data plane
// under each vault's URI, https://{vault}.{vault-domain}[:{port}], or its
// alias <server>/vaults/{vault} (keyvault_keys.go, vaulthost.go).

import (
	"context"
	"fmt"
	nethttp "net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// KeyVaultAPI holds the services behind the key vault routes. With Vaults
// nil, no key vault route is served; with Lookup nil, only the resource
// manager's vault routes are.
type KeyVaultAPI struct {
	// Vaults is the built-in key vault (a *vault.Service).
	Vaults keyhold.VaultService
	// Lookup returns a live vault by name without checking the caller,
	// and CodeNotFound (or CodeVaultNotFound) for none. The data plane
	// needs it before any token is read: the bearer challenge names the
	// vault's tenant, as Key Vault's does, and the keys' recoveryLevel
	// and recoverableDays follow the vault's purge protection and
	// retention. Only those fields are sent to the client.
	Lookup func(ctx context.Context, name string) (*keyhold.Vault, error)
}

// KeyVaultAPIVersions are the api-version values the data plane accepts:
// Key Vault's 7.4 to 7.6, 2025-07-01, which azkeys v1.5 sends, and
// 2026-04-01, which azkeys v1.6 sends.
var KeyVaultAPIVersions = []string{"7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}

// Limits of the key vault routes.
const (
	maxVaultBody   = 1 << 20  // a vault with 1024 access policies fits
	maxKeyBody     = 64 << 10 // a JWK of an RSA-4096 private key is ~3 KiB
	kvSubPath      = "/subscriptions/{sub}"
	kvGroupVaults  = kvSubPath + "/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults"
	kvProviderPath = kvSubPath + "/providers/Microsoft.KeyVault"
	kvDataPrefix   = "/vaults/{vault}"
)

// keyVaultRoutes declares the key vault routes.
func (s *Server) keyVaultRoutes() []route {
	if s.KeyVault.Vaults == nil {
		return nil
	}
	mgmt := []keyhold.Audience{keyhold.AudienceManagement}
	arm := func(method, pattern string, body bodyKind, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		rt := route{Method: method, Pattern: pattern, Auth: mgmt, Body: body, Timeout: apiTimeout, Handler: h}
		if body == bodyJSON {
			rt.MaxBody = maxVaultBody
		}
		return rt
	}
	routes := []route{
		arm("PUT", kvGroupVaults+"/{name}", bodyJSON, s.putVault),
		arm("GET", kvGroupVaults+"/{name}", bodyNone, s.getVault),
		arm("PATCH", kvGroupVaults+"/{name}", bodyJSON, s.patchVault),
		arm("DELETE", kvGroupVaults+"/{name}", bodyNone, s.deleteVault),
		arm("GET", kvGroupVaults, bodyNone, s.listVaults),
		arm("GET", kvProviderPath+"/vaults", bodyNone, s.listVaults),
		arm("PUT", kvGroupVaults+"/{name}/accessPolicies/{kind}", bodyJSON, s.putAccessPolicies),
		arm("GET", kvProviderPath+"/deletedVaults", bodyNone, s.listDeletedVaults),
		arm("GET", kvProviderPath+"/locations/{location}/deletedVaults/{name}", bodyNone, s.getDeletedVault),
		arm("POST", kvProviderPath+"/locations/{location}/deletedVaults/{name}/purge", bodyNone, s.purgeDeletedVault),
	}
	if s.KeyVault.Lookup == nil {
		return routes
	}
	vaultAud := []keyhold.Audience{keyhold.AudienceVault}
	kv := func(method, pattern string, body bodyKind, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		rt := route{Method: method, Pattern: kvDataPrefix + pattern, Auth: vaultAud, Challenge: s.vaultChallenge, Body: body,
			Timeout: apiTimeout, Handler: h}
		if body == bodyJSON {
			rt.MaxBody = maxKeyBody
		}
		return rt
	}
	return append(routes,
		kv("POST", "/keys/{name}/create", bodyJSON, s.createKey),
		kv("PUT", "/keys/{name}", bodyJSON, s.importKey),
		kv("GET", "/keys", bodyNone, s.listKeys),
		kv("GET", "/keys/{name}", bodyNone, s.getKey),
		kv("GET", "/keys/{name}/{$}", bodyNone, s.getKey), // azkeys: GetKey(name, "")
		kv("GET", "/keys/{name}/{version}", bodyNone, s.getKey),
		kv("GET", "/keys/{name}/versions", bodyNone, s.listKeyVersions),
		kv("PATCH", "/keys/{name}", bodyJSON, s.updateKey),
		kv("PATCH", "/keys/{name}/{$}", bodyJSON, s.updateKey),
		kv("PATCH", "/keys/{name}/{version}", bodyJSON, s.updateKey),
		kv("POST", "/keys/{name}/wrapkey", bodyJSON, s.wrapKey), // azkeys: WrapKey(name, "")
		kv("POST", "/keys/{name}/{version}/wrapkey", bodyJSON, s.wrapKey),
		kv("POST", "/keys/{name}/unwrapkey", bodyJSON, s.unwrapKey),
		kv("POST", "/keys/{name}/{version}/unwrapkey", bodyJSON, s.unwrapKey),
		kv("POST", "/keys/{name}/rotate", bodyNone, s.rotateKey),
		kv("GET", "/keys/{name}/rotationpolicy", bodyNone, s.getRotationPolicy),
		kv("PUT", "/keys/{name}/rotationpolicy", bodyJSON, s.setRotationPolicy),
		kv("DELETE", "/keys/{name}", bodyNone, s.deleteKey),
		kv("GET", "/deletedkeys", bodyNone, s.listDeletedKeys),
		kv("GET", "/deletedkeys/{name}", bodyNone, s.getDeletedKey),
		kv("POST", "/deletedkeys/{name}/recover", bodyNone, s.recoverDeletedKey),
		kv("DELETE", "/deletedkeys/{name}", bodyNone, s.purgeDeletedKey),
	)
}

// vaultKey carries the vault a data-plane request is for, looked up
// before authentication.
type vaultKey struct{}

// requestVault returns the vault that vaultChallenge looked up.
func requestVault(r *nethttp.Request) *keyhold.Vault {
	v, _ := r.Context().Value(vaultKey{}).(*keyhold.Vault)
	return v
}

// vaultChallenge runs before a data-plane request's token is checked, as
// Key Vault does: it refuses an unsupported api-version or an unknown
// vault, and returns the bearer challenge that answers a request without
// a (good) token, naming the authority of the vault's tenant and the
// vault resource:
//
//	WWW-Authenticate: Bearer authorization="https://host:port/{tenantId}", resource="https://vault.localhost:8443"
//
// (the resource is vaultResource's: https://vault.azure.net for the path form).
// The Azure SDKs send their first request without a token to get it, then
// ask the authority for a token for "<resource>/.default". It also puts
// the vault, and the caller's network origin (for the vault's firewall),
// into the request's context.
func (s *Server) vaultChallenge(r *nethttp.Request) (*nethttp.Request, string, error) {
	if err := checkKeyVaultAPIVersion(r); err != nil {
		return r, "", err
	}
	name := r.PathValue("vault")
	v, err := s.KeyVault.Lookup(r.Context(), name)
	if keyhold.IsNotFound(err) || (err == nil && v.Deleted()) {
		return r, "", keyhold.Errorf(keyhold.CodeVaultNotFound,
			"vault %q was not found: check the vault name in the URL (%s, or %s/vaults/{vault}); a deleted vault must be recovered first",
			keyhold.Clip(name), s.vaultAddress(r).VaultURI("{vault}"), s.baseURL(r))
	} else if err != nil {
		return r, "", err
	}
	challenge := fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, s.baseURL(r), v.TenantID, vaultResource(r))
	ctx := context.WithValue(r.Context(), vaultKey{}, v)
	ctx = keyhold.NewOriginContext(ctx, originOf(r))
	return r.WithContext(ctx), challenge, nil
}

// originOf is the network origin of a request: the client address of the
// connection. Forwarding headers are not trusted: Keyhold terminates TLS
// itself, and a header is the client's to forge.
func originOf(r *nethttp.Request) keyhold.Origin {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return keyhold.Origin{}
	}
	return keyhold.Origin{IP: ap.Addr().Unmap()}
}

// checkKeyVaultAPIVersion refuses a data-plane request whose api-version
// is missing or not one of KeyVaultAPIVersions.
func checkKeyVaultAPIVersion(r *nethttp.Request) error {
	v := r.URL.Query().Get("api-version")
	if slices.Contains(KeyVaultAPIVersions, v) {
		return nil
	}
	accepted := strings.Join(KeyVaultAPIVersions, ", ")
	if v == "" {
		return keyhold.Errorf(keyhold.CodeBadParameter, "the api-version query parameter is missing: add ?api-version=7.5 (accepted: %s)", accepted)
	}
	return keyhold.Errorf(keyhold.CodeBadParameter, "api-version %q is not supported: use one of %s, e.g. ?api-version=7.5", keyhold.Clip(v), accepted)
}

// unixTime is a Key Vault date: whole seconds since the Unix epoch; nil
// for the zero time.
func unixTime(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}
