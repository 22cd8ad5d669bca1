package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/keyhold/keyhold/crypt"
)

type tlsFiles struct {
	ca, cert, key string
}

func (f tlsFiles) config() (*tls.Config, error) {
	cert, err := os.ReadFile(f.cert)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(f.key)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return crypt.LoadServerTLS(cert, key)
}

// ensureTLS creates, on first start, a self-signed CA and a server
// certificate for the listen address, localhost and the loopback addresses.
// Later starts reuse them, so clients keep trusting the same CA.
func ensureTLS(dataDir string, bound net.Addr, requested string) (tlsFiles, error) {
	dir := filepath.Join(dataDir, "tls")
	f := tlsFiles{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem")}
	if _, err := os.Stat(f.cert); err == nil {
		return f, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	now := time.Now()
	caCert, caKey, err := crypt.GenerateCA("Keyhold local CA", now, 10*365*24*time.Hour)
	if err != nil {
		return f, err
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	for _, a := range []string{bound.String(), requested} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append(hosts, h)
		}
	}
	if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	cert, key, err := crypt.IssueServerCert(caCert, caKey, hosts, now, 2*365*24*time.Hour)
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.ca, caCert, 0o644},
		{filepath.Join(dir, "ca-key.pem"), caKey, 0o600},
		{f.key, key, 0o600},
		{f.cert, cert, 0o644}, // last: its presence marks the set complete
	} {
		if err := os.WriteFile(w.path, w.data, w.mode); err != nil {
			return f, fmt.Errorf("writing %s: %w", w.path, err)
		}
	}
	clear(caKey)
	clear(key)
	return f, nil
}
