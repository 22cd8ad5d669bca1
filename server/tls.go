package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Lifetimes of the generated certificates. The CA lives a year, not ten:
// its key sits in the data directory, and a short life bounds what a copy
// of it is worth. The server certificate lives 90 days, as public CAs
// issue them, and is renewed at start once it has less than
// leafRenewBefore left (so a server restarted at least monthly never
// serves an expired one); the CA is replaced at start once it has less
// than caRenewBefore left, and clients must then trust the new ca.pem.
const (
	caValidity      = 365 * 24 * time.Hour
	leafValidity    = 90 * 24 * time.Hour
	leafRenewBefore = 30 * 24 * time.Hour
	caRenewBefore   = 30 * 24 * time.Hour
)

type tlsFiles struct {
	ca, cert, key string
}

func (f tlsFiles) config() (*tls.Config, error) {
	cert, err := os.ReadFile(f.cert)
	if err != nil {
		return nil, fmt.Errorf("reading the TLS certificate: %w", err)
	}
	key, err := os.ReadFile(f.key)
	if err != nil {
		return nil, fmt.Errorf("reading the TLS key: %w", err)
	}
	defer clear(key)
	conf, err := crypt.LoadServerTLS(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w: give a PEM certificate (chain) and its PEM private key", f.cert, f.key, err)
	}
	return conf, nil
}

// operatorTLS returns the files of a certificate the operator brings
// (--tls-cert, --tls-key): Keyhold then generates nothing and the
// bootstrap file names no CA, since clients trust the operator's CA. Both
// or neither must be given.
func operatorTLS(certFile, keyFile string) (tlsFiles, bool, error) {
	switch {
	case certFile == "" && keyFile == "":
		return tlsFiles{}, false, nil
	case certFile == "" || keyFile == "":
		return tlsFiles{}, false, errors.New("--tls-cert and --tls-key go together: give the PEM certificate chain and its PEM private key, or neither to use the generated CA")
	}
	f := tlsFiles{cert: certFile, key: keyFile}
	_, err := f.config() // refuse a broken pair at start, not at the first handshake
	return f, true, err
}

// tlsSetup is what the generated certificate must name, and where its CA
// comes from.
type tlsSetup struct {
	bound     net.Addr // the address listened on
	requested string   // --addr as given
	// publicURL (--public-url) and vaultDomain (--vault-domain): the
	// certificate names the public host and *.{vaultDomain}, so that
	// host-form vaults verify.
	publicURL   string
	vaultDomain string
	// caCert and caKey (--tls-ca-cert, --tls-ca-key), if set, are an
	// existing CA the server certificate is issued from: the replicas
	// behind one address share it, and Keyhold makes no CA of its own.
	caCert, caKey string
}

// names returns the names the server certificate carries: localhost, the
// loopback addresses, the listen host, the machine's host name, the
// public URL's host and the vault domain's wildcard.
func (s tlsSetup) names() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	var addrs []string
	if s.bound != nil {
		addrs = append(addrs, s.bound.String())
	}
	for _, a := range append(addrs, s.requested) {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append(hosts, h)
		}
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	if u, err := url.Parse(s.publicURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	hosts = append(hosts, "*."+keyhold.VaultAddress{Domain: s.vaultDomain}.VaultDomain())
	hosts = append(hosts, "*."+keyhold.ManagedHSMDomain(s.vaultDomain)) // Managed HSMs (issue 18)
	return dedupe(hosts)
}

// constraintNames returns names as a CA's permitted names: a wildcard
// *.{domain} is permitted as {domain} (which permits its subdomains).
func constraintNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.TrimPrefix(n, "*."))
	}
	return dedupe(out)
}

// missingNames returns the names of want that leaf does not carry.
func missingNames(leaf *x509.Certificate, want []string) []string {
	var missing []string
	for _, n := range want {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				missing = append(missing, n)
			}
		} else if !slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return strings.EqualFold(d, n) }) {
			missing = append(missing, n)
		}
	}
	return missing
}

