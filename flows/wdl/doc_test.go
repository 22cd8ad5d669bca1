package wdl

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFunctionsDocumented compares the function list in docs/flows.md
// with the function table, so that neither drifts from the other.
func TestFunctionsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/flows.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "#### Functions\n")
	if !ok {
		t.Fatal("docs/flows.md has no \"#### Functions\" section")
	}
	sec, _, _ = strings.Cut(sec, "\n\n(")
	var doc []string
	for _, m := range regexp.MustCompile("`([A-Za-z0-9]+)`").FindAllStringSubmatch(sec, -1) {
		doc = append(doc, m[1])
	}
	slices.Sort(doc)
	if got := FunctionNames(); !slices.Equal(doc, got) {
		t.Fatalf("docs/flows.md lists\n%v\nthe function table has\n%v", doc, got)
	}
	if len(doc) < 70 {
		t.Fatalf("only %d functions: is the section's format changed?", len(doc))
	}
}
