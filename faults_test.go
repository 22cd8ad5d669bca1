package keyhold_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProductionBuildHasNoFaultPoints: the ops package of a build without
// the keyhold_faults tag (every production build) has no code that kills
// the process, whatever KEYHOLD_FAULT holds.
func TestProductionBuildHasNoFaultPoints(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags=", "-f", "{{.Dir}}{{range .GoFiles}} {{.}}{{end}}", "./ops").Output()
	if err != nil {
		t.Fatalf("go list ./ops: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("go list ./ops = %q", out)
	}
	fset := token.NewFileSet()
	for _, name := range f[1:] {
		file, err := parser.ParseFile(fset, filepath.Join(f[0], name), nil, 0) // code, not comments
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			var bad string
			switch n := n.(type) {
			case *ast.Ident:
				if n.Name == "killSelf" || n.Name == "SIGKILL" || n.Name == "Fault" {
					bad = n.Name
				}
			case *ast.BasicLit:
				if strings.Contains(n.Value, "KEYHOLD_FAULT") {
					bad = n.Value
				}
			}
			if bad != "" {
				t.Errorf("%s, in the production build, holds %s: fault points must be built only with the keyhold_faults tag", fset.Position(n.Pos()), bad)
			}
			return true
		})
	}
}

// TestServerBuildHasAzureProvider: keyprovider.Azure and NewFederated,
// which reach a policy's external vault (issue 13), are in the production
// build (no tags) of the package, and the server's build links that
// package with the Azure SDK clients they use.
func TestServerBuildHasAzureProvider(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags=", "-f", "{{.Dir}}{{range .GoFiles}} {{.}}{{end}}", "./keyprovider").Output()
	if err != nil {
		t.Fatalf("go list ./keyprovider: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("go list ./keyprovider = %q", out)
	}
	fset := token.NewFileSet()
	declared := map[string]bool{}
	for _, name := range f[1:] {
		file, err := parser.ParseFile(fset, filepath.Join(f[0], name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				declared[d.Name.Name] = true
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok {
						declared[ts.Name.Name] = true
					}
				}
			}
		}
	}
	for _, name := range []string{"Azure", "NewAzure", "NewFederated", "FederatedIdentity"} {
		if !declared[name] {
			t.Errorf("the production build of keyprovider does not declare %s: a policy naming an external vault needs it", name)
		}
	}
	deps, err := exec.Command("go", "list", "-tags=", "-deps", "./cmd/keyhold").Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/keyhold: %v", err)
	}
	for _, pkg := range []string{"github.com/keyhold/keyhold/keyprovider", "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys", "github.com/Azure/azure-sdk-for-go/sdk/azidentity"} {
		if !strings.Contains("\n"+string(deps), "\n"+pkg+"\n") {
			t.Errorf("the server's build does not include %s", pkg)
		}
	}
}
