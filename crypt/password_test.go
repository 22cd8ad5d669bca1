package crypt

import (
	"bytes"
	"strings"
	"testing"
)

// storedPasswordHash is a hash made by the first version of HashPassword,
// of "correct horse battery staple": it must verify forever.
const storedPasswordHash = "$argon2id$v=19$m=19456,t=2,p=1$L8p4EIm33K5zlS8E+YZgfA$KNBeZ/OhSYYqjncbok7bCpPM0HnknNnqUo8eeWWcLow"

func TestPasswordHashRoundTrip(t *testing.T) {
	const pw = "correct horse battery staple"
	h1, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(h1, []byte(pw)) {
		t.Fatalf("hash %q holds the password", h1)
	}
	if !strings.HasPrefix(string(h1), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not an argon2id PHC string with the expected parameters", h1)
	}
	if bytes.Equal(h1, h2) {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	for _, h := range [][]byte{h1, h2, []byte(storedPasswordHash)} {
		if !CheckPassword(h, pw) {
			t.Fatalf("CheckPassword(%q) = false for the right password", h)
		}
		if CheckPassword(h, pw+" ") || CheckPassword(h, "Correct horse battery staple") {
			t.Fatalf("CheckPassword(%q) = true for a wrong password", h)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	cases := []struct {
		name string
		pw   string
		ok   bool
	}{
		{"7 bytes", strings.Repeat("a", MinPasswordLen-1), false},
		{"8 bytes", strings.Repeat("a", MinPasswordLen), true},
		{"256 bytes", strings.Repeat("a", MaxPasswordLen), true},
		{"257 bytes", strings.Repeat("a", MaxPasswordLen+1), false},
		{"generated", NewPassword(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := HashPassword(c.pw)
			if (err == nil) != c.ok {
				t.Fatalf("HashPassword(%d bytes) error = %v, want ok=%v", len(c.pw), err, c.ok)
			}
		})
	}
}

func TestCheckPasswordRefusesMalformedHashes(t *testing.T) {
	const pw = "correct horse battery staple"
	good := storedPasswordHash
	cases := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"plain text", pw},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1)},
		{"other version", strings.Replace(good, "v=19", "v=16", 1)},
		{"huge memory", strings.Replace(good, "m=19456", "m=4194304", 1)},
		{"zero passes", strings.Replace(good, "t=2", "t=0", 1)},
		{"many passes", strings.Replace(good, "t=2", "t=1000", 1)},
		{"zero lanes", strings.Replace(good, "p=1", "p=0", 1)},
		{"bad salt", strings.Replace(good, "L8p4EIm33K5zlS8E+YZgfA", "!!", 1)},
		{"short key", good[:strings.LastIndex(good, "$")+1] + "AAAA"},
		{"extra field", good + "$x"},
		{"other parameters than hashed with", strings.Replace(good, "t=2", "t=1", 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if CheckPassword([]byte(c.hash), pw) {
				t.Fatalf("CheckPassword accepted %q", c.hash)
			}
		})
	}
	if CheckNoPassword(pw) {
		t.Fatal("CheckNoPassword returned true")
	}
}
