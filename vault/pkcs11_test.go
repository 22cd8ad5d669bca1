package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// hsmConfig returns the test token's configuration, or skips t without
// SoftHSM2 (fails it if KEYHOLD_REQUIRE_SOFTHSM=1).
func hsmConfig(t testing.TB) *PKCS11Config { return hsmtest.Token(t) }

// tokenAttrs reads attributes of a version's private key object.
func tokenAttrs(t *testing.T, f *fixture, material []byte, types ...uint) ([]*pkcs11.Attribute, error) {
	t.Helper()
	return f.svc.hsm.Attributes(material, types...)
}

func boolAttr(a *pkcs11.Attribute) bool { return len(a.Value) == 1 && a.Value[0] == 1 }

func TestHSMKeys(t *testing.T) {
	cfg := hsmConfig(t)
	f := newFixtureWith(t, storetest.OpenSQLite, cfg)
	v := f.rbacVault("kv-hsm", func(v *keyhold.Vault) { v.SKU = SKUPremium })
	b, err := f.svc.CreateKey(as(officer), v.Name, "cmk", keyhold.CreateKeyParams{Type: "RSA-HSM", Size: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if b.Version.Type != keyhold.KeyTypeRSAHSM || b.Key.Type != keyhold.KeyTypeRSAHSM || b.Version.Size != 2048 || b.Version.E != 65537 {
		t.Fatalf("bundle: %+v", b.Version)
	}
	stored := f.storedVersion(v.Name, "cmk", b.Version.Version)
	if !bytes.HasPrefix(stored.Material, []byte(hsm.MaterialPrefix)) {
		t.Fatalf("material %q is not a token reference", stored.Material)
	}
	// The private key is a token object that never leaves the token.
	attrs, err := tokenAttrs(t, f, stored.Material, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_SENSITIVE, pkcs11.CKA_TOKEN, pkcs11.CKA_PRIVATE,
		pkcs11.CKA_NEVER_EXTRACTABLE, pkcs11.CKA_LABEL)
	if err != nil {
		t.Fatal(err)
	}
	if boolAttr(attrs[0]) || !boolAttr(attrs[1]) || !boolAttr(attrs[2]) || !boolAttr(attrs[3]) || !boolAttr(attrs[4]) {
		t.Fatalf("extractable %v, sensitive %v, token %v, private %v, never extractable %v", attrs[0].Value, attrs[1].Value, attrs[2].Value, attrs[3].Value, attrs[4].Value)
	}
	if got := string(attrs[5].Value); got != "keyhold/kv-hsm/cmk/"+b.Version.Version {
		t.Fatalf("label %q", got)
	}
	if _, err := tokenAttrs(t, f, stored.Material, pkcs11.CKA_PRIVATE_EXPONENT); !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
		t.Fatalf("reading the private exponent: %v; want CKR_ATTRIBUTE_SENSITIVE", err)
	}

	// Wrap and unwrap with both algorithms; RSA-OAEP-256 works even where
	// the token (SoftHSM 2.6) refuses SHA-256 OAEP parameters.
	cts := map[string][]byte{}
	for _, alg := range []string{crypt.AlgRSAOAEP, crypt.AlgRSAOAEP256} {
		for _, n := range []int{32, 0} {
			value := bytes.Repeat([]byte{byte(n + 1)}, n)
			if max, _ := crypt.OAEPMaxPlaintext(2048, alg); n == 0 {
				value = bytes.Repeat([]byte{9}, max)
			}
			kid, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", alg, value))
			if kid != b.KID {
				t.Fatalf("kid %s", kid)
			}
			_, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, alg, ct))
			if !bytes.Equal(got, value) {
				t.Fatalf("%s, %d bytes: round trip gave %x", alg, len(value), got)
			}
			cts[alg] = ct
		}
		// A modified ciphertext, or the other algorithm, is a bad parameter.
		ct := bytes.Clone(cts[alg])
		ct[10] ^= 1
		_, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", alg, ct)
		wantCode(t, err, keyhold.CodeBadParameter, "")
		_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", alg, cts[alg][:100])
		wantCode(t, err, keyhold.CodeBadParameter, "")
	}
	_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP, cts[crypt.AlgRSAOAEP256])
	wantCode(t, err, keyhold.CodeBadParameter, "")
	// A value of the right length but not below the modulus (as a
	// ciphertext made under another key often is), on both paths.
	for _, alg := range []string{crypt.AlgRSAOAEP, crypt.AlgRSAOAEP256} {
		_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", alg, bytes.Repeat([]byte{0xff}, 256))
		wantCode(t, err, keyhold.CodeBadParameter, "")
		_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", alg, b.Version.N)
		wantCode(t, err, keyhold.CodeBadParameter, "")
	}

	// Rotate: a new token key; the old version still unwraps; each
	// version unwraps only its own.
	b2 := must[*keyhold.KeyBundle](t)(f.svc.RotateKey(as(officer), v.Name, "cmk"))
	if b2.Version.Type != keyhold.KeyTypeRSAHSM || b2.Version.Version == b.Version.Version {
		t.Fatalf("rotated: %+v", b2.Version)
	}
	kid2, ct2 := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("new")))
	if kid2 != b2.KID {
		t.Fatalf("wrap after rotation used %s", kid2)
	}
	if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP256, cts[crypt.AlgRSAOAEP256])); len(got) == 0 {
		t.Fatal("old version")
	}
	_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP256, ct2)
	wantCode(t, err, keyhold.CodeBadParameter, "")
	if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b2.Version.Version, crypt.AlgRSAOAEP256, ct2)); string(got) != "new" {
		t.Fatal("new version")
	}

	// Import into the token.
	priv := poolKey()
	ib := must[*keyhold.KeyBundle](t)(f.svc.ImportKey(as(officer), v.Name, "byok", jwkOf(priv), true, keyhold.KeyAttributes{}, nil))
	imported := f.storedVersion(v.Name, "byok", ib.Version.Version)
	if ib.Version.Type != keyhold.KeyTypeRSAHSM || !bytes.HasPrefix(imported.Material, []byte(hsm.MaterialPrefix)) {
		t.Fatalf("imported: %+v", ib.Version)
	}
	if attrs, err := tokenAttrs(t, f, imported.Material, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_SENSITIVE); err != nil || boolAttr(attrs[0]) || !boolAttr(attrs[1]) {
		t.Fatalf("imported object: %v, %v", attrs, err)
	}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, []byte("byok"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "byok", "", crypt.AlgRSAOAEP256, ct)); string(got) != "byok" {
		t.Fatal("unwrap of an imported key")
	}

	// Purging a key removes its token objects.
	stored2 := f.storedVersion(v.Name, "cmk", b2.Version.Version)
	must[*keyhold.KeyBundle](t)(f.svc.DeleteKey(as(officer), v.Name, "cmk"))
	if err := f.svc.PurgeDeletedKey(as(officer), v.Name, "cmk"); err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{stored.Material, stored2.Material} {
		if _, err := tokenAttrs(t, f, m, pkcs11.CKA_LABEL); err == nil || !strings.Contains(err.Error(), "holds no private key") {
			t.Fatalf("the purged key is still in the token: %v", err)
		}
	}
	// Purging the vault removes the rest.
	if err := f.svc.DeleteVault(as(owner), testSub, testRG, v.Name); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.PurgeDeletedVault(as(owner), testSub, testLoc, v.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenAttrs(t, f, imported.Material, pkcs11.CKA_LABEL); err == nil {
		t.Fatal("the purged vault's key is still in the token")
	}
}

