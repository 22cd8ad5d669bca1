package mhsm_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestHSMAssignmentsSealed: a Managed HSM's local role assignments are
// sealed under the master key, so someone who writes the database but
// doesn't hold the master key can't grant a principal they sign in as
// Crypto User on a key: neither a row with no seal nor a row carrying
// another assignment's seal authorizes anything, and each is reported as
// refused. The genuine assignment keeps working.
func TestHSMAssignmentsSealed(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		mk, err := crypt.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		rk, err := crypt.NewRecordKey(mk)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var refused []keyhold.RefusedRecord
		f.store.(keyhold.SealingStore).SetRecordSealer(rk, func(_ context.Context, rs []keyhold.RefusedRecord) {
			mu.Lock()
			defer mu.Unlock()
			refused = append(refused, rs...)
		})
		// The fixture's role assignments were written before the sealer:
		// seal them, as the platform does at start.
		if _, _, err := f.store.(keyhold.SealingStore).SealAccessRecords(context.Background(), func(keyhold.Tx, string, string) error { return nil }); err != nil {
			t.Fatal(err)
		}
		f.newHSM("hsm1")
		if _, err := f.svc.DownloadSecurityDomain(as(admin), "hsm1", domainRequest(2, holders...)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.PutHSMRoleAssignment(as(admin), "hsm1", &keyhold.HSMRoleAssignment{Name: "11111111-0000-4000-8000-000000000001", Scope: "/",
			RoleDefinitionID: keyhold.HSMRoleDefinitionPrefix + keyhold.RoleHSMCryptoUser, PrincipalID: user.PrincipalID}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CreateKey(as(user), "hsm1", "k1", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM}); err != nil {
			t.Fatalf("the sealed assignment doesn't authorize: %v", err)
		}
		secret := []byte("0123456789abcdef0123456789abcdef")
		_, ct, err := f.svc.WrapKey(as(user), "hsm1", "k1", "", crypt.AlgRSAOAEP256, secret)
		if err != nil {
			t.Fatal(err)
		}
		db := f.store.(interface{ DB() *sql.DB }).DB()
		for i, forged := range []struct{ name, mac string }{
			{"forged-unsealed", "NULL"},
			{"forged-replayed", "mac"}, // the user's seal, on the stranger's grant
		} {
			q := fmt.Sprintf(`INSERT INTO hsm_role_assignments (hsm_key, name_key, created_at, doc, mac)
				SELECT hsm_key, '%s', created_at + %d, REPLACE(doc, '%s', '%s'), %s FROM hsm_role_assignments WHERE doc LIKE '%%%s%%'`,
				forged.name, i+1, user.PrincipalID, stranger.PrincipalID, forged.mac, user.PrincipalID)
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", forged.name, err)
			}
			mu.Lock()
			before := len(refused)
			mu.Unlock()
			_, _, err = f.svc.UnwrapKey(as(stranger), "hsm1", "k1", "", crypt.AlgRSAOAEP256, ct)
			wantCode(t, err, keyhold.CodeForbidden)
			mu.Lock()
			after := len(refused)
			mu.Unlock()
			if after <= before {
				t.Errorf("%s: the forged assignment was not reported as refused", forged.name)
			}
			if _, _, err := f.svc.UnwrapKey(as(user), "hsm1", "k1", "", crypt.AlgRSAOAEP256, ct); err != nil {
				t.Fatalf("%s: the genuine assignment stopped working: %v", forged.name, err)
			}
		}
	})
}
