package crypt

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
)

// testRSAKey returns one 2048-bit key per test binary: generating RSA keys
// is slow.
var testRSAKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return GenerateRSAKey(2048) })

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := testRSAKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOAEPRoundTripAndLimits(t *testing.T) {
	k := rsaKey(t)
	for _, tc := range []struct {
		alg string
		max int
	}{
		{AlgRSAOAEP, 256 - 2*20 - 2},
		{AlgRSAOAEP256, 256 - 2*32 - 2},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			max, err := OAEPMaxPlaintext(2048, tc.alg)
			if err != nil || max != tc.max {
				t.Fatalf("OAEPMaxPlaintext = %d, %v; want %d", max, err, tc.max)
			}
			for _, n := range []int{0, 32, max - 1, max} {
				v := pattern(n)
				ct, err := WrapOAEP(&k.PublicKey, tc.alg, v)
				if err != nil {
					t.Fatalf("wrap %d bytes: %v", n, err)
				}
				pt, err := UnwrapOAEP(k, tc.alg, ct)
				if err != nil || !bytes.Equal(pt, v) {
					t.Fatalf("unwrap %d bytes: %v", n, err)
				}
			}
			if _, err := WrapOAEP(&k.PublicKey, tc.alg, pattern(max+1)); !errors.Is(err, rsa.ErrMessageTooLong) {
				t.Fatalf("wrap max+1 bytes: %v; want ErrMessageTooLong", err)
			}
		})
	}
}

func TestOAEPRefuses(t *testing.T) {
	k := rsaKey(t)
	ct, err := WrapOAEP(&k.PublicKey, AlgRSAOAEP256, []byte("environment key"))
	if err != nil {
		t.Fatal(err)
	}
	// The other algorithm, a flipped bit, a truncation: ErrDecrypt.
	for name, c := range map[string]struct {
		alg string
		ct  []byte
	}{
		"other algorithm": {AlgRSAOAEP, ct},
		"flipped bit":     {AlgRSAOAEP256, flipBit(ct, 100)},
		"truncated":       {AlgRSAOAEP256, ct[:len(ct)-1]},
		"empty":           {AlgRSAOAEP256, nil},
	} {
		if _, err := UnwrapOAEP(k, c.alg, c.ct); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v; want ErrDecrypt", name, err)
		}
	}
	for _, alg := range []string{"RSA1_5", "rsa-oaep", "A256KW", ""} {
		if _, err := WrapOAEP(&k.PublicKey, alg, []byte("x")); !errors.Is(err, ErrAlgorithm) {
			t.Errorf("wrap with %q: %v; want ErrAlgorithm", alg, err)
		}
		if _, err := UnwrapOAEP(k, alg, ct); !errors.Is(err, ErrAlgorithm) {
			t.Errorf("unwrap with %q: %v; want ErrAlgorithm", alg, err)
		}
	}
}

func TestSealRSAKey(t *testing.T) {
	k := rsaKey(t)
	master := testKey(t, 1)
	purpose := RSAKeyPurpose("Vault1", "CMK", "0123456789abcdef0123456789abcdef")
	sealed, err := SealRSAKey(master, purpose, k)
	if err != nil {
		t.Fatal(err)
	}
	// Names fold to lower case: Key Vault names are case-insensitive.
	got, err := OpenRSAKey(master, RSAKeyPurpose("vault1", "cmk", "0123456789ABCDEF0123456789ABCDEF"), sealed)
	if err != nil || !got.Equal(k) {
		t.Fatalf("OpenRSAKey: %v", err)
	}
	if bytes.Contains(sealed, k.D.Bytes()) {
		t.Fatal("the sealed key holds the private exponent in the clear")
	}
	for name, c := range map[string]struct {
		key     *Key
		purpose string
	}{
		"other master key": {testKey(t, 2), purpose},
		"other vault":      {master, RSAKeyPurpose("vault2", "cmk", "0123456789abcdef0123456789abcdef")},
		"other key":        {master, RSAKeyPurpose("vault1", "cmk2", "0123456789abcdef0123456789abcdef")},
		"other version":    {master, RSAKeyPurpose("vault1", "cmk", "0123456789abcdef0123456789abcdee")},
		// Length prefixes keep the fields apart.
		"shifted boundary": {master, RSAKeyPurpose("vault1c", "mk", "0123456789abcdef0123456789abcdef")},
	} {
		if _, err := OpenRSAKey(c.key, c.purpose, sealed); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v; want ErrDecrypt", name, err)
		}
	}
	// An authentic plaintext that is not an RSA key.
	notKey, err := Seal(master, purpose, []byte("not a key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRSAKey(master, purpose, notKey); err == nil || !strings.Contains(err.Error(), "PKCS#8") {
		t.Fatalf("non-key plaintext: %v", err)
	}
}

