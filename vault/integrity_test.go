package vault

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// Records changed in the database past the vault, with raw SQL as someone
// without the master key would, are refused with CodeRecordIntegrity,
// audited as that refusal, and change nothing.

// lastAudit returns the newest audit entry of action.
func (f *fixture) lastAudit(t *testing.T, action string) *keyhold.AuditEntry {
	t.Helper()
	var last *keyhold.AuditEntry
	for _, e := range f.audit() {
		if e.Action == action && (last == nil || e.ID > last.ID) {
			last = e
		}
	}
	if last == nil {
		t.Fatalf("no audit entry %s", action)
	}
	return last
}

// TestCopiedMaterialRefused: the sealed private key of another key (one
// the attacker may know), copied over a version's, is refused before it
// is opened, and the refusal is audited.
func TestCopiedMaterialRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-copy", nil)
		b := f.createKey(v.Name, "cmk")
		other := f.createKey(v.Name, "other")
		_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
		storetest.Exec(t, f.store, `UPDATE key_versions SET material = (SELECT material FROM key_versions WHERE name_key = 'other' AND version_key = ?)
			WHERE vault_key = 'kv-copy' AND name_key = 'cmk' AND version_key = ?`, other.Version.Version, b.Version.Version)
		_, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP256, ct)
		wantCode(t, err, keyhold.CodeRecordIntegrity, "", "changed outside Keyhold", "version "+b.Version.Version)
		if e := f.lastAudit(t, "key.unwrap"); e.Result != keyhold.CodeRecordIntegrity {
			t.Fatalf("audit of the refused unwrap: %+v", e)
		}
	})
}

// TestPurgeProtectionFlippedOff: purge protection turned off in the
// database doesn't let a deleted key be purged before its date.
func TestPurgeProtectionFlippedOff(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-pp", func(v *keyhold.Vault) { v.EnablePurgeProtection, v.SoftDeleteRetentionDays = true, 10 })
		f.createKey(v.Name, "cmk")
		must[*keyhold.KeyBundle](t)(f.svc.DeleteKey(as(officer), v.Name, "cmk"))
		wantCode(t, f.svc.PurgeDeletedKey(as(officer), v.Name, "cmk"), keyhold.CodeForbidden, "", "purge protection is enabled")

		storetest.Exec(t, f.store, `UPDATE vaults SET enable_purge_protection = ? WHERE name_key = ?`, false, "kv-pp")
		wantCode(t, f.svc.PurgeDeletedKey(as(officer), v.Name, "cmk"), keyhold.CodeRecordIntegrity, "", "vault kv-pp")
		f.update(func(tx keyhold.Tx) error {
			_, err := tx.Key(context.Background(), v.Name, "cmk")
			return err // still there
		})
		if e := f.lastAudit(t, "key.purge"); e.Result != keyhold.CodeRecordIntegrity {
			t.Fatalf("audit of the refused purge: %+v", e)
		}
	})
}

// TestCurrentVersionPointer: a key's current version changed in the
// database stops what follows the current version (a wrap without a
// version, a get, an update) but not the use of a named version.
func TestCurrentVersionPointer(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-ptr", nil)
		b1 := f.createKey(v.Name, "cmk")
		f.clock.Advance(day)
		must[*keyhold.KeyBundle](t)(f.svc.RotateKey(as(officer), v.Name, "cmk"))
		storetest.Exec(t, f.store, `UPDATE vault_keys SET current_version = ? WHERE vault_key = 'kv-ptr' AND name_key = 'cmk'`, b1.Version.Version)
		_, _, err := f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek"))
		wantCode(t, err, keyhold.CodeRecordIntegrity, "", "current version")
		_, err = f.svc.UpdateKey(as(officer), v.Name, "cmk", b1.Version.Version, keyhold.KeyAttributes{Enabled: ptr(false)}, nil, nil)
		wantCode(t, err, keyhold.CodeRecordIntegrity, "", "current version")
		kid, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", b1.Version.Version, crypt.AlgRSAOAEP256, []byte("ek")))
		if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b1.Version.Version, crypt.AlgRSAOAEP256, ct)); string(got) != "ek" {
			t.Fatalf("unwrap under %s = %q", kid, got)
		}
	})
}

