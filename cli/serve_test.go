package cli

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/keyhold/keyhold/server"
)

func TestNewCmdServe(t *testing.T) {
	defaults := ServeOptions{Addr: "127.0.0.1:8443", DataDir: "./keyhold-data", LogFormat: "text", LogLevel: slog.LevelInfo}
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
			opts := &ServeOptions{IO: streams, Ctx: ctx, Addr: "127.0.0.1:0", DataDir: "d", PostgresDSN: "p", MasterKey: "k",
				LogFormat: "json", LogLevel: slog.LevelWarn,
				Serve: func(_ context.Context, cfg server.Config) error {
					got = cfg
					cfg.Logger.Info("hidden below warn")
					cfg.Logger.Warn("shown", "k", "v")
					return tt.serve
				}}
			if err := serveRun(opts); !errors.Is(err, tt.wantErr) {
				t.Fatalf("serveRun = %v, want %v", err, tt.wantErr)
			}
			if got.Addr != "127.0.0.1:0" || got.DataDir != "d" || got.PostgresDSN != "p" || got.MasterKey != "k" || got.Stdout != out {
				t.Errorf("config = %+v", got)
			}
			var line struct{ Level, Msg, K string }
			if err := json.Unmarshal(errOut.Bytes(), &line); err != nil || line.Msg != "shown" || line.K != "v" {
				t.Errorf("stderr log = %q (%v), want one JSON line for the warning", errOut, err)
			}
		})
	}
}
