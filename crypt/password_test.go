package crypt

import (
	"bytes"
	"errors"
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
		{"11 bytes", "tbq-vmr-wxk", false},
		{"12 bytes", "tbq-vmr-wxkz", true},
		{"256 bytes", strings.Repeat("tbq-vmr-wxkz ", 20)[:MaxPasswordLen-4] + "end.", true},
		{"257 bytes", strings.Repeat("tbq-vmr-wxkz ", 20)[:MaxPasswordLen-4] + "end.!", false},
		{"generated", NewPassword(), true},
		{"a passphrase", "correct horse battery staple", true},
		{"common word with digits", "password1234", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := HashPassword(c.pw)
			if (err == nil) != c.ok {
				t.Fatalf("HashPassword(%d bytes) error = %v, want ok=%v", len(c.pw), err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrPasswordPolicy) {
				t.Fatalf("HashPassword error %v is not ErrPasswordPolicy", err)
			}
		})
	}
}

// TestCommonPasswords: passwords of the deny-list, and the usual ways of
// stretching one to the minimum length, are refused with the rule named;
// long unusual ones are not.
func TestCommonPasswords(t *testing.T) {
	for _, pw := range []string{
		"password", // too short as well: the length rule answers
		"qwertyuiopasdfgh"[:10] + "12",
		"Password1234", "password!!!!", "2024Password!", "1234password", "PASSWORD1234",
		"passwordpassword", "monkeymonkey", "abcabcabcabc", "aaaaaaaaaaaa", "121212121212",
		"123456789012", "0000000000000", "+44 20 7946 0958",
		"keyhold12345", "Administrator1",
	} {
		if _, err := HashPassword(pw); !errors.Is(err, ErrPasswordPolicy) {
			t.Errorf("HashPassword(%q) = %v, want a policy error", pw, err)
		}
	}
	if _, err := HashPassword("Password1234"); err != ErrCommonPassword || !strings.Contains(err.Error(), "common") {
		t.Errorf("HashPassword(Password1234) = %v, want ErrCommonPassword naming the rule", err)
	}
	for _, pw := range []string{
		"correct horse battery staple", "Tr0ub4dor&3-plus-more", "ochre lantern quilt 42", "password is not it here",
		"jz8#Kp2!vQ9m", NewPassword(),
	} {
		if _, err := HashPassword(pw); err != nil {
			t.Errorf("HashPassword(%q) = %v, want it accepted", pw, err)
		}
	}
	if n := len(commonPasswords()); n < 1000 {
		t.Errorf("the deny-list holds %d passwords; want the 1,000 most common at least", n)
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
