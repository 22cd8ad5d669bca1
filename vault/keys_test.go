package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

var kidRE = regexp.MustCompile(`^` + `https://([a-z0-9-]+)\.vault\.localhost:8443/keys/([A-Za-z0-9-]+)/([0-9a-f]{32})$`)

// versions returns a key's stored versions (as officer sees them).
func (f *fixture) versions(vault, name string) []*keyhold.KeyBundle {
	f.t.Helper()
	bs, err := f.svc.ListKeyVersions(as(officer), vault, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return bs
}

// storedVersion returns a version as the store holds it.
func (f *fixture) storedVersion(vault, name, version string) *keyhold.KeyVersion {
	f.t.Helper()
	var kv *keyhold.KeyVersion
	err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		var err error
		kv, err = tx.KeyVersion(context.Background(), vault, name, version)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return kv
}

func TestCreateKey(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-create", nil)
	b := f.createKey(v.Name, "cmk")
	m := kidRE.FindStringSubmatch(b.KID)
	if m == nil || m[1] != v.Name || m[2] != "cmk" || m[3] != b.Version.Version || b.Key.CurrentVersion != m[3] {
		t.Fatalf("kid %q, bundle %+v", b.KID, b.Key)
	}
	kv := b.Version
	if kv.Type != keyhold.KeyTypeRSA || kv.Size != 2048 || new(big.Int).SetBytes(kv.N).BitLen() != 2048 || kv.E != 65537 ||
		!kv.Enabled || !reflect.DeepEqual(kv.KeyOps, DefaultKeyOps) || kv.Material != nil || !kv.CreatedAt.Equal(start) {
		t.Fatalf("version: %+v", kv)
	}
	// The stored material is sealed: it holds no private value in the
	// clear, and opens only for this vault, key and version.
	stored := f.storedVersion(v.Name, "cmk", kv.Version)
	priv, err := crypt.OpenRSAKey(f.svc.master, crypt.RSAKeyPurpose(v.Name, "cmk", kv.Version), stored.Material)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.Material, priv.D.Bytes()) || bytes.Contains(stored.Material, priv.Primes[0].Bytes()) {
		t.Fatal("the stored material holds the private key in the clear")
	}
	if _, err := crypt.OpenRSAKey(f.svc.master, crypt.RSAKeyPurpose(v.Name, "other", kv.Version), stored.Material); err == nil {
		t.Fatal("the material opens for another key")
	}

	// Create again: a new current version.
	b2 := f.createKey(v.Name, "CMK")
	if b2.Version.Version == kv.Version || b2.Key.Name != "cmk" || len(f.versions(v.Name, "cmk")) != 2 {
		t.Fatalf("second create: %+v", b2.Key)
	}

	for _, tc := range []struct {
		name  string
		key   string
		p     keyhold.CreateKeyParams
		words []string
	}{
		{"size 1024", "k", keyhold.CreateKeyParams{Size: 1024}, []string{"1024"}},
		{"EC", "k", keyhold.CreateKeyParams{Type: "EC"}, []string{`"EC"`}},
		{"bad key op", "k", keyhold.CreateKeyParams{KeyOps: []string{"fly"}}, []string{`"fly"`}},
		{"bad name", "no_underscores", keyhold.CreateKeyParams{}, []string{`"no_underscores"`}},
		{"nbf after exp", "k", keyhold.CreateKeyParams{Attributes: keyhold.KeyAttributes{NotBefore: ptr(start.Add(day)), Expires: ptr(start)}}, []string{"nbf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.CreateKey(as(officer), v.Name, tc.key, tc.p)
			wantCode(t, err, keyhold.CodeBadParameter, "", tc.words...)
			if ks := must[[]*keyhold.KeyBundle](t)(f.svc.ListKeys(as(officer), v.Name)); len(ks) != 1 {
				t.Fatalf("the vault has %d keys", len(ks))
			}
		})
	}
	_, err = f.svc.CreateKey(as(officer), "kv-none", "k", keyhold.CreateKeyParams{})
	wantCode(t, err, keyhold.CodeVaultNotFound, "", "kv-none")
}

func TestCreateKeyLargeSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-3072 and RSA-4096 key generation is slow")
	}
	f := sqliteOnly(t)
	v := f.rbacVault("kv-sizes", nil)
	for _, size := range []int{3072, 4096} {
		b, err := f.svc.CreateKey(as(officer), v.Name, "big", keyhold.CreateKeyParams{Size: size})
		if err != nil {
			t.Fatal(err)
		}
		if b.Version.Size != size || new(big.Int).SetBytes(b.Version.N).BitLen() != size {
			t.Fatalf("size %d: got %+v", size, b.Version)
		}
		max, _ := crypt.OAEPMaxPlaintext(size, crypt.AlgRSAOAEP256)
		value := bytes.Repeat([]byte{7}, max)
		kid, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "big", "", crypt.AlgRSAOAEP256, value))
		if len(ct) != size/8 {
			t.Fatalf("ciphertext is %d bytes", len(ct))
		}
		if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "big", versionOf(kid), crypt.AlgRSAOAEP256, ct)); !bytes.Equal(got, value) {
			t.Fatal("round trip failed")
		}
	}
}

func TestWrapUnwrap(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-wrap", nil)
	b1 := f.createKey(v.Name, "cmk")
	b2 := f.createKey(v.Name, "cmk") // the current version
	ek := bytes.Repeat([]byte{0x5a}, 32)
	for _, alg := range []string{crypt.AlgRSAOAEP, crypt.AlgRSAOAEP256} {
		t.Run(alg, func(t *testing.T) {
			kid, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", alg, ek))
			if kid != b2.KID {
				t.Fatalf("wrap used %s; want the current version %s", kid, b2.KID)
			}
			// Anyone holding the public key can check the ciphertext's
			// shape: it is OAEP under the current version.
			pub := publicKey(b2.Version)
			if len(ct) != pub.Size() {
				t.Fatalf("ciphertext is %d bytes", len(ct))
			}
			kid2, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", versionOf(kid), alg, ct))
			if kid2 != kid || !bytes.Equal(got, ek) {
				t.Fatalf("unwrap = %s, %x", kid2, got)
			}
			// Unwrapping needs the very version, and the very algorithm.
			_, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b1.Version.Version, alg, ct)
			wantCode(t, err, keyhold.CodeBadParameter, "", "does not decrypt", b1.Version.Version)
			other := crypt.AlgRSAOAEP
			if alg == other {
				other = crypt.AlgRSAOAEP256
			}
			_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b2.Version.Version, other, ct)
			wantCode(t, err, keyhold.CodeBadParameter, "")

			// The longest value the key and algorithm allow, and one more.
			max, _ := crypt.OAEPMaxPlaintext(2048, alg)
			if _, _, err := f.svc.WrapKey(as(encUser), v.Name, "cmk", "", alg, make([]byte, max)); err != nil {
				t.Fatalf("wrap %d bytes: %v", max, err)
			}
			_, _, err = f.svc.WrapKey(as(encUser), v.Name, "cmk", "", alg, make([]byte, max+1))
			wantCode(t, err, keyhold.CodeBadParameter, "", "at most")
		})
	}
	for _, alg := range []string{"RSA1_5", "rsa-oaep", "A256KW", ""} {
		_, _, err := f.svc.WrapKey(as(encUser), v.Name, "cmk", "", alg, ek)
		wantCode(t, err, keyhold.CodeBadParameter, "", "RSA-OAEP-256")
		_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", alg, make([]byte, 256))
		wantCode(t, err, keyhold.CodeBadParameter, "", "RSA-OAEP-256")
	}
	// Garbage ciphertexts.
	for _, ct := range [][]byte{nil, {1, 2, 3}, make([]byte, 256), make([]byte, 257)} {
		_, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, ct)
		wantCode(t, err, keyhold.CodeBadParameter, "")
	}
	// Missing keys and versions.
	_, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "nokey", "", crypt.AlgRSAOAEP256, make([]byte, 256))
	wantCode(t, err, keyhold.CodeKeyNotFound, "", "nokey")
	_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", "0123456789abcdef0123456789abcdef", crypt.AlgRSAOAEP256, make([]byte, 256))
	wantCode(t, err, keyhold.CodeKeyNotFound, "", "cmk/0123456789abcdef0123456789abcdef")
}

