package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// resolverFunc is a Resolver that answers from a map: the one fake of
// these tests, since a test can't make a real DNS name resolve to
// loopback on demand (a rebind). Names it doesn't know go to the system's
// resolver.
type resolverFunc map[string][]netip.Addr

func (r resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := r[strings.ToLower(host)]; ok {
		return a, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func mustNew(t *testing.T, o Options) *Policy {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckAddr: every non-public range is refused by default, in each of
// its IPv6 disguises, naming the range and the allowlist flag; public
// addresses pass.
func TestCheckAddr(t *testing.T) {
	p := Default()
	for _, tc := range []struct{ addr, rng string }{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:169.254.169.254", "link-local"},
		{"169.254.169.254", "link-local (cloud metadata)"},
		{"fe80::1", "link-local"},
		{"10.0.0.1", "private (RFC 1918)"},
		{"172.16.5.4", "private (RFC 1918)"},
		{"172.31.255.255", "private (RFC 1918)"},
		{"192.168.1.1", "private (RFC 1918)"},
		{"fd00::1", "private (unique local)"},
		{"fc00::1", "private (unique local)"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"::127.0.0.1", "loopback, embedded in IPv6"},
		{"64:ff9b::a9fe:a9fe", "link-local (cloud metadata), embedded in NAT64"},
		{"2002:0a00:0001::1", "private (RFC 1918), embedded in 6to4"},
		{"fe80::1%eth0", "link-local"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := p.CheckAddr("", netip.MustParseAddr(tc.addr))
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(re.Range, tc.rng) {
				t.Fatalf("CheckAddr(%s) = %v; want refused as %s", tc.addr, err, tc.rng)
			}
			if !strings.Contains(err.Error(), DefaultFlag) {
				t.Errorf("refusal %q does not name %s", err, DefaultFlag)
			}
		})
	}
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "2606:4700::1111", "64:ff9b::808:808", "2002:0808:0808::1", "::ffff:8.8.8.8"} {
		if err := p.CheckAddr("", netip.MustParseAddr(a)); err != nil {
			t.Errorf("public %s refused: %v", a, err)
		}
	}
}

// TestAllowlist: the operator's CIDRs, addresses and host names are
// allowed and nothing else; an entry that is none of those is refused,
// quoted.
func TestAllowlist(t *testing.T) {
	p := mustNew(t, Options{Allow: []string{"10.20.0.0/16", " 127.0.0.1 ", "Hooks.Internal.", "::1"}, Flag: "--egress-allow"})
	for _, a := range []string{"10.20.3.4", "127.0.0.1", "::ffff:127.0.0.1", "::1"} {
		if err := p.CheckAddr("", netip.MustParseAddr(a)); err != nil {
			t.Errorf("allowed %s refused: %v", a, err)
		}
	}
	for _, a := range []string{"10.21.0.1", "127.0.0.2", "169.254.169.254"} {
		if err := p.CheckAddr("", netip.MustParseAddr(a)); err == nil || !strings.Contains(err.Error(), "--egress-allow") {
			t.Errorf("CheckAddr(%s) = %v; want refused, naming --egress-allow", a, err)
		}
	}
	if err := p.CheckURL(&url.URL{Scheme: "https", Host: "hooks.internal:8443"}); err != nil {
		t.Errorf("allowed host name refused: %v", err)
	}
	for _, bad := range []string{"10.0.0.0/33", "hooks internal", "http://x", "a..b"} {
		if _, err := New(Options{Allow: []string{bad}, Flag: "--egress-allow"}); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) || !strings.Contains(err.Error(), "--egress-allow") {
			t.Errorf("New with entry %q: %v; want an error quoting it", bad, err)
		}
	}
}

// TestCheckURL: a literal address in any form a resolver would take, and
// localhost, are refused when the URL is given; a host name passes (it is
// checked when connecting).
func TestCheckURL(t *testing.T) {
	p := Default()
	for _, raw := range []string{
		"https://127.0.0.1/x", "https://[::1]:8443/x", "http://169.254.169.254/latest/meta-data/", "https://[::ffff:127.0.0.1]/",
		"https://[::ffff:7f00:1]/", "https://10.1.2.3/", "https://[fd12::1]/", "https://0.0.0.0/", "https://localhost/",
		"https://LOCALHOST./", "https://app.localhost/", "https://127.1/", "https://0x7f.0.0.1/", "https://2130706433/",
		"https://0177.0.0.1/", "https://169.254.43518/", "https://[fe80::1%25eth0]/",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		var re *RefusedError
		if err := p.CheckURL(u); !errors.As(err, &re) {
			t.Errorf("CheckURL(%s) = %v; want a refusal", raw, err)
		}
	}
	for _, raw := range []string{"https://hooks.contoso.com/x", "https://8.8.8.8/", "https://1e100.net/", "https://0x.example/"} {
		u, _ := url.Parse(raw)
		if err := p.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%s) = %v; want nil", raw, err)
		}
	}
}

// listener is a real TCP server on loopback that counts its connections.
func listener(t *testing.T) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), conns
}

