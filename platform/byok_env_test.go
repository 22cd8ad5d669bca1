package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// byokTenant gives the fixture's tenant an Active BYOK key uploaded as a
// JWK, and returns that upload (to unlock with).
func (f *fixture) byokTenant(t testing.TB) (keyhold.BYOKUpload, *keyhold.BYOKKey) {
	t.Helper()
	up := keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))}
	k, err := f.p.UploadBYOKKey(f.ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	if k, err = f.p.ActivateBYOKKey(f.ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	return up, k
}

func (f *fixture) wrapped(t *testing.T, envID string) []*keyhold.WrappedKey {
	t.Helper()
	var wks []*keyhold.WrappedKey
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		var err error
		wks, err = tx.WrappedKeys(context.Background(), envID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return wks
}

func (f *fixture) env(t *testing.T, id string) *keyhold.Environment {
	t.Helper()
	e, err := f.p.FindEnvironment(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestBYOKEnvironment: an environment moved under the tenant's Active BYOK
// key keeps its data, reads CustomerViaMicrosoft, and holds its key only
// under the BYOK key (the platform key's copy deleted in the move), which
// opens it after the cache is dropped. Each refusal changes nothing.
func TestBYOKEnvironment(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		env := f.createEnv(t, "byok")
		if _, err := f.p.PutRow(f.ctx, env.ID, "accounts", "a1", json.RawMessage(`{"name":"Fabrikam"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.PutFile(f.ctx, env.ID, "f.bin", bytes.NewReader([]byte("file under byok"))); err != nil {
			t.Fatal(err)
		}
		envState := func() string {
			e := f.env(t, env.ID)
			var roots []string
			for _, wk := range f.wrapped(t, env.ID) {
				roots = append(roots, string(wk.Root)+":"+wk.KeyID)
			}
			return string(e.KeyManagedBy) + " " + string(e.State) + " " + strings.Join(roots, ",") + " " + f.byokState(t)
		}
		before := envState()
		wantRefusal := func(what, code string, mention []string) {
			t.Helper()
			_, err := f.p.ApplyBYOK(f.ctx, env.ID)
			if keyhold.ErrorCode(err) != code {
				t.Fatalf("%s: %v, want %s", what, err, code)
			}
			for _, m := range mention {
				if !strings.Contains(keyhold.ErrorMessage(err), m) {
					t.Errorf("%s: %q does not mention %q", what, keyhold.ErrorMessage(err), m)
				}
			}
			if got := envState(); got != before {
				t.Fatalf("%s changed the environment:\n%s\n%s", what, before, got)
			}
		}
		wantRefusal("no BYOK key", keyhold.CodeConflict, []string{"no Active BYOK key", "keyhold byok key activate"})
		k, err := f.p.GenerateBYOKKey(f.ctx, 2048)
		if err != nil {
			t.Fatal(err)
		}
		before = envState()
		wantRefusal("an Installing key only", keyhold.CodeConflict, []string{"no Active BYOK key"})
		if _, err := f.p.ActivateBYOKKey(f.ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		before = envState()

		got, err := f.p.ApplyBYOK(f.ctx, env.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft || got.State != keyhold.StateEnabled {
			t.Fatalf("after ApplyBYOK: %+v", got)
		}
		wks := f.wrapped(t, env.ID)
		if len(wks) != 1 || wks[0].Root != keyhold.RootBYOK || wks[0].KeyID != "byok/"+k.ID {
			t.Fatalf("wrapped keys after ApplyBYOK: %+v; want one BYOK copy and no platform key copy", wks)
		}
		f.p.DropKeys("")
		unwraps := f.p.Unwraps()
		if r, err := f.p.GetRow(f.ctx, env.ID, "accounts", "a1"); err != nil || !strings.Contains(string(r.Data), "Fabrikam") {
			t.Fatalf("row after the move: %+v, %v", r, err)
		}
		if b, err := readAllFile(t, f, env.ID, "f.bin"); err != nil || string(b) != "file under byok" {
			t.Fatalf("file after the move: %q, %v", b, err)
		}
		if f.p.Unwraps() == unwraps {
			t.Fatal("the reads did not unwrap under the BYOK key")
		}
		before = envState()
		wantRefusal("applying twice", keyhold.CodeConflict, []string{"already"})
		notAdmin := f.login(t, f.creds.TenantID, f.newServicePrincipal(t), "s3cret-not-admin")
		before = envState() // the sign-in is audited
		if _, err := f.p.ApplyBYOK(notAdmin, env.ID); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("ApplyBYOK by a non-administrator: %v", err)
		}
		if got := envState(); got != before {
			t.Fatalf("a refused apply changed the environment")
		}
		var entries []string
		for _, a := range f.auditAll(t) {
			entries = append(entries, a.Action)
		}
		if !strings.Contains(strings.Join(entries, " "), auditBYOKApply) {
			t.Errorf("no %s audit entry in %v", auditBYOKApply, entries)
		}
	})
}

// TestBYOKTenantLock: locking the tenant disables every BYOK environment
// and refuses its data with a message naming the unlock, while the
// tenant's other environments go on; a key row set back to Enabled past
// Keyhold still opens nothing, since the BYOK key unwraps nothing while
// the tenant is locked. Only the same key unlocks, and another is refused
// with nothing changed.
func TestBYOKTenantLock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		byok := f.createEnv(t, "byok")
		plain := f.createEnv(t, "plain") // stays under the platform key
		up, _ := f.byokTenant(t)
		for _, e := range []*keyhold.Environment{byok, plain} {
			if _, err := f.p.PutRow(f.ctx, e.ID, "t", "r", json.RawMessage(`{"v":1}`)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.p.ApplyBYOK(f.ctx, byok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.GetRow(f.ctx, byok.ID, "t", "r"); err != nil { // the key is cached now
			t.Fatal(err)
		}
		ids, err := f.p.LockBYOKTenant(f.ctx)
		if err != nil || len(ids) != 1 || ids[0] != byok.ID {
			t.Fatalf("LockBYOKTenant = %v, %v; want [%s]", ids, err, byok.ID)
		}
		if e := f.env(t, byok.ID); e.State != keyhold.StateDisabled {
			t.Fatalf("BYOK environment after the lock: %s", e.State)
		}
		for _, read := range []func() error{
			func() error { _, err := f.p.GetRow(f.ctx, byok.ID, "t", "r"); return err },
			func() error {
				_, err := f.p.PutRow(f.ctx, byok.ID, "t", "r2", json.RawMessage(`{}`))
				return err
			},
		} {
			err := read()
			if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentDisabled || !strings.Contains(keyhold.ErrorMessage(err), "locked the tenant") || !strings.Contains(keyhold.ErrorMessage(err), "keyhold byok unlock") {
				t.Fatalf("data of a locked BYOK environment: %v", err)
			}
		}
		if _, err := f.p.GetRow(f.ctx, plain.ID, "t", "r"); err != nil {
			t.Fatalf("a platform-key environment during the lock: %v", err)
		}
		// Past Keyhold: the row says Enabled again; the key still opens
		// nothing, and the cache held nothing.
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Enabled' WHERE id = ?`, byok.ID)
		unwraps := f.p.Unwraps()
		if _, err = f.p.storeKey(context.Background(), byok.ID, 1, "rows"); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentDisabled {
			t.Fatalf("unwrapping a locked tenant's environment key: %v", err)
		}
		if f.p.Unwraps() != unwraps {
			t.Fatal("a locked BYOK key unwrapped")
		}
		// The flows' save check reads only the environment's gate, which
		// says Enabled now: the tenant's lock still refuses it.
		err = f.store.View(f.ctx, func(tx keyhold.Tx) error {
			_, err := f.p.Sealer.ServingIn(f.ctx, tx, byok.ID)
			return err
		})
		if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentDisabled || !strings.Contains(keyhold.ErrorMessage(err), "locked the tenant") {
			t.Fatalf("ServingIn of a locked tenant's environment set Enabled past Keyhold: %v", err)
		}
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Disabled' WHERE id = ?`, byok.ID)

		f.refuse(t, "locking twice", keyhold.CodeConflict, []string{"locked already"}, func() error {
			_, err := f.p.LockBYOKTenant(f.ctx)
			return err
		})
		other := keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))}
		f.refuse(t, "unlocking with another key", keyhold.CodeForbidden, []string{"only the same key unlocks", "stays locked"}, func() error {
			_, err := f.p.UnlockBYOKTenant(f.ctx, other)
			return err
		})
		f.refuse(t, "unlocking with a bad key", keyhold.CodeBadRequest, []string{"no key"}, func() error {
			_, err := f.p.UnlockBYOKTenant(f.ctx, keyhold.BYOKUpload{})
			return err
		})
		notAdmin := f.login(t, f.creds.TenantID, f.newServicePrincipal(t), "s3cret-not-admin")
		f.refuse(t, "unlocking as a non-administrator", keyhold.CodeForbidden, []string{"directory role"}, func() error {
			_, err := f.p.UnlockBYOKTenant(notAdmin, up)
			return err
		})
		if e := f.env(t, byok.ID); e.State != keyhold.StateDisabled {
			t.Fatalf("refused unlocks changed the environment: %s", e.State)
		}

		ids, err = f.p.UnlockBYOKTenant(f.ctx, up)
		if err != nil || len(ids) != 1 || ids[0] != byok.ID {
			t.Fatalf("UnlockBYOKTenant = %v, %v", ids, err)
		}
		if r, err := f.p.GetRow(f.ctx, byok.ID, "t", "r"); err != nil || string(r.Data) != `{"v":1}` {
			t.Fatalf("row after the unlock: %+v, %v", r, err)
		}
		f.refuse(t, "unlocking an unlocked tenant", keyhold.CodeConflict, []string{"not locked"}, func() error {
			_, err := f.p.UnlockBYOKTenant(f.ctx, up)
			return err
		})
	})
}
