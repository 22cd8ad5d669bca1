package hsm_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"os"
	"testing"

	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	hsmtest.Remove()
	os.Exit(code)
}

// roundTrip checks that tok unwraps what pub wraps, with both OAEP
// variants, through the key material refers to.
func roundTrip(t *testing.T, name string, tok *hsm.Token, material []byte, pub *rsa.PublicKey) {
	t.Helper()
	secret := []byte("a data encryption key, 32 bytes")
	for _, c := range []struct {
		alg string
		ct  func() ([]byte, error)
	}{
		{crypt.AlgRSAOAEP, func() ([]byte, error) { return rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, secret, nil) }},
		{crypt.AlgRSAOAEP256, func() ([]byte, error) { return rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil) }},
	} {
		ct, err := c.ct()
		if err != nil {
			t.Fatal(err)
		}
		got, err := tok.Unwrap(material, c.alg, pub.N.Bytes(), ct)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%s: Unwrap(%s) = %q, %v; want the secret", name, c.alg, got, err)
		}
	}
}

// TestSharedModule opens Tokens on the same module path and closes them
// in every order: each open Token keeps working whatever the others do,
// because the one registry loads and initialises the module once and
// finalises it only when the last Token closes. A second registry (or a
// Token finalising the module on its own Close) ends the other Tokens'
// sessions: their next call fails.
func TestSharedModule(t *testing.T) {
	cfg := hsmtest.Token(t)
	open := func() *hsm.Token {
		t.Helper()
		tok, err := hsm.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a := open()
	material, pub, err := a.Generate(2048, "keyhold/hsm-test/shared")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		tok := open()
		if err := tok.Destroy(material); err != nil {
			t.Error(err)
		}
		tok.Close()
	}()
	b := open()
	if n := hsm.ModuleRefs(cfg.Module); n != 2 {
		t.Fatalf("two open Tokens: the module has %d users; want 2", n)
	}
	roundTrip(t, "a and b open", a, material, pub)
	roundTrip(t, "a and b open", b, material, pub)

	// The first opened closes first.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, "b after a closed", b, material, pub)

	// A third opens while b is open; then the later opened closes first.
	c := open()
	roundTrip(t, "c with b open", c, material, pub)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, "b after c closed", b, material, pub)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := hsm.ModuleRefs(cfg.Module); n != 0 {
		t.Fatalf("every Token closed: the module has %d users; want 0 (finalised)", n)
	}

	// The module loads and initialises again after the last Close.
	d := open()
	roundTrip(t, "d after the module was finalised", d, material, pub)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMaterialFormat pins the stored reference format: vault and mhsm
// keep it in KeyVersion.Material, so a change would orphan every stored
// RSA-HSM key.
func TestMaterialFormat(t *testing.T) {
	id := []byte{0x01, 0xab, 0xff}
	if got := string(hsm.MaterialFor(id)); got != "pkcs11:id=01abff" {
		t.Fatalf("MaterialFor = %q; want pkcs11:id=01abff", got)
	}
	back, err := hsm.ObjectID([]byte("pkcs11:id=01abff"))
	if err != nil || !bytes.Equal(back, id) {
		t.Fatalf("ObjectID = %x, %v; want %x", back, err, id)
	}
	for _, bad := range []string{"", "pkcs11:id=", "pkcs11:id=zz", "file:id=01", "01abff"} {
		if _, err := hsm.ObjectID([]byte(bad)); err == nil {
			t.Errorf("ObjectID(%q) succeeded; want an error", bad)
		}
	}
	if n := len(hsm.NewObjectID()); n != 16 {
		t.Errorf("NewObjectID is %d bytes; want 16", n)
	}
}

// TestKEK checks a key-exchange key: found by its label, it unwraps a
// transfer blob's key into the token but refuses to decrypt.
func TestKEK(t *testing.T) {
	tok, err := hsm.Open(hsmtest.Token(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	const label = "keyhold/hsm-test/kek"
	if id, _, err := tok.FindByLabel(label); err != nil || id != nil {
		t.Fatalf("FindByLabel before GenerateKEK = %x, %v; want none", id, err)
	}
	id, pub, err := tok.GenerateKEK(2048, label)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Destroy(hsm.MaterialFor(id))
	fid, fpub, err := tok.FindByLabel(label)
	if err != nil || !bytes.Equal(fid, id) || !fpub.Equal(pub) {
		t.Fatalf("FindByLabel = %x, %v; want %x and the generated public key", fid, err, id)
	}
	n, e, err := tok.PublicKey(hsm.MaterialFor(id))
	if err != nil || !bytes.Equal(n, pub.N.Bytes()) || e != pub.E {
		t.Fatalf("PublicKey = %v; want the KEK's", err)
	}
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tok.Unwrap(hsm.MaterialFor(id), crypt.AlgRSAOAEP, pub.N.Bytes(), ct); err == nil {
		t.Fatalf("a KEK decrypted: %q; want a refusal", out)
	}
}