// TestDialResolvesThenChecks: the dialer refuses a name that resolves to a
// refused address (as "localhost" does for real, or a rebound name), even
// when one of its addresses is public, and never connects; the same name
// on the allowlist, or an allowed address, connects.
func TestDialResolvesThenChecks(t *testing.T) {
	addr, conns := listener(t)
	_, port, _ := net.SplitHostPort(addr)
	res := resolverFunc{
		"rebind.example":   addrs("127.0.0.1"),
		"mixed.example":    addrs("8.8.8.8", "127.0.0.1"),
		"metadata.example": addrs("::ffff:169.254.169.254"),
		"hooks.internal":   addrs("127.0.0.1"),
	}
	p := mustNew(t, Options{Resolver: res, Allow: []string{"hooks.internal"}})
	ctx := context.Background()
	for _, host := range []string{"localhost", "rebind.example", "mixed.example", "metadata.example", "127.0.0.1", "::ffff:127.0.0.1"} {
		c, err := p.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		var re *RefusedError
		if !errors.As(err, &re) {
			if c != nil {
				c.Close()
			}
			t.Errorf("dial %s: %v; want a refusal", host, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Fatalf("the listener got %d connections from refused dials", n)
	}
	c, err := p.DialContext(ctx, "tcp", net.JoinHostPort("hooks.internal", port))
	if err != nil {
		t.Fatalf("dial an allowed name: %v", err)
	}
	c.Close()
	q := mustNew(t, Options{Allow: []string{"127.0.0.1/32"}})
	c, err = q.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial an allowed address: %v", err)
	}
	c.Close()
}

// TestClientRedirects: a redirect to a refused address is refused, and
// never reached; at most MaxRedirects are followed; a client made with no
// redirects returns the 3xx.
func TestClientRedirects(t *testing.T) {
	var refusedHits atomic.Int32
	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refusedHits.Add(1)
		io.WriteString(w, "SECRET")
	}))
	defer refused.Close()
	var hops atomic.Int32
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-refused":
			http.Redirect(w, r, refused.URL+"/", http.StatusFound)
		case "/loop":
			hops.Add(1)
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer allowed.Close()
	_, port, _ := net.SplitHostPort(allowed.Listener.Addr().String())
	// hooks.internal is allowed by name and resolves to the allowed
	// server's loopback address; the refused server is on the same
	// address, reached by a literal that is not allowed.
	p := mustNew(t, Options{Allow: []string{"hooks.internal"}, Resolver: resolverFunc{"hooks.internal": addrs("127.0.0.1")}})
	base := "http://hooks.internal:" + port

	c := p.Client(nil, 5*time.Second, 3)
	_, err := c.Get(base + "/to-refused")
	var re *RefusedError
	if !errors.As(err, &re) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("a redirect to a refused address: %v; want the refusal", err)
	}
	if n := refusedHits.Load(); n != 0 {
		t.Fatalf("the refused server got %d requests", n)
	}
	if _, err := c.Get(base + "/loop"); err == nil || !strings.Contains(err.Error(), "more than 3 redirects") || hops.Load() != 4 {
		t.Fatalf("a redirect loop: %v after %d requests; want stopped after 3 redirects", err, hops.Load())
	}
	resp, err := c.Get(base + "/fine")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	resp, err = p.Client(nil, 5*time.Second, 0).Get(base + "/to-refused")
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("no redirects: %v, %v; want the 302 itself", resp, err)
	}
	resp.Body.Close()
	if n := refusedHits.Load(); n != 0 {
		t.Fatalf("the refused server got %d requests", n)
	}
}

// TestRestrict: a tenant's allowlist narrows the operator's policy: a
// listed name or an address in a listed CIDR is reached, anything else is
// refused naming the tenant's setting; the operator's refusals still
// apply to what the tenant lists; a bad entry is refused quoting it.
func TestRestrict(t *testing.T) {
	addr, conns := listener(t)
	_, port, _ := net.SplitHostPort(addr)
	res := resolverFunc{"partner.example": addrs("127.0.0.1"), "other.example": addrs("127.0.0.1")}
	op := mustNew(t, Options{Resolver: res, Allow: []string{"127.0.0.0/8"}})
	const setting = "keyhold tenant egress set"
	tp, err := op.Restrict([]string{"partner.example", "10.1.2.0/24"}, setting)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := tp.DialContext(ctx, "tcp", net.JoinHostPort("partner.example", port))
	if err != nil {
		t.Fatalf("dial a listed name: %v", err)
	}
	c.Close()
	before := conns.Load()
	for _, host := range []string{"other.example", "127.0.0.1"} {
		_, err := tp.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		var re *RefusedError
		if !errors.As(err, &re) || !re.NotListed || !strings.Contains(err.Error(), setting) || !strings.Contains(err.Error(), host) {
			t.Errorf("dial %s: %v; want a refusal naming %q", host, err, setting)
		}
	}
	// Listed by the tenant, refused by the operator: the operator's word.
	_, err = tp.DialContext(ctx, "tcp", "10.1.2.3:"+port)
	var re *RefusedError
	if !errors.As(err, &re) || re.NotListed || !strings.Contains(err.Error(), DefaultFlag) {
		t.Errorf("dial 10.1.2.3: %v; want the operator's refusal", err)
	}
	if err := tp.CheckURL(&url.URL{Scheme: "https", Host: "127.0.0.1"}); err == nil || !strings.Contains(err.Error(), setting) {
		t.Errorf("CheckURL of an unlisted address: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := conns.Load(); n != before {
		t.Fatalf("refused dials reached the listener (%d connections)", n-before)
	}
	if same, err := op.Restrict(nil, setting); err != nil || same.only != nil {
		t.Errorf("an empty list must restrict nothing: %v", err)
	}
	if _, err := op.Restrict([]string{"not a host!"}, setting); err == nil || !strings.Contains(err.Error(), `"not a host!"`) || !strings.Contains(err.Error(), setting) {
		t.Errorf("bad entry: %v", err)
	}
}
