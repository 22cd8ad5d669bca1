package platform

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
// this package may declare (issue 9): past it, a service no longer reads in
// one sitting and should be split.
const maxServiceMethods = 40

// assemblyMethods are the only methods Platform itself may declare: it
// assembles the services and holds no business rules (platform.go).
var assemblyMethods = []string{"kinds", "registerKinds"}

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

// TestServiceSize holds the split of issue 9: no type of the package
// declares more than maxServiceMethods methods, and Platform declares only
// its assembly (its API is the services' methods, promoted).
func TestServiceSize(t *testing.T) {
	methods := declaredMethods(t, ".")
	if len(methods) == 0 {
		t.Fatal("found no methods: is the test running in the package's directory?")
	}
	for _, typ := range slices.Sorted(maps.Keys(methods)) {
		ms := methods[typ]
		t.Logf("%-14s %3d methods", typ, len(ms))
		if len(ms) > maxServiceMethods {
			t.Errorf("%s declares %d methods, more than %d: split it into services (docs/architecture.md, \"Services\")", typ, len(ms), maxServiceMethods)
		}
	}
	for _, m := range methods["Platform"] {
		if !slices.Contains(assemblyMethods, m) {
			t.Errorf("Platform declares %s: Platform only assembles the services; give the method to the service whose rule it is", m)
		}
	}
}
