package keyhold

import (
	"fmt"
	"unicode/utf8"
)

// Free-text names (environment and principal display names, role
// assignment descriptions, the segments of ARM resource ids) are shown back
// in lists, audit entries, events and error messages, to people deciding
// what to re-enable or delete. A control character can cut or forge a line
// of a log; a bidirectional formatting character can make a name display
// as another ("Contoso\u202Eved" displays as "Contosodev", the Trojan
// Source trick). CheckText refuses both, everywhere a name is set.

// unsafeRunes names the bidirectional formatting characters CheckText
// refuses: the embeddings and overrides, the isolates and the implicit
// marks. The marks change no letters but reorder what surrounds them, and
// a name never needs them.
var unsafeRunes = map[rune]string{
	0x061C: "ARABIC LETTER MARK",
	0x200E: "LEFT-TO-RIGHT MARK",
	0x200F: "RIGHT-TO-LEFT MARK",
	0x202A: "LEFT-TO-RIGHT EMBEDDING",
	0x202B: "RIGHT-TO-LEFT EMBEDDING",
	0x202C: "POP DIRECTIONAL FORMATTING",
	0x202D: "LEFT-TO-RIGHT OVERRIDE",
	0x202E: "RIGHT-TO-LEFT OVERRIDE",
	0x2066: "LEFT-TO-RIGHT ISOLATE",
	0x2067: "RIGHT-TO-LEFT ISOLATE",
	0x2068: "FIRST STRONG ISOLATE",
	0x2069: "POP DIRECTIONAL ISOLATE",
}

// UnsafeRune returns the first rune of s that CheckText refuses, and its
// index in runes (from 0); ok is false if there is none. Invalid UTF-8
// counts as utf8.RuneError.
func UnsafeRune(s string) (r rune, at int, ok bool) {
	i := 0
	for off, c := range s {
		if c == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[off:]); size <= 1 {
				return c, i, true
			}
		}
		if c < 0x20 || (c >= 0x7f && c < 0xa0) || unsafeRunes[c] != "" {
			return c, i, true
		}
		i++
	}
	return 0, 0, false
}

// CheckText refuses a name or other free text that holds a control
// character (U+0000–U+001F, U+007F–U+009F, NUL and line breaks included),
// a bidirectional formatting character (U+061C, U+200E, U+200F,
// U+202A–U+202E, U+2066–U+2069) or invalid UTF-8. Its error, of the given
// code, names field, quotes the value with the character escaped, and
// gives the character's code point and position; nil if s is fine.
func CheckText(code, field, s string) error {
	r, at, bad := UnsafeRune(s)
	if !bad {
		return nil
	}
	var what string
	switch name := unsafeRunes[r]; {
	case name != "":
		what = fmt.Sprintf("U+%04X (%s), a bidirectional formatting character that can make text display as other text", r, name)
	case r == utf8.RuneError:
		what = "bytes that are not valid UTF-8"
	default:
		what = fmt.Sprintf("U+%04X, a control character", r)
	}
	q := fmt.Sprintf("%+q", s) // ASCII-only: every unsafe rune shows as an escape
	if len(q) > 120 {
		q = q[:117] + "..."
	}
	return Errorf(code, "%s %s holds %s at character %d: remove it; names and other text may not hold control or bidirectional formatting characters",
		field, q, what, at+1)
}

// clipMax is how many bytes of client input an error message quotes.
const clipMax = 200

// Clip shortens client input quoted in a message to at most 200 bytes and
// an ellipsis, cutting on a rune boundary so that a multi-byte character is
// never split into invalid UTF-8.
func Clip(s string) string {
	if len(s) <= clipMax {
		return s
	}
	n := clipMax
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
