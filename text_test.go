package keyhold_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keyhold/keyhold"
)

func TestCheckText(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		hints    []string // "" : accepted
	}{
		{name: "plain", in: "Contoso Sales"},
		{name: "accents and scripts", in: "Café Zürich 日本語 مرحبا עברית"},
		{name: "emoji with a zero-width joiner", in: "team 👩\u200d💻"},
		{name: "empty", in: ""},
		{name: "NUL", in: "Contoso\x00Sales", hints: []string{"U+0000", "a control character", "at character 8", `"Contoso\x00Sales"`}},
		{name: "line feed", in: "a\nforged line", hints: []string{"U+000A", `"a\nforged line"`}},
		{name: "tab", in: "a\tb", hints: []string{"U+0009"}},
		{name: "DEL", in: "a\x7f", hints: []string{"U+007F"}},
		{name: "C1 next line", in: "a\u0085b", hints: []string{"U+0085", "a control character"}},
		{name: "right-to-left override", in: "Contoso\u202Eved", hints: []string{"U+202E (RIGHT-TO-LEFT OVERRIDE)", "bidirectional", `"Contoso\u202eved"`, "at character 8"}},
		{name: "left-to-right embedding", in: "\u202Ax", hints: []string{"U+202A", "at character 1"}},
		{name: "pop directional formatting", in: "x\u202C", hints: []string{"U+202C"}},
		{name: "isolate", in: "x\u2066y\u2069", hints: []string{"U+2066 (LEFT-TO-RIGHT ISOLATE)"}},
		{name: "pop isolate", in: "x\u2069", hints: []string{"U+2069"}},
		{name: "right-to-left mark", in: "x\u200F", hints: []string{"U+200F (RIGHT-TO-LEFT MARK)"}},
		{name: "left-to-right mark", in: "x\u200E", hints: []string{"U+200E"}},
		{name: "arabic letter mark", in: "x\u061C", hints: []string{"U+061C"}},
		{name: "invalid UTF-8", in: "x\xffy", hints: []string{"not valid UTF-8"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := keyhold.CheckText(keyhold.CodeBadRequest, "properties.displayName", tt.in)
			if tt.hints == nil {
				if err != nil {
					t.Fatalf("CheckText(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if keyhold.ErrorCode(err) != keyhold.CodeBadRequest {
				t.Fatalf("CheckText(%q) = %v, want BadRequest", tt.in, err)
			}
			msg := keyhold.ErrorMessage(err)
			for _, h := range append(tt.hints, "properties.displayName ", "remove it") {
				if !strings.Contains(msg, h) {
					t.Errorf("message %q lacks %q", msg, h)
				}
			}
			if strings.ContainsFunc(msg, func(r rune) bool { _, _, bad := keyhold.UnsafeRune(string(r)); return bad }) {
				t.Errorf("message %q holds the unsafe character itself", msg)
			}
		})
	}
}

// TestClip: input up to 200 bytes is quoted whole; longer input is cut at
// 200 bytes, or before a character that the cut would split, and marked.
func TestClip(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"199 bytes", x(199), x(199)},
		{"200 bytes", x(200), x(200)},
		{"201 bytes", x(201), x(200) + "…"},
		{"two-byte rune across the cut", x(199) + "é" + "y", x(199) + "…"},
		{"two-byte rune ending at the cut", x(198) + "é" + "y", x(198) + "é" + "…"},
		{"four-byte rune across the cut", x(198) + "😀" + "y", x(198) + "…"},
		{"200 bytes ending in a rune", x(198) + "é", x(198) + "é"},
	}
	for _, c := range cases {
		got := keyhold.Clip(c.in)
		if got != c.want {
			t.Errorf("%s: Clip = %q, want %q", c.name, got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: Clip = %q, not valid UTF-8", c.name, got)
		}
	}
}

// TestNormalizeLocation: locations fold as ARM folds them.
func TestNormalizeLocation(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"already normal", "westeurope", "westeurope"},
		{"display name", "West Europe", "westeurope"},
		{"upper case", "EUROPE", "europe"},
		{"surrounding blanks", " \tUnited States\n", "unitedstates"},
		{"empty", "", ""},
		{"only blanks", " \t ", ""},
	} {
		if got := keyhold.NormalizeLocation(c.in); got != c.want {
			t.Errorf("%s: NormalizeLocation(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}
