package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the keyhold command in scripts: the
// scripts' "exec keyhold ..." runs it as a separate process, as a user would.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"keyhold": func() {
			os.Exit(Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the end-to-end scripts in testdata/script. Each gets
// KEYHOLD_HOME=$WORK/home and ADDR, a free local address for a server.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			env.Setenv("KEYHOLD_HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("ADDR", addr)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitserver": cmdWaitServer,
			"setjson":    cmdSetJSON,
			"mkfile":     cmdMkfile,
		},
	})
}

// freeAddr returns a local address that was free a moment ago. A server
// started on it could in theory lose a race for the port; tests accept that.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitForServer waits until the bootstrap file at path exists and names a
// URL that accepts connections, and returns the file's contents.
func waitForServer(ctx context.Context, path string) (*bootstrapFile, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		b, err := readBootstrap(path)
		if err == nil {
			if err = handshake(ctx, b); err == nil {
				return b, nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("server not ready: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// handshake completes a TLS handshake with the server b names, trusting
// only its CA. (A bare TCP probe would make the server log a failed
// handshake.)
func handshake(ctx context.Context, b *bootstrapFile) error {
	u, err := url.Parse(b.URL)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(b.CAFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s holds no certificate", b.CAFile)
	}
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: u.Hostname()}}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	return c.Close()
}

// cmdWaitServer implements "waitserver <bootstrap.json>": wait up to a
// minute for a server started in the background to write its bootstrap file
// and listen on its URL.
func cmdWaitServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitserver <bootstrap.json>")
	}
	_, err := waitForServer(context.Background(), ts.MkAbs(args[0]))
	ts.Check(err)
}

// cmdSetJSON implements "setjson VAR FIELD [FILE]": set VAR to the string
// or number in FIELD of the JSON object in FILE, or in the last command's
// stdout.
func cmdSetJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: setjson VAR FIELD [FILE]")
	}
	file := "stdout"
	if len(args) == 3 {
		file = args[2]
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(ts.ReadFile(file)), &obj); err != nil {
		ts.Fatalf("%s is not a JSON object: %v", file, err)
	}
	switch v := obj[args[1]].(type) {
	case string:
		ts.Setenv(args[0], v)
	case float64:
		ts.Setenv(args[0], strconv.FormatFloat(v, 'f', -1, 64))
	default:
		ts.Fatalf("%s has no string or number %q: %v", file, args[1], obj[args[1]])
	}
}

// cmdMkfile implements "mkfile PATH SIZE": write SIZE pseudo-random bytes,
// the same for the same size, to PATH.
func cmdMkfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkfile PATH SIZE")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), pseudoRandom(n), 0o644))
}

// pseudoRandom returns n deterministic bytes that don't compress.
func pseudoRandom(n int) []byte {
	r := rand.NewChaCha8([32]byte{'k', 'e', 'y', 'h', 'o', 'l', 'd'})
	b := make([]byte, n)
	r.Read(b)
	return b
}
