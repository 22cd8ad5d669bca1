package keyhold_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestContractImports fails if http or cli imports a service package: both
// are built on the contracts in the root (and the http package's Client
// implements them), so a service's rules can change without them. cli may
// import server, the assembly that "keyhold serve" runs; http must not
// reach a service package even through another import.
func TestContractImports(t *testing.T) {
	const mod = "github.com/keyhold/keyhold/"
	services := []string{"platform", "arm", "vault", "policy", "deploy"}
	list := func(t *testing.T, args ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
		}
		return strings.Fields(string(out))
	}
	check := func(t *testing.T, pkg, how string, imports []string) {
		t.Helper()
		if len(imports) == 0 {
			t.Fatalf("go list found no imports of %s: is the listing broken?", pkg)
		}
		for _, s := range services {
			if slices.Contains(imports, mod+s) {
				t.Errorf("%s imports %s%s: take its contract and data types from the root package keyhold instead", pkg, how, s)
			}
		}
	}
	for _, pkg := range []string{"http", "cli"} {
		check(t, pkg, "", list(t, "-f", `{{join .Imports " "}}`, "./"+pkg))
	}
	check(t, "http", "(through its dependencies) ", list(t, "-deps", "./http"))
}
