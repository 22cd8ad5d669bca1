package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// testEnv is a fake process environment for Factory.Getenv.
type testEnv map[string]string

func (e testEnv) get(k string) string { return e[k] }

// testIO returns streams reading stdin and writing to buffers.
func testIO(stdin string) (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, &out, &errOut
}

// parseOpts builds a command with newCmd and a runF that captures its
// options, runs it under the root's global flags with args, and returns the
// captured options (nil if runF was not reached) and the error.
func parseOpts[O any](t *testing.T, env testEnv, newCmd func(*Factory, func(*O) error) *cobra.Command, args ...string) (*O, error) {
	t.Helper()
	streams, _, _ := testIO("")
	f := NewFactory(streams, env.get)
	var got *O
	cmd := newCmd(f, func(o *O) error { got = o; return nil })
	root := newRootShell(f)
	root.AddCommand(cmd)
	root.SetArgs(append([]string{cmd.Name()}, args...))
	_, err := root.ExecuteC()
	return got, err
}

// checkParse fails t unless err matches wantErr: nil for "", else a usage
// error containing wantErr. It reports whether parsing succeeded.
func checkParse(t *testing.T, err error, wantErr string) bool {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("parse error: %v", err)
		}
		return true
	}
	var ue *usageError
	if !errors.As(err, &ue) {
		t.Fatalf("error = %v (%T), want a usage error containing %q", err, err, wantErr)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("error = %q, want it to contain %q", err, wantErr)
	}
	return false
}

// sameOptions fails t unless got and want, structs of the same type, agree in
// their parsed fields: every field but the dependencies (funcs, interfaces
// such as the context, and pointers such as the streams).
func sameOptions(t *testing.T, got, want any) {
	t.Helper()
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := range g.NumField() {
		switch g.Field(i).Kind() {
		case reflect.Func, reflect.Interface, reflect.Pointer:
			continue
		}
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			t.Errorf("%s = %#v, want %#v", g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface())
		}
	}
}

// runCLI runs the whole command line with env and stdin and returns the
// exit code and outputs.
func runCLI(t *testing.T, env testEnv, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	streams, out, errOut := testIO(stdin)
	code = run(context.Background(), NewFactory(streams, env.get), args)
	return code, out.String(), errOut.String()
}

func TestRunExitCodes(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "help", args: []string{"--help"}, wantCode: 0, wantStdout: "keyhold login --bootstrap"},
		{name: "no arguments prints help", args: nil, wantCode: 0, wantStdout: "Available Commands"},
		{name: "group without subcommand prints help", args: []string{"env"}, wantCode: 0, wantStdout: "enable-managed"},
		{name: "unknown command", args: []string{"bogus"}, wantCode: 2, wantStderr: `Error: unknown command "bogus" for "keyhold"`},
		{name: "unknown subcommand suggests", args: []string{"env", "lst"}, wantCode: 2, wantStderr: "did you mean list?"},
		{name: "unknown flag", args: []string{"env", "list", "--bogus"}, wantCode: 2, wantStderr: "Run 'keyhold env list --help' for usage."},
		{name: "bad output format", args: []string{"env", "list", "-o", "yaml"}, wantCode: 2, wantStderr: `invalid argument "yaml" for "-o, --output" flag: use table, json or id`},
		{name: "missing argument", args: []string{"env", "show"}, wantCode: 2, wantStderr: `"keyhold env show" is missing <id>`},
		{name: "delete needs --yes", args: []string{"env", "delete", "e1"}, wantCode: 2, wantStderr: "pass --yes to confirm"},
		{name: "not logged in", args: []string{"env", "list"}, wantCode: 1, wantStderr: "Error: not logged in: run keyhold login --bootstrap <data>/bootstrap.json\n"},
		{name: "local validation names the locations", args: []string{"env", "create", "--name", "X", "--location", "mars"}, wantCode: 1,
			wantStderr: `Error: LocationNotAvailableForResourceType: location "mars" is not supported: use one of unitedstates, `},
		{name: "logout when logged out", args: []string{"logout"}, wantCode: 0, wantStdout: "Not logged in\n"},
		{name: "server unreachable", args: []string{"login", "--url", "https://127.0.0.1:1", "--tenant", "t", "--client-id", "c", "--client-secret", "s"}, wantCode: 1,
			wantStderr: "Error: ServiceUnavailable: no answer from Keyhold at https://127.0.0.1:1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, testEnv{"KEYHOLD_HOME": home}, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
			if tt.wantCode != 2 && strings.Contains(stderr, "Usage:") {
				t.Errorf("stderr holds a usage dump:\n%s", stderr)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	notFound := &keyhold.Error{Code: keyhold.CodeRowNotFound, Message: `row "a1" was not found`,
		Err: errors.New("HTTP 404 from GET /x, x-ms-request-id r1")}
	refused := errors.New("connect: connection refused")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "plain", err: errors.New("open x: no such file"), want: "open x: no such file"},
		{name: "code and message", err: keyhold.Errorf(keyhold.CodeInvalidLocation, "use one of uk"), want: "LocationNotAvailableForResourceType: use one of uk"},
		{name: "request id on its own line", err: notFound,
			want: "RowNotFound: row \"a1\" was not found\n  (HTTP 404 from GET /x, x-ms-request-id r1)"},
		{name: "context kept", err: fmt.Errorf("downloading f: %w", notFound),
			want: "downloading f: RowNotFound: row \"a1\" was not found\n  (HTTP 404 from GET /x, x-ms-request-id r1)"},
		{name: "wrapped before other text", err: fmt.Errorf("%w; then more", keyhold.Errorf("X", "m")), want: "X: m; then more"},
		{name: "cause already in the message", err: &keyhold.Error{Code: keyhold.CodeServiceUnavailable,
			Message: "no answer from Keyhold at https://h: connect: connection refused", Err: fmt.Errorf("Get \"https://h/x\": %w", refused)},
			want: "ServiceUnavailable: no answer from Keyhold at https://h: connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorText(tt.err); got != tt.want {
				t.Errorf("errorText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEveryCommandHasShortHelp(t *testing.T) {
	streams, _, _ := testIO("")
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Short == "" {
			t.Errorf("%q has no Short help", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newCmdRoot(NewFactory(streams, testEnv{}.get)))
}