// TestSealRecordsOnce: records from before sealing (no seal) are refused
// until the first start seals them; after that, a record written without
// a seal stays refused.
func TestSealRecordsOnce(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-old", nil)
		b := f.createKey(v.Name, "cmk")
		for _, table := range []string{"vaults", "vault_keys", "key_versions"} {
			storetest.Exec(t, f.store, `UPDATE `+table+` SET mac = NULL`)
		}
		_, err := f.svc.GetKey(as(officer), v.Name, "cmk", "")
		wantCode(t, err, keyhold.CodeRecordIntegrity, "", "no integrity seal")
		if n, err := f.svc.SealRecords(context.Background()); err != nil || n != 3 {
			t.Fatalf("SealRecords = %d, %v; want 3 (vault, key, version)", n, err)
		}
		must[*keyhold.KeyBundle](t)(f.svc.GetKey(as(officer), v.Name, "cmk", ""))

		// Once anything is sealed, an unsealed record is not sealed.
		storetest.Exec(t, f.store, `UPDATE key_versions SET mac = NULL WHERE version_key = ?`, b.Version.Version)
		if n, err := f.svc.SealRecords(context.Background()); err != nil || n != 0 {
			t.Fatalf("SealRecords with sealed records around = %d, %v; want 0", n, err)
		}
		_, err = f.svc.GetKey(as(officer), v.Name, "cmk", "")
		wantCode(t, err, keyhold.CodeRecordIntegrity, "", "no integrity seal")
	})
}

// TestSealRecordsTogether: two servers starting together on one database
// both start, and the records are sealed once.
func TestSealRecordsTogether(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-two", nil)
		f.createKey(v.Name, "cmk")
		for _, table := range []string{"vaults", "vault_keys", "key_versions"} {
			storetest.Exec(t, f.store, `UPDATE `+table+` SET mac = NULL`)
		}
		master, err := crypt.KeyFromBytes([]byte(strings.Repeat("m", crypt.KeySize))) // the fixture's
		if err != nil {
			t.Fatal(err)
		}
		second, err := New(Config{Store: f.store, MasterKey: master, Clock: f.clock, BaseURL: testBase})
		master.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 2)
		for _, svc := range []*Service{f.svc, second} {
			go func() {
				n, err := svc.SealRecords(context.Background())
				done <- result{n, err}
			}()
		}
		total := 0
		for range 2 {
			r := <-done
			if r.err != nil {
				t.Fatalf("SealRecords: %v", r.err)
			}
			total += r.n
		}
		if total != 3 {
			t.Fatalf("sealed %d records in all, want 3", total)
		}
		must[*keyhold.KeyBundle](t)(f.svc.GetKey(as(officer), v.Name, "cmk", ""))
	})
}

