package keyhold_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxServiceMethods is the most methods, exported or not, that one type of
// a service package may declare (issue 9): past it, a service no longer
// reads in one sitting and should be split.
const maxServiceMethods = 40

// servicePackages are the packages that hold business rules, and for each
// the assembly type (if any) that embeds its services, with the only
// methods it may declare itself: an assembly holds no business rules, its
// API is its services' methods, promoted.
var servicePackages = []struct {
	dir      string
	assembly string
	wiring   []string
}{
	{"platform", "Platform", []string{"kinds", "registerKinds"}},
	{"vault", "Service", []string{"Close"}},
	{"arm", "", nil},
	{"policy", "", nil},
	{"deploy", "", nil},
}

// declaredMethods counts, by receiver type, the methods declared in the
// non-test Go files of dir (go/ast: unexported ones count too, and
// methods promoted by embedding do not).
func declaredMethods(t *testing.T, dir string) map[string][]string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	methods := map[string][]string{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || len(fd.Recv.List) == 0 {
				continue
			}
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			if ix, ok := typ.(*ast.IndexExpr); ok { // a generic receiver
				typ = ix.X
			}
			id, ok := typ.(*ast.Ident)
			if !ok {
				t.Fatalf("%s: receiver of %s: unexpected form %T", fset.Position(fd.Pos()), fd.Name.Name, typ)
			}
			methods[id.Name] = append(methods[id.Name], fd.Name.Name)
		}
	}
	return methods
}

// TestServiceSize holds the split of issue 9: no type of a service
// package declares more than maxServiceMethods methods, and an assembly
// (platform.Platform, vault.Service) declares only its wiring.
func TestServiceSize(t *testing.T) {
	for _, pkg := range servicePackages {
		methods := declaredMethods(t, pkg.dir)
		if len(methods) == 0 {
			t.Fatalf("%s: found no methods: is the test running in the module's root?", pkg.dir)
		}
		for _, typ := range slices.Sorted(maps.Keys(methods)) {
			ms := methods[typ]
			t.Logf("%s.%-14s %3d methods", pkg.dir, typ, len(ms))
			if len(ms) > maxServiceMethods {
				t.Errorf("%s.%s declares %d methods, more than %d: split it into services around a shared core (docs/architecture.md, \"Services in platform\")",
					pkg.dir, typ, len(ms), maxServiceMethods)
			}
		}
		if pkg.assembly == "" {
			continue
		}
		if _, ok := methods[pkg.assembly]; !ok && len(pkg.wiring) > 0 {
			t.Errorf("%s: found no methods of %s: has the assembly moved? Update servicePackages", pkg.dir, pkg.assembly)
		}
		for _, m := range methods[pkg.assembly] {
			if !slices.Contains(pkg.wiring, m) {
				t.Errorf("%s.%s declares %s: it only assembles the services; give the method to the service whose rule it is", pkg.dir, pkg.assembly, m)
			}
		}
	}
}

// TestNoRootAliases: a service package uses the root's contract types
// under their own names (issue 9) rather than re-exporting them under an
// alias (`type KeyBundle = keyhold.KeyBundle`, `const X = keyhold.Y`), so
// that a caller names each type one way.
func TestNoRootAliases(t *testing.T) {
	for _, pkg := range servicePackages {
		names, err := filepath.Glob(filepath.Join(pkg.dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok {
					continue
				}
				for _, sp := range gd.Specs {
					switch sp := sp.(type) {
					case *ast.TypeSpec:
						if sp.Assign.IsValid() && isRootSelector(sp.Type) {
							t.Errorf("%s: type %s aliases a root type: use keyhold's name instead", fset.Position(sp.Pos()), sp.Name.Name)
						}
					case *ast.ValueSpec:
						if gd.Tok != token.CONST {
							continue
						}
						for i, v := range sp.Values {
							if isRootSelector(v) && sp.Type == nil {
								t.Errorf("%s: const %s re-exports a root constant: use keyhold's name instead", fset.Position(sp.Pos()), sp.Names[i].Name)
							}
						}
					}
				}
			}
		}
	}
}

// isRootSelector reports whether e is keyhold.Name.
func isRootSelector(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "keyhold"
}
