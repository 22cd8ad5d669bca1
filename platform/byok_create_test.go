package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// wrappedRows counts every wrapped key in the store, of every environment.
func wrappedRows(t *testing.T, f *fixture) int {
	t.Helper()
	var n int
	if err := rawDB(f).QueryRow(`SELECT COUNT(*) FROM wrapped_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBYOKCreateUnderKey: in a tenant whose BYOK key is Active, a new
// environment is created under it: keyManagedBy CustomerViaMicrosoft, its
// first epoch's key wrapped only under the BYOK key (RSA-OAEP-256 to the
// tenant's own public key, which the test's copy of the private key
// opens to the environment's key), and never under the platform's key
// (no MMK wrap happened at all, so no MMK copy was ever stored). Its data
// reads back after the cache is dropped, and the BYOK file cap holds at
// once. In a locked tenant creation is refused, naming the unlock, and
// nothing is created; after the unlock it works again.
func TestBYOKCreateUnderKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		const limit = 10_000
		f.p.core.byokCap = limit
		plain := f.createEnv(t, "before-byok")
		if plain.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
			t.Fatalf("an environment of a tenant without BYOK: %s", plain.KeyManagedBy)
		}
		priv := newRSA(t, 2048)
		k, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(priv)})
		if err != nil {
			t.Fatal(err)
		}
		// Installing is not Active: still the platform key.
		if e := f.createEnv(t, "installing"); e.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
			t.Fatalf("an environment while the key is Installing: %s", e.KeyManagedBy)
		}
		if k, err = f.p.ActivateBYOKKey(f.ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		mmkWraps := testutil.ToFloat64(f.p.core.m.wraps.WithLabelValues(string(keyhold.RootMMK), "ok"))
		env := f.createEnv(t, "born-byok")
		if got := testutil.ToFloat64(f.p.core.m.wraps.WithLabelValues(string(keyhold.RootMMK), "ok")); got != mmkWraps {
			t.Fatalf("creating a BYOK environment wrapped %v keys under the platform key", got-mmkWraps)
		}
		if env.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft || f.env(t, env.ID).KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
			t.Fatalf("keyManagedBy %s (stored %s), want %s", env.KeyManagedBy, f.env(t, env.ID).KeyManagedBy, keyhold.KeyManagedByCustomerViaMicrosoft)
		}
		wks := f.wrapped(t, env.ID)
		if len(wks) != 1 || wks[0].Root != keyhold.RootBYOK || wks[0].KeyID != byokKIDPrefix+k.ID || wks[0].Epoch != env.Epoch {
			t.Fatalf("wrapped keys %+v; want one copy under %s%s", wks, byokKIDPrefix, k.ID)
		}
		if _, err := f.p.PutRow(f.ctx, env.ID, "t", "r", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		// The copy is the tenant's key's: the customer's private key opens it
		// to the key the environment's data is under.
		payload, err := crypt.UnwrapOAEP(priv, crypt.AlgRSAOAEP256, wks[0].Ciphertext)
		if err != nil {
			t.Fatalf("the tenant's private key does not open the copy: %v", err)
		}
		ek, err := crypt.OpenEKPayload(env.ID, env.Epoch, payload)
		if err != nil {
			t.Fatal(err)
		}
		cached, err := f.p.core.envKey(context.Background(), env.ID, env.Epoch)
		if err != nil {
			t.Fatal(err)
		}
		if !ek.Equal(cached) {
			t.Fatal("the BYOK copy opens to another key than the environment's")
		}
		ek.Destroy()
		cached.Destroy()
		f.p.DropKeys(env.ID)
		if _, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); err != nil {
			t.Fatalf("a row after the cache was dropped: %v", err)
		}
		// The BYOK restrictions hold from the start.
		if _, err := f.p.PutFile(f.ctx, env.ID, "big", bytes.NewReader(randomBytes(t, limit+1))); keyhold.ErrorCode(err) != keyhold.CodeRequestTooLarge {
			t.Fatalf("a file over the BYOK cap in a new BYOK environment: %v", err)
		}
		var detail string
		for _, a := range f.auditAll(t) {
			if a.Action == "environment.create" && a.EnvID == env.ID {
				detail = a.Detail
			}
		}
		if !strings.Contains(detail, "BYOK key "+k.ID) {
			t.Errorf("the creation's audit entry %q does not name the BYOK key", detail)
		}

		// Locked: refused, nothing created.
		up := keyhold.BYOKUpload{JWK: privateJWK(priv)}
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatal(err)
		}
		envs, err := f.p.ListEnvironments(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows, audits := wrappedRows(t, f), len(f.auditAll(t))
		err = f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "while-locked", Location: "europe", SKU: keyhold.SKUProduction})
		if keyhold.ErrorCode(err) != keyhold.CodeConflict {
			t.Fatalf("creation in a locked BYOK tenant: %v, want %s", err, keyhold.CodeConflict)
		}
		for _, m := range []string{"locked", "keyhold byok unlock", "BYOK key"} {
			if !strings.Contains(keyhold.ErrorMessage(err), m) {
				t.Errorf("refusal %q does not mention %q", keyhold.ErrorMessage(err), m)
			}
		}
		after, err := f.p.ListEnvironments(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(envs) || wrappedRows(t, f) != rows || len(f.auditAll(t)) != audits {
			t.Fatalf("the refused creation changed something: %d→%d environments, %d→%d wrapped keys, %d→%d audit entries",
				len(envs), len(after), rows, wrappedRows(t, f), audits, len(f.auditAll(t)))
		}
		if _, err := f.p.UnlockBYOKTenant(f.ctx, up); err != nil {
			t.Fatal(err)
		}
		if e := f.createEnv(t, "after-unlock"); e.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
			t.Fatalf("after the unlock: %s", e.KeyManagedBy)
		}
	})
}
