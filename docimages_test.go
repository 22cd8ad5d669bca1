package keyhold_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docImage is a Markdown image: ![alt](path).
var docImage = regexp.MustCompile(`!\[[^\]]*\]\(([^)\s]+)\)`)

// TestDocImagesExist fails when README.md or a page of docs/ shows an
// image that isn't in the repository, such as an admin center
// screenshot renamed or dropped when the set was regenerated.
func TestDocImagesExist(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, page := range append([]string{"README.md"}, pages...) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range docImage.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			seen++
			if _, err := os.Stat(filepath.Join(filepath.Dir(page), filepath.FromSlash(target))); err != nil {
				t.Errorf("%s shows %s, which is not there: %v", page, target, err)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no image in README.md or docs/: the README should show the admin center")
	}
}