func TestHSMRotationAndRefusals(t *testing.T) {
	cfg := hsmConfig(t)
	f := newFixtureWith(t, storetest.OpenSQLite, cfg)
	v := f.rbacVault("kv-hsm-auto", func(v *keyhold.Vault) { v.SKU = SKUPremium })
	b := must[*keyhold.KeyBundle](t)(f.svc.CreateKey(as(officer), v.Name, "cmk", keyhold.CreateKeyParams{Type: "RSA-HSM"}))
	must[*keyhold.RotationPolicy](t)(f.svc.SetRotationPolicy(as(officer), v.Name, "cmk", &keyhold.RotationPolicy{
		LifetimeActions: []keyhold.LifetimeAction{{Action: ActionRotate, TimeAfterCreate: "P7D"}}}))
	f.clock.Advance(7 * day)
	if n, err := f.svc.RunRotation(context.Background()); err != nil || n != 1 {
		t.Fatalf("RunRotation = %d, %v", n, err)
	}
	vs := f.versions(v.Name, "cmk")
	if len(vs) != 2 || vs[1].Version.Type != keyhold.KeyTypeRSAHSM {
		t.Fatalf("versions: %d", len(vs))
	}
	// A disabled HSM key refuses unwrap like any other.
	_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP, []byte("ek")))
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", b.Version.Version, keyhold.KeyAttributes{Enabled: ptr(false)}, nil, nil))
	_, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP, ct)
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerKeyDisabled, "Operation unwrapKey is not allowed on a disabled key")
}

func TestHSMConfig(t *testing.T) {
	cfg := hsmConfig(t)
	master, _ := crypt.KeyFromBytes(bytes.Repeat([]byte{1}, crypt.KeySize))
	defer master.Destroy()
	for _, tc := range []struct {
		name string
		cfg  PKCS11Config
		want string
	}{
		{"no module", PKCS11Config{Module: "/nonexistent/libpkcs11.so", TokenLabel: cfg.TokenLabel, PIN: cfg.PIN}, "cannot load the PKCS#11 module"},
		{"no token", PKCS11Config{Module: cfg.Module, TokenLabel: "missing", PIN: cfg.PIN}, `no PKCS#11 token is labelled "missing"`},
		{"wrong PIN", PKCS11Config{Module: cfg.Module, TokenLabel: cfg.TokenLabel, PIN: "0000"}, "check the PIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Store: storetest.OpenSQLite(t), MasterKey: master, HSM: &tc.cfg})
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestRSAHSMWithoutToken(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-no-hsm", nil)
	_, err := f.svc.CreateKey(as(officer), v.Name, "cmk", keyhold.CreateKeyParams{Type: "RSA-HSM"})
	wantCode(t, err, keyhold.CodeNotSupported, "", "RSA-HSM", "start the server with a PKCS#11 token configured")
	_, err = f.svc.GetKey(as(officer), v.Name, "cmk", "")
	wantCode(t, err, keyhold.CodeKeyNotFound, "")
}
