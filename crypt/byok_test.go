package crypt_test

import (
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/crypt"
)

// byok_3des.pfx and byok_aes.pfx hold one 2048-bit test key and its
// certificate, password "correct-horse": the first exported with
// PBE-SHA1-3DES (openssl -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES
// -macalg sha1), the second with OpenSSL 3's default PBES2/AES.
const pfxPassword = "correct-horse"

func readPFX(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePFX(t *testing.T) {
	k, err := crypt.ParsePFX(readPFX(t, "byok_3des.pfx"), pfxPassword)
	if err != nil {
		t.Fatalf("ParsePFX: %v", err)
	}
	if k.N.BitLen() != 2048 {
		t.Fatalf("key size %d, want 2048", k.N.BitLen())
	}
	if _, err := crypt.ParsePFX(readPFX(t, "byok_3des.pfx"), "wrong"); !errors.Is(err, crypt.ErrPFXPassword) {
		t.Fatalf("wrong password: %v, want ErrPFXPassword", err)
	}
	if _, err := crypt.ParsePFX([]byte("not a pfx"), pfxPassword); err == nil || !strings.Contains(err.Error(), "not a PFX") {
		t.Fatalf("garbage: %v", err)
	}
	// OpenSSL 3's default: refused with how to export one that opens.
	if _, err := crypt.ParsePFX(readPFX(t, "byok_aes.pfx"), pfxPassword); err == nil || !strings.Contains(err.Error(), "-legacy") {
		t.Fatalf("PBES2 file: %v, want a message naming -legacy", err)
	}
}

// TestRSAThumbprint checks RFC 7638's example (section 3.1).
func TestRSAThumbprint(t *testing.T) {
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	if got, want := crypt.RSAThumbprint(pub), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

func TestBYOKKeyPurpose(t *testing.T) {
	master, _ := crypt.NewKey()
	k, err := crypt.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := crypt.SealRSAKey(master, crypt.BYOKKeyPurpose("t1", "k1"), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypt.OpenRSAKey(master, crypt.BYOKKeyPurpose("t1", "k1"), sealed); err != nil {
		t.Fatalf("open: %v", err)
	}
	for name, p := range map[string]string{"other tenant": crypt.BYOKKeyPurpose("t2", "k1"), "other id": crypt.BYOKKeyPurpose("t1", "k2"), "shifted": crypt.BYOKKeyPurpose("t1k", "1")} {
		if _, err := crypt.OpenRSAKey(master, p, sealed); !errors.Is(err, crypt.ErrDecrypt) {
			t.Fatalf("%s: %v, want ErrDecrypt", name, err)
		}
	}
}
