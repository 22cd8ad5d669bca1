package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
	"github.com/miekg/pkcs11"
)

// byokHSM gives the fixture's BYOK service the shared SoftHSM2 token,
// through a vault opened on it as the server does (vault.BYOKToken).
func (f *cmkFixture) byokHSM(t testing.TB) {
	t.Helper()
	module := hsmtest.Module(t)
	kv, err := vault.New(vault.Config{Store: f.store, MasterKey: f.master, Clock: f.clock, BaseURL: cmkBase,
		HSM: &vault.PKCS11Config{Module: module, TokenLabel: hsmtest.Label, PIN: hsmtest.PIN}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	f.p.BYOK.setToken(vault.BYOKToken(kv))
}

// tokenObjects counts the objects SoftHSM2 keeps in files in the token's
// directory (the token's own file aside), less the BYOK generation
// counters (byok_anchor.go), which each tenant keeps from its first BYOK
// write on.
func tokenObjects(t testing.TB) int {
	t.Helper()
	n := 0
	filepath.WalkDir(hsmtest.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".object") && filepath.Base(path) != "token.object" {
			n++
		}
		return nil
	})
	tok, err := hsm.Open(hsmtest.Token(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if err := tok.Do(func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA)}); err != nil {
			return err
		}
		defer ctx.FindObjectsFinal(sh)
		hs, _, err := ctx.FindObjects(sh, 10000)
		n -= len(hs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// rsa1024 is a key of a size no BYOK key may have (crypt refuses to make
// one).
func rsa1024(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// kekPublic parses a KEK's PEM.
func kekPublic(t testing.TB, k *keyhold.BYOKKEK) *rsa.PublicKey {
	t.Helper()
	b, _ := pem.Decode([]byte(k.PublicKeyPEM))
	if b == nil || b.Type != "PUBLIC KEY" {
		t.Fatalf("KEK PEM %q", k.PublicKeyPEM)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*rsa.PublicKey)
}

// transferBlob wraps key to the KEK named kid.
func transferBlob(t testing.TB, kek *rsa.PublicKey, kid string, key *rsa.PrivateKey) []byte {
	t.Helper()
	b, err := crypt.NewTransferBlob(kek, kid, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBYOKTransfer: the whole legacy BYOK life of a key uploaded in the
// HSM key-transfer format, on both databases with SoftHSM2. The tenant's
// KEK is made once (import only, 3072 bits); a blob wrapped to it becomes
// a token-held key (one more token object, no key material in its row);
// it is activated, an environment is encrypted under it and read back
// through the token, the tenant locked, refused an unlock with a blob of
// another key (nothing changed), unlocked with a new blob of the same key
// (which leaves no token object behind), migrated to a CMK, and shredded
// on day 28: the key's object and the KEK are gone from the token.
func TestBYOKTransfer(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		f.byokHSM(t)
		baseline := tokenObjects(t)
		if _, err := f.p.BYOKKEK(f.ctx); keyhold.ErrorCode(err) != keyhold.CodeNotFound || !strings.Contains(keyhold.ErrorMessage(err), "keyhold byok kek create") {
			t.Fatalf("KEK before its creation: %v", err)
		}
		f.fixture.refuse(t, "a blob before the tenant has a KEK", keyhold.CodeBadRequest, []string{"no key exchange key", "keyhold byok kek create"}, func() error {
			some := newRSA(t, 2048)
			_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{Transfer: transferBlob(t, &some.PublicKey, cmkBase+"/kek", some)})
			return err
		})
		f.fixture.refuse(t, "a 2048-bit KEK", keyhold.CodeBadRequest, []string{"2048", "3072 or 4096"}, func() error {
			_, err := f.p.CreateBYOKKEK(f.ctx, 2048)
			return err
		})
		kek, err := f.p.CreateBYOKKEK(f.ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if kek.Size != 3072 || kek.TenantID != f.creds.TenantID || len(kek.KeyOps) != 1 || kek.KeyOps[0] != "import" || !strings.Contains(kek.KID, f.creds.TenantID) {
			t.Fatalf("KEK %+v", kek)
		}
		if again, err := f.p.CreateBYOKKEK(f.ctx, 4096); err != nil || again.KID != kek.KID || again.PublicKeyPEM != kek.PublicKeyPEM {
			t.Fatalf("a second create = %+v, %v; want the tenant's KEK %s", again, err, kek.KID)
		}
		if got, err := f.p.BYOKKEK(f.ctx); err != nil || got.KID != kek.KID {
			t.Fatalf("BYOKKEK = %+v, %v", got, err)
		}
		if n := tokenObjects(t); n != baseline+1 {
			t.Fatalf("%d token objects after the KEK, want %d", n, baseline+1)
		}
		kekPub := kekPublic(t, kek)
		target := newRSA(t, 2048)
		blob := transferBlob(t, kekPub, kek.KID, target)

		// Bad blobs: refused, nothing stored, nothing left in the token.
		tampered := bytes.Clone(blob)
		i := bytes.Index(tampered, []byte(`"ciphertext":"`)) + len(`"ciphertext":"`) + 600
		// Another base64url character: flipping bits of a random one can
		// make a character base64url lacks, which the parser refuses
		// before the token sees the blob.
		if tampered[i] == 'A' {
			tampered[i] = 'B'
		} else {
			tampered[i] = 'A'
		}
		if tampered[i] == '"' || bytes.Equal(tampered, blob) {
			t.Fatal("the tamper did not change the ciphertext")
		}
		other := newRSA(t, 3072)
		for _, c := range []struct {
			what    string
			blob    []byte
			mention []string
		}{
			{"a tampered blob", tampered, []string{"AES key wrap", "altered"}},
			{"a blob for another KEK", transferBlob(t, &other.PublicKey, kek.KID, target), []string{"does not decrypt", "another KEK"}},
			{"a blob naming another kid", transferBlob(t, kekPub, cmkBase+"/keys/kek/1", target), []string{"header.kid", kek.KID}},
			{"not a blob", []byte("not json"), []string{"not JSON"}},
			{"a 1024-bit key", transferBlob(t, kekPub, kek.KID, rsa1024(t)), []string{"RSA-1024", "2048, 3072 or 4096"}},
		} {
			f.fixture.refuse(t, c.what, keyhold.CodeBadRequest, c.mention, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{Transfer: c.blob})
				return err
			})
			if n := tokenObjects(t); n != baseline+1 {
				t.Fatalf("%s left %d token objects, want %d", c.what, n, baseline+1)
			}
		}
		f.fixture.refuse(t, "a blob with a JWK", keyhold.CodeBadRequest, []string{"transfer blob alone"}, func() error {
			_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{Transfer: blob, JWK: privateJWK(target)})
			return err
		})

		k, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{Transfer: blob})
		if err != nil {
			t.Fatal(err)
		}
		if k.Source != keyhold.BYOKSourceTransfer || k.Size != 2048 || k.Thumbprint != crypt.RSAThumbprint(&target.PublicKey) || k.State != keyhold.BYOKInstalling || k.Sealed != nil {
			t.Fatalf("uploaded key %+v", k)
		}
		if n := tokenObjects(t); n != baseline+2 {
			t.Fatalf("%d token objects after the upload, want %d", n, baseline+2)
		}
		f.fixture.refuse(t, "the same key again", keyhold.CodeConflict, []string{k.ID, "activate that one"}, func() error {
			_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{Transfer: transferBlob(t, kekPub, kek.KID, target)})
			return err
		})
		if n := tokenObjects(t); n != baseline+2 {
			t.Fatalf("the refused duplicate left %d token objects, want %d", n, baseline+2)
		}
		env := f.managedEnv(t, "byok-transfer") // before the activation: apply moves it
		data := f.fill(t, env.ID, 4, 3000)
		if _, err := f.p.ActivateBYOKKey(f.ctx, k.ID); err != nil {
			t.Fatal(err)
		}

		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		if e := f.env(t, env.ID); e.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
			t.Fatalf("after ApplyBYOK: %s", e.KeyManagedBy)
		}
		for _, wk := range f.wrapped(t, env.ID) {
			if wk.Root != keyhold.RootBYOK || wk.KeyID != byokKIDPrefix+k.ID {
				t.Fatalf("wrapped key %s:%s, want only BYOK", wk.Root, wk.KeyID)
			}
			// Only the token's private key opens it.
			if _, err := crypt.UnwrapOAEP(target, crypt.AlgRSAOAEP256, wk.Ciphertext); err != nil {
				t.Fatalf("the environment key is not wrapped to the uploaded key: %v", err)
			}
		}
		f.check(t, env.ID, data) // unwrapped in the token

		if ids, err := f.p.LockBYOKTenant(f.ctx); err != nil || len(ids) != 1 || ids[0] != env.ID {
			t.Fatalf("lock = %v, %v", ids, err)
		}
		f.fixture.refuse(t, "an unlock with another key's blob", keyhold.CodeForbidden, []string{"not the tenant's Active BYOK key", "stays locked"}, func() error {
			_, err := f.p.UnlockBYOKTenant(f.ctx, keyhold.BYOKUpload{Transfer: transferBlob(t, kekPub, kek.KID, newRSA(t, 2048))})
			return err
		})
		if e := f.env(t, env.ID); e.State != keyhold.StateDisabled {
			t.Fatalf("after the refused unlock: %s", e.State)
		}
		f.fixture.refuse(t, "an unlock with a tampered blob", keyhold.CodeBadRequest, []string{"altered"}, func() error {
			_, err := f.p.UnlockBYOKTenant(f.ctx, keyhold.BYOKUpload{Transfer: tampered})
			return err
		})
		if n := tokenObjects(t); n != baseline+2 {
			t.Fatalf("refused unlocks left %d token objects, want %d", n, baseline+2)
		}
		if ids, err := f.p.UnlockBYOKTenant(f.ctx, keyhold.BYOKUpload{Transfer: transferBlob(t, kekPub, kek.KID, target)}); err != nil || len(ids) != 1 {
			t.Fatalf("unlock with the same key = %v, %v", ids, err)
		}
		if n := tokenObjects(t); n != baseline+2 {
			t.Fatalf("the unlock left %d token objects, want %d", n, baseline+2)
		}
		f.check(t, env.ID, data)

		v := f.newVault(t, "kv-byok-transfer", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-transfer", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		f.succeed(t, "migration", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		migrated := f.clock.Now().UTC()
		f.check(t, env.ID, data)
		if _, err := f.p.RemoveBYOK(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Set(migrated.Add(keyhold.BYOKKeyRetention - time.Second))
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 0 || tokenObjects(t) != baseline+2 {
			t.Fatalf("shred before day 28: %d, %v; %d token objects", n, err, tokenObjects(t))
		}
		f.clock.Set(migrated.Add(keyhold.BYOKKeyRetention))
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 1 {
			t.Fatalf("shred on day 28: %d, %v", n, err)
		}
		if n := tokenObjects(t); n != baseline {
			t.Fatalf("after the shred %d token objects, want %d (the key and the KEK destroyed)", n, baseline)
		}
		if ks, err := f.p.ListBYOKKeys(f.ctx); err != nil || len(ks) != 0 {
			t.Fatalf("keys after the shred: %v, %v", ks, err)
		}
		f.check(t, env.ID, data)
	})
}

