package http

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestHSTS: every HTTPS answer, a success, an error or no route, tells
// browsers to use HTTPS only (Strict-Transport-Security).
func TestHSTS(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/healthz", "/nothing/here", adminEnvPrefix} {
		resp, err := f.raw.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("GET %s (%d): Strict-Transport-Security = %q, want max-age=31536000", path, resp.StatusCode, got)
		}
	}
}

// h1 opens an HTTP/1.1 connection over TLS to the fixture (loopback), for
// tests that must send a request byte by byte.
func (f *fixture) h1(t *testing.T) *tls.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.ca)
	c, err := tls.Dial("tcp", strings.TrimPrefix(f.url, "https://"), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAnswer reads one HTTP answer from c within d; it fails the test if
// none comes.
func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) (*nethttp.Response, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %v: %v", d, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// waitClosed fails the test unless the server closes c within d.
func waitClosed(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	if _, err := io.Copy(io.Discard, br); isTimeout(err) {
		t.Fatalf("the server kept the connection open for %v", d)
	}
}

// TestRefusedBeforeBody: a request refused before its body is read (no
// token, no route) is answered at once, without waiting for a body that
// the client sends as slowly as it likes, and its connection is closed;
// nothing is written.
func TestRefusedBeforeBody(t *testing.T) {
	f := newFixture(t)
	env := f.createEnv(t, "slow")
	host := strings.TrimPrefix(f.url, "https://")
	for _, c := range []struct{ name, head string }{
		{"no token, Content-Length", "PUT /environments/" + env.ID + "/tables/t/rows/r1 HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"},
		{"no token, chunked", "PUT /environments/" + env.ID + "/tables/t/rows/r1 HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"},
		{"no token, file upload", "PUT /environments/" + env.ID + "/files/f.bin HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 100000\r\n\r\n"},
		{"no route", "POST /nothing/here HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := f.h1(t)
			if _, err := io.WriteString(conn, c.head+"{"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, body := readAnswer(t, conn, br, 5*time.Second)
			if resp.StatusCode != nethttp.StatusUnauthorized && resp.StatusCode != nethttp.StatusNotFound {
				t.Fatalf("status %d %s; want 401 or 404", resp.StatusCode, body)
			}
			if !resp.Close {
				t.Error("the answer keeps the connection whose body was not read")
			}
			waitClosed(t, conn, br, 5*time.Second)
		})
	}
	if _, err := f.client.GetRow(context.Background(), env.ID, "t", "r1"); keyhold.ErrorCode(err) != keyhold.CodeRowNotFound {
		t.Fatalf("row after refused writes: %v; want RowNotFound", err)
	}
	if _, _, err := f.client.OpenFile(context.Background(), env.ID, "f.bin"); keyhold.ErrorCode(err) != keyhold.CodeFileNotFound {
		t.Fatalf("file after refused writes: %v; want FileNotFound", err)
	}
}

// dribble writes head, then one byte of body every interval until the
// connection fails or stop closes.
func dribble(c net.Conn, head string, every time.Duration, stop <-chan struct{}) {
	if _, err := io.WriteString(c, head); err != nil {
		return
	}
	tick := time.NewTicker(every)
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
}

// TestSlowBodyCut: with a valid token, a JSON body sent a byte at a time
// is cut at the body timeout (408), and a streamed upload that falls below
// the minimum rate is cut after its grace; a normal client is served all
// the while, and nothing the slow clients sent is stored.
func TestSlowBodyCut(t *testing.T) {
	f := newFixture(t, func(f *fixture) {
		f.srv.BodyTimeout = time.Second
		f.srv.StreamMinRate = 1 << 10
		f.srv.StreamGrace = time.Second
	})
	env := f.createEnv(t, "slow")
	tok := f.adminToken(t)
	host := strings.TrimPrefix(f.url, "https://")
	stop := make(chan struct{})
	defer close(stop)
	for _, c := range []struct{ name, head string }{
		{"row", "PUT /environments/" + env.ID + "/tables/t/rows/r1 HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tok + "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"},
		{"file", "PUT /environments/" + env.ID + "/files/f.bin HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tok + "\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			const slow = 4
			conns := make([]*tls.Conn, slow)
			for i := range conns {
				conns[i] = f.h1(t)
				go dribble(conns[i], c.head, 100*time.Millisecond, stop)
			}
			// A normal client meanwhile.
			if _, err := f.client.PutRow(context.Background(), env.ID, "t", "normal", json.RawMessage(`{"ok":true}`)); err != nil {
				t.Fatalf("a normal client while slow ones wait: %v", err)
			}
			for _, conn := range conns {
				br := bufio.NewReader(conn)
				resp, body := readAnswer(t, conn, br, 8*time.Second)
				if resp.StatusCode != nethttp.StatusRequestTimeout || !strings.Contains(string(body), keyhold.CodeRequestTimeout) {
					t.Fatalf("slow %s: %d %s; want 408 RequestTimeout", c.name, resp.StatusCode, body)
				}
				waitClosed(t, conn, br, 5*time.Second)
			}
		})
	}
	if _, err := f.client.GetRow(context.Background(), env.ID, "t", "r1"); keyhold.ErrorCode(err) != keyhold.CodeRowNotFound {
		t.Fatalf("row after a cut body: %v; want RowNotFound", err)
	}
	if _, _, err := f.client.OpenFile(context.Background(), env.ID, "f.bin"); keyhold.ErrorCode(err) != keyhold.CodeFileNotFound {
		t.Fatalf("file after a cut upload: %v; want FileNotFound", err)
	}
	// A fast upload and download at the same limits go through whole.
	file := bytes.Repeat([]byte("keyhold "), 512<<10) // 4 MiB
	if _, err := f.client.PutFile(context.Background(), env.ID, "fast.bin", bytes.NewReader(file)); err != nil {
		t.Fatalf("a fast upload: %v", err)
	}
	_, rc, err := f.client.OpenFile(context.Background(), env.ID, "fast.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("a fast download: %d bytes, %v", len(got), err)
	}
}

// TestSlowDownloadCut: a client that stops reading a streamed download is
// cut off once the server's writes stall past the grace, instead of
// holding the stream open for as long as it likes.
func TestSlowDownloadCut(t *testing.T) {
	f := newFixture(t, func(f *fixture) {
		f.srv.StreamMinRate = 1 << 10
		f.srv.StreamGrace = time.Second
	})
	env := f.createEnv(t, "slow")
	const size = 24 << 20 // more than loopback's socket buffers hold
	file := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	if _, err := f.client.PutFile(context.Background(), env.ID, "big.bin", bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	tok := f.adminToken(t)
	conn := f.h1(t)
	head := "GET /environments/" + env.ID + "/files/big.bin HTTP/1.1\r\nHost: " + strings.TrimPrefix(f.url, "https://") + "\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // read nothing, past the grace and the longest stall
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := io.Copy(io.Discard, conn)
	if n >= size {
		t.Fatalf("a client that stopped reading for 5s still got all %d bytes", n)
	}
}
