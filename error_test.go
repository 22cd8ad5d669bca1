package keyhold

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// codeConsts returns the Code… string constants declared in the Go file
// at path, name → value.
func codeConsts(t *testing.T, path string) map[string]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				n := name.Name
				if len(n) < 5 || !strings.EqualFold(n[:4], "code") || n[4] < 'A' || n[4] > 'Z' || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				out[name.Name] = v
			}
		}
	}
	return out
}

// TestEveryCodeHasAClass: every code declared in error.go is in the
// registry, with a class, and the registry holds nothing else.
func TestEveryCodeHasAClass(t *testing.T) {
	consts := codeConsts(t, "error.go")
	if len(consts) < 40 {
		t.Fatalf("found only %d codes in error.go", len(consts))
	}
	declared := map[string]bool{}
	for name, code := range consts {
		declared[code] = true
		if _, ok := classes[code]; !ok {
			t.Errorf("%s (%q) has no class: add it to classes in error.go", name, code)
		}
	}
	for code := range classes {
		if !declared[code] {
			t.Errorf("classes holds %q, which is no Code constant of error.go", code)
		}
	}
	if len(Codes()) != len(classes) {
		t.Errorf("Codes() has %d codes, want %d", len(Codes()), len(classes))
	}
}

// TestCodesInOneFile: no Go file of the module but error.go declares an
// error code constant, so that the registry sees them all.
func TestCodesInOneFile(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == "error.go" {
			return nil
		}
		for name, v := range codeConsts(t, path) {
			t.Errorf("%s declares error code %s = %q: declare it in error.go, with a class", path, name, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIsClass: the Is… functions follow the class of the first *Error in
// the chain, and nil is of no class.
func TestIsClass(t *testing.T) {
	wrapped := fmt.Errorf("reading: %w", Errorf(CodeResourceNotFound, "gone"))
	cases := []struct {
		name string
		err  error
		is   func(error) bool
		want bool
	}{
		{"not found", Errorf(CodeNotFound, "x"), IsNotFound, true},
		{"resource not found", Errorf(CodeResourceNotFound, "x"), IsNotFound, true},
		{"key not found", Errorf(CodeKeyNotFound, "x"), IsNotFound, true},
		{"wrapped not found", wrapped, IsNotFound, true},
		{"nil not found", nil, IsNotFound, false},
		{"conflict is not not found", Errorf(CodeConflict, "x"), IsNotFound, false},
		{"conflict", Errorf(CodeEnvironmentDisabled, "x"), IsConflict, true},
		{"forbidden", Errorf(CodeAuthorizationFailed, "x"), IsForbidden, true},
		{"locked is not forbidden", Errorf(CodeEnvironmentLocked, "x"), IsForbidden, false},
		{"locked", Errorf(CodeEnvironmentLocked, "x"), IsLocked, true},
		{"invalid", Errorf(CodeInvalidGrant, "x"), IsInvalid, true},
		{"unauthorized", Errorf(CodeInvalidClient, "x"), IsUnauthorized, true},
		{"too many", Errorf(CodeSignInLocked, "x"), IsTooManyRequests, true},
		{"unavailable", Errorf(CodeKeyVaultUnavailable, "x"), IsUnavailable, true},
		{"plain error is internal", errors.New("boom"), IsInternal, true},
		{"unknown code is internal", Errorf("NoSuchCode", "x"), IsInternal, true},
		{"nil is not internal", nil, IsInternal, false},
	}
	for _, c := range cases {
		if got := c.is(c.err); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}
