package server

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxConnsPerSource is how many connections one remote address may
// hold open at once unless Config.MaxConnsPerSource says otherwise. An
// SDK client multiplexes its requests over one HTTP/2 connection, and a
// busy HTTP/1 client over a few; 64 leaves room for many such clients
// behind one NAT while a single source can't hold the server's
// connections, as 300 slow connections from one address once did.
const DefaultMaxConnsPerSource = 64

// Connection deadlines of the HTTP server. The routes set their own
// deadlines on top (package http, deadline.go); these bound what comes
// before a route is known, and are the fallback if a route sets none.
const (
	readHeaderTimeout = 10 * time.Second // the TLS handshake and the request's headers
	readTimeout       = 30 * time.Second // a request's headers and body
	writeTimeout      = 60 * time.Second // the answer, from the end of the headers
	idleTimeout       = 2 * time.Minute  // a kept-alive connection between requests
)

// connLimiter is a net.Listener that lets each remote IP address hold at
// most max connections open at once: a connection beyond that is closed as
// soon as it is accepted, before any TLS, and counted in
// keyhold_http_connections_refused_total. It is safe for concurrent use.
type connLimiter struct {
	net.Listener
	max     int
	log     *slog.Logger
	refused prometheus.Counter
	open    prometheus.Gauge

	mu     sync.Mutex
	bySrc  map[netip.Addr]int
	warned time.Time // last warning, to log at most one a minute
}

// limitConns wraps ln so that one source holds at most max connections;
// max <= 0: no limit, ln is returned as it is. The metrics are registered
// with reg.
func limitConns(ln net.Listener, max int, reg prometheus.Registerer, log *slog.Logger) net.Listener {
	if max <= 0 {
		return ln
	}
	l := &connLimiter{
		Listener: ln, max: max, log: log, bySrc: map[netip.Addr]int{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhold_http_connections_refused_total",
			Help: "Connections closed on accept because their source address already held the most connections allowed (--max-conns-per-source).",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyhold_http_connections_open",
			Help: "Connections open to the HTTPS listener.",
		}),
	}
	reg.MustRegister(l.refused, l.open)
	return l
}

// Accept returns the next connection whose source is within its limit.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c)
		l.mu.Lock()
		if l.bySrc[src] >= l.max {
			warn := time.Since(l.warned) > time.Minute
			if warn {
				l.warned = time.Now()
			}
			l.mu.Unlock()
			c.Close()
			l.refused.Inc()
			if warn {
				l.log.Warn("refusing connections from a source that holds the most allowed; see keyhold_http_connections_refused_total",
					"source", src.String(), "max", l.max)
			}
			continue
		}
		l.bySrc[src]++
		l.mu.Unlock()
		l.open.Inc()
		return &limitedConn{Conn: c, l: l, src: src}, nil
	}
}

func (l *connLimiter) release(src netip.Addr) {
	l.mu.Lock()
	if l.bySrc[src]--; l.bySrc[src] <= 0 {
		delete(l.bySrc, src)
	}
	l.mu.Unlock()
	l.open.Dec()
}

// sourceOf is the remote IP address of c (IPv4-mapped IPv6 addresses
// unmapped, so one client counts once); the zero Addr if it has none.
func sourceOf(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// limitedConn gives its place back to the limiter when it closes.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	src  netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}
