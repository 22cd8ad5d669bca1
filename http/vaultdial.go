package http

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
)

// VaultDialer returns a DialContext for an http.Transport that connects
// every host name under domain ({vault}.{domain}, any port) to server
// (host:port), and every other address as net.Dialer does. A host-form
// vault URI then works where its name doesn't resolve (Go's resolver
// doesn't resolve names under .localhost), with no hosts-file line: TLS
// still checks the certificate against the vault's host name, since only
// the TCP connection goes elsewhere. The Azure SDKs take such a transport
// in their client options (azcore.ClientOptions.Transport).
func VaultDialer(domain, server string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := newDialer()
	if domain == "" {
		domain = keyhold.DefaultVaultDomain
	}
	a := keyhold.VaultAddress{Domain: domain}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, ok := a.VaultOfHost(addr); ok {
			addr = server
		}
		return d.DialContext(ctx, network, addr)
	}
}

// vaultDomain is the domain the Client's dialer maps to its server;
// SetVaultDomain changes it.
type vaultDomain struct{ v atomic.Pointer[string] }

func (d *vaultDomain) get() string {
	if p := d.v.Load(); p != nil {
		return *p
	}
	return keyhold.DefaultVaultDomain
}

// SetVaultDomain sets the vault domain of the server c talks to (default
// keyhold.DefaultVaultDomain): c's transport (HTTPClient) connects every
// {vault}.{domain} host to the server, so that host-form vault URIs work
// with the SDK clients built on it though their names don't resolve.
func (c *Client) SetVaultDomain(domain string) {
	domain = strings.ToLower(strings.Trim(strings.TrimSpace(domain), "."))
	if domain != "" {
		c.vaultDomain.v.Store(&domain)
	}
}

// VaultDomain returns the vault domain c maps to its server.
func (c *Client) VaultDomain() string { return c.vaultDomain.get() }

// dialVaults is the Client's DialContext: VaultDialer with the Client's
// current vault domain and server address (host:port).
func (c *Client) dialVaults(server string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := newDialer()
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		a := keyhold.VaultAddress{Domain: c.vaultDomain.get()}
		if _, ok := a.VaultOfHost(addr); ok {
			addr = server
		} else if _, ok := keyhold.HSMAddress(a).VaultOfHost(addr); ok { // a Managed HSM's host
			addr = server
		}
		return d.DialContext(ctx, network, addr)
	}
}

// newDialer is the dialer of net/http's DefaultTransport: 30 s to connect,
// TCP keep-alives every 30 s.
func newDialer() *net.Dialer {
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
}