// TestBYOKTransferWithoutToken: with no PKCS#11 token, KEKs and transfer
// uploads are refused, naming the token, and nothing is stored.
func TestBYOKTransferWithoutToken(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		for what, fn := range map[string]func() error{
			"kek": func() error { _, err := f.p.CreateBYOKKEK(f.ctx, 0); return err },
			"upload": func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{Transfer: []byte("{}")})
				return err
			},
		} {
			f.fixture.refuse(t, what, keyhold.CodeNotSupported, []string{"PKCS#11 token", "--pkcs11-module"}, fn)
		}
	})
}

// TestBYOKTransferNoPlaintextAtRest: after a transfer key was uploaded and
// an environment encrypted under it, neither its private exponent nor its
// PKCS#8 encoding is in the database's files (SQLite with its WAL;
// PostgreSQL's whole data directory after a checkpoint) or the token's
// directory; a planted copy is found, so the scan can fail.
func TestBYOKTransferNoPlaintextAtRest(t *testing.T) {
	run := func(t *testing.T, store keyhold.Store, dirs []string, checkpoint func()) {
		f := newCMKFixture(t, store, false)
		f.byokHSM(t)
		kek, err := f.p.CreateBYOKKEK(f.ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		target := newRSA(t, 2048)
		k, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{Transfer: transferBlob(t, kekPublic(t, kek), kek.KID, target)})
		if err != nil {
			t.Fatal(err)
		}
		env := f.managedEnv(t, "byok-at-rest") // before the activation: apply moves it
		f.fill(t, env.ID, 3)
		if _, err := f.p.ActivateBYOKKey(f.ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		checkpoint()
		der, err := x509.MarshalPKCS8PrivateKey(target)
		if err != nil {
			t.Fatal(err)
		}
		secrets := map[string][]byte{"d": target.D.Bytes(), "p": target.Primes[0].Bytes(), "PKCS#8": der}
		scan := func(paths []string) (found []string, scanned int) {
			for _, p := range paths {
				filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return nil
					}
					data, err := os.ReadFile(path)
					if err != nil {
						return nil // files come and go under a live server
					}
					scanned++
					for name, s := range secrets {
						if bytes.Contains(data, s) {
							found = append(found, path+": "+name)
						}
					}
					return nil
				})
			}
			return found, scanned
		}
		paths := append(dirs, hsmtest.Dir())
		found, scanned := scan(paths)
		if len(found) > 0 {
			t.Fatalf("the BYOK key in plaintext at rest: %v", found)
		}
		plant := t.TempDir()
		if err := os.WriteFile(filepath.Join(plant, "canary"), target.D.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if found, _ := scan(append(paths, plant)); len(found) != 1 {
			t.Fatalf("the scan does not find a planted d: %v", found)
		}
		t.Logf("scanned %d files", scanned)
	}
	t.Run("sqlite", func(t *testing.T) {
		store, path := storetest.OpenSQLiteAt(t)
		run(t, store, []string{filepath.Dir(path)}, func() {})
	})
	t.Run("postgres", func(t *testing.T) {
		store, db := storetest.OpenPostgresAt(t)
		if db.DataDir == "" {
			if os.Getenv(storetest.EnvRequirePostgres) == "1" {
				t.Fatalf("%s is not set: cannot scan the data directory", storetest.EnvPostgresDataDir)
			}
			t.Skipf("%s is not set", storetest.EnvPostgresDataDir)
		}
		run(t, store, []string{db.DataDir}, func() {
			if _, err := store.(interface{ DB() *sql.DB }).DB().ExecContext(context.Background(), "CHECKPOINT"); err != nil {
				t.Fatalf("CHECKPOINT: %v", err)
			}
		})
	})
}