func TestKeyStateRefusals(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-state", nil)
	b := f.createKey(v.Name, "cmk")
	ver := b.Version.Version
	_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
	unwrap := func() error {
		_, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", ver, crypt.AlgRSAOAEP256, ct)
		return err
	}
	wrap := func() error {
		_, _, err := f.svc.WrapKey(as(encUser), v.Name, "cmk", ver, crypt.AlgRSAOAEP256, []byte("ek"))
		return err
	}

	// Disabled: both refuse, even to an officer.
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", ver, keyhold.KeyAttributes{Enabled: ptr(false)}, nil, nil))
	wantCode(t, unwrap(), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, "Operation unwrapKey is not allowed on a disabled key")
	wantCode(t, wrap(), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, "Operation wrapKey is not allowed on a disabled key")
	_, _, err := f.svc.UnwrapKey(as(officer), v.Name, "cmk", ver, crypt.AlgRSAOAEP256, ct)
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerKeyDisabled)
	// Reading it still works.
	if got := must[*keyhold.KeyBundle](t)(f.svc.GetKey(as(encUser), v.Name, "cmk", ver)); got.Version.Enabled {
		t.Fatal("GetKey shows the version enabled")
	}
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", ver, keyhold.KeyAttributes{Enabled: ptr(true)}, nil, nil))
	if err := unwrap(); err != nil {
		t.Fatalf("re-enabled: %v", err)
	}

	// Not yet valid: wrapKey waits for nbf; unwrapKey doesn't.
	nbf := start.Add(2 * day)
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", ver, keyhold.KeyAttributes{NotBefore: &nbf}, nil, nil))
	wantCode(t, wrap(), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, "not yet valid")
	if err := unwrap(); err != nil {
		t.Fatalf("unwrap before nbf: %v", err)
	}
	f.clock.Set(nbf.Add(-time.Nanosecond))
	wantCode(t, wrap(), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, "not yet valid")
	f.clock.Set(nbf)
	if err := wrap(); err != nil {
		t.Fatalf("wrap at nbf: %v", err)
	}

	// Expired: wrapKey refuses from exp on; unwrapKey still works, so
	// that data wrapped under the version is never locked out.
	exp := nbf.Add(30 * day)
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", ver, keyhold.KeyAttributes{Expires: &exp}, nil, nil))
	f.clock.Set(exp.Add(-time.Nanosecond))
	if err := wrap(); err != nil {
		t.Fatalf("wrap just before exp: %v", err)
	}
	f.clock.Set(exp)
	wantCode(t, wrap(), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, "expired")
	if err := unwrap(); err != nil {
		t.Fatalf("unwrap after exp: %v", err)
	}

	// key_ops without unwrapKey.
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", ver, keyhold.KeyAttributes{Expires: ptr(time.Time{})}, []string{"wrapkey"}, nil))
	wantCode(t, unwrap(), keyhold.CodeForbidden, InnerKeyOperationForbidden, "Operation unwrapKey is not permitted")
	if got := f.storedVersion(v.Name, "cmk", ver); !reflect.DeepEqual(got.KeyOps, []string{KeyOpWrapKey}) || !got.Expires.IsZero() {
		t.Fatalf("stored: %+v", got)
	}
	// A refused update changes nothing.
	before := f.storedVersion(v.Name, "cmk", ver)
	_, err = f.svc.UpdateKey(as(officer), v.Name, "cmk", ver, keyhold.KeyAttributes{NotBefore: ptr(start.Add(90 * day)), Expires: ptr(start.Add(60 * day))}, nil, nil)
	wantCode(t, err, keyhold.CodeBadParameter, "", "nbf")
	_, err = f.svc.UpdateKey(as(encUser), v.Name, "cmk", ver, keyhold.KeyAttributes{Enabled: ptr(false)}, nil, nil)
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac)
	if got := f.storedVersion(v.Name, "cmk", ver); !reflect.DeepEqual(got, before) {
		t.Fatalf("refused updates changed the version:\n%+v\n%+v", got, before)
	}
}

