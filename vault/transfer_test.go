package vault

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// labelled counts the token's private key objects whose label starts with
// prefix.
func labelled(t *hsm.Token, prefix string) (int, error) {
	n := 0
	err := t.Do(func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}); err != nil {
			return err
		}
		hs, _, err := ctx.FindObjects(sh, 10000)
		ctx.FindObjectsFinal(sh)
		if err != nil {
			return err
		}
		for _, h := range hs {
			a, err := ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
			if err == nil && strings.HasPrefix(string(a[0].Value), prefix) {
				n++
			}
		}
		return nil
	})
	return n, err
}

func pubOf(b *keyhold.KeyBundle) *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(b.Version.N), E: b.Version.E}
}

// hsmBlob returns a JSONWebKey carrying blob as key_hsm.
func hsmBlob(blob []byte) keyhold.JSONWebKey {
	return keyhold.JSONWebKey{Kty: keyhold.KeyTypeRSAHSM, HSM: blob}
}

// TestTransferBlobImport is the BYOK transfer on both databases: a KEK
// made in the token (import only, refused for wrap and unwrap), every
// refusal leaving nothing behind in the store or the token, then a blob
// imported and used both ways against the test's copy of the key, and no
// trace of the key's private values on disk: database files, PostgreSQL's
// data directory, the token's directory.
func TestTransferBlobImport(t *testing.T) {
	cfg := hsmConfig(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var store keyhold.Store
			var dirs []string
			var pg *sql.DB
			if backend == "sqlite" {
				var path string
				store, path = storetest.OpenSQLiteAt(t)
				dirs = append(dirs, filepath.Dir(path))
			} else {
				s, db := storetest.OpenPostgresAt(t)
				store = s
				if db.DataDir != "" {
					dirs = append(dirs, db.DataDir)
				}
				pg = s.(interface{ DB() *sql.DB }).DB()
			}
			f := newFixtureWith(t, func(*testing.T) keyhold.Store { return store }, cfg)
			testTransferBlob(t, f, pg, dirs)
		})
	}
}

