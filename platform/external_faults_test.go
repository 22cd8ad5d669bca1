package platform

import (
	"context"
	"crypto/tls"
	"net"
	nethttp "net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// vaultFaults is a fault-injecting proxy between the platform and the
// customer's vaults: it passes requests on to the customer's Keyhold, or
// delays them past the client's try timeout, resets connections, or
// answers 429 (with Retry-After), 500 or 503.
type vaultFaults struct {
	addr string

	mu    sync.Mutex
	mode  string
	conns map[net.Conn]bool
}

func newVaultFaults(t *testing.T, w *extWorld) *vaultFaults {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vf := &vaultFaults{addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	target, _ := url.Parse("https://" + w.c.addr)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = r.In.Host },
		Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: w.pool, ServerName: "127.0.0.1"}},
	}
	answer := func(rw nethttp.ResponseWriter, status int, code string) {
		rw.Header().Set("Content-Type", "application/json")
		if status == nethttp.StatusTooManyRequests {
			rw.Header().Set("Retry-After", "30")
		}
		rw.WriteHeader(status)
		rw.Write([]byte(`{"error":{"code":"` + code + `","message":"injected by the test's proxy"}}`))
	}
	srv := &nethttp.Server{TLSConfig: w.conf.Clone(),
		Handler: nethttp.HandlerFunc(func(rw nethttp.ResponseWriter, r *nethttp.Request) {
			switch vf.current() {
			case "delay":
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return
			case "429":
				answer(rw, nethttp.StatusTooManyRequests, "Throttled")
				return
			case "500":
				answer(rw, nethttp.StatusInternalServerError, "InternalServerError")
				return
			case "503":
				answer(rw, nethttp.StatusServiceUnavailable, "ServiceUnavailable")
				return
			}
			rp.ServeHTTP(rw, r)
		}),
		ConnState: func(c net.Conn, s nethttp.ConnState) {
			vf.mu.Lock()
			defer vf.mu.Unlock()
			if s == nethttp.StateClosed || s == nethttp.StateHijacked {
				delete(vf.conns, c)
			} else {
				vf.conns[c] = true
			}
		},
	}
	go srv.ServeTLS(resettingListener{Listener: ln, vf: vf}, "", "")
	t.Cleanup(func() { srv.Close() })
	return vf
}

func (vf *vaultFaults) current() string {
	vf.mu.Lock()
	defer vf.mu.Unlock()
	return vf.mode
}

// set switches the mode and closes the open connections, so that pooled
// ones meet it too.
func (vf *vaultFaults) set(mode string) {
	vf.mu.Lock()
	vf.mode = mode
	var open []net.Conn
	for c := range vf.conns {
		open = append(open, c)
	}
	vf.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// resettingListener resets every new connection in mode "reset".
type resettingListener struct {
	net.Listener
	vf *vaultFaults
}

func (l resettingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.vf.current() != "reset" {
			return c, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestExternalTransientFaultsNeverLock: every transient fault between the
// platform and the customer's vault, injected by a proxy between the two
// Keyholds (or at the dial: connection refused, DNS failure), makes the
// policy's health Warning and locks nothing; the environment's cached key
// serves reads and writes until the key cache's TTL, then reads answer
// 503 KeyVaultUnavailable, not EnvironmentLocked; once the fault clears
// the policy is Healthy and everything reads back. A revocation (the key
// disabled in the customer's vault) then does lock.
func TestExternalTransientFaultsNeverLock(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		w := newExtWorld(t, f)
		defer f.runRunner()()
		w.c.grant(t)
		pol := w.policy(t, "faults", "", "cmk", "", "", "")
		env := f.managedEnv(t, "e")
		data := f.fill(t, env.ID, 5, 200)
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		vf := newVaultFaults(t, w)
		w.setVaultAddr(vf.addr)
		f.health(t, pol, keyhold.HealthHealthy)

		for _, c := range []struct{ name, mode, addr string }{
			{name: "timeout", mode: "delay"},
			{name: "connection reset", mode: "reset"},
			{name: "connection refused", addr: closedPort(t)},
			{name: "DNS failure", addr: "no-such-vault.invalid:443"},
			{name: "429 with Retry-After", mode: "429"},
			{name: "500", mode: "500"},
			{name: "503", mode: "503"},
		} {
			t.Run(c.name, func(t *testing.T) {
				f.clock.Set(time.Now())
				f.check(t, env.ID, data) // fills the cache
				vf.set(c.mode)
				if c.addr != "" {
					w.setVaultAddr(c.addr)
				}
				defer func() {
					vf.set("")
					w.setVaultAddr(vf.addr)
					f.clock.Set(time.Now())
					f.health(t, pol, keyhold.HealthHealthy)
					f.check(t, env.ID, data)
				}()
				f.health(t, pol, keyhold.HealthWarning)
				if s := f.env(t, env.ID).State; s != keyhold.StateEnabled {
					t.Fatalf("state after the fault: %s, want Enabled", s)
				}
				if err := f.readBack(env.ID, data); err != nil {
					t.Fatalf("cached reads during the fault: %v", err)
				}
				f.clock.Advance(DefaultKeyCacheTTL + time.Minute)
				if err := f.readBack(env.ID, data); keyhold.ErrorCode(err) != keyhold.CodeKeyVaultUnavailable {
					t.Fatalf("read after the key cache's TTL: %v, want %s (503)", err, keyhold.CodeKeyVaultUnavailable)
				}
				if s := f.env(t, env.ID).State; s != keyhold.StateEnabled {
					t.Fatalf("state after a read failed: %s, want Enabled", s)
				}
			})
		}

		// A revocation: the key disabled in the customer's vault locks.
		if _, err := w.c.v.UpdateKey(w.c.admin, w.c.vaultName, "cmk", "", keyhold.KeyAttributes{Enabled: new(bool)}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if st, err := f.p.CheckPolicyHealth(ctx, pol.ID()); st != keyhold.HealthUnhealthy {
			t.Fatalf("health check with the key disabled = %s, %v; want %s", st, err, keyhold.HealthUnhealthy)
		}
		if s := f.env(t, env.ID).State; s != keyhold.StateLocked {
			t.Fatalf("state with the key disabled: %s, want %s", s, keyhold.StateLocked)
		}
	})
}

// TestExternalLockLatency measures how long after the customer removes the
// grant in their Keyhold the platform, checking health every 5 s (the
// interval `keyhold serve --health-interval 5s` sets), locks the
// environment: within one interval and the probe's round trip.
func TestExternalLockLatency(t *testing.T) {
	const interval = 5 * time.Second
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		w := newExtWorld(t, f)
		defer f.runRunner()()
		assignment := w.c.grant(t)
		pol := w.policy(t, "latency", "", "cmk", "", "", "")
		env := f.managedEnv(t, "e")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.p.RunHealthChecks(ctx, interval) }()
		defer func() { cancel(); <-done }()
		time.Sleep(interval / 2) // the loop's first check has run: the revocation lands mid-interval

		w.c.update(t, func(tx keyhold.Tx) error { return tx.DeleteRoleAssignment(context.Background(), assignment) })
		start := time.Now()
		for f.env(t, env.ID).State != keyhold.StateLocked {
			if time.Since(start) > 2*interval {
				t.Fatalf("not locked %v after the revocation, with health checks every %v", time.Since(start), interval)
			}
			time.Sleep(20 * time.Millisecond)
		}
		lat := time.Since(start)
		t.Logf("lock latency after the remote revocation, health interval %v: %v", interval, lat.Round(time.Millisecond))
		if lat > interval+2*time.Second {
			t.Errorf("locked %v after the revocation: want within the %v interval and the probe", lat, interval)
		}
	})
}

