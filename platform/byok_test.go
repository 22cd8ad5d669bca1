package platform

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// pfxPassword opens ../crypt/testdata/byok_3des.pfx (see crypt/byok_test.go).
const pfxPassword = "correct-horse"

func readTestPFX(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "crypt", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// privateJWK returns k as the JWK an administrator uploads.
func privateJWK(k *rsa.PrivateKey) *keyhold.JSONWebKey {
	k.Precompute()
	return &keyhold.JSONWebKey{Kty: "RSA", N: k.N.Bytes(), E: []byte{1, 0, 1}, D: k.D.Bytes(),
		P: k.Primes[0].Bytes(), Q: k.Primes[1].Bytes(), DP: k.Precomputed.Dp.Bytes(), DQ: k.Precomputed.Dq.Bytes(), QI: k.Precomputed.Qinv.Bytes()}
}

func newRSA(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := crypt.GenerateRSAKey(bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// byokState is what a refusal must leave unchanged: the tenant's keys and
// how many audit entries there are.
func (f *fixture) byokState(t *testing.T) string {
	t.Helper()
	ks, err := f.p.ListBYOKKeys(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range ks {
		b.WriteString(k.ID + " " + string(k.State) + " " + k.ActivatedAt.String() + "\n")
	}
	as, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Action != auditIntegrity { // a refused tampered record is audited (byok_seal.go)
			b.WriteString(".")
		}
	}
	return b.String()
}

// refuse runs fn, wants code and every one of mention in its message, and
// checks that the tenant's keys and audit log did not change.
func (f *fixture) refuse(t *testing.T, what, code string, mention []string, fn func() error) {
	t.Helper()
	before := f.byokState(t)
	err := fn()
	if keyhold.ErrorCode(err) != code {
		t.Fatalf("%s: %v (code %q), want %s", what, err, keyhold.ErrorCode(err), code)
	}
	for _, m := range mention {
		if !strings.Contains(keyhold.ErrorMessage(err), m) {
			t.Errorf("%s: message %q does not mention %q", what, keyhold.ErrorMessage(err), m)
		}
	}
	if after := f.byokState(t); after != before {
		t.Fatalf("%s changed the tenant's BYOK keys or audit:\nbefore %s\nafter  %s", what, before, after)
	}
}

// TestBYOKKeys: a tenant's administrator generates a key and uploads one
// as a JWK and one as a PFX; each is Installing, sealed, and shown with
// its thumbprint but never its material. Each bad upload is refused
// clearly and changes nothing.
func TestBYOKKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		gen, err := f.p.GenerateBYOKKey(f.ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if gen.State != keyhold.BYOKInstalling || gen.Source != keyhold.BYOKSourceGenerated || gen.Size != 2048 || gen.Thumbprint == "" || gen.Sealed != nil || !gen.ActivatedAt.IsZero() {
			t.Fatalf("generated key %+v", gen)
		}
		f.clock.Advance(time.Second) // the list is oldest first
		priv := newRSA(t, 3072)
		up, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(priv)})
		if err != nil {
			t.Fatal(err)
		}
		if up.Source != keyhold.BYOKSourceJWK || up.Size != 3072 || up.Thumbprint != crypt.RSAThumbprint(&priv.PublicKey) || up.CreatedBy != keyhold.IdentityFrom(f.ctx).PrincipalID {
			t.Fatalf("uploaded JWK %+v", up)
		}
		f.clock.Advance(time.Second)
		pfx, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{PFX: readTestPFX(t, "byok_3des.pfx"), Password: pfxPassword})
		if err != nil {
			t.Fatal(err)
		}
		if pfx.Source != keyhold.BYOKSourcePFX || pfx.Size != 2048 {
			t.Fatalf("uploaded PFX %+v", pfx)
		}
		ks, err := f.p.ListBYOKKeys(f.ctx)
		if err != nil || len(ks) != 3 || ks[0].ID != gen.ID || ks[1].ID != up.ID || ks[2].ID != pfx.ID {
			t.Fatalf("ListBYOKKeys = %+v, %v", ks, err)
		}
		for _, k := range ks {
			if k.Sealed != nil {
				t.Fatalf("ListBYOKKeys returned key material of %s", k.ID)
			}
		}
		// Sealed at rest: the stored bytes are not the private key.
		var stored *keyhold.BYOKKey
		if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
			stored, err = tx.BYOKKey(context.Background(), f.creds.TenantID, up.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		if bytes.Contains(stored.Sealed, der) || bytes.Contains(stored.Sealed, priv.D.Bytes()) || bytes.Contains(stored.Sealed, priv.Primes[0].Bytes()) {
			t.Fatal("the stored BYOK key holds the private key in clear")
		}
		if _, err := crypt.OpenRSAKey(f.master, crypt.BYOKKeyPurpose(f.creds.TenantID, up.ID), stored.Sealed); err != nil {
			t.Fatalf("the stored key does not open under the master key: %v", err)
		}

		pub := privateJWK(newRSA(t, 2048))
		pub.D, pub.P, pub.Q = nil, nil, nil
		small := newRSA(t, 2048)
		smallJWK := privateJWK(small)
		smallJWK.N = smallJWK.N[:64] // a 512-bit modulus that no longer matches
		notAdmin := f.login(t, f.creds.TenantID, f.newServicePrincipal(t), "s3cret-not-admin")
		for _, c := range []struct {
			name, code string
			mention    []string
			fn         func() error
		}{
			{"the same JWK again", keyhold.CodeConflict, []string{up.ID, "holds this key already", "activate that one"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(priv)})
				return err
			}},
			{"the same PFX again", keyhold.CodeConflict, []string{pfx.ID}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{PFX: readTestPFX(t, "byok_3des.pfx"), Password: pfxPassword})
				return err
			}},
			{"a wrong PFX password", keyhold.CodeBadRequest, []string{"password is wrong"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{PFX: readTestPFX(t, "byok_3des.pfx"), Password: "wrong"})
				return err
			}},
			{"a PFX encrypted with AES", keyhold.CodeBadRequest, []string{"-legacy", "JWK"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{PFX: readTestPFX(t, "byok_aes.pfx"), Password: pfxPassword})
				return err
			}},
			{"bytes that are no PFX", keyhold.CodeBadRequest, []string{"not a PFX"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{PFX: []byte("hello"), Password: "x"})
				return err
			}},
			{"a public JWK", keyhold.CodeBadRequest, []string{"public key", "private key"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: pub})
				return err
			}},
			{"an EC JWK", keyhold.CodeBadRequest, []string{`"EC"`, "RSA"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: &keyhold.JSONWebKey{Kty: "EC"}})
				return err
			}},
			{"a JWK whose parts don't match", keyhold.CodeBadRequest, []string{"JWK can't be used"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: smallJWK})
				return err
			}},
			{"both a JWK and a PFX", keyhold.CodeBadRequest, []string{"both"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048)), PFX: readTestPFX(t, "byok_3des.pfx")})
				return err
			}},
			{"a JWK with a password", keyhold.CodeBadRequest, []string{"password opens a PFX only"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048)), Password: "x"})
				return err
			}},
			{"no key", keyhold.CodeBadRequest, []string{"no key"}, func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{})
				return err
			}},
			{"a generated key of 1024 bits", keyhold.CodeBadRequest, []string{"1024", "2048, 3072 or 4096"}, func() error {
				_, err := f.p.GenerateBYOKKey(f.ctx, 1024)
				return err
			}},
			{"an upload by a non-administrator", keyhold.CodeForbidden, []string{"directory role"}, func() error {
				_, err := f.p.UploadBYOKKey(notAdmin, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
				return err
			}},
			{"a generation by a non-administrator", keyhold.CodeForbidden, []string{"directory role"}, func() error {
				_, err := f.p.GenerateBYOKKey(notAdmin, 2048)
				return err
			}},
			{"a list by a non-administrator", keyhold.CodeForbidden, []string{"directory role"}, func() error {
				_, err := f.p.ListBYOKKeys(notAdmin)
				return err
			}},
		} {
			f.refuse(t, c.name, c.code, c.mention, c.fn)
		}
	})
}