func TestRSAKeyFromComponents(t *testing.T) {
	k := rsaKey(t)
	b := func(i *big.Int) []byte { return i.Bytes() }
	n, e, d := b(k.N), big.NewInt(int64(k.E)).Bytes(), b(k.D)
	p, q := b(k.Primes[0]), b(k.Primes[1])
	dp, dq, qi := b(k.Precomputed.Dp), b(k.Precomputed.Dq), b(k.Precomputed.Qinv)

	got, err := RSAKeyFromComponents(n, e, d, p, q, dp, dq, qi)
	if err != nil || !got.Equal(k) {
		t.Fatalf("all components: %v", err)
	}
	if got, err = RSAKeyFromComponents(n, e, d, p, q, nil, nil, nil); err != nil || !got.Equal(k) {
		t.Fatalf("without CRT values: %v", err)
	}
	ct, err := WrapOAEP(&k.PublicKey, AlgRSAOAEP256, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := UnwrapOAEP(got, AlgRSAOAEP256, ct); err != nil || string(pt) != "x" {
		t.Fatalf("imported key does not unwrap: %v", err)
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	small.Precompute()
	other := new(big.Int).Add(k.Primes[0], big.NewInt(2)).Bytes()
	for _, tc := range []struct {
		name                      string
		n, e, d, p, q, dp, dq, qi []byte
		want                      string
	}{
		{"no d", n, e, nil, p, q, nil, nil, nil, `no "d"`},
		{"no n", nil, e, d, p, q, nil, nil, nil, `no "n"`},
		{"1024 bits", b(small.N), e, b(small.D), b(small.Primes[0]), b(small.Primes[1]), nil, nil, nil, "1024 bits"},
		{"wrong prime", n, e, d, other, q, nil, nil, nil, "inconsistent"},
		{"wrong d", n, e, b(new(big.Int).Add(k.D, big.NewInt(2))), p, q, nil, nil, nil, "inconsistent"},
		{"wrong dp", n, e, d, p, q, dq, dq, qi, `"dp"`},
		{"wrong qi", n, e, d, p, q, dp, dq, dp, `"qi"`},
		{"even exponent", n, []byte{1, 0, 0}, d, p, q, nil, nil, nil, "odd"},
		{"exponent 1", n, []byte{1}, d, p, q, nil, nil, nil, "at least 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RSAKeyFromComponents(tc.n, tc.e, tc.d, tc.p, tc.q, tc.dp, tc.dq, tc.qi)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestGenerateRSAKeySizes(t *testing.T) {
	for _, bits := range []int{0, 1024, 2047, 8192} {
		if _, err := GenerateRSAKey(bits); err == nil {
			t.Errorf("GenerateRSAKey(%d) succeeded", bits)
		}
	}
	if k := rsaKey(t); k.N.BitLen() != 2048 {
		t.Fatalf("got a %d-bit key", k.N.BitLen())
	}
}

// rawDecrypt is textbook RSA, c^d mod n, as a token's CKM_RSA_X_509 does
// it; big.Int.Bytes drops the leading zero byte, as some tokens do.
func rawDecrypt(k *rsa.PrivateKey, ct []byte) []byte {
	return new(big.Int).Exp(new(big.Int).SetBytes(ct), k.D, k.N).Bytes()
}

func TestDecodeOAEP(t *testing.T) {
	k := rsaKey(t)
	size := k.Size()
	for _, alg := range []string{AlgRSAOAEP, AlgRSAOAEP256} {
		t.Run(alg, func(t *testing.T) {
			max, _ := OAEPMaxPlaintext(2048, alg)
			for _, n := range []int{0, 1, 32, max} {
				v := pattern(n)
				ct, err := WrapOAEP(&k.PublicKey, alg, v)
				if err != nil {
					t.Fatal(err)
				}
				em := rawDecrypt(k, ct)
				if len(em) >= size {
					t.Fatalf("raw result is %d bytes; the leading zero should be gone", len(em))
				}
				got, err := DecodeOAEP(alg, size, em)
				if err != nil || !bytes.Equal(got, v) {
					t.Fatalf("%d bytes: %v", n, err)
				}
				// The full-length form decodes too.
				full := append(make([]byte, size-len(em)), em...)
				if got, err := DecodeOAEP(alg, size, full); err != nil || !bytes.Equal(got, v) {
					t.Fatalf("%d bytes, full length: %v", n, err)
				}
			}
			ct, err := WrapOAEP(&k.PublicKey, alg, []byte("environment key"))
			if err != nil {
				t.Fatal(err)
			}
			other := AlgRSAOAEP256
			if alg == other {
				other = AlgRSAOAEP
			}
			em := rawDecrypt(k, ct)
			for name, c := range map[string]struct {
				alg string
				em  []byte
			}{
				"other algorithm":     {other, em},
				"modified ciphertext": {alg, rawDecrypt(k, flipBit(ct, 40))},
				"flipped padding bit": {alg, flipBit(em, 8*(len(em)-20))},
				"too long":            {alg, append([]byte{1}, append(make([]byte, size-len(em)), em...)...)},
				"zeros":               {alg, make([]byte, size)},
			} {
				if _, err := DecodeOAEP(c.alg, size, c.em); !errors.Is(err, ErrDecrypt) {
					t.Errorf("%s: %v; want ErrDecrypt", name, err)
				}
			}
			if _, err := DecodeOAEP("RSA1_5", size, em); !errors.Is(err, ErrAlgorithm) {
				t.Errorf("unknown algorithm: %v", err)
			}
		})
	}
}
