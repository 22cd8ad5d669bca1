package server

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/keyhold/keyhold"
)

// checkAddressing checks --public-url and --vault-domain before anything
// starts, and normalises them: the public URL without a trailing slash,
// the domain lower-cased, without dots at its ends.
func checkAddressing(cfg *Config) error {
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.ForceQuery ||
			u.Fragment != "" || u.User != nil || u.Opaque != "" {
			return fmt.Errorf("--public-url %q is not valid: give the https address clients reach every replica at, https://host[:port], such as https://keyhold.example.com:8443", keyhold.Clip(cfg.PublicURL))
		}
		cfg.PublicURL = "https://" + u.Host
	}
	if cfg.VaultDomain != "" {
		d := strings.ToLower(strings.Trim(strings.TrimSpace(cfg.VaultDomain), "."))
		if !isDomain(d) {
			return fmt.Errorf("--vault-domain %q is not valid: give a DNS domain of at least two labels, such as vault.localhost or vault.example.com; a vault is then https://{vault}.{domain}:{port}/", keyhold.Clip(cfg.VaultDomain))
		}
		cfg.VaultDomain = d
	}
	return nil
}

// isDomain reports whether d is a DNS name of two labels or more, each
// of letters, digits and inner hyphens, and not an IP address.
func isDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 || net.ParseIP(d) != nil {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
