package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// clientFrom is an HTTPS client that trusts the server's CA and connects
// from the loopback address src (all of 127/8 is loopback on Linux).
func clientFrom(t *testing.T, bs Bootstrap, src string) *http.Client {
	t.Helper()
	ca, err := os.ReadFile(bs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestConnectionsPerSource: one source holding the most connections
// allowed has its next one closed at once (and counted), while another
// source is served; a slot comes back when a connection closes; and
// connections that never finish their request are closed by the server's
// deadlines. Bounded: five connections, about fifteen seconds.
func TestConnectionsPerSource(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir, MaxConnsPerSource: 3})
	if err != nil {
		t.Fatal(err)
	}
	bs := readBootstrap(t, dataDir)
	addr := strings.TrimPrefix(srv.url, "https://")
	started := time.Now()
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr) // from 127.0.0.1; sends nothing
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
	}
	time.Sleep(200 * time.Millisecond) // let the server accept them
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if !closedWithin(extra, 2*time.Second) {
		t.Fatal("a fourth connection from 127.0.0.1 was kept with a limit of 3")
	}

	other := clientFrom(t, bs, "127.0.0.2")
	if status, _ := get(t, other, srv.url+"/healthz"); status != http.StatusOK {
		t.Fatalf("another source while 127.0.0.1 is at its limit: %d", status)
	}
	if _, metrics := get(t, other, srv.url+"/metrics"); !strings.Contains(metrics, "keyhold_http_connections_refused_total 1\n") {
		t.Errorf("/metrics does not count the refused connection:\n%s", grepLines(metrics, "keyhold_http_connections"))
	}

	held[0].Close() // a slot comes back
	time.Sleep(200 * time.Millisecond)
	if status, _ := get(t, clientFrom(t, bs, "127.0.0.1"), srv.url+"/healthz"); status != http.StatusOK {
		t.Fatalf("127.0.0.1 after one of its connections closed: %d", status)
	}

	// The held connections never sent a TLS handshake: the server's
	// deadlines close them.
	for _, c := range held[1:] {
		if !closedWithin(c, readHeaderTimeout+5*time.Second-time.Since(started)) {
			t.Fatalf("a connection that sent nothing was still open after %v", time.Since(started))
		}
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
