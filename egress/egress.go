// Package egress decides where Keyhold may open outbound connections on a
// tenant's behalf: tenants' webhooks today, and the flows' HTTP action
// later. A tenant names the URL, so without a policy any tenant admin
// could make the server reach what only the server can reach: its own
// loopback services, the cloud metadata endpoint (169.254.169.254), the
// private network it sits in.
//
// A Policy refuses, by default, every address that is not a public
// unicast address: loopback, link-local, private (RFC 1918 and ULA),
// unspecified and "this network", multicast and broadcast, shared
// address space (CGNAT, 100.64.0.0/10), the other IANA special-purpose
// blocks, and any of those embedded in an IPv6 address (IPv4-mapped,
// IPv4-compatible, NAT64, 6to4). The operator allows exceptions by CIDR
// or by host name.
//
// The check runs where the connection is made, not only where the URL is
// registered: the dialer resolves the name itself, checks every address
// it got, and connects to a checked address, never to the name. A name
// that resolves to a public address when registered and to 127.0.0.1
// when used (a DNS rebind) is refused at the connection. A name that
// resolves to any refused address is refused as a whole, so which
// address the dialer happens to try first never matters. Proxies from the
// environment (HTTPS_PROXY) are not used: a proxy would resolve the name
// itself, out of the policy's sight.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DefaultFlag is how refusals name the allowlist unless Options.Flag
// says otherwise: the flag of "keyhold serve" that sets it.
const DefaultFlag = "keyhold serve --egress-allow"

// Resolver looks up a host name's addresses; *net.Resolver is one. Tests
// give their own to make a name resolve where they need it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy decides which addresses outbound connections may reach. The zero
// value is not usable: use New. A Policy is safe for concurrent use.
type Policy struct {
	allowNets  []netip.Prefix
	allowHosts []string // lower case, no trailing dot
	// flag names the setting that holds the allowlist, for the errors.
	flag     string
	resolver Resolver
	// only, if set, is a tenant's allowlist (Restrict): a connection must
	// also match it.
	only *Policy
}

// Options configure a Policy.
type Options struct {
	// Allow lists the operator's exceptions: CIDRs ("10.20.0.0/16"),
	// single addresses ("127.0.0.1") or host names ("hooks.internal",
	// matched exactly, case-insensitively). An allowed host name is
	// reached wherever it resolves: the operator vouches for the name.
	Allow []string
	// Flag names the setting that holds Allow, so a refusal can say what
	// to change. Default DefaultFlag.
	Flag string
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver Resolver
}

