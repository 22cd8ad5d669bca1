package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

func TestNewCmdLogin(t *testing.T) {
	tests := []struct {
		name    string
		env     testEnv
		args    []string
		want    LoginOptions
		wantErr string
	}{
		{name: "bootstrap", args: []string{"--bootstrap", "data/bootstrap.json"}, want: LoginOptions{Bootstrap: "data/bootstrap.json"}},
		{name: "bootstrap with an override", args: []string{"--bootstrap", "b.json", "--url", "https://h:1"}, want: LoginOptions{Bootstrap: "b.json", URL: "https://h:1"}},
		{name: "flags", args: []string{"--url", "https://h:1", "--ca-file", "ca.pem", "--tenant", "t", "--client-id", "c", "--client-secret", "s"},
			want: LoginOptions{URL: "https://h:1", CAFile: "ca.pem", TenantID: "t", ClientID: "c", ClientSecret: "s"}},
		{name: "secret from the environment", env: testEnv{"KEYHOLD_CLIENT_SECRET": "envs"}, args: []string{"--url", "https://h:1", "--tenant", "t", "--client-id", "c"},
			want: LoginOptions{URL: "https://h:1", TenantID: "t", ClientID: "c", ClientSecret: "envs"}},
		{name: "flag beats the environment", env: testEnv{"KEYHOLD_CLIENT_SECRET": "envs"}, args: []string{"--url", "u", "--tenant", "t", "--client-id", "c", "--client-secret", "flag"},
			want: LoginOptions{URL: "u", TenantID: "t", ClientID: "c", ClientSecret: "flag"}},
		{name: "nothing", wantErr: "give --bootstrap <data>/bootstrap.json, or --url, --tenant, --client-id, --client-secret (or KEYHOLD_CLIENT_SECRET)"},
		{name: "no secret", args: []string{"--url", "u", "--tenant", "t", "--client-id", "c"}, wantErr: "or --client-secret (or KEYHOLD_CLIENT_SECRET)"},
		{name: "positional argument", args: []string{"https://h:1"}, wantErr: `got unexpected "https://h:1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, tt.env, newCmdLogin, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

// fakeDial returns a Dial that accepts only secret "right" and records the
// login it was given.
func fakeDial(got **Login) func(*Login) (keyhold.APIClient, error) {
	return func(l *Login) (keyhold.APIClient, error) {
		*got = l
		return &fakeClient{token: func(scope string) (*keyhold.Token, error) {
			if scope != "https://service.powerapps.com/.default" {
				return nil, keyhold.Errorf(keyhold.CodeInvalidScope, "scope %q", scope)
			}
			if l.ClientSecret != "right" {
				return nil, keyhold.Errorf(keyhold.CodeInvalidClient, "the client secret is wrong")
			}
			claims := base64.RawURLEncoding.EncodeToString([]byte(`{"oid":"o1"}`))
			return &keyhold.Token{AccessToken: "h." + claims + ".s"}, nil
		}}, nil
	}
}

func TestLoginRun(t *testing.T) {
	data := t.TempDir()
	const caPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	if err := os.WriteFile(filepath.Join(data, "ca.pem"), []byte(caPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(data, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "tls", "ca.pem"), []byte(caPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	bootstrap := func(caFile, secret string) string {
		n++
		p := filepath.Join(data, fmt.Sprintf("bootstrap-%d.json", n))
		b, _ := json.Marshal(bootstrapFile{URL: "https://127.0.0.1:8443", CAFile: caFile, TenantID: "t1", SubscriptionID: "s1", ClientID: "c1", ClientSecret: secret})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		opts    LoginOptions
		wantErr string
		wantURL string
	}{
		{name: "bootstrap with absolute caFile", opts: LoginOptions{Bootstrap: bootstrap(filepath.Join(data, "ca.pem"), "right")}, wantURL: "https://127.0.0.1:8443"},
		// The server may have written the path relative to where it ran.
		{name: "bootstrap with relative caFile", opts: LoginOptions{Bootstrap: bootstrap("elsewhere/ca.pem", "right")}, wantURL: "https://127.0.0.1:8443"},
		// The data directory moved since the server wrote the path.
		{name: "bootstrap after the data directory moved", opts: LoginOptions{Bootstrap: bootstrap("/gone/data/tls/ca.pem", "right")}, wantURL: "https://127.0.0.1:8443"},
		{name: "bootstrap with a missing caFile", opts: LoginOptions{Bootstrap: bootstrap("/gone/data/tls/nope.pem", "right")}, wantErr: "/gone/data/tls/nope.pem"},
		{name: "flag overrides bootstrap", opts: LoginOptions{Bootstrap: bootstrap(filepath.Join(data, "ca.pem"), "wrong"), ClientSecret: "right", URL: "https://h:9"}, wantURL: "https://h:9"},
		{name: "flags only", opts: LoginOptions{URL: "https://h:9", CAFile: filepath.Join(data, "ca.pem"), TenantID: "t1", ClientID: "c1", ClientSecret: "right"}, wantURL: "https://h:9"},
		{name: "subscription flag overrides bootstrap", opts: LoginOptions{Bootstrap: bootstrap(filepath.Join(data, "ca.pem"), "right"), Subscription: "s2"}, wantURL: "https://127.0.0.1:8443"},
		{name: "wrong secret", opts: LoginOptions{Bootstrap: bootstrap(filepath.Join(data, "ca.pem"), "wrong")}, wantErr: "invalid_client: the client secret is wrong"},
		{name: "missing bootstrap", opts: LoginOptions{Bootstrap: filepath.Join(data, "nope.json")}, wantErr: "nope.json"},
		{name: "missing CA file", opts: LoginOptions{URL: "u", CAFile: filepath.Join(data, "nope.pem"), TenantID: "t1", ClientID: "c1", ClientSecret: "right"}, wantErr: "reading the CA certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			var dialed *Login
			streams, out, _ := testIO("")
			tt.opts.IO, tt.opts.Ctx, tt.opts.Dial = streams, context.Background(), fakeDial(&dialed)
			tt.opts.Home = func() (string, error) { return home, nil }
			err := loginRun(&tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if _, err := os.Stat(filepath.Join(home, loginFile)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed login saved %s (stat: %v)", loginFile, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := "Logged in to " + tt.wantURL + " as app c1, object o1 (tenant t1)\n"; out.String() != want {
				t.Errorf("output = %q, want %q", out, want)
			}
			saved, err := loadLogin(home)
			if err != nil {
				t.Fatal(err)
			}
			want := Login{Version: 1, URL: tt.wantURL, CAPEM: caPEM, TenantID: "t1", ClientID: "c1", ClientSecret: "right"}
			switch {
			case tt.opts.Subscription != "":
				want.SubscriptionID = tt.opts.Subscription
			case tt.opts.Bootstrap != "":
				want.SubscriptionID = "s1" // the bootstrap file's
			}
			if *saved != want || *dialed != want {
				t.Errorf("saved %+v, dialed %+v, want %+v", *saved, *dialed, want)
			}
			assertMode(t, home, 0o700)
			assertMode(t, filepath.Join(home, loginFile), 0o600)
		})
	}
}

func TestLoadLogin(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" for no file
		wantErr string
	}{
		{name: "missing", wantErr: ErrNotLoggedIn.Error()},
		{name: "garbage", content: "{", wantErr: "is not valid JSON"},
		{name: "future version", content: `{"version":2}`, wantErr: "has version 2"},
		{name: "good", content: `{"version":1,"url":"u"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			if tt.content != "" {
				if err := os.WriteFile(filepath.Join(home, loginFile), []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadLogin(home)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	home := t.TempDir()
	if err := saveLogin(home, &Login{Version: loginVersion, URL: "u"}); err != nil {
		t.Fatal(err)
	}
	env := testEnv{"KEYHOLD_HOME": home}
	for _, want := range []string{"Logged out\n", "Not logged in\n"} {
		if code, stdout, stderr := runCLI(t, env, "", "logout"); code != 0 || stdout != want {
			t.Fatalf("logout: exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, want)
		}
	}
}

func TestHomeDefault(t *testing.T) {
	streams, _, _ := testIO("")
	if h, err := NewFactory(streams, testEnv{"KEYHOLD_HOME": "/x/y"}.get).Home(); err != nil || h != "/x/y" {
		t.Errorf("Home with KEYHOLD_HOME = %q, %v; want /x/y", h, err)
	}
	userHome, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	if h, err := NewFactory(streams, testEnv{}.get).Home(); err != nil || h != filepath.Join(userHome, ".keyhold") {
		t.Errorf("Home = %q, %v; want ~/.keyhold", h, err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}
