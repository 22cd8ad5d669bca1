package keyhold_test

import (
	"errors"
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs fails for any package of the module without a package
// doc comment: each package says what it is for.
func TestPackageDocs(t *testing.T) {
	dirs := map[string]bool{}
	filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if len(dirs) < 10 {
		t.Fatalf("found only %d package directories: is the walk broken?", len(dirs))
	}
	for dir := range dirs {
		// go/build reads the package clause and its doc comment the way the
		// go command does, build tags included.
		pkg, err := build.ImportDir(dir, build.ImportComment)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			continue
		} else if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if strings.TrimSpace(pkg.Doc) == "" {
			t.Errorf("package %s in %s has no package doc comment", pkg.Name, dir)
		}
	}
}