func testTransferBlob(t *testing.T, f *fixture, pg *sql.DB, dirs []string) {
	v := f.rbacVault("kv-byok", func(v *keyhold.Vault) { v.SKU = SKUPremium })
	other := f.rbacVault("kv-other", func(v *keyhold.Vault) { v.SKU = SKUPremium })

	// A KEK: RSA-HSM with the import operation only.
	kek := must[*keyhold.KeyBundle](t)(f.svc.CreateKey(as(officer), v.Name, "kek", keyhold.CreateKeyParams{Type: "RSA-HSM", Size: 2048, KeyOps: []string{"import"}}))
	if strings.Join(kek.Version.KeyOps, ",") != "import" || kek.Version.Type != keyhold.KeyTypeRSAHSM {
		t.Fatalf("KEK: %+v", kek.Version)
	}
	// It serves no other operation, and can't be given one.
	_, _, err := f.svc.WrapKey(as(encUser), v.Name, "kek", "", crypt.AlgRSAOAEP, []byte("k"))
	wantCode(t, err, keyhold.CodeForbidden, InnerKeyOperationForbidden, "wrapKey")
	_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "kek", "", crypt.AlgRSAOAEP, make([]byte, 256))
	wantCode(t, err, keyhold.CodeForbidden, InnerKeyOperationForbidden, "unwrapKey")
	_, err = f.svc.UpdateKey(as(officer), v.Name, "kek", "", keyhold.KeyAttributes{}, []string{"import", "wrapKey"}, nil)
	wantCode(t, err, keyhold.CodeBadParameter, "", "import operation only")
	_, err = f.svc.CreateKey(as(officer), v.Name, "soft-kek", keyhold.CreateKeyParams{Type: "RSA", KeyOps: []string{"import"}})
	wantCode(t, err, keyhold.CodeBadParameter, "", "RSA-HSM")
	_, err = f.svc.CreateKey(as(officer), v.Name, "mixed-kek", keyhold.CreateKeyParams{Type: "RSA-HSM", KeyOps: []string{"import", "unwrapKey"}})
	wantCode(t, err, keyhold.CodeBadParameter, "", "unwrapKey")
	// Other keys: a second KEK, a KEK in another vault, an RSA-HSM key
	// without import.
	kek2 := must[*keyhold.KeyBundle](t)(f.svc.CreateKey(as(officer), v.Name, "kek2", keyhold.CreateKeyParams{Type: "RSA-HSM", KeyOps: []string{"import"}}))
	otherKEK := must[*keyhold.KeyBundle](t)(f.svc.CreateKey(as(officer), other.Name, "kek", keyhold.CreateKeyParams{Type: "RSA-HSM", KeyOps: []string{"import"}}))
	plain := must[*keyhold.KeyBundle](t)(f.svc.CreateKey(as(officer), v.Name, "plain", keyhold.CreateKeyParams{Type: "RSA-HSM"}))

	target := poolKey()
	blob := must[[]byte](t)(crypt.NewTransferBlob(pubOf(kek), kek.KID, target))

	before, err := labelled(f.svc.hsm, "keyhold/"+v.Name+"/byok/")
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(off int) []byte {
		var j map[string]any
		json.Unmarshal(blob, &j)
		ct, _ := base64.RawURLEncoding.DecodeString(j["ciphertext"].(string))
		if off < 0 {
			off += len(ct)
		}
		ct[off] ^= 0x40
		j["ciphertext"] = base64.RawURLEncoding.EncodeToString(ct)
		b, _ := json.Marshal(j)
		return b
	}
	withKID := func(kid string) []byte {
		return bytes.Replace(blob, []byte(kek.KID), []byte(kid), 1)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tc := range []struct {
		name        string
		jwk         keyhold.JSONWebKey
		code, inner string
		words       []string
	}{
		{"unknown KEK", hsmBlob(withKID(f.svc.KeyID(v.Name, "nokek", ""))), keyhold.CodeBadParameter, "", []string{"nokek", "not a key of vault"}},
		{"KEK in another vault", hsmBlob(withKID(otherKEK.KID)), keyhold.CodeBadParameter, "", []string{"kv-other"}},
		{"not a key id", hsmBlob(withKID("kek-please")), keyhold.CodeBadParameter, "", []string{"kek-please"}},
		{"blob for another KEK", hsmBlob(must[[]byte](t)(crypt.NewTransferBlob(pubOf(kek2), kek.KID, target))), keyhold.CodeBadParameter, "", []string{"does not decrypt", "another KEK"}},
		{"KEK of another size", hsmBlob(must[[]byte](t)(crypt.NewTransferBlob(&poolKey().PublicKey, kek.KID, target))), keyhold.CodeBadParameter, "", nil},
		{"KEK without import", hsmBlob(must[[]byte](t)(crypt.NewTransferBlob(pubOf(plain), plain.KID, target))), keyhold.CodeForbidden, InnerKeyOperationForbidden, []string{"import", "plain"}},
		{"tampered RSA layer", hsmBlob(tamper(5)), keyhold.CodeBadParameter, "", []string{"does not decrypt"}},
		{"tampered key wrap", hsmBlob(tamper(-5)), keyhold.CodeBadParameter, "", []string{"integrity"}},
		{"tampered key wrap start", hsmBlob(tamper(256 + 3)), keyhold.CodeBadParameter, "", []string{"integrity"}},
		{"EC target", hsmBlob(must[[]byte](t)(crypt.NewTransferBlob(pubOf(kek), kek.KID, ec))), keyhold.CodeBadParameter, "", []string{"not RSA"}},
		{"RSA-1024 target", hsmBlob(must[[]byte](t)(crypt.NewTransferBlob(pubOf(kek), kek.KID, small))), keyhold.CodeBadParameter, "", []string{"RSA-1024", "2048"}},
		{"kty RSA", keyhold.JSONWebKey{Kty: "RSA", HSM: blob}, keyhold.CodeBadParameter, "", []string{"RSA-HSM"}},
		{"not JSON", hsmBlob([]byte("BYOK")), keyhold.CodeBadParameter, "", []string{"not JSON"}},
		{"wrong enc", hsmBlob(bytes.Replace(blob, []byte(crypt.TransferEnc), []byte("CKM_AES_GCM"), 1)), keyhold.CodeBadParameter, "", []string{"CKM_AES_GCM", crypt.TransferEnc}},
		{"KEK ops on the target", keyhold.JSONWebKey{Kty: "RSA-HSM", HSM: blob, KeyOps: []string{"import", "wrapKey"}}, keyhold.CodeBadParameter, "", []string{"import operation only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.ImportKey(as(officer), v.Name, "byok", tc.jwk, false, keyhold.KeyAttributes{}, nil)
			wantCode(t, err, tc.code, tc.inner, tc.words...)
			// Nothing stored, nothing left in the token.
			_, err = f.svc.GetKey(as(officer), v.Name, "byok", "")
			wantCode(t, err, keyhold.CodeKeyNotFound, "")
			if n, err := labelled(f.svc.hsm, "keyhold/"+v.Name+"/byok/"); err != nil || n != before {
				t.Fatalf("token objects of the key: %d (%v); want %d", n, err, before)
			}
		})
	}
	// A disabled KEK is refused too.
	off := false
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "kek", "", keyhold.KeyAttributes{Enabled: &off}, nil, nil))
	_, err = f.svc.ImportKey(as(officer), v.Name, "byok", hsmBlob(blob), false, keyhold.KeyAttributes{}, nil)
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerKeyDisabled)
	on := true
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "kek", "", keyhold.KeyAttributes{Enabled: &on}, nil, nil))

	// The import.
	b := must[*keyhold.KeyBundle](t)(f.svc.ImportKey(as(officer), v.Name, "byok", hsmBlob(blob), false, keyhold.KeyAttributes{}, nil))
	if b.Version.Type != keyhold.KeyTypeRSAHSM || b.Version.Size != 2048 || !bytes.Equal(b.Version.N, target.N.Bytes()) || b.Version.E != target.E {
		t.Fatalf("imported: %+v", b.Version)
	}
	stored := f.storedVersion(v.Name, "byok", b.Version.Version)
	if !bytes.HasPrefix(stored.Material, []byte(hsm.MaterialPrefix)) {
		t.Fatalf("material %q is not a token reference", stored.Material)
	}
	attrs, err := tokenAttrs(t, f, stored.Material, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_SENSITIVE, pkcs11.CKA_TOKEN)
	if err != nil || boolAttr(attrs[0]) || !boolAttr(attrs[1]) || !boolAttr(attrs[2]) {
		t.Fatalf("imported object: %v, %v", attrs, err)
	}
	// Wrapped by Keyhold, unwrapped with the test's copy; and the reverse.
	_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "byok", "", crypt.AlgRSAOAEP256, []byte("from keyhold")))
	if got, err := rsa.DecryptOAEP(sha256.New(), nil, target, ct, nil); err != nil || string(got) != "from keyhold" {
		t.Fatalf("local unwrap of Keyhold's wrap: %q, %v", got, err)
	}
	ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, &target.PublicKey, []byte("from the customer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "byok", "", crypt.AlgRSAOAEP256, ct)); string(got) != "from the customer" {
		t.Fatalf("Keyhold's unwrap of a local wrap: %q", got)
	}

	// No plaintext of the key anywhere on disk.
	if pg != nil {
		if _, err := pg.ExecContext(context.Background(), "CHECKPOINT"); err != nil {
			t.Fatal(err)
		}
	}
	der := must[[]byte](t)(x509.MarshalPKCS8PrivateKey(target))
	secrets := map[string][]byte{"d": target.D.Bytes(), "p": target.Primes[0].Bytes(), "q": target.Primes[1].Bytes(), "PKCS#8": der,
		"d base64url": []byte(base64.RawURLEncoding.EncodeToString(target.D.Bytes()))}
	scan := func(dirs []string) (found []string, scanned int) {
		for _, dir := range dirs {
			filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return nil // a live server's files come and go
				}
				scanned++
				for what, s := range secrets {
					if bytes.Contains(data, s) {
						found = append(found, path+": "+what)
					}
				}
				return nil
			})
		}
		return found, scanned
	}
	found, scanned := scan(append(dirs, hsmtest.Dir()))
	if len(found) > 0 || scanned < 3 {
		t.Fatalf("the imported key's private values on disk: %v (%d files scanned)", found, scanned)
	}
	// The scan can fail: a planted copy is found.
	canary := t.TempDir()
	if err := os.WriteFile(filepath.Join(canary, "canary"), append([]byte("x"), der...), 0o600); err != nil {
		t.Fatal(err)
	}
	if found, _ := scan([]string{canary}); len(found) == 0 {
		t.Fatal("the scan misses a planted PKCS#8 key")
	}
	t.Logf("scanned %d files", scanned)
}
