package keyhold

import (
	"net"
	"net/url"
	"strings"
)

// DefaultVaultDomain is the domain under which vaults are addressed by
// host when the operator names none (serve --vault-domain): a vault
// "contoso-kv" is https://contoso-kv.vault.localhost:{port}/. Names under
// .localhost are reserved for this machine (RFC 6761).
const DefaultVaultDomain = "vault.localhost"

// VaultAddress renders what the outside sees of the built-in vaults: a
// vault's URI and its keys' ids, in Azure Key Vault's host form,
// https://{vault}.{domain}[:{port}], the port being the public URL's. It is
// configuration, never stored: a stored key id is address-independent
// (KeyID.Relative) and rendered through a VaultAddress on the way out, so
// replicas behind one public address agree on every id.
type VaultAddress struct {
	// PublicURL is the server's public address, https://{host}[:{port}].
	PublicURL string
	// Domain is the vault domain; "" is DefaultVaultDomain.
	Domain string
}

// VaultDomain returns a's domain, lower-cased, DefaultVaultDomain if none.
func (a VaultAddress) VaultDomain() string {
	if a.Domain == "" {
		return DefaultVaultDomain
	}
	return strings.ToLower(strings.Trim(a.Domain, "."))
}

// port returns the public URL's explicit port, "" for none.
func (a VaultAddress) port() string {
	u, err := url.Parse(a.PublicURL)
	if err != nil {
		return ""
	}
	return u.Port()
}

// VaultHost returns a vault's host: {name}.{domain}[:{port}].
func (a VaultAddress) VaultHost(name string) string {
	h := name + "." + a.VaultDomain()
	if p := a.port(); p != "" {
		h = net.JoinHostPort(h, p)
	}
	return h
}

// VaultURI returns a vault's URI, without a trailing slash.
func (a VaultAddress) VaultURI(name string) string { return "https://" + a.VaultHost(name) }

// KeyID returns the host-form id of key name, version (may be "") in vault.
func (a VaultAddress) KeyID(vault, name, version string) KeyID {
	return KeyID{VaultURL: a.VaultURI(vault), Vault: vault, Name: name, Version: version}
}

// VaultOfHost returns the vault a request's Host header names,
// {vault}.{domain} with any port, and false if it names none (the
// server's own host, or another domain). Host names compare
// case-insensitively.
func (a VaultAddress) VaultOfHost(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, rest, ok := strings.Cut(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
	if !ok || label == "" || rest != a.VaultDomain() {
		return "", false
	}
	return label, true
}

// ChallengeResource returns the resource a vault's bearer challenge names
// for a request to host ({vault}.{domain}[:{port}]): https://{domain}[:{port}],
// the host less its first label. The Azure SDKs check that the request's
// host, port included, ends with "." and the resource's host, and ask for
// a token for "{resource}/.default" (see IsVaultScope).
func ChallengeResource(host string) string {
	_, rest, _ := strings.Cut(host, ".")
	return "https://" + rest
}

// IsVaultScope reports whether scope asks for a token for a vault under
// domain, "https://{domain}[:{port}]/.default", as the Azure SDKs do after
// a host-form vault's challenge (ChallengeResource): a token for
// AudienceVault.
func IsVaultScope(scope, domain string) bool {
	res, ok := strings.CutSuffix(strings.TrimSpace(scope), "/.default")
	if !ok {
		return false
	}
	u, err := url.Parse(strings.TrimSuffix(res, "/"))
	if err != nil || u.Scheme != "https" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return false
	}
	if domain == "" {
		domain = DefaultVaultDomain
	}
	return strings.EqualFold(u.Hostname(), strings.Trim(domain, "."))
}
