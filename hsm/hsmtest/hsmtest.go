// Package hsmtest gives tests a throwaway SoftHSM2 token, one per test
// binary in a temporary directory, so that RSA-HSM keys, the Managed HSM
// and the BYOK transfer-blob import run against a real PKCS#11 module
// (in hsm, vault, mhsm, and over HTTPS and through the CLI).
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

	"github.com/keyhold/keyhold/hsm"
	"github.com/miekg/pkcs11"
)

// EnvRequireSoftHSM, set to 1, turns a missing SoftHSM2 from a skip into a
// failure (scripts/test.sh sets it).
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
var token = sync.OnceValues(func() (*hsm.PKCS11Config, error) {
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
	d, err := os.MkdirTemp("", "keyhold-softhsm-")
	if err != nil {
		return nil, err
	}
	dir = d
	tokens, conf := filepath.Join(d, "tokens"), filepath.Join(d, "softhsm2.conf")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return nil, err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command(util, "--init-token", "--free", "--label", Label, "--pin", PIN, "--so-pin", "5678").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return &hsm.PKCS11Config{Module: module, TokenLabel: Label, PIN: PIN}, nil
})

// Token returns the test token's configuration (a fresh copy), or skips t
// without SoftHSM2 (fails it with KEYHOLD_REQUIRE_SOFTHSM=1).
func Token(t testing.TB) *hsm.PKCS11Config {
	t.Helper()
	cfg, err := Config()
	if err != nil {
		if os.Getenv(EnvRequireSoftHSM) == "1" {
			t.Fatalf("SoftHSM2 is required (%s=1) but unusable: %v", EnvRequireSoftHSM, err)
		}
		t.Skipf("skipping the PKCS#11 tests: %v", err)
	}
	return cfg
}

// Config returns the test token's configuration (a fresh copy), or why
// there is none, for tests that run with or without a token.
func Config() (*hsm.PKCS11Config, error) {
	cfg, err := token()
	if err != nil {
		return nil, err
	}
	c := *cfg
	return &c, nil
}

// Module returns the PKCS#11 module's path, the token labelled Label
// ready in it with PIN; it skips t as Token does.
func Module(t testing.TB) string {
	t.Helper()
	return Token(t).Module
}

// Dir is the token's directory ("" before Token or Module), for tests
// that look at what the token wrote to disk.
func Dir() string { return dir }

// Remove deletes the token's directory: call it from TestMain after the
// tests, when nothing uses the token any more.
func Remove() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// RemoveLabelled destroys tok's objects labelled with any of labels (a
// test's counters or keys, after it), and says how many it destroyed.
func RemoveLabelled(tok *hsm.Token, labels ...string) (int, error) {
	n := 0
	err := tok.Do(func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		for _, l := range labels {
			if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, l)}); err != nil {
				return err
			}
			hs, _, err := ctx.FindObjects(sh, 64)
			if ferr := ctx.FindObjectsFinal(sh); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := ctx.DestroyObject(sh, h); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}
