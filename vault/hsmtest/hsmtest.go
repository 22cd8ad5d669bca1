// Package hsmtest gives tests outside package vault a throwaway SoftHSM2
// token, so that RSA-HSM keys (and the BYOK transfer-blob import) run
// against a real PKCS#11 module over HTTPS and through the CLI.
package hsmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// EnvRequireSoftHSM set to 1 makes a missing SoftHSM2 a test failure
// instead of a skip (as in package vault).
const EnvRequireSoftHSM = "KEYHOLD_REQUIRE_SOFTHSM"

// Label and PIN are the token's.
const (
	Label = "keyhold-test"
	PIN   = "1234"
)

var modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

var dir string

// token creates the token once per test binary: SOFTHSM2_CONF must point
// at its configuration before the module initialises, and a process
// initialises a module once, so every test of the binary shares it.
var token = sync.OnceValues(func() (string, error) {
	module := ""
	for _, m := range modules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	if module == "" {
		return "", fmt.Errorf("no SoftHSM2 module in %s (apt-get install softhsm2)", strings.Join(modules, ", "))
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return "", errors.New("softhsm2-util is not installed (apt-get install softhsm2)")
	}
	d, err := os.MkdirTemp("", "keyhold-softhsm-")
	if err != nil {
		return "", err
	}
	dir = d
	tokens := filepath.Join(d, "tokens")
	conf := filepath.Join(d, "softhsm2.conf")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return "", err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command(util, "--init-token", "--free", "--label", Label, "--pin", PIN, "--so-pin", "5678").CombinedOutput(); err != nil {
		return "", fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return module, nil
})

// Module returns the PKCS#11 module's path, the token labelled Label
// ready in it with PIN; it skips t without SoftHSM2 (fails it if
// KEYHOLD_REQUIRE_SOFTHSM=1).
func Module(t testing.TB) string {
	t.Helper()
	m, err := token()
	if err != nil {
		if os.Getenv(EnvRequireSoftHSM) == "1" {
			t.Fatalf("SoftHSM2 is required (%s=1) but unusable: %v", EnvRequireSoftHSM, err)
		}
		t.Skipf("skipping: %v", err)
	}
	return m
}

// Dir is the token's directory ("" before Module), for tests that look
// at what the token wrote to disk.
func Dir() string { return dir }

// Remove deletes the token's directory: call it from TestMain after the
// tests, when nothing uses the token any more.
func Remove() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
