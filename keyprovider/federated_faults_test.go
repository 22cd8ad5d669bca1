//go:build keyhold_azure

package keyprovider_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	nethttp "net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
)

// faultProxy stands between the platform and the customer's Keyhold
// (its token endpoint and its vault): it passes requests through, or
// delays them, drops or resets the connections, or answers 429 (with
// Retry-After), 500 or 503 itself. It terminates TLS with the test
// server's certificate, which the client trusts.
type faultProxy struct {
	ln   net.Listener
	addr string

	mu    sync.Mutex
	mode  string
	conns map[net.Conn]bool
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	_, tmpl := testCA()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultProxy{ln: ln, addr: ln.Addr().String(), mode: "pass", conns: map[net.Conn]bool{}}
	pool := x509.NewCertPool()
	ca, _ := testCA()
	pool.AppendCertsFromPEM(ca)
	tu, _ := url.Parse(target)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(tu); r.Out.Host = r.In.Host },
		Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}},
		ErrorLog:  discardLogger(),
	}
	hs := &nethttp.Server{TLSConfig: tmpl.TLSConfig.Clone(), ErrorLog: discardLogger(),
		Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			switch fp.currentMode() {
			case "delay":
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return
			case "429":
				w.Header().Set("Retry-After", "3")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(nethttp.StatusTooManyRequests)
				w.Write([]byte(`{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}`))
				return
			case "500", "503":
				status := nethttp.StatusInternalServerError
				if fp.currentMode() == "503" {
					status = nethttp.StatusServiceUnavailable
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				w.Write([]byte(`{"error":{"code":"ServiceUnavailable","message":"try later"}}`))
				return
			}
			rp.ServeHTTP(w, r)
		}),
		ConnState: func(c net.Conn, s nethttp.ConnState) {
			fp.mu.Lock()
			defer fp.mu.Unlock()
			if s == nethttp.StateClosed || s == nethttp.StateHijacked {
				delete(fp.conns, c)
			} else {
				fp.conns[c] = true
			}
		},
	}
	go hs.ServeTLS(&faultListener{Listener: ln, fp: fp}, "", "")
	t.Cleanup(func() { hs.Close() })
	return fp
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func (fp *faultProxy) currentMode() string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.mode
}

