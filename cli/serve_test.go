package cli

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/platform"
	"github.com/keyhold/keyhold/server"
)

func TestNewCmdServe(t *testing.T) {
	defaults := ServeOptions{Addr: "127.0.0.1:8443", DataDir: "./keyhold-data", LogFormat: "text", LogLevel: slog.LevelInfo,
		HealthInterval: platform.DefaultHealthInterval, KeyCacheTTL: platform.DefaultKeyCacheTTL,
		LockGraceProduction: platform.DefaultLockGraceProduction, LockGraceOther: platform.KeepLocked, VaultDomain: "vault.localhost"}
	with := func(mod func(*ServeOptions)) ServeOptions {
		o := defaults
		mod(&o)
		return o
	}
	tests := []struct {
		name    string
		env     testEnv
		args    []string
		want    ServeOptions
		wantErr string
	}{
		{name: "defaults", want: defaults},
		{name: "flags", args: []string{"--addr", ":9443", "--data", "/var/lib/keyhold", "--postgres", "postgres://x", "--log-format", "json", "--log-level", "debug"},
			want: with(func(o *ServeOptions) {
				o.Addr, o.DataDir, o.PostgresDSN, o.LogFormat, o.LogLevel = ":9443", "/var/lib/keyhold", "postgres://x", "json", slog.LevelDebug
			})},
		{name: "postgres and master key from the environment", env: testEnv{"KEYHOLD_POSTGRES": "postgres://env", "KEYHOLD_MASTER_KEY": "a2V5"},
			want: with(func(o *ServeOptions) { o.PostgresDSN, o.MasterKey = "postgres://env", "a2V5" })},
		{name: "postgres flag beats the environment", env: testEnv{"KEYHOLD_POSTGRES": "postgres://env"}, args: []string{"--postgres", "postgres://flag"},
			want: with(func(o *ServeOptions) { o.PostgresDSN = "postgres://flag" })},
		{name: "level is case-insensitive", args: []string{"--log-level", "WARN"}, want: with(func(o *ServeOptions) { o.LogLevel = slog.LevelWarn })},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantErr: `--log-format "xml" is not supported: use text or json`},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: `--log-level "loud" is not supported`},
		{name: "no master key flag", args: []string{"--master-key", "x"}, wantErr: "unknown flag: --master-key"},
		{name: "health interval and key cache TTL", args: []string{"--health-interval", "5s", "--key-cache-ttl", "90s"},
			want: with(func(o *ServeOptions) { o.HealthInterval, o.KeyCacheTTL = 5*time.Second, 90*time.Second })},
		{name: "webhook CA file", args: []string{"--webhook-ca-file", "/etc/keyhold/hooks-ca.pem"},
			want: with(func(o *ServeOptions) { o.WebhookCAFile = "/etc/keyhold/hooks-ca.pem" })},
		{name: "federation CA file", args: []string{"--federation-ca-file", "/etc/keyhold/issuers-ca.pem"},
			want: with(func(o *ServeOptions) { o.FederationCAFile = "/etc/keyhold/issuers-ca.pem" })},
		{name: "own certificate", args: []string{"--tls-cert", "/etc/keyhold/cert.pem", "--tls-key", "/etc/keyhold/key.pem"},
			want: with(func(o *ServeOptions) { o.TLSCert, o.TLSKey = "/etc/keyhold/cert.pem", "/etc/keyhold/key.pem" })},
		{name: "certificate without key", args: []string{"--tls-cert", "/etc/keyhold/cert.pem"}, wantErr: "--tls-cert and --tls-key go together"},
		{name: "key without certificate", args: []string{"--tls-key", "/etc/keyhold/key.pem"}, wantErr: "--tls-cert and --tls-key go together"},
		{name: "public URL and vault domain", args: []string{"--public-url", "https://keyhold.example.com", "--vault-domain", "vault.example.com"},
			want: with(func(o *ServeOptions) { o.PublicURL, o.VaultDomain = "https://keyhold.example.com", "vault.example.com" })},
		{name: "shared CA", args: []string{"--tls-ca-cert", "/etc/keyhold/ca.pem", "--tls-ca-key", "/etc/keyhold/ca-key.pem"},
			want: with(func(o *ServeOptions) { o.TLSCACert, o.TLSCAKey = "/etc/keyhold/ca.pem", "/etc/keyhold/ca-key.pem" })},
		{name: "CA without key", args: []string{"--tls-ca-cert", "/etc/keyhold/ca.pem"}, wantErr: "--tls-ca-cert and --tls-ca-key go together"},
		{name: "CA and own certificate", args: []string{"--tls-ca-cert", "ca.pem", "--tls-ca-key", "ca-key.pem", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
			wantErr: "not both"},
		{name: "connections per source", args: []string{"--max-conns-per-source", "8"}, want: with(func(o *ServeOptions) { o.MaxConnsPerSource = 8 })},
		{name: "no connection limit", args: []string{"--max-conns-per-source", "-1"}, want: with(func(o *ServeOptions) { o.MaxConnsPerSource = -1 })},
		{name: "bad connection limit", args: []string{"--max-conns-per-source", "-5"}, wantErr: "--max-conns-per-source -5 is not valid"},
		{name: "cmk flow environments limit", args: []string{"--cmk-flow-environments-limit", "40"}, want: with(func(o *ServeOptions) { o.CMKFlowEnvironmentsLimit = 40 })},
		{name: "bad cmk flow environments limit", args: []string{"--cmk-flow-environments-limit", "-1"}, wantErr: "--cmk-flow-environments-limit -1 is not valid"},
		{name: "egress allowlist, repeated and comma-separated", args: []string{"--egress-allow", "10.20.0.0/16,127.0.0.1", "--egress-allow", "hooks.internal"},
			want: with(func(o *ServeOptions) { o.EgressAllow = []string{"10.20.0.0/16", "127.0.0.1", "hooks.internal"} })},
		{name: "bounds are accepted", args: []string{"--health-interval", "1h", "--key-cache-ttl", "1s"},
			want: with(func(o *ServeOptions) { o.HealthInterval, o.KeyCacheTTL = time.Hour, time.Second })},
		{name: "health interval not a duration", args: []string{"--health-interval", "soon"},
			wantErr: `--health-interval "soon" is not a duration: give a number with a unit, such as 30s or 5m`},
		{name: "health interval without a unit", args: []string{"--health-interval", "60"}, wantErr: `--health-interval "60" is not a duration`},
		{name: "health interval zero", args: []string{"--health-interval", "0s"}, wantErr: "--health-interval 0s is out of range: give a duration from 1s to 1h"},
		{name: "health interval negative", args: []string{"--health-interval", "-1m"}, wantErr: "--health-interval -1m is out of range"},
		{name: "health interval too short", args: []string{"--health-interval", "999ms"}, wantErr: "--health-interval 999ms is out of range"},
		{name: "key cache TTL not a duration", args: []string{"--key-cache-ttl", "5 minutes"}, wantErr: `--key-cache-ttl "5 minutes" is not a duration`},
		{name: "key cache TTL zero", args: []string{"--key-cache-ttl", "0"}, wantErr: "--key-cache-ttl 0 is out of range"},
		{name: "key cache TTL too long", args: []string{"--key-cache-ttl", "61m"}, wantErr: "--key-cache-ttl 61m is out of range: give a duration from 1s to 1h"},
		{name: "flow lease", args: []string{"--flow-lease-ttl", "5s"}, want: with(func(o *ServeOptions) { o.FlowLeaseTTL = 5 * time.Second })},
		{name: "flow lease too short", args: []string{"--flow-lease-ttl", "100ms"}, wantErr: "--flow-lease-ttl 100ms is out of range"},
		{name: "lock grace periods", args: []string{"--delete-locked-production-after", "35d", "--delete-locked-other-after", "7d"},
			want: with(func(o *ServeOptions) { o.LockGraceProduction, o.LockGraceOther = 35*24*time.Hour, 7*24*time.Hour })},
		{name: "production kept locked", args: []string{"--delete-locked-production-after", "never"},
			want: with(func(o *ServeOptions) { o.LockGraceProduction = platform.KeepLocked })},
		{name: "lock grace without a unit", args: []string{"--delete-locked-other-after", "7"},
			wantErr: `--delete-locked-other-after "7" is not a period: give a number of days, such as 28d, or never`},
		{name: "lock grace in hours", args: []string{"--delete-locked-production-after", "48h"},
			wantErr: `--delete-locked-production-after "48h" is not a period`},
		{name: "lock grace zero", args: []string{"--delete-locked-other-after", "0d"},
			wantErr: "--delete-locked-other-after 0d is out of range: give from 1d to 3650d, or never"},
		{name: "no arguments", args: []string{"data"}, wantErr: `got unexpected "data"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, tt.env, newCmdServe, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestServeRun(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		cancel  bool  // the context ends, as on SIGINT
		serve   error // what the server returns
		wantErr error
	}{
		{name: "signal is a clean stop", cancel: true, serve: context.Canceled, wantErr: nil},
		{name: "server error", serve: errBoom, wantErr: errBoom},
		{name: "canceled without a signal is an error", serve: context.Canceled, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			streams, out, errOut := testIO("")
			var got server.Config
			opts := &ServeOptions{IO: streams, Ctx: ctx, Addr: "127.0.0.1:0", DataDir: "d", PostgresDSN: "p", MasterKey: "k", TLSCert: "c.pem", TLSKey: "k.pem", MaxConnsPerSource: 3,
				TLSCACert: "ca.pem", TLSCAKey: "ca-key.pem", PublicURL: "https://kh.example", VaultDomain: "vault.example",
				LogFormat: "json", LogLevel: slog.LevelWarn, HealthInterval: 7 * time.Second, KeyCacheTTL: 90 * time.Second,
				LockGraceProduction: platform.KeepLocked, LockGraceOther: 9 * 24 * time.Hour,
				EgressAllow: []string{"10.0.0.0/8"}, CMKFlowEnvironmentsLimit: 40,
				Serve: func(_ context.Context, cfg server.Config) error {
					got = cfg
					cfg.Logger.Info("hidden below warn")
					cfg.Logger.Warn("shown", "k", "v")
					return tt.serve
				}}
			if err := serveRun(opts); !errors.Is(err, tt.wantErr) {
				t.Fatalf("serveRun = %v, want %v", err, tt.wantErr)
			}
			if got.Addr != "127.0.0.1:0" || got.DataDir != "d" || got.PostgresDSN != "p" || got.MasterKey != "k" || got.Stdout != out ||
				got.HealthInterval != 7*time.Second || got.KeyCacheTTL != 90*time.Second || got.TLSCertFile != "c.pem" || got.TLSKeyFile != "k.pem" || got.MaxConnsPerSource != 3 ||
				got.LockGraceProduction != platform.KeepLocked || got.LockGraceOther != 9*24*time.Hour ||
				len(got.EgressAllow) != 1 || got.EgressAllow[0] != "10.0.0.0/8" || got.CMKFlowEnvironmentsLimit != 40 ||
				got.TLSCAFile != "ca.pem" || got.TLSCAKeyFile != "ca-key.pem" || got.PublicURL != "https://kh.example" || got.VaultDomain != "vault.example" {
				t.Errorf("config = %+v", got)
			}
			var line struct{ Level, Msg, K string }
			if err := json.Unmarshal(errOut.Bytes(), &line); err != nil || line.Msg != "shown" || line.K != "v" {
				t.Errorf("stderr log = %q (%v), want one JSON line for the warning", errOut, err)
			}
		})
	}
}

// TestServeBadTunable: a bad --health-interval or --key-cache-ttl is refused
// as a usage error (exit code 2) that says what to give, and no server
// starts.
func TestServeBadTunable(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--health-interval", "often"},
		{"serve", "--key-cache-ttl", "0s"},
		{"serve", "--health-interval", "30s", "--key-cache-ttl", "2h"},
	} {
		t.Run(strings.Join(args[1:], " "), func(t *testing.T) {
			streams, out, errOut := testIO("")
			f := NewFactory(streams, testEnv{"KEYHOLD_HOME": t.TempDir()}.get)
			started := false
			f.Serve = func(context.Context, server.Config) error { started = true; return nil }
			code := run(context.Background(), f, args)
			if code != 2 || started {
				t.Fatalf("exit code %d, server started %v; want 2 and no server (stderr %q)", code, started, errOut)
			}
			if msg := errOut.String(); !strings.Contains(msg, "--"+strings.TrimPrefix(args[len(args)-2], "--")) ||
				!(strings.Contains(msg, "is not a duration") || strings.Contains(msg, "is out of range: give a duration from 1s to 1h")) {
				t.Fatalf("stderr = %q, want the flag named and what to give", msg)
			}
			if out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", out)
			}
		})
	}
}

// TestServeDefaultsMatchServer: the defaults the CLI shows are the
// server's own.
func TestServeDefaultsMatchServer(t *testing.T) {
	if defaultHealthInterval != platform.DefaultHealthInterval || defaultKeyCacheTTL != platform.DefaultKeyCacheTTL {
		t.Fatalf("CLI defaults %s, %s; platform's %s, %s", defaultHealthInterval, defaultKeyCacheTTL,
			platform.DefaultHealthInterval, platform.DefaultKeyCacheTTL)
	}
}
