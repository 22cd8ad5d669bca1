package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoInterfaceAssertions fails if the commands type-assert a value to
// an interface: Factory.Client returns the http package's Client, and each
// command group converts it to the contract it needs, which the compiler
// checks. An assertion would move that check to run time, where a missing
// method is a failed command. Asserting to a concrete type (a writer to
// *os.File, say) is not a contract and is allowed.
func TestNoInterfaceAssertions(t *testing.T) {
	// interfaces lists the interface types declared in a directory's
	// non-test files.
	interfaces := func(dir string) map[string]bool {
		out := map[string]bool{}
		for _, p := range parseNonTest(t, token.NewFileSet(), dir) {
			ast.Inspect(p, func(n ast.Node) bool {
				if ts, ok := n.(*ast.TypeSpec); ok {
					if _, ok := ts.Type.(*ast.InterfaceType); ok {
						out[ts.Name.Name] = true
					}
				}
				return true
			})
		}
		return out
	}
	// The packages whose interfaces the commands could assert to, by the
	// names cli imports them as.
	known := map[string]map[string]bool{"": interfaces("."), "keyhold": interfaces(".."), "khttp": interfaces(filepath.Join("..", "http"))}
	// http and cli declare no interface (their contracts are the root's:
	// TestNoContractsInCLI), so only the root shows that the parse works.
	if !known["keyhold"]["CMKService"] || !known["keyhold"]["CMKClient"] {
		t.Fatalf("found no interfaces to check against: is the parse broken? %v", known)
	}
	fset := token.NewFileSet()
	for _, p := range parseNonTest(t, fset, ".") {
		ast.Inspect(p, func(n ast.Node) bool {
			ta, ok := n.(*ast.TypeAssertExpr)
			if !ok || ta.Type == nil { // x.(type) in a type switch
				return true
			}
			bad := false
			switch typ := ta.Type.(type) {
			case *ast.InterfaceType:
				bad = true
			case *ast.Ident:
				bad = known[""][typ.Name]
			case *ast.SelectorExpr:
				if pkg, ok := typ.X.(*ast.Ident); ok {
					bad = known[pkg.Name][typ.Sel.Name]
				}
			}
			if bad {
				t.Errorf("%s: a type assertion to an interface; convert the http Client to the contract at compile time instead (see connect)", fset.Position(ta.Pos()))
			}
			return true
		})
	}
}

// TestNoContractsInCLI fails if the commands declare an interface of their
// own: what a command group takes from a server is a contract of the root
// package (keyhold.CMKClient, EnvironmentEnabler, …), next to the services'
// contracts, which the http package's Client is checked against where it
// is declared.
func TestNoContractsInCLI(t *testing.T) {
	fset := token.NewFileSet()
	files := parseNonTest(t, fset, ".")
	if len(files) == 0 {
		t.Fatal("parsed no file: is the test running in cli's directory?")
	}
	for _, p := range files {
		ast.Inspect(p, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if _, ok := ts.Type.(*ast.InterfaceType); ok {
					t.Errorf("%s: cli declares the interface %s: declare it in the root package keyhold (client.go), or use a contract there", fset.Position(ts.Pos()), ts.Name.Name)
				}
			}
			return true
		})
	}
}

// parseNonTest parses the non-test Go files of dir.
func parseNonTest(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}