// set switches the mode and breaks the open connections, so that pooled
// ones meet the new mode too.
func (fp *faultProxy) set(mode string) {
	fp.mu.Lock()
	fp.mode = mode
	conns := make([]net.Conn, 0, len(fp.conns))
	for c := range fp.conns {
		conns = append(conns, c)
	}
	fp.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// faultListener drops or resets new connections in those modes.
type faultListener struct {
	net.Listener
	fp *faultProxy
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		switch l.fp.currentMode() {
		case "drop":
			c.Close()
			continue
		case "reset":
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		return c, nil
	}
}

// classOf names an error's class: transient, revocation or other.
func classOf(err error) string {
	switch keyhold.ErrorCode(err) {
	case keyhold.CodeKeyVaultUnavailable:
		return "transient"
	case keyhold.CodeForbidden, keyhold.CodeKeyNotFound, keyhold.CodeVaultNotFound:
		return "revocation"
	}
	return "other"
}

// proxied is a federated provider whose connections to the customer's
// token endpoint (at authority) go to tokenAddr, and to its vaults to
// vaultAddr (the proxies), with a short try timeout and no retries. The URLs stay the
// server's, as the issuer and the certificates name it.
func (x *crossing) proxied(t *testing.T, authority, tokenAddr, vaultAddr string) *keyprovider.Azure {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(x.cw.ca)
	vaults := khttp.VaultDialer("", vaultAddr)
	server := strings.TrimPrefix(x.cw.url, "https://")
	hc := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if a == server {
				a = tokenAddr // the customer's token endpoint, through its proxy
			}
			return vaults(ctx, network, a)
		}}}
	t.Cleanup(hc.CloseIdleConnections)
	p, err := keyprovider.NewFederated(keyprovider.FederatedIdentity{TenantID: x.cw.tenant, ClientID: x.app.AppID, AuthorityHost: authority},
		func(ctx context.Context) (string, error) {
			return x.pw.p.ManagedIdentityAssertion(ctx, x.mi.PrincipalID)
		},
		&azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc,
			Retry: policy.RetryOptions{MaxRetries: -1, TryTimeout: 700 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFederatedFaultClasses: every row of docs/external-vault.md's
// classification table, through a fault-injecting proxy between the two
// Keyholds. Transient faults (delay past the try timeout, a dropped or
// reset connection, 429 with Retry-After, 500, 503, a refused connection,
// a name that does not resolve) are CodeKeyVaultUnavailable, both when
// the token is cached (the vault request fails) and when it is not (the
// token request fails), and access comes back when the fault ends.
// Revocations (the grant, the federated credential, the key or its
// version disabled, the key deleted, the vault's firewall closed) are
// Forbidden or KeyNotFound.
func TestFederatedFaultClasses(t *testing.T) {
	ctx := context.Background()
	pw, cw := newWorld(t), newWorld(t)
	x := newCrossing(t, pw, cw)
	vaultName := cw.newVault(t)
	assignment := cw.grant(t, x.app, vaultName)
	e := cw.env(t, x.app, vaultName, nil, func(*identity) keyprovider.Provider { return nil })
	keyID := e.NewKey(t)
	tp, vp := newFaultProxy(t, cw.url), newFaultProxy(t, cw.url) // the token endpoint's, the vaults'
	authority := cw.url + "/"
	warm := x.proxied(t, authority, tp.addr, vp.addr)
	if err := warm.Probe(ctx, keyID); err != nil {
		t.Fatalf("Probe through the proxies: %v", err)
	}

	for _, mode := range []string{"delay", "drop", "reset", "429", "500", "503"} {
		t.Run(mode, func(t *testing.T) {
			vp.set(mode) // the token is cached: the vault request meets the fault
			errVault := warm.Probe(ctx, keyID)
			vp.set("pass")
			tp.set(mode) // a new provider: its token request meets it
			errToken := x.proxied(t, authority, tp.addr, vp.addr).Probe(ctx, keyID)
			tp.set("pass")
			if classOf(errVault) != "transient" || classOf(errToken) != "transient" {
				t.Fatalf("%s: vault request %v; token request %v: want both transient", mode, errVault, errToken)
			}
			if !strings.Contains(errToken.Error(), "customer's directory") {
				t.Fatalf("%s: the token request's error does not name the directory: %v", mode, errToken)
			}
			if err := warm.Probe(ctx, keyID); err != nil {
				t.Fatalf("after %s ended: %v", mode, err)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		for _, p := range []*keyprovider.Azure{x.proxied(t, authority, closed, vp.addr), x.proxied(t, authority, tp.addr, closed)} {
			if err := p.Probe(ctx, keyID); classOf(err) != "transient" {
				t.Fatalf("connection refused: %v, want transient", err)
			}
		}
	})
	t.Run("dns", func(t *testing.T) {
		err := x.proxied(t, "https://login.no-such-host.invalid/", tp.addr, vp.addr).Probe(ctx, keyID)
		if classOf(err) != "transient" || !strings.Contains(err.Error(), "no-such-host") {
			t.Fatalf("a name that does not resolve: %v, want transient", err)
		}
	})

	revoked := func(t *testing.T, name string, err error, inner string) {
		t.Helper()
		var ke *keyhold.Error
		if classOf(err) != "revocation" || (inner != "" && (!errors.As(err, &ke) || ke.Inner != inner)) {
			t.Fatalf("%s: %v, want a revocation (%s)", name, err, inner)
		}
	}
	keyName := func(id string) string { return id[strings.LastIndex(id, "/")+1:] }
	t.Run("version disabled", func(t *testing.T) {
		k := e.NewKey(t)
		b, err := cw.v.CreateKey(cw.admin, vaultName, keyName(k), keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.v.UpdateKey(cw.admin, vaultName, keyName(k), b.Version.Version, keyhold.KeyAttributes{Enabled: to.Ptr(false)}, nil, nil); err != nil {
			t.Fatal(err)
		}
		revoked(t, "version disabled", warm.Probe(ctx, k+"/"+b.Version.Version), keyhold.InnerKeyDisabled)
	})
	t.Run("key disabled", func(t *testing.T) {
		k := e.NewKey(t)
		e.Disable(t, k)
		revoked(t, "key disabled", warm.Probe(ctx, k), keyhold.InnerKeyDisabled)
	})
	t.Run("key deleted", func(t *testing.T) {
		k := e.NewKey(t)
		if _, err := cw.v.DeleteKey(cw.admin, vaultName, keyName(k)); err != nil {
			t.Fatal(err)
		}
		revoked(t, "key deleted", warm.Probe(ctx, k), "")
	})
	t.Run("firewall", func(t *testing.T) {
		fwVault := cw.newVault(t)
		fwAssign := cw.grant(t, x.app, fwVault)
		defer cw.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(ctx, fwAssign) })
		b, err := cw.v.CreateKey(cw.admin, fwVault, "fw", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA, Size: 2048})
		if err != nil {
			t.Fatal(err)
		}
		k := strings.TrimSuffix(b.KID, "/"+b.Version.Version)
		if err := warm.Probe(ctx, k); err != nil {
			t.Fatalf("Probe before the firewall: %v", err)
		}
		v := &keyhold.Vault{SubscriptionID: cw.sub, ResourceGroup: cw.rg, Name: fwVault, Location: "westeurope",
			EnableRbacAuthorization: true, EnablePurgeProtection: true,
			NetworkACLs: keyhold.NetworkACLs{Bypass: "None", DefaultAction: "Deny", IPRules: []string{"203.0.113.7"}}}
		if _, err := cw.v.PutVault(cw.admin, v); err != nil {
			t.Fatalf("PutVault: %v", err)
		}
		revoked(t, "firewall", warm.Probe(ctx, k), keyhold.InnerForbiddenByFirewall)
	})
	t.Run("grant removed", func(t *testing.T) {
		cw.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(ctx, assignment) })
		revoked(t, "grant removed", warm.Probe(ctx, keyID), keyhold.InnerForbiddenByRbac)
	})
	t.Run("federated credential removed", func(t *testing.T) {
		cw.update(t, func(tx keyhold.Tx) error { return tx.DeleteFederatedCredential(ctx, x.app.PrincipalID, x.fic) })
		revoked(t, "federated credential removed", x.proxied(t, authority, tp.addr, vp.addr).Probe(ctx, keyID), keyhold.InnerAccessDenied)
	})
}