func TestRotateKey(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-rotate", nil)
	b1, err := f.svc.CreateKey(as(officer), v.Name, "cmk", keyhold.CreateKeyParams{KeyOps: []string{"wrapKey", "unwrapKey"}, Tags: map[string]string{"env": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	kid1, ct1 := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("old ek")))
	f.clock.Advance(day)
	_, err = f.svc.RotateKey(as(encUser), v.Name, "cmk")
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac, "keys/rotate/action")
	if len(f.versions(v.Name, "cmk")) != 1 {
		t.Fatal("a refused rotation added a version")
	}
	b2 := must[*keyhold.KeyBundle](t)(f.svc.RotateKey(as(officer), v.Name, "cmk"))
	if b2.Version.Version == b1.Version.Version || b2.Key.CurrentVersion != b2.Version.Version ||
		!reflect.DeepEqual(b2.Version.KeyOps, []string{KeyOpWrapKey, KeyOpUnwrapKey}) || b2.Version.Size != 2048 ||
		!b2.Version.CreatedAt.Equal(start.Add(day)) || b2.Key.Tags["env"] != "prod" || !b2.Version.Expires.IsZero() {
		t.Fatalf("rotated: %+v %+v", b2.Key, b2.Version)
	}
	kid2, ct2 := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("new ek")))
	if kid2 != b2.KID || kid2 == kid1 {
		t.Fatalf("wrap after rotation used %s", kid2)
	}
	// The old version still unwraps what it wrapped.
	if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", versionOf(kid1), crypt.AlgRSAOAEP256, ct1)); string(got) != "old ek" {
		t.Fatal("old version")
	}
	if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", versionOf(kid2), crypt.AlgRSAOAEP256, ct2)); string(got) != "new ek" {
		t.Fatal("new version")
	}
	vs := f.versions(v.Name, "cmk")
	if len(vs) != 2 || vs[0].KID != kid1 || vs[1].KID != kid2 {
		t.Fatalf("versions: %v, %v", vs[0].KID, vs[1].KID)
	}
}

// jwkOf returns k as a JSON web key.
func jwkOf(k *rsa.PrivateKey) keyhold.JSONWebKey {
	k.Precompute()
	return keyhold.JSONWebKey{Kty: "RSA", N: k.N.Bytes(), E: big.NewInt(int64(k.E)).Bytes(), D: k.D.Bytes(), P: k.Primes[0].Bytes(), Q: k.Primes[1].Bytes(),
		DP: k.Precomputed.Dp.Bytes(), DQ: k.Precomputed.Dq.Bytes(), QI: k.Precomputed.Qinv.Bytes()}
}

