package keyhold

import (
	"net/url"
	"strings"
)

// KeyID is a Key Vault key identifier, the "kid" of a key, in either of
// the two forms a vault is named by:
//
//   - the path form, Keyhold's own: https://{host}/vaults/{vault}/keys/{name}[/{version}],
//     where the vault is a path segment (all vaults share the server's
//     host);
//   - the host form, Azure Key Vault's: https://{vault}.{domain}/keys/{name}[/{version}],
//     where the vault is the first label of the host name.
//
// and, for what is stored, the relative form /vaults/{vault}/keys/{name}[/{version}]
// (Relative), which names no host: a replica's address is never stored,
// and a stored id is rendered with the public address (VaultAddress) on
// the way out.
//
// A stored kid names a key by its vault, name and version, whichever form
// and host it was written with: compare those, not the strings.
type KeyID struct {
	// VaultURL is the vault's URL, without a trailing slash:
	// https://{host}/vaults/{vault} or https://{vault}.{domain}.
	VaultURL string
	// Vault is the vault's name.
	Vault string
	// Name is the key's name.
	Name string
	// Version is the key version, 32 hexadecimal digits; "" names the
	// key's current version.
	Version string
}

// NewKeyID returns the path-form id of key name, version (may be "") in
// vault, on the server at base (https://{host}[:{port}]).
func NewKeyID(base, vault, name, version string) KeyID {
	return KeyID{VaultURL: strings.TrimRight(base, "/") + "/vaults/" + vault, Vault: vault, Name: name, Version: version}
}

// String returns the key id: VaultURL/keys/{name}[/{version}].
func (k KeyID) String() string {
	s := k.VaultURL + "/keys/" + k.Name
	if k.Version != "" {
		s += "/" + k.Version
	}
	return s
}

// Relative returns the address-independent form of k, the one stored:
// /vaults/{vault}/keys/{name}[/{version}].
func (k KeyID) Relative() string {
	return KeyID{VaultURL: "/vaults/" + k.Vault, Vault: k.Vault, Name: k.Name, Version: k.Version}.String()
}

// SameKey reports whether k and o name the same key and version (both
// "" for unversioned ids), whatever their forms and hosts: vault and key
// names compare case-insensitively, as Key Vault's do.
func (k KeyID) SameKey(o KeyID) bool {
	return strings.EqualFold(k.Vault, o.Vault) && strings.EqualFold(k.Name, o.Name) && strings.EqualFold(k.Version, o.Version)
}

// Unversioned returns the id of the key's current version.
func (k KeyID) Unversioned() KeyID {
	k.Version = ""
	return k
}

// ParseKeyID parses a key id of any form (see KeyID); a trailing slash
// is allowed, and the literal segments "vaults" and "keys" compare
// case-insensitively. Anything else is CodeBadParameter: another scheme
// than https, a query, a fragment or user information, another path, or a
// version that is not 32 hexadecimal digits.
func ParseKeyID(kid string) (KeyID, error) {
	bad := Errorf(CodeBadParameter,
		"key id %q is not a Key Vault key id: use https://{host}/vaults/{vault}/keys/{name}[/{version}] or https://{vault}.{domain}/keys/{name}[/{version}]", Clip(kid))
	u, err := url.Parse(kid)
	relative := err == nil && u.Scheme == "" && u.Host == "" && strings.HasPrefix(kid, "/vaults/")
	if err != nil || (u.Scheme != "https" || u.Host == "") && !relative || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return KeyID{}, bad
	}
	segs := strings.Split(strings.TrimSuffix(u.EscapedPath(), "/"), "/")
	n := len(segs)
	var k KeyID
	switch {
	case n >= 4 && strings.EqualFold(segs[n-3], "keys") && segs[n-2] != "" && IsKeyVersion(segs[n-1]):
		k.Name, k.Version, segs = segs[n-2], segs[n-1], segs[:n-3]
	case n >= 3 && strings.EqualFold(segs[n-2], "keys") && segs[n-1] != "":
		k.Name, segs = segs[n-1], segs[:n-2]
	default:
		return KeyID{}, bad
	}
	base := "https://" + u.Host
	if relative {
		base = ""
	}
	switch {
	case relative && (len(segs) != 3 || segs[1] != "vaults" || segs[2] == ""):
		return KeyID{}, bad
	case len(segs) == 1 && segs[0] == "" && !relative: // host form
		label, _, ok := strings.Cut(u.Hostname(), ".")
		if !ok || label == "" {
			return KeyID{}, bad
		}
		k.Vault, k.VaultURL = label, base
	case len(segs) >= 3 && segs[0] == "" && strings.EqualFold(segs[len(segs)-2], "vaults") && segs[len(segs)-1] != "": // path form
		k.Vault, k.VaultURL = segs[len(segs)-1], base+strings.Join(segs, "/")
	default:
		return KeyID{}, bad
	}
	if strings.ContainsAny(k.Vault+k.Name, "%") {
		return KeyID{}, bad // an escaped character: no vault or key name has one
	}
	return k, nil
}

// IsKeyVersion reports whether s is a Key Vault key version: 32
// hexadecimal digits (compared case-insensitively).
func IsKeyVersion(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
