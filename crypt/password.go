package crypt

import (
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/crypto/argon2"
)

// Users' passwords, unlike client secrets, are chosen by people and have
// little entropy, so a stolen hash must be expensive to guess against:
// they are hashed with argon2id (RFC 9106), salted, with OWASP's minimum
// parameters (19 MiB, 2 passes, 1 lane), which cost a few tens of
// milliseconds per sign-in. At most GOMAXPROCS hashes are computed at once.
//
// A hash is stored in the PHC string format that other argon2 tools read:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64>$<hash, base64>
//
// The parameters travel with the hash, so they can be raised later
// without invalidating existing passwords.

// Password hashing parameters.
const (
	passwordMemoryKiB = 19 * 1024
	passwordTime      = 2
	passwordThreads   = 1
	passwordSaltLen   = 16
	passwordKeyLen    = 32

	// Bounds accepted when checking a stored hash, so that a corrupted or
	// planted hash can't make a sign-in allocate gigabytes or spin.
	maxPasswordMemoryKiB = 1 << 20 // 1 GiB
	maxPasswordTime      = 16
	maxPasswordThreads   = 16
)

// Password policy: at least MinPasswordLen bytes (NIST SP 800-63B asks
// for 8 at least and more where it can; 12 puts a guessing attack on a
// stolen hash out of reach for most chosen passwords), at most
// MaxPasswordLen, and not a common password (checkCommonPassword).
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// argonSlots bounds how many argon2id computations run at once, each
// holding passwordMemoryKiB: a flood of sign-ins then queues instead of
// exhausting the server's memory.
var argonSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// idKey is argon2.IDKey within a slot.
func idKey(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	argonSlots <- struct{}{}
	defer func() { <-argonSlots }()
	return argon2.IDKey(password, salt, time, memory, threads, keyLen)
}

// ErrPasswordPolicy is returned by HashPassword for a password that is too
// short or too long. Every password policy error, ErrCommonPassword too,
// is ErrPasswordPolicy for errors.Is, and its message names the rule.
var ErrPasswordPolicy = fmt.Errorf("a password must be %d to %d bytes long", MinPasswordLen, MaxPasswordLen)

// ErrCommonPassword is returned by HashPassword for a common password: one
// of the deny-list (common-passwords.txt), also with digits or symbols
// around it, or made of one short unit repeated, or without a letter. These are
// what a guessing attack tries first.
var ErrCommonPassword error = policyRule("a password must not be a common one (one of the 1,000 most used, also with digits or symbols added around it), a short sequence repeated, or without a letter (a number, a date): attackers try those first; use a passphrase of several unrelated words")

// policyRule is a password policy error other than the length.
type policyRule string

func (r policyRule) Error() string        { return string(r) }
func (r policyRule) Is(target error) bool { return target == ErrPasswordPolicy }

// commonPasswords is the deny-list, in lower case.
//
//go:embed common-passwords.txt
var commonPasswordsFile string

var commonPasswords = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for line := range strings.Lines(commonPasswordsFile) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			m[strings.ToLower(line)] = true
		}
	}
	return m
})

// checkCommonPassword returns ErrCommonPassword for a common password.
func checkCommonPassword(password string) error {
	deny := commonPasswords()
	lower := strings.ToLower(password)
	base := strings.TrimFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) })
	switch {
	case deny[lower], len(base) >= 4 && deny[base]:
		return ErrCommonPassword
	case base == "": // no letter: a number, a date, a phone number
		return ErrCommonPassword
	case repeats(lower, deny), repeats(base, deny):
		return ErrCommonPassword
	}
	return nil
}

// repeats reports whether s is one unit repeated, where the unit is at
// most four bytes or on the deny-list ("abcabcabcabc",
// "passwordpassword").
func repeats(s string, deny map[string]bool) bool {
	for n := 1; n <= len(s)/2; n++ {
		if len(s)%n == 0 && (n <= 4 || deny[s[:n]]) && strings.Repeat(s[:n], len(s)/n) == s {
			return true
		}
	}
	return false
}

// HashPassword returns the argon2id hash of password, with a fresh random
// salt, in PHC string form. It refuses passwords outside the policy's
// lengths with ErrPasswordPolicy, and common ones with ErrCommonPassword.
func HashPassword(password string) ([]byte, error) {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return nil, ErrPasswordPolicy
	}
	if err := checkCommonPassword(password); err != nil {
		return nil, err
	}
	salt := make([]byte, passwordSaltLen)
	rand.Read(salt)
	key := idKey([]byte(password), salt, passwordTime, passwordMemoryKiB, passwordThreads, passwordKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, passwordMemoryKiB, passwordTime, passwordThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports, in constant time over the derived key, whether
// password matches hash. A hash that is not a well-formed argon2id PHC
// string with parameters in bounds never matches.
func CheckPassword(hash []byte, password string) bool {
	p, err := parsePasswordHash(hash)
	if err != nil || len(password) > MaxPasswordLen {
		return false
	}
	key := idKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1
}

// dummyHash is checked against when there is no user to check, so that a
// sign-in for an unknown name takes as long as one with a wrong password.
var dummyHash = []byte("$argon2id$v=19$m=19456,t=2,p=1$a2V5aG9sZCBkdW1teQ$Jk3Yc2c6wz2qkn6Z4xPq6gYwvVbH2T7p1r1w8u3S1kE")

// CheckNoPassword spends the time of a CheckPassword and returns false: use
// it when the user signing in does not exist, so that timing does not tell
// which user names do.
func CheckNoPassword(password string) bool {
	CheckPassword(dummyHash, password)
	return false
}

// NewPassword returns a generated password: 128 random bits in base32,
// well within the policy.
func NewPassword() string { return rand.Text() }

type passwordHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parsePasswordHash(hash []byte) (*passwordHash, error) {
	parts := strings.Split(string(hash), "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errors.New("not an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return nil, errors.New("unsupported argon2 version")
	}
	var p passwordHash
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil || n != 3 {
		return nil, errors.New("bad argon2 parameters")
	}
	if p.memory < 8*threads || p.memory > maxPasswordMemoryKiB || p.time < 1 || p.time > maxPasswordTime || threads < 1 || threads > maxPasswordThreads {
		return nil, errors.New("argon2 parameters out of bounds")
	}
	p.threads = uint8(threads)
	var err error
	b64 := base64.RawStdEncoding
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return nil, errors.New("bad argon2 salt")
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return nil, errors.New("bad argon2 key")
	}
	return &p, nil
}