// TestExternalRevocationsLock: each revocation class in the customer's
// Keyhold (the key disabled, its current version disabled, the key
// deleted, the vault's firewall closed) makes the platform's next health
// check Unhealthy and locks the environment, reads answering
// EnvironmentLocked; undoing it makes the policy Healthy, and re-enabling
// unwraps across the boundary again.
func TestExternalRevocationsLock(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		w := newExtWorld(t, f)
		defer f.runRunner()()
		w.c.grant(t)
		pol := w.policy(t, "revocations", "", "cmk", "", "", "")
		env := f.managedEnv(t, "e")
		data := f.fill(t, env.ID, 4, 100)
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		c := w.c
		yes, no := true, false
		setKey := func(version string, enabled *bool) func(t *testing.T) {
			return func(t *testing.T) {
				if version == "current" {
					kb, err := c.v.GetKey(c.admin, c.vaultName, "cmk", "")
					if err != nil {
						t.Fatal(err)
					}
					version = kb.Version.Version
				}
				if _, err := c.v.UpdateKey(c.admin, c.vaultName, "cmk", version, keyhold.KeyAttributes{Enabled: enabled}, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		firewall := func(action string) func(t *testing.T) {
			return func(t *testing.T) {
				v, err := c.v.GetVault(c.admin, c.sub, c.rg, c.vaultName)
				if err != nil {
					t.Fatal(err)
				}
				v.NetworkACLs.DefaultAction, v.NetworkACLs.Bypass = action, keyhold.BypassNone
				if _, err := c.v.PutVault(c.admin, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, rc := range []struct {
			name            string
			revoke, restore func(t *testing.T)
		}{
			{"key disabled", setKey("", &no), setKey("", &yes)},
			{"current version disabled", setKey("current", &no), setKey("current", &yes)},
			{"key deleted", func(t *testing.T) {
				if _, err := c.v.DeleteKey(c.admin, c.vaultName, "cmk"); err != nil {
					t.Fatal(err)
				}
			}, func(t *testing.T) {
				if _, err := c.v.RecoverDeletedKey(c.admin, c.vaultName, "cmk"); err != nil {
					t.Fatal(err)
				}
			}},
			{"firewall closed", firewall(keyhold.NetworkDeny), firewall(keyhold.NetworkAllow)},
		} {
			t.Run(rc.name, func(t *testing.T) {
				rc.revoke(t)
				f.health(t, pol, keyhold.HealthUnhealthy)
				if s := f.env(t, env.ID).State; s != keyhold.StateLocked {
					t.Fatalf("state after the revocation: %s, want %s", s, keyhold.StateLocked)
				}
				if err := f.readBack(env.ID, data); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
					t.Fatalf("read while locked: %v, want %s", err, keyhold.CodeEnvironmentLocked)
				}
				rc.restore(t)
				f.health(t, pol, keyhold.HealthHealthy)
				if err := f.p.EnableEnvironment(f.ctx, env.ID); err != nil {
					t.Fatalf("EnableEnvironment after the restore: %v", err)
				}
				f.check(t, env.ID, data)
			})
		}
	})
}
