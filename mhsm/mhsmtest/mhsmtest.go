// Package mhsmtest gives tests a SoftHSM2 token for the Managed HSM: one
// per test binary, in a temporary directory.
package mhsmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyhold/keyhold/mhsm"
)

// EnvRequireSoftHSM, set to 1, turns a missing SoftHSM2 from a skip into a
// failure (scripts/test.sh sets it).
const EnvRequireSoftHSM = "KEYHOLD_REQUIRE_SOFTHSM"

var modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

var dir string

// SOFTHSM2_CONF must be set before the module initialises, so every test
// of a binary shares the one token.
var token = sync.OnceValues(func() (*mhsm.PKCS11Config, error) {
	module := ""
	for _, m := range modules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	if module == "" {
		return nil, fmt.Errorf("no SoftHSM2 module in %s (apt-get install softhsm2)", strings.Join(modules, ", "))
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return nil, errors.New("softhsm2-util is not installed (apt-get install softhsm2)")
	}
	if dir, err = os.MkdirTemp("", "keyhold-mhsm-"); err != nil {
		return nil, err
	}
	tokens, conf := filepath.Join(dir, "tokens"), filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return nil, err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command(util, "--init-token", "--free", "--label", "keyhold-mhsm", "--pin", "1234", "--so-pin", "5678").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return &mhsm.PKCS11Config{Module: module, TokenLabel: "keyhold-mhsm", PIN: "1234"}, nil
})

// Token returns the test token's configuration, or skips t without
// SoftHSM2 (fails it with KEYHOLD_REQUIRE_SOFTHSM=1).
func Token(t testing.TB) *mhsm.PKCS11Config {
	t.Helper()
	cfg, err := token()
	if err != nil {
		if os.Getenv(EnvRequireSoftHSM) == "1" {
			t.Fatalf("SoftHSM2 is required (%s=1) but unusable: %v", EnvRequireSoftHSM, err)
		}
		t.Skipf("skipping the Managed HSM tests: %v", err)
	}
	return cfg
}

// Cleanup removes the token's directory; call it from TestMain after m.Run.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