// newServicePrincipal creates a service principal with no directory role
// and secret "s3cret-not-admin", and returns its app id.
func (f *fixture) newServicePrincipal(t *testing.T) string {
	t.Helper()
	return f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "s3cret-not-admin", "").AppID
}

// TestBYOKActivation: activating a key makes it Active and the one before
// Available; a second activation within 24 hours is refused naming when
// it is allowed, and goes through at 24 hours on the injected clock.
func TestBYOKActivation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		k1, err := f.p.GenerateBYOKKey(f.ctx, 2048)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second) // the list is oldest first
		k2, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
		if err != nil {
			t.Fatal(err)
		}
		t0 := f.clock.Now().UTC()
		a, err := f.p.ActivateBYOKKey(f.ctx, k1.ID)
		if err != nil || a.State != keyhold.BYOKActive || !a.ActivatedAt.Equal(t0) || a.Sealed != nil {
			t.Fatalf("ActivateBYOKKey = %+v, %v", a, err)
		}
		next := t0.Add(24 * time.Hour).Format(time.RFC3339)
		f.refuse(t, "a second activation at once", keyhold.CodeConflict, []string{"one per 24 hours", next, k2.ID}, func() error {
			_, err := f.p.ActivateBYOKKey(f.ctx, k2.ID)
			return err
		})
		f.clock.Advance(24*time.Hour - time.Second)
		f.refuse(t, "a second activation a second early", keyhold.CodeConflict, []string{next}, func() error {
			_, err := f.p.ActivateBYOKKey(f.ctx, k2.ID)
			return err
		})
		f.refuse(t, "activating the Active key", keyhold.CodeConflict, []string{"Active already"}, func() error {
			_, err := f.p.ActivateBYOKKey(f.ctx, k1.ID)
			return err
		})
		f.refuse(t, "activating an unknown key", keyhold.CodeNotFound, []string{`"no-such-key"`, "list"}, func() error {
			_, err := f.p.ActivateBYOKKey(f.ctx, "no-such-key")
			return err
		})
		notAdmin := f.login(t, f.creds.TenantID, f.newServicePrincipal(t), "s3cret-not-admin")
		f.refuse(t, "an activation by a non-administrator", keyhold.CodeForbidden, nil, func() error {
			_, err := f.p.ActivateBYOKKey(notAdmin, k2.ID)
			return err
		})
		f.clock.Advance(time.Second)
		if _, err := f.p.ActivateBYOKKey(f.ctx, k2.ID); err != nil {
			t.Fatalf("activation at 24 hours: %v", err)
		}
		ks, err := f.p.ListBYOKKeys(f.ctx)
		if err != nil || len(ks) != 2 || ks[0].State != keyhold.BYOKAvailable || ks[1].State != keyhold.BYOKActive {
			t.Fatalf("keys after the second activation: %+v, %v; want k1 Available, k2 Active", ks, err)
		}
		acts := 0
		for _, a := range f.auditAll(t) {
			if a.Action == auditBYOKActivate {
				acts++
			}
		}
		if acts != 2 {
			t.Errorf("%d activations audited, want 2", acts)
		}

		// A key row whose sealed bytes were moved from another key (someone
		// with the database but no master key) is refused before use.
		k3, err := f.p.GenerateBYOKKey(f.ctx, 2048)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(24 * time.Hour)
		var sealed []byte
		if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
			k, err := tx.BYOKKey(context.Background(), f.creds.TenantID, k2.ID)
			sealed = k.Sealed
			return err
		}); err != nil {
			t.Fatal(err)
		}
		storetest.Exec(t, f.store, `UPDATE byok_keys SET sealed = ? WHERE id = ?`, sealed, k3.ID)
		refused := f.auditCount(t, auditIntegrity)
		f.refuse(t, "activating a tampered key", keyhold.CodeRecordIntegrity, []string{k3.ID, "changed outside Keyhold"}, func() error {
			_, err := f.p.ActivateBYOKKey(f.ctx, k3.ID)
			return err
		})
		if f.auditCount(t, auditIntegrity) != refused+1 {
			t.Errorf("the refusal of a tampered key was not audited (%s)", auditIntegrity)
		}
	})
}

// auditAll lists every audit entry of the tenant.
func (f *fixture) auditAll(t testing.TB) []*keyhold.AuditEntry {
	t.Helper()
	as, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return as
}
