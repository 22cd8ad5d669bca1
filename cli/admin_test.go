package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/server"
)

// runServerIn starts a real server on data and returns its URL and the
// function that stops it.
func runServerIn(t *testing.T, data string) (url string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{Addr: "127.0.0.1:0", DataDir: data, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Stdout: io.Discard, Ready: func(u string) { ready <- u }})
	}()
	select {
	case url = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server.Run: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("the server did not start within 60s")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return url, stop
}

// TestDoctorAndResetCredentialsCLI: doctor lists its findings and exits 1
// on a failure; admin reset-credentials refuses while the server runs and,
// once it is stopped, writes a new bootstrap.json.
func TestDoctorAndResetCredentialsCLI(t *testing.T) {
	data := t.TempDir()
	env := testEnv{"KEYHOLD_HOME": t.TempDir()}
	_, stop := runServerIn(t, data)
	old, _ := os.ReadFile(filepath.Join(data, "bootstrap.json"))

	code, out, errOut := runCLI(t, env, "", "doctor", "--data", data)
	if code != 0 || !strings.Contains(out, "ok   lock: ") || !strings.Contains(out, "ok   master key: ") || strings.Contains(out, "FAIL") {
		t.Fatalf("doctor beside a running server: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, env, "", "admin", "reset-credentials", "--data", data)
	if code != 1 || !strings.Contains(errOut, "is in use by process") {
		t.Fatalf("reset-credentials while the server runs: exit %d, stderr %q", code, errOut)
	}
	if now, _ := os.ReadFile(filepath.Join(data, "bootstrap.json")); string(now) != string(old) {
		t.Fatal("the refused reset rewrote bootstrap.json")
	}
	stop()

	code, out, errOut = runCLI(t, env, "", "admin", "reset-credentials", "--data", data)
	if code != 0 || !strings.Contains(out, "New credentials written to "+filepath.Join(data, "bootstrap.json")) {
		t.Fatalf("reset-credentials: exit %d\n%s%s", code, out, errOut)
	}
	var before, after bootstrapFile
	json.Unmarshal(old, &before)
	b, _ := os.ReadFile(filepath.Join(data, "bootstrap.json"))
	json.Unmarshal(b, &after)
	if after.ClientSecret == "" || after.ClientSecret == before.ClientSecret || after.ClientID != before.ClientID || after.URL != before.URL {
		t.Fatalf("bootstrap.json after the reset: %+v (before %+v)", after, before)
	}

	// The new secret logs in; login names both the app and the object id.
	url, _ := runServerIn(t, data)
	code, out, errOut = runCLI(t, env, "", "login", "--bootstrap", filepath.Join(data, "bootstrap.json"), "--url", url)
	if code != 0 || !strings.Contains(out, "as app "+after.ClientID+", object ") {
		t.Fatalf("login with the new credentials: exit %d\n%s%s", code, out, errOut)
	}

	os.Chmod(filepath.Join(data, "master.key"), 0o644)
	code, out, errOut = runCLI(t, env, "", "doctor", "--data", data)
	if code != 1 || !strings.Contains(out, "FAIL permissions: ") || !strings.Contains(out, "run chmod 600") ||
		!strings.Contains(errOut, "fix the FAIL lines above") {
		t.Fatalf("doctor on a loose master.key: exit %d\n%s%s", code, out, errOut)
	}
}

// TestVersion: "keyhold version" prints the module version, the commit
// (marked dirty when it was) and the Go version from the build info.
func TestVersion(t *testing.T) {
	defer func(f func() (*debug.BuildInfo, bool)) { readBuildInfo = f }(readBuildInfo)
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/keyhold/keyhold", Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-05T10:00:00Z"},
				{Key: "vcs.modified", Value: "true"}}}, true
	}
	code, out, errOut := runCLI(t, testEnv{}, "", "version")
	if want := "keyhold v1.2.3 (0123456789ab+dirty, 2026-12-05T10:00:00Z) go1.26.0\n"; code != 0 || out != want {
		t.Fatalf("version: exit %d, %q (stderr %q); want %q", code, out, errOut, want)
	}
	readBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/keyhold/keyhold"}}, true
	}
	if _, out, _ := runCLI(t, testEnv{}, "", "version"); out != "keyhold (devel) go1.26.0\n" {
		t.Fatalf("version without VCS information = %q", out)
	}
}

// TestNewCmdDoctor: doctor's token flags go together, and the PIN comes
// from the environment, as serve's do.
func TestNewCmdDoctor(t *testing.T) {
	got, err := parseOpts(t, testEnv{"KEYHOLD_PKCS11_PIN": "1234"}, newCmdDoctor, "--data", "d", "--pkcs11-module", "/lib/p11.so", "--pkcs11-token", "keyhold")
	if checkParse(t, err, "") && (got.DataDir != "d" || got.PKCS11Module != "/lib/p11.so" || got.PKCS11Token != "keyhold" || got.PKCS11PIN != "1234") {
		t.Errorf("doctor parsed %+v", got)
	}
	_, err = parseOpts(t, nil, newCmdDoctor, "--pkcs11-module", "/lib/p11.so")
	checkParse(t, err, "--pkcs11-module and --pkcs11-token go together")
	_, err = parseOpts(t, nil, newCmdDoctor, "--pkcs11-token", "keyhold")
	checkParse(t, err, "--pkcs11-module and --pkcs11-token go together")
}
