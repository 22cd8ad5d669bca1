package keyhold_test

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/keyhold/keyhold"

// importRule is one row of docs/architecture.md's "Packages" table.
type importRule struct {
	any     bool            // "everything"
	stdOnly bool            // "standard library only"
	allowed map[string]bool // module packages it may import, relative ("" is the root)
}

var backticked = regexp.MustCompile("`([^`]+)`")

// packageTable reads the "Packages" table of docs/architecture.md: for each
// package (relative to the module; "" is the root), what it may import.
// Backticked names in the last column that are not module packages (azkeys,
// a driver) are ignored.
func packageTable(t *testing.T, pkgs map[string]bool) map[string]importRule {
	t.Helper()
	f, err := os.Open("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules := map[string]importRule{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Packages"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			t.Fatalf("docs/architecture.md: table row %q has fewer than 3 cells", line)
		}
		last := cells[len(cells)-1]
		r := importRule{allowed: map[string]bool{},
			any:     strings.Contains(last, "everything"),
			stdOnly: strings.Contains(last, "standard library only")}
		for _, m := range backticked.FindAllStringSubmatch(last, -1) {
			if name := rel(m[1]); pkgs[name] {
				r.allowed[name] = true
			}
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			rules[rel(m[1])] = r
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rules) < 10 {
		t.Fatalf("read only %d packages from docs/architecture.md's Packages table: is its format changed?", len(rules))
	}
	return rules
}

// rel names a package relative to the module: "keyhold" (the table's name
// for the root) and the module path are "".
func rel(name string) string {
	if name == "keyhold" || name == module {
		return ""
	}
	return strings.TrimPrefix(name, module+"/")
}

// goList returns each package of the module with its non-test imports, as
// the go command sees them under tags.
func goList(t *testing.T, tags string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-tags="+tags, "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -tags=%s ./...: %v\n%s", tags, err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 {
			pkgs[rel(f[0])] = f[1:]
		}
	}
	return pkgs
}

// TestImportDirections fails when a package imports a package of the
// module that docs/architecture.md's Packages table does not allow it, or
// has no row there: the table is the allowed direction and this test its
// enforcement. It checks the production build and the tests' build (the
// keyhold_faults and keyhold_azure tags that scripts/test.sh passes).
func TestImportDirections(t *testing.T) {
	for _, tags := range []string{"", "keyhold_faults,keyhold_azure"} {
		pkgs := goList(t, tags)
		names := map[string]bool{}
		for p := range pkgs {
			names[p] = true
		}
		rules := packageTable(t, names)
		for _, p := range slices.Sorted(func(yield func(string) bool) {
			for p := range pkgs {
				if !yield(p) {
					return
				}
			}
		}) {
			r, ok := rules[p]
			if !ok {
				t.Errorf("package %q has no row in docs/architecture.md's Packages table: add one that says what it may import", module+"/"+p)
				continue
			}
			for _, imp := range pkgs[p] {
				internal := imp == module || strings.HasPrefix(imp, module+"/")
				switch {
				case r.any:
				case r.stdOnly && (internal || strings.Contains(strings.Split(imp, "/")[0], ".")):
					t.Errorf("tags %q: %s imports %s, but docs/architecture.md allows it the standard library only", tags, pathOf(p), imp)
				case internal && !r.allowed[rel(imp)]:
					t.Errorf("tags %q: %s imports %s, across the allowed direction: docs/architecture.md's Packages table does not list it for %s (change the code, or the table if the design changed)", tags, pathOf(p), imp, pathOf(p))
				}
			}
		}
	}
}

func pathOf(p string) string {
	if p == "" {
		return module
	}
	return module + "/" + p
}
