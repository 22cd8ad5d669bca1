package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

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

// ensureTLS creates, on first start, a CA whose name constraints allow
// only the listen address, localhost, the loopback addresses and the host
// name, and a server certificate for those names. Later starts reuse them,
// so clients keep trusting the same CA; they renew the server certificate
// (same names, same CA) when it nears its end, and replace the CA and the
// certificate together when the CA does, logging that clients must trust
// the new CA.
func ensureTLS(dataDir string, bound net.Addr, requested string, now time.Time, log *slog.Logger) (tlsFiles, error) {
	dir := filepath.Join(dataDir, "tls")
	f := tlsFiles{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem")}
	caKeyFile := filepath.Join(dir, "ca-key.pem")
	leaf, err := readCert(f.cert)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// first start
	case err != nil:
		return f, fmt.Errorf("%w: move the tls directory aside to have a new CA and certificate made", err)
	default:
		if now.Before(leaf.NotAfter.Add(-leafRenewBefore)) {
			return f, nil // valid for a while yet
		}
		ca, caErr := readCert(f.ca)
		caKey, keyErr := os.ReadFile(caKeyFile)
		defer clear(caKey)
		if caErr == nil && keyErr == nil && now.Before(ca.NotAfter.Add(-caRenewBefore)) {
			caPEM, _ := os.ReadFile(f.ca)
			hosts := leaf.DNSNames
			for _, ip := range leaf.IPAddresses {
				hosts = append(hosts, ip.String())
			}
			cert, key, err := crypt.IssueServerCert(caPEM, caKey, hosts, now, leafValidity)
			if err != nil {
				return f, fmt.Errorf("renewing the server certificate: %w", err)
			}
			defer clear(key)
			if err := writeTLSFiles([]tlsFile{{f.key, key, 0o600}, {f.cert, cert, 0o644}}); err != nil {
				return f, err
			}
			log.Info("renewed the server certificate", "file", f.cert, "expired", leaf.NotAfter.UTC().Format(time.RFC3339))
			return f, nil
		}
		log.Warn("the generated CA is near its end or unreadable: making a new CA; clients must trust the new one", "file", f.ca)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	for _, a := range []string{bound.String(), requested} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append(hosts, h)
		}
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	hosts = dedupe(hosts)
	caCert, caKey, err := crypt.GenerateConstrainedCA("Keyhold local CA", hosts, now, caValidity)
	if err != nil {
		return f, err
	}
	defer clear(caKey)
	cert, key, err := crypt.IssueServerCert(caCert, caKey, hosts, now, leafValidity)
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
