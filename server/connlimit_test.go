package server

import (
	"bufio"
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

	held[0].Close() // a slot comes back once the server sees it closed
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := clientFrom(t, bs, "127.0.0.1").Get(srv.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("127.0.0.1 after one of its connections closed: %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.1 still refused 5s after one of its connections closed: %v", err)
		}
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

// TestSlowTokenlessClients: the attack of the report, bounded. Ten
// tokenless connections each send a write's headers and then one byte of
// body at a time; the assembled server answers each 401 at once and
// closes it, without waiting for the body, and serves a normal client
// from the same address meanwhile.
func TestSlowTokenlessClients(t *testing.T) {
	dataDir := t.TempDir()
	srv, err := start(t, Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	bs := readBootstrap(t, dataDir)
	ca, _ := os.ReadFile(bs.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	host := strings.TrimPrefix(srv.url, "https://")
	head := "PUT /environments/00000000-0000-0000-0000-000000000000/tables/t/rows/r HTTP/1.1\r\nHost: " + host +
		"\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
	stop := make(chan struct{})
	defer close(stop)
	const slow = 10
	conns := make([]*tls.Conn, slow)
	for i := range conns {
		c, err := tls.Dial("tcp", host, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
		go func() {
			if _, err := io.WriteString(c, head); err != nil {
				return
			}
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte{'x'}); err != nil {
						return
					}
				}
			}
		}()
	}
	if status, _ := get(t, clientFrom(t, bs, "127.0.0.1"), srv.url+"/healthz"); status != http.StatusOK {
		t.Fatalf("a normal client among slow ones: %d", status)
	}
	for i, c := range conns {
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("slow client %d: no answer within 5s: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("slow client %d: %d, want 401", i, resp.StatusCode)
		}
		if !closedWithin(c, 5*time.Second) {
			t.Fatalf("slow client %d: the connection stayed open after the 401", i)
		}
	}
}
