//go:build keyhold_azure

// The fault proxy serves transient_e2e_test.go alone, which needs
// keyprovider.Azure and so its tag.

package http_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	nethttp "net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"
)

// faultMode is what a faultProxy does with the requests it gets.
type faultMode int

const (
	// faultPass forwards every request to the vault and its answer back.
	faultPass faultMode = iota
	// fault503 answers 503 ServiceUnavailable with a Key Vault error body
	// and Retry-After, as a vault that is up but overloaded or in
	// maintenance does; nothing reaches the vault.
	fault503
	// faultHang reads the request and never answers: the client's own
	// timeout ends the call. Leaving the mode drops the held requests'
	// connections.
	faultHang
	// faultRefuse closes the listener and every open connection, so that
	// a new connection is refused (ECONNREFUSED) and a pooled one breaks.
	faultRefuse
)

func (m faultMode) String() string {
	switch m {
	case faultPass:
		return "pass"
	case fault503:
		return "503"
	case faultHang:
		return "hang"
	case faultRefuse:
		return "refused"
	}
	return fmt.Sprintf("faultMode(%d)", int(m))
}

// kv503Body is what Key Vault answers with a 503: its error shape, a code
// and a message.
const kv503Body = `{"error":{"code":"ServiceUnavailable","message":"The service is temporarily unavailable. Please retry the request later."}}`

// faultProxy is a TLS-terminating reverse proxy (net/http/httputil) in
// front of a Key Vault endpoint, on its own loopback address, that can be
// switched between passing requests on and failing them in the ways a
// network or a vault fails: 503, no answer, refused connections. Only the
// path through the proxy fails; the vault itself does not change. Safe for
// concurrent use.
type faultProxy struct {
	t       *testing.T
	addr    string // host:port, kept across faultRefuse
	url     string // https://addr
	tlsConf *tls.Config
	rp      *httputil.ReverseProxy

	mu      sync.Mutex
	mode    faultMode
	srv     *nethttp.Server // nil while refusing
	release chan struct{}   // closed when faultHang ends
	seen    map[faultMode]int
	passed  map[int]int // the vault's answers passed on, by status
}

// newFaultProxy listens on a fresh loopback port with the server
// certificate of tlsConf and forwards to target (https), trusting ca. It
// starts in faultPass and is closed when the test ends.
func newFaultProxy(t *testing.T, target string, ca []byte, tlsConf *tls.Config) *faultProxy {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultProxy{t: t, addr: ln.Addr().String(), tlsConf: tlsConf, release: make(chan struct{}),
		seen: make(map[faultMode]int), passed: make(map[int]int)}
	fp.url = "https://" + fp.addr
	transport := &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(transport.CloseIdleConnections)
	fp.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(to)
			pr.Out.Host = pr.In.Host // as a load balancer does: a vault's host names the vault
		},
		Transport: transport,
		ModifyResponse: func(resp *nethttp.Response) error {
			fp.mu.Lock()
			fp.passed[resp.StatusCode]++
			fp.mu.Unlock()
			return nil
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	fp.serve(ln)
	t.Cleanup(func() {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		if fp.srv != nil {
			fp.srv.Close()
		}
		if fp.mode == faultHang {
			close(fp.release)
		}
	})
	return fp
}

// serve starts a server on ln; fp.mu is held or fp is not yet shared.
func (fp *faultProxy) serve(ln net.Listener) {
	srv := &nethttp.Server{Handler: fp, TLSConfig: fp.tlsConf.Clone(), ErrorLog: log.New(io.Discard, "", 0)}
	fp.srv = srv
	go srv.ServeTLS(ln, "", "")
}

// set switches the proxy to mode.
func (fp *faultProxy) set(mode faultMode) {
	fp.t.Helper()
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if mode == fp.mode {
		return
	}
	if fp.mode == faultHang {
		close(fp.release) // the held requests' connections are dropped
		fp.release = make(chan struct{})
	}
	switch {
	case mode == faultRefuse:
		fp.srv.Close() // the listener and every connection, idle or not
		fp.srv = nil
	case fp.mode == faultRefuse:
		ln, err := listenAgain(fp.addr)
		if err != nil {
			fp.t.Fatalf("fault proxy: listening again on %s: %v", fp.addr, err)
		}
		fp.serve(ln)
	}
	fp.mode = mode
}

// listenAgain listens on addr, which the proxy held before, retrying for a
// while should the port be briefly in use.
func listenAgain(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requests returns how many requests reached the proxy in mode (in
// faultRefuse none can: the connections are refused before).
func (fp *faultProxy) requests(mode faultMode) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.seen[mode]
}

// total returns how many requests reached the proxy in any mode.
func (fp *faultProxy) total() int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	n := 0
	for _, c := range fp.seen {
		n += c
	}
	return n
}

// passedStatus returns how many of the vault's answers with status the
// proxy passed on.
func (fp *faultProxy) passedStatus(status int) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.passed[status]
}

// ServeHTTP handles one request as the current mode says.
func (fp *faultProxy) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	fp.mu.Lock()
	mode, release := fp.mode, fp.release
	fp.seen[mode]++
	fp.mu.Unlock()
	switch mode {
	case fault503:
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Retry-After", "10")
		h.Set("x-ms-request-id", "fault-proxy")
		w.WriteHeader(nethttp.StatusServiceUnavailable)
		io.WriteString(w, kv503Body)
	case faultHang:
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done(): // the client gave up
		case <-release:
		}
		panic(nethttp.ErrAbortHandler) // no answer at all: drop the connection
	case faultPass:
		fp.rp.ServeHTTP(w, r)
	default: // accepted just before the listener closed
		panic(nethttp.ErrAbortHandler)
	}
}