// permits reports whether ca's name constraints (if any) permit name: a
// client refuses the whole certificate when one of its names is not
// permitted, so only permitted names go into one.
func permits(ca *x509.Certificate, name string) bool {
	// Per RFC 5280, a name type without permitted subtrees is not
	// constrained.
	if ip := net.ParseIP(name); ip != nil {
		return len(ca.PermittedIPRanges) == 0 || slices.ContainsFunc(ca.PermittedIPRanges, func(r *net.IPNet) bool { return r.Contains(ip) })
	}
	name = strings.ToLower(strings.TrimPrefix(name, "*."))
	return len(ca.PermittedDNSDomains) == 0 || slices.ContainsFunc(ca.PermittedDNSDomains, func(d string) bool {
		d = strings.ToLower(strings.TrimPrefix(d, "."))
		return name == d || strings.HasSuffix(name, "."+d)
	})
}

// ensureTLS creates, on first start, a CA whose name constraints allow
// only the names the server serves (tlsSetup.names), and a server
// certificate for those names. Later starts reuse them, so clients keep
// trusting the same CA; they renew the server certificate (same CA) when
// it nears its end or lacks a name now served (a new --public-url or
// --vault-domain), and replace the CA and the certificate together when
// the CA nears its end or does not permit a name now served, logging that
// clients must trust the new CA. With s.caCert set, the certificate is
// issued from that CA instead (issueFromCA), and no CA is made.
func ensureTLS(dataDir string, s tlsSetup, now time.Time, log *slog.Logger) (tlsFiles, error) {
	dir := filepath.Join(dataDir, "tls")
	f := tlsFiles{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem")}
	caKeyFile := filepath.Join(dir, "ca-key.pem")
	names := s.names()
	if s.caCert != "" || s.caKey != "" {
		return issueFromCA(f, s, names, now, log)
	}
	leaf, err := readCert(f.cert)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// first start
	case err != nil:
		return f, fmt.Errorf("%w: move the tls directory aside to have a new CA and certificate made", err)
	default:
		missing := missingNames(leaf, names)
		if now.Before(leaf.NotAfter.Add(-leafRenewBefore)) && len(missing) == 0 {
			return f, nil // valid for a while yet, for every name served
		}
		ca, caErr := readCert(f.ca)
		caKey, keyErr := os.ReadFile(caKeyFile)
		defer clear(caKey)
		if caErr == nil && keyErr == nil && now.Before(ca.NotAfter.Add(-caRenewBefore)) && !slices.ContainsFunc(missing, func(n string) bool { return !permits(ca, n) }) {
			caPEM, _ := os.ReadFile(f.ca)
			hosts := append(slices.Clone(leaf.DNSNames), missing...)
			for _, ip := range leaf.IPAddresses {
				hosts = append(hosts, ip.String())
			}
			cert, key, err := crypt.IssueServerCert(caPEM, caKey, dedupe(hosts), now, leafValidity)
			if err != nil {
				return f, fmt.Errorf("renewing the server certificate: %w", err)
			}
			defer clear(key)
			if err := writeTLSFiles([]tlsFile{{f.key, key, 0o600}, {f.cert, cert, 0o644}}); err != nil {
				return f, err
			}
			log.Info("renewed the server certificate", "file", f.cert, "expired", leaf.NotAfter.UTC().Format(time.RFC3339), "added", missing)
			return f, nil
		}
		if caErr == nil && len(missing) > 0 {
			log.Warn("the generated CA does not permit a name now served: making a new CA; clients must trust the new one", "file", f.ca, "names", missing)
		} else {
			log.Warn("the generated CA is near its end or unreadable: making a new CA; clients must trust the new one", "file", f.ca)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	caCert, caKey, err := crypt.GenerateConstrainedCA("Keyhold local CA", constraintNames(names), now, caValidity)
	if err != nil {
		return f, err
	}
	defer clear(caKey)
	cert, key, err := crypt.IssueServerCert(caCert, caKey, names, now, leafValidity)
	if err != nil {
		return f, err
	}
	defer clear(key)
	return f, writeTLSFiles([]tlsFile{
		{f.ca, caCert, 0o644},
		{caKeyFile, caKey, 0o600},
		{f.key, key, 0o600},
		{f.cert, cert, 0o644}, // last: its presence marks the set complete
	})
}

// issueFromCA issues the server certificate from the operator's CA
// (--tls-ca-cert, --tls-ca-key), as a replica joining others does with
// the CA they share: <data>/tls gets a copy of the CA certificate (which
// clients already trust), and the certificate and its key; the CA's key
// is read, never copied. The certificate carries the names the CA's
// constraints permit; a served name they don't permit is logged. A
// certificate from the same CA with every name, far from its end, is
// kept.
func issueFromCA(f tlsFiles, s tlsSetup, names []string, now time.Time, log *slog.Logger) (tlsFiles, error) {
	if s.caCert == "" || s.caKey == "" {
		return f, errors.New("--tls-ca-cert and --tls-ca-key go together: give the shared CA's PEM certificate and its PEM private key, or neither to use a generated CA")
	}
	caPEM, err := os.ReadFile(s.caCert)
	if err != nil {
		return f, fmt.Errorf("reading --tls-ca-cert: %w", err)
	}
	ca, err := readCert(s.caCert)
	if err != nil || !ca.IsCA {
		return f, fmt.Errorf("--tls-ca-cert %s is not a PEM CA certificate: give the ca.pem the other replicas' certificates come from", s.caCert)
	}
	var hosts, refused []string
	for _, n := range names {
		if permits(ca, n) {
			hosts = append(hosts, n)
		} else {
			refused = append(refused, n)
		}
	}
	if len(refused) > 0 {
		log.Warn("the CA's name constraints do not permit these names: the server certificate leaves them out", "ca", s.caCert, "names", refused)
	}
	if len(hosts) == 0 {
		return f, fmt.Errorf("--tls-ca-cert %s permits none of the names this server serves (%s): give a CA that permits them, or --tls-cert and --tls-key", s.caCert, strings.Join(names, ", "))
	}
	if old, err := os.ReadFile(f.ca); err == nil && bytes.Equal(old, caPEM) {
		if leaf, err := readCert(f.cert); err == nil && now.Before(leaf.NotAfter.Add(-leafRenewBefore)) && len(missingNames(leaf, hosts)) == 0 {
			return f, nil
		}
	}
	caKey, err := os.ReadFile(s.caKey)
	if err != nil {
		return f, fmt.Errorf("reading --tls-ca-key: %w", err)
	}
	defer clear(caKey)
	cert, key, err := crypt.IssueServerCert(caPEM, caKey, hosts, now, leafValidity)
	if err != nil {
		return f, fmt.Errorf("issuing the server certificate from --tls-ca-cert %s and --tls-ca-key %s: %w", s.caCert, s.caKey, err)
	}
	defer clear(key)
	if err := os.MkdirAll(filepath.Dir(f.ca), 0o700); err != nil {
		return f, err
	}
	if err := writeTLSFiles([]tlsFile{{f.ca, caPEM, 0o644}, {f.key, key, 0o600}, {f.cert, cert, 0o644}}); err != nil {
		return f, err
	}
	log.Info("issued the server certificate from the given CA", "ca", s.caCert, "file", f.cert)
	return f, nil
}

type tlsFile struct {
	path string
	data []byte
	mode os.FileMode
}

// writeTLSFiles writes each file through a temporary file and a rename,
// in order, so that a crash leaves each file whole, old or new.
func writeTLSFiles(files []tlsFile) error {
	for _, w := range files {
		tmp := w.path + ".tmp"
		if err := os.WriteFile(tmp, w.data, w.mode); err != nil {
			return fmt.Errorf("writing %s: %w", w.path, err)
		}
		if err := os.Rename(tmp, w.path); err != nil {
			return fmt.Errorf("writing %s: %w", w.path, err)
		}
	}
	return nil
}

// readCert reads the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
