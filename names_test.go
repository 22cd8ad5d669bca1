package keyhold

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestNamesAsRegexp holds the byte-by-byte name checks (data.go) to the
// regular expressions they replaced, over every byte in the first, a
// middle and the last place, the lengths around the limits, and random
// strings over an alphabet of the edge characters.
func TestNamesAsRegexp(t *testing.T) {
	tableRE := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)
	itemRE := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	check := func(name string) {
		t.Helper()
		if got, want := ValidateTableName(name) == nil, tableRE.MatchString(name); got != want {
			t.Fatalf("table name %q: valid %v, the expression says %v", name, got, want)
		}
		if got, want := ValidateItemName("row id", name) == nil, itemRE.MatchString(name); got != want {
			t.Fatalf("item name %q: valid %v, the expression says %v", name, got, want)
		}
	}
	for c := range 256 {
		b := string([]byte{byte(c)})
		for _, name := range []string{b, "a" + b, "a" + b + "z", "1" + b, b + "a", "a\n" + b, b + "\n"} {
			check(name)
		}
	}
	for n := range 131 {
		for _, fill := range []string{"a", "1", "_", ".", "-"} {
			check(strings.Repeat(fill, n))
			check("a" + strings.Repeat(fill, n))
			check("7" + strings.Repeat(fill, n))
		}
	}
	alphabet := []byte("aZz09_.-/ \xc3\xa9\x00\n@[`{")
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(140))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(string(b))
	}
	check("")
	check("é")
	check("aé")
}