func TestImportKey(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-import", nil)
	priv := poolKey()
	b := must[*keyhold.KeyBundle](t)(f.svc.ImportKey(as(officer), v.Name, "byok", jwkOf(priv), false, keyhold.KeyAttributes{}, map[string]string{"src": "hsm"}))
	if !bytes.Equal(b.Version.N, priv.N.Bytes()) || b.Version.Size != 2048 || b.Key.Tags["src"] != "hsm" {
		t.Fatalf("imported: %+v", b.Version)
	}
	// The caller, who holds the key, wraps locally; the vault unwraps.
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, []byte("byok ek"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "byok", b.Version.Version, crypt.AlgRSAOAEP256, ct)); string(got) != "byok ek" {
		t.Fatal("unwrap of an imported key")
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	noD := jwkOf(priv)
	noD.D = nil
	badDP := jwkOf(priv)
	badDP.DP = badDP.DQ
	oct := jwkOf(priv)
	oct.Kty = "oct"
	for _, tc := range []struct {
		name  string
		jwk   keyhold.JSONWebKey
		words []string
	}{
		{"no d", noD, []string{`no "d"`}},
		{"1024 bits", jwkOf(small), []string{"1024 bits"}},
		{"dp mismatch", badDP, []string{`"dp"`}},
		{"oct", oct, []string{`"oct"`}},
		{"empty", keyhold.JSONWebKey{}, []string{`no "n"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.ImportKey(as(officer), v.Name, "bad", tc.jwk, false, keyhold.KeyAttributes{}, nil)
			wantCode(t, err, keyhold.CodeBadParameter, "", tc.words...)
			_, err = f.svc.GetKey(as(officer), v.Name, "bad", "")
			wantCode(t, err, keyhold.CodeKeyNotFound, "")
		})
	}
	// Importing as RSA-HSM needs a token.
	_, err = f.svc.ImportKey(as(officer), v.Name, "bad", jwkOf(priv), true, keyhold.KeyAttributes{}, nil)
	wantCode(t, err, keyhold.CodeNotSupported, "", "PKCS#11 token configured")
}

func TestKeyDeleteRecoverPurge(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-keys", func(v *keyhold.Vault) { v.EnablePurgeProtection, v.SoftDeleteRetentionDays = true, 10 })
		b := f.createKey(v.Name, "cmk")
		_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))

		f.clock.Advance(time.Hour)
		d := must[*keyhold.KeyBundle](t)(f.svc.DeleteKey(as(officer), v.Name, "cmk"))
		if !d.Key.DeletedAt.Equal(f.clock.Now()) || !d.Key.ScheduledPurgeAt.Equal(f.clock.Now().Add(10*day)) ||
			d.RecoveryID != "https://kv-keys.vault.localhost:8443/deletedkeys/cmk" {
			t.Fatalf("deleted: %+v, %s", d.Key, d.RecoveryID)
		}
		_, err := f.svc.GetKey(as(officer), v.Name, "cmk", "")
		wantCode(t, err, keyhold.CodeKeyNotFound, "", "cmk")
		_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP256, ct)
		wantCode(t, err, keyhold.CodeKeyNotFound, "")
		if ks := must[[]*keyhold.KeyBundle](t)(f.svc.ListKeys(as(officer), v.Name)); len(ks) != 0 {
			t.Fatalf("ListKeys shows %d keys", len(ks))
		}
		dk := must[[]*keyhold.KeyBundle](t)(f.svc.ListDeletedKeys(as(officer), v.Name))
		if len(dk) != 1 || dk[0].Key.Name != "cmk" {
			t.Fatalf("ListDeletedKeys: %+v", dk)
		}
		must[*keyhold.KeyBundle](t)(f.svc.GetDeletedKey(as(officer), v.Name, "cmk"))
		_, err = f.svc.CreateKey(as(officer), v.Name, "cmk", keyhold.CreateKeyParams{})
		wantCode(t, err, keyhold.CodeConflict, "", "deleted but recoverable")
		_, err = f.svc.DeleteKey(as(officer), v.Name, "cmk")
		wantCode(t, err, keyhold.CodeKeyNotFound, "")

		// Recover: the key and its versions are back.
		must[*keyhold.KeyBundle](t)(f.svc.RecoverDeletedKey(as(officer), v.Name, "cmk"))
		if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP256, ct)); string(got) != "ek" {
			t.Fatal("unwrap after recovery")
		}
		_, err = f.svc.RecoverDeletedKey(as(officer), v.Name, "cmk")
		wantCode(t, err, keyhold.CodeKeyNotFound, "", "Deleted Key not found")
		_, err = f.svc.GetDeletedKey(as(officer), v.Name, "cmk")
		wantCode(t, err, keyhold.CodeKeyNotFound, "")

		// Purge waits for the scheduled date under purge protection.
		d = must[*keyhold.KeyBundle](t)(f.svc.DeleteKey(as(officer), v.Name, "cmk"))
		f.clock.Set(d.Key.ScheduledPurgeAt.Add(-time.Nanosecond))
		err = f.svc.PurgeDeletedKey(as(officer), v.Name, "cmk")
		wantCode(t, err, keyhold.CodeForbidden, "", "purge protection is enabled")
		must[*keyhold.KeyBundle](t)(f.svc.GetDeletedKey(as(officer), v.Name, "cmk"))
		f.clock.Set(d.Key.ScheduledPurgeAt)
		if err := f.svc.PurgeDeletedKey(as(officer), v.Name, "cmk"); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.GetDeletedKey(as(officer), v.Name, "cmk")
		wantCode(t, err, keyhold.CodeKeyNotFound, "")
		err = f.svc.PurgeDeletedKey(as(officer), v.Name, "cmk")
		wantCode(t, err, keyhold.CodeKeyNotFound, "")
		// The name is free again.
		if nb := f.createKey(v.Name, "cmk"); len(f.versions(v.Name, "cmk")) != 1 || nb.Version.Version == b.Version.Version {
			t.Fatal("the purged key's versions survived")
		}

		// Without purge protection, purge is allowed at once.
		open2 := f.rbacVault("kv-keys-open", nil)
		f.createKey(open2.Name, "k")
		must[*keyhold.KeyBundle](t)(f.svc.DeleteKey(as(officer), open2.Name, "k"))
		if err := f.svc.PurgeDeletedKey(as(officer), open2.Name, "k"); err != nil {
			t.Fatalf("purge without protection: %v", err)
		}
	})
}

func TestPurgeExpiredKeys(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-expire-keys", func(v *keyhold.Vault) { v.EnablePurgeProtection, v.SoftDeleteRetentionDays = true, 7 })
		f.createKey(v.Name, "gone")
		f.createKey(v.Name, "kept")
		must[*keyhold.KeyBundle](t)(f.svc.DeleteKey(as(officer), v.Name, "gone"))
		f.clock.Advance(7*day - time.Nanosecond)
		if n, err := f.svc.PurgeExpired(context.Background()); err != nil || n != 0 {
			t.Fatalf("early: %d, %v", n, err)
		}
		must[*keyhold.KeyBundle](t)(f.svc.GetDeletedKey(as(officer), v.Name, "gone"))
		f.clock.Advance(time.Nanosecond)
		if n, err := f.svc.PurgeExpired(context.Background()); err != nil || n != 1 {
			t.Fatalf("on time: %d, %v", n, err)
		}
		_, err := f.svc.GetDeletedKey(as(officer), v.Name, "gone")
		wantCode(t, err, keyhold.CodeKeyNotFound, "")
		must[*keyhold.KeyBundle](t)(f.svc.GetKey(as(officer), v.Name, "kept", ""))
	})
}

func TestKeyCacheNeverBypassesChecks(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-cache", nil)
	b := f.createKey(v.Name, "cmk")
	other := f.createKey(v.Name, "other")
	_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
	unwrap := func(id *keyhold.Identity) error {
		_, _, err := f.svc.UnwrapKey(as(id), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP256, ct)
		return err
	}
	if err := unwrap(encUser); err != nil { // opens and caches the key
		t.Fatal(err)
	}
	if _, ok := f.svc.keys.get(f.storedVersion(v.Name, "cmk", b.Version.Version)); !ok {
		t.Fatal("the opened key was not cached")
	}
	wantCode(t, unwrap(stranger), keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac)
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", "", keyhold.KeyAttributes{Enabled: ptr(false)}, nil, nil))
	wantCode(t, unwrap(encUser), keyhold.CodeForbidden, keyhold.InnerKeyDisabled)
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", "", keyhold.KeyAttributes{Enabled: ptr(true)}, nil, nil))

	// Stored material that changed (here: another version's, sealed for
	// that version) is opened afresh, and refused. The record is sealed
	// again here, as only a holder of the master key could, to show the
	// layer below the record's seal: the material's own binding to its
	// vault, key and version (TestCopiedMaterialRefused shows the seal).
	kv := f.storedVersion(v.Name, "cmk", b.Version.Version)
	kv.Material = f.storedVersion(v.Name, "other", other.Version.Version).Material
	f.svc.rec.SealKeyVersion(kv)
	f.update(func(tx keyhold.Tx) error { return tx.PutKeyVersion(context.Background(), kv) })
	wantCode(t, unwrap(encUser), keyhold.CodeInternal, "")

	// Entries expire on the clock.
	kv2 := f.storedVersion(v.Name, "other", other.Version.Version)
	f.svc.keys.put(kv2, poolKey())
	f.clock.Advance(keyCacheTTL - time.Nanosecond)
	if _, ok := f.svc.keys.get(kv2); !ok {
		t.Fatal("expired early")
	}
	f.clock.Advance(time.Nanosecond)
	if _, ok := f.svc.keys.get(kv2); ok {
		t.Fatal("served after its time-to-live")
	}
}