// TestInsertedAccessPolicyGrantsNothing: an access policy granting the
// stranger every key permission, added in the database to an
// access-policy vault, or to an RBAC vault switched to access policies,
// doesn't let it unwrap: the vault's access no longer matches its seal,
// so no access policy of it counts (the legitimate ones neither, until
// the record is restored), and the refusal is audited as
// integrity.refused. Before the change, the legitimate policy works.
func TestInsertedAccessPolicyGrantsNothing(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		for _, rbac := range []bool{false, true} {
			name := "kv-ap-insert"
			if rbac {
				name = "kv-rbac-insert"
			}
			v := f.apVault(name, func(v *keyhold.Vault) { v.EnableRbacAuthorization = rbac })
			if rbac {
				f.grant(officer, keyhold.RoleKeyVaultCryptoOfficer, v.ID())
			}
			f.createKey(v.Name, "cmk")
			_, ct := must2(t)(f.svc.WrapKey(as(officer), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
			if !rbac {
				must2(t)(f.svc.UnwrapKey(as(officer), v.Name, "cmk", "", crypt.AlgRSAOAEP256, ct))
			}
			var stored *keyhold.Vault
			f.update(func(tx keyhold.Tx) error {
				var err error
				stored, err = tx.Vault(context.Background(), v.Name)
				return err
			})
			policies := append(stored.AccessPolicies, keyhold.AccessPolicy{TenantID: testTenant, ObjectID: stranger.PrincipalID, Keys: []string{"all"}})
			js, err := json.Marshal(policies)
			if err != nil {
				t.Fatal(err)
			}
			storetest.Exec(t, f.store, `UPDATE vaults SET access_policies = ?, enable_rbac_authorization = ? WHERE name_key = ?`, string(js), false, name)

			_, pt, err := f.svc.UnwrapKey(as(stranger), v.Name, "cmk", "", crypt.AlgRSAOAEP256, ct)
			if pt != nil {
				t.Fatalf("%s: the stranger unwrapped with an inserted access policy", name)
			}
			wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerAccessDenied)
			if e := f.lastAudit(t, "integrity.refused"); e.Result != keyhold.CodeRecordIntegrity || !strings.Contains(e.Detail, "access policies of vault "+name) {
				t.Fatalf("audit of the refused access policies: %+v", e)
			}
			if e := f.lastAudit(t, "key.unwrap"); e.Result != keyhold.CodeForbidden || e.ActorID != stranger.PrincipalID {
				t.Fatalf("audit of the refused unwrap: %+v", e)
			}
		}
	})
}

// TestAccessSealAddedOnceAtUpgrade: vaults sealed before their access
// policies were (one seal in the mac) get the access seal from
// SealRecords, audited, while no vault has one; after that, a vault
// without it stays without, and its access policies grant nothing.
func TestAccessSealAddedOnceAtUpgrade(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		old := func(name string) {
			t.Helper()
			var v *keyhold.Vault
			f.update(func(tx keyhold.Tx) error {
				var err error
				v, err = tx.Vault(context.Background(), name)
				return err
			})
			storetest.Exec(t, f.store, `UPDATE vaults SET mac = ? WHERE name_key = ?`, v.MAC[:len(v.MAC)/2], name)
		}
		v := f.apVault("kv-old", nil)
		f.createKey(v.Name, "cmk")
		_, ct := must2(t)(f.svc.WrapKey(as(officer), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
		old(v.Name)
		_, _, err := f.svc.UnwrapKey(as(officer), v.Name, "cmk", "", crypt.AlgRSAOAEP256, ct)
		wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerAccessDenied)

		if n, err := f.svc.SealRecords(context.Background()); err != nil || n != 1 {
			t.Fatalf("SealRecords = %d, %v; want 1 (the vault's access)", n, err)
		}
		if e := f.lastAudit(t, "integrity.seal"); e.Target != v.ID() {
			t.Fatalf("audit of the sealing: %+v", e)
		}
		must2(t)(f.svc.UnwrapKey(as(officer), v.Name, "cmk", "", crypt.AlgRSAOAEP256, ct))

		w := f.apVault("kv-later", nil)
		old(w.Name)
		if n, err := f.svc.SealRecords(context.Background()); err != nil || n != 0 {
			t.Fatalf("SealRecords after the upgrade = %d, %v; want 0", n, err)
		}
		_, err = f.svc.CreateKey(as(officer), w.Name, "cmk", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSA})
		wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerAccessDenied)
		if e := f.lastAudit(t, "integrity.refused"); !strings.Contains(e.Detail, "kv-later") {
			t.Fatalf("audit of the refused access policies: %+v", e)
		}
	})
}