// New returns the policy opts describe. An entry of Allow that is neither
// a CIDR, an address nor a host name is an error that quotes it.
func New(opts Options) (*Policy, error) {
	p := &Policy{flag: opts.Flag, resolver: opts.Resolver}
	if p.flag == "" {
		p.flag = DefaultFlag
	}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	for _, raw := range opts.Allow {
		e := strings.TrimSpace(raw)
		if e == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(e); err == nil {
			p.allowNets = append(p.allowNets, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			p.allowNets = append(p.allowNets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		h := strings.TrimSuffix(strings.ToLower(e), ".")
		if !validHostName(h) {
			return nil, fmt.Errorf("%s entry %q is not a CIDR (10.20.0.0/16), an address (10.20.0.7) or a host name (hooks.internal)", p.flag, raw)
		}
		p.allowHosts = append(p.allowHosts, h)
	}
	return p, nil
}

// Default returns the policy without exceptions: public addresses only.
func Default() *Policy {
	p, _ := New(Options{})
	return p
}

// validHostName reports whether h is a plausible DNS name: labels of
// letters, digits, hyphens and underscores, 1–63 bytes, 253 in all.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// RefusedError is a connection the policy refused. Its message names the
// address and the range, and says how the operator allows it; it never
// holds anything the remote side sent.
type RefusedError struct {
	Host  string     // as the URL names it
	Addr  netip.Addr // the refused address
	Range string     // e.g. "loopback"
	Flag  string
	// NotListed: the tenant's allowlist (Restrict) does not hold it; Flag
	// names that setting.
	NotListed bool
}

func (e *RefusedError) Error() string {
	if e.NotListed {
		if e.Host != "" && e.Host != e.Addr.String() {
			return fmt.Sprintf("%s (%s) is not in the tenant's allowlist of hosts outbound requests may reach; a tenant administrator can add it with %s", e.Host, e.Addr, e.Flag)
		}
		return fmt.Sprintf("%s is not in the tenant's allowlist of hosts outbound requests may reach; a tenant administrator can add it with %s", e.Addr, e.Flag)
	}
	if _, literal := literalAddr(e.Host); literal && e.Host != e.Addr.String() {
		return fmt.Sprintf("%s (%s) is a %s address, which outbound requests may not reach; an operator can allow it with %s", e.Host, e.Addr, e.Range, e.Flag)
	}
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("%s resolves to %s, a %s address, which outbound requests may not reach; an operator can allow it with %s", e.Host, e.Addr, e.Range, e.Flag)
	}
	return fmt.Sprintf("%s is a %s address, which outbound requests may not reach; an operator can allow it with %s", e.Addr, e.Range, e.Flag)
}

// special are the IPv4 and IPv6 blocks refused by default, with the name a
// refusal gives them. Public unicast is what is left.
var special = []struct {
	pfx  netip.Prefix
	name string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (unspecified)"}, // Linux connects 0.0.0.0 to itself
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT, RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (or broadcast)"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Embedded IPv4 in IPv6: IPv4-compatible (::a.b.c.d, deprecated), NAT64
// (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::). Each reaches the IPv4
// address it embeds, so it is judged as that address. (IPv4-mapped,
// ::ffff:a.b.c.d, is unmapped before anything else.)
var (
	v4Compat  = netip.MustParsePrefix("::/96")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// classify returns the name of the refused range a lies in, or "" for a
// public unicast address.
func classify(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		b := a.As16()
		switch {
		case v4Compat.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
			if r := classify(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
				return r + ", embedded in IPv6"
			}
		case nat64.Contains(a):
			if r := classify(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
				return r + ", embedded in NAT64"
			}
		case sixToFour.Contains(a):
			if r := classify(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
				return r + ", embedded in 6to4"
			}
		}
	}
	for _, s := range special {
		if s.pfx.Contains(a) {
			return s.name
		}
	}
	return ""
}

// Restrict returns a policy that allows only what p allows and what a
// tenant's allowlist holds: CIDRs, addresses or host names, as Options.Allow
// takes them (flag names the tenant's setting, for refusals and for the
// error that quotes a bad entry). A listed host name is reached wherever
// it resolves that p allows; an unlisted name only if every address it
// resolves to is in a listed CIDR. p's refusals still apply: a tenant
// can't reach what the operator refuses. An empty list restricts nothing.
func (p *Policy) Restrict(allow []string, flag string) (*Policy, error) {
	only, err := New(Options{Allow: allow, Flag: flag})
	if err != nil {
		return nil, err
	}
	q := *p
	if len(only.allowNets) > 0 || len(only.allowHosts) > 0 {
		q.only = only
	}
	return &q, nil
}

// checkListed returns a *RefusedError (NotListed) unless the tenant's
// allowlist, if any, holds host by name or a is in one of its CIDRs.
func (p *Policy) checkListed(host string, a netip.Addr) error {
	if p.only == nil || p.only.hostAllowed(host) {
		return nil
	}
	a = a.Unmap().WithZone("")
	for _, n := range p.only.allowNets {
		if n.Contains(a) {
			return nil
		}
	}
	return &RefusedError{Host: host, Addr: a, Flag: p.only.flag, NotListed: true}
}

// hostAllowed reports whether the operator allowed host by name.
func (p *Policy) hostAllowed(host string) bool {
	return slices.Contains(p.allowHosts, strings.TrimSuffix(strings.ToLower(host), "."))
}

// CheckAddr returns a *RefusedError if a may not be reached (host, if
// not "", is the name it was resolved from, for the message).
func (p *Policy) CheckAddr(host string, a netip.Addr) error {
	a = a.Unmap().WithZone("")
	for _, n := range p.allowNets {
		if n.Contains(a) {
			return nil
		}
	}
	if r := classify(a); r != "" {
		return &RefusedError{Host: host, Addr: a, Range: r, Flag: p.flag}
	}
	return nil
}

// CheckURL checks, without resolving anything, what can be known of u
// when it is registered: a host that is a literal address (in any form
// the resolver would take as one) or "localhost" must be allowed. A host
// name is checked again, resolved, at every connection: this check only
// gives an early, clear answer.
func (p *Policy) CheckURL(u *url.URL) error {
	host := u.Hostname()
	if p.only != nil && !p.only.hostAllowed(host) {
		if a, ok := literalAddr(host); ok {
			if err := p.checkListed(host, a); err != nil {
				return err
			}
		}
	}
	if p.hostAllowed(host) {
		return nil
	}
	if a, ok := literalAddr(host); ok {
		return p.CheckAddr(host, a)
	}
	if h := strings.TrimSuffix(strings.ToLower(host), "."); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return p.CheckAddr(host, netip.IPv6Loopback()) // RFC 6761: always loopback
	}
	return nil
}

// literalAddr parses host as an IP address, also in the forms the C
// library's inet_aton takes (127.1, 0x7f.0.0.1, 2130706433), which Go's
// parser refuses but a cgo resolver would resolve.
func literalAddr(host string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a, true
	}
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, s := range parts {
		base := 10
		switch {
		case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
			base, s = 16, s[2:]
		case len(s) > 1 && s[0] == '0':
			base, s = 8, s[1:]
		}
		var v uint64
		if s == "" && base != 8 {
			return netip.Addr{}, false
		}
		for _, c := range strings.ToLower(s) {
			d := strings.IndexRune("0123456789abcdef", c)
			if d < 0 || d >= base {
				return netip.Addr{}, false
			}
			if v = v*uint64(base) + uint64(d); v > 0xffffffff {
				return netip.Addr{}, false
			}
		}
		vals[i] = v
	}
	// The last part fills the bytes the others left.
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// DialContext connects to addr ("host:port") as the policy allows: it
// resolves host, refuses if any address it got is refused, and connects to
// the checked addresses in turn, by address. A net.Dialer Control hook
// checks the address of every socket again just before it connects.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	allowedName := p.hostAllowed(host)
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ipnet := "ip"
		switch network {
		case "tcp4":
			ipnet = "ip4"
		case "tcp6":
			ipnet = "ip6"
		}
		if addrs, err = p.resolver.LookupNetIP(ctx, ipnet, host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s resolves to no address", host)
		}
	}
	if !allowedName {
		for _, a := range addrs {
			if err := p.CheckAddr(host, a); err != nil {
				return nil, err
			}
		}
	}
	for _, a := range addrs {
		if err := p.checkListed(host, a); err != nil {
			return nil, err
		}
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	d.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if !allowedName {
			if err := p.CheckAddr(host, ap.Addr()); err != nil {
				return err
			}
		}
		return p.checkListed(host, ap.Addr())
	}
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// Transport returns an HTTP transport that connects only as the policy
// allows, verifying servers with tlsConfig (nil: the system's roots, TLS
// 1.2 at least), and never through a proxy.
func (p *Policy) Transport(tlsConfig *tls.Config) *http.Transport {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           p.DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// MaxRedirects is the most redirects a Client follows.
const MaxRedirects = 3

// Client returns an HTTP client over Transport(tlsConfig) with timeout
// per request, following at most maxRedirects redirects (0: none, a 3xx
// answer is the answer; more than MaxRedirects: MaxRedirects). Every
// redirect is checked like the first request: its connection goes through
// the policy's dialer, and it must keep to http or https, and to https if
// the first request used it.
func (p *Policy) Client(tlsConfig *tls.Config, timeout time.Duration, maxRedirects int) *http.Client {
	maxRedirects = min(max(maxRedirects, 0), MaxRedirects)
	return &http.Client{
		Timeout:   timeout,
		Transport: p.Transport(tlsConfig),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if maxRedirects == 0 {
				return http.ErrUseLastResponse
			}
			if len(via) > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "https" && (req.URL.Scheme != "http" || via[0].URL.Scheme == "https") {
				return fmt.Errorf("a redirect from %s to %s URL %s was refused", via[0].URL.Scheme, req.URL.Scheme, req.URL.Redacted())
			}
			return p.CheckURL(req.URL)
		},
	}
}
