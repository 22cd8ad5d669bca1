package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// The custody threat model's "database alone" claims: someone who can
// write the database, but holds no master key, can't make the platform
// wrap an environment's key under a key of theirs. Each test writes to
// the database with raw SQL, as such an attacker would, past Keyhold.

// custodyWorld is an environment with data, linked to a policy that
// follows the current version of key "k" of a vault with purge
// protection.
type custodyWorld struct {
	v      *keyhold.Vault
	k1     *keyhold.KeyBundle
	pol    *keyhold.EnterprisePolicy
	env    *keyhold.Environment
	c      *content
	before []*keyhold.WrappedKey
}

func newCustodyWorld(t *testing.T, f *cmkFixture, vaultName string) *custodyWorld {
	t.Helper()
	w := &custodyWorld{v: f.newVault(t, vaultName, true)}
	w.k1 = f.newKey(t, w.v, "k")
	w.pol = f.newPolicy(t, "pol-"+vaultName, w.v, "k", nil)
	f.grantKey(t, w.pol, w.v, "k")
	w.env = f.managedEnv(t, "e-"+vaultName)
	w.c = f.fill(t, w.env.ID, 4, 100)
	f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, w.env.ID, w.pol.SystemID) })
	w.before = f.wrapped(t, w.env.ID)
	return w
}

// unchanged fails the test unless the environment's wrapped keys are
// exactly those of before, it is Enabled, and its data reads back with
// its cached keys dropped (it serves under its valid key version).
func (w *custodyWorld) unchanged(t *testing.T, f *cmkFixture) {
	t.Helper()
	after := f.wrapped(t, w.env.ID)
	if len(after) != len(w.before) {
		t.Fatalf("wrapped keys %v, want %v", describeKeys(after), describeKeys(w.before))
	}
	for i := range after {
		if !sameKey(after[i], w.before[i]) {
			t.Fatalf("wrapped keys %v, want %v", describeKeys(after), describeKeys(w.before))
		}
	}
	if e := f.env(t, w.env.ID); e.State != keyhold.StateEnabled {
		t.Fatalf("environment is %s, want Enabled", e.State)
	}
	f.check(t, w.env.ID, w.c)
}

// rotateFails runs the rotation pickup and requires one rotation that
// fails with CodeRecordIntegrity.
func (w *custodyWorld) rotateFails(t *testing.T, f *cmkFixture) *keyhold.Operation {
	t.Helper()
	n, err := f.p.PickUpRotations(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
	}
	ops := f.operations(t, w.pol.ID())
	op := f.wait(t, ops[0])
	if op.State != keyhold.OperationFailed || op.ErrorCode != keyhold.CodeRecordIntegrity {
		t.Fatalf("rotation ended %s %s %q, want Failed %s", op.State, op.ErrorCode, op.ErrorMsg, keyhold.CodeRecordIntegrity)
	}
	return op
}

// attackerModulus is the modulus of a fresh RSA key whose private part the
// attacker would hold.
func attackerModulus(t *testing.T) []byte {
	t.Helper()
	k, err := crypt.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	return k.N.Bytes()
}

func newVersionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// integrityAudits returns the integrity.refused entries of the tenant.
func integrityAudits(t *testing.T, f *cmkFixture) []*keyhold.AuditEntry {
	t.Helper()
	var out []*keyhold.AuditEntry
	err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: f.creds.TenantID, Limit: 1000})
		for _, e := range es {
			if e.Action == auditIntegrity {
				out = append(out, e)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTamperForeignVersionMadeCurrent is the attack of issue 10: a key
// version with the attacker's public key, inserted and made current in
// the database. The rotation it would trigger fails with the integrity
// error, no wrapped key changes, the environment goes on serving under
// its version, and the health check reports an Error-level finding (an
// audited refusal naming the record) without locking anything.
func TestTamperForeignVersionMadeCurrent(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newCustodyWorld(t, f, "kv-foreign")
		evil := newVersionID()
		vk, nk := strings.ToLower(w.v.Name), "k"
		if n := storetest.Exec(t, f.store, `INSERT INTO key_versions (vault_key, name_key, version_key, vault_name, name, version, type, size, n, e,
			key_ops, enabled, not_before, expires, material, created_at, updated_at)
			SELECT vault_key, name_key, ?, vault_name, name, ?, type, size, ?, e, key_ops, enabled, not_before, expires, material, created_at + 1000, updated_at
			FROM key_versions WHERE vault_key = ? AND name_key = ? AND version_key = ?`,
			evil, evil, attackerModulus(t), vk, nk, w.k1.Version.Version); n != 1 {
			t.Fatalf("inserted %d versions", n)
		}
		storetest.Exec(t, f.store, `UPDATE vault_keys SET current_version = ? WHERE vault_key = ? AND name_key = ?`, evil, vk, nk)

		w.rotateFails(t, f)
		w.unchanged(t, f)

		before := len(integrityAudits(t, f))
		h, err := f.p.CheckPolicyHealth(context.Background(), w.pol.ID())
		if err != nil || h != keyhold.HealthWarning {
			t.Fatalf("CheckPolicyHealth = %s, %v; want Warning (not the customer's revocation)", h, err)
		}
		found := integrityAudits(t, f)[before:]
		if len(found) == 0 || found[0].Result != keyhold.CodeRecordIntegrity || !strings.Contains(found[0].Detail, "key k in vault "+w.v.Name) {
			t.Fatalf("integrity audit entries after the health check: %+v; want one naming key k of %s", found, w.v.Name)
		}
		w.unchanged(t, f)
	})
}

// TestTamperEditedPublicKey: the current version's n, edited in place, is
// refused; nothing is wrapped under it.
func TestTamperEditedPublicKey(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newCustodyWorld(t, f, "kv-edited")
		f.clock.Advance(time.Hour)
		k2, err := f.kv.RotateKey(f.ctx, w.v.Name, "k")
		if err != nil {
			t.Fatal(err)
		}
		storetest.Exec(t, f.store, `UPDATE key_versions SET n = ? WHERE vault_key = ? AND name_key = ? AND version_key = ?`,
			attackerModulus(t), strings.ToLower(w.v.Name), "k", k2.Version.Version)
		w.rotateFails(t, f)
		w.unchanged(t, f)
	})
}

// TestTamperCopiedKeyMaterial: the sealed private key and public key of a
// key the attacker holds (here, one in a vault of theirs), copied over the
// current version of the customer's key, are refused.
func TestTamperCopiedKeyMaterial(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newCustodyWorld(t, f, "kv-copied")
		theirs := f.newVault(t, "kv-theirs", true)
		evil := f.newKey(t, theirs, "evil")
		f.clock.Advance(time.Hour)
		k2, err := f.kv.RotateKey(f.ctx, w.v.Name, "k")
		if err != nil {
			t.Fatal(err)
		}
		sel := `(SELECT %s FROM key_versions WHERE vault_key = 'kv-theirs' AND name_key = 'evil' AND version_key = ?)`
		q := `UPDATE key_versions SET material = ` + strings.Replace(sel, "%s", "material", 1) + `, n = ` + strings.Replace(sel, "%s", "n", 1) +
			` WHERE vault_key = ? AND name_key = ? AND version_key = ?`
		if n := storetest.Exec(t, f.store, q, evil.Version.Version, evil.Version.Version, strings.ToLower(w.v.Name), "k", k2.Version.Version); n != 1 {
			t.Fatalf("updated %d versions", n)
		}
		w.rotateFails(t, f)
		w.unchanged(t, f)
		// Nor does the customer's key unwrap with it.
		_, _, err = f.kv.UnwrapKey(f.ctx, w.v.Name, "k", k2.Version.Version, crypt.AlgRSAOAEP256, make([]byte, 256))
		wantCode(t, err, keyhold.CodeRecordIntegrity)
	})
}

// TestTamperReenabledVersion: a version the customer disabled, enabled
// again in the database, is refused.
func TestTamperReenabledVersion(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newCustodyWorld(t, f, "kv-enabled")
		f.clock.Advance(time.Hour)
		k2, err := f.kv.RotateKey(f.ctx, w.v.Name, "k")
		if err != nil {
			t.Fatal(err)
		}
		off := false
		if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, "k", k2.Version.Version, keyhold.KeyAttributes{Enabled: &off}, nil, nil); err != nil {
			t.Fatal(err)
		}
		storetest.Exec(t, f.store, `UPDATE key_versions SET enabled = ? WHERE vault_key = ? AND name_key = ? AND version_key = ?`,
			true, strings.ToLower(w.v.Name), "k", k2.Version.Version)
		w.rotateFails(t, f)
		w.unchanged(t, f)
	})
}

// TestTamperPurgeProtectionTurnedOn: a vault without purge protection,
// given it in the database, can't take a link; the refusal changes
// nothing and is audited.
func TestTamperPurgeProtectionTurnedOn(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-nopp", false)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-nopp", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "e-nopp")
		c := f.fill(t, env.ID, 2)
		_, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		wantCode(t, err, keyhold.CodeBadRequest)
		before := f.wrapped(t, env.ID)

		storetest.Exec(t, f.store, `UPDATE vaults SET enable_purge_protection = ? WHERE name_key = ?`, true, "kv-nopp")
		_, err = f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		wantCode(t, err, keyhold.CodeRecordIntegrity)
		if ops := f.operations(t, env.ID); len(ops) != 0 {
			t.Fatalf("operations on the environment: %+v", ops)
		}
		if e := f.env(t, env.ID); e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.PolicyID != "" {
			t.Fatalf("environment after the refusal: %+v", e)
		}
		if after := f.wrapped(t, env.ID); len(after) != len(before) || !sameKey(after[0], before[0]) {
			t.Fatalf("wrapped keys %v, want %v", describeKeys(after), describeKeys(before))
		}
		if a := integrityAudits(t, f); len(a) != 1 || !strings.Contains(a[0].Detail, "vault kv-nopp") {
			t.Fatalf("integrity audit entries: %+v", a)
		}
		f.check(t, env.ID, c)
	})
}

// TestTamperPolicyBinding: a policy pointed, in the database, at another
// vault and key (one the attacker holds, which the policy's identity can
// use) can't take a link; nothing changes.
func TestTamperPolicyBinding(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-customer", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-bound", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		theirs := f.newVault(t, "kv-attacker", true)
		f.newKey(t, theirs, "evil")
		f.grantKey(t, pol, theirs, "evil")
		env := f.managedEnv(t, "e-bound")
		c := f.fill(t, env.ID, 2)
		before := f.wrapped(t, env.ID)

		if n := storetest.Exec(t, f.store, `UPDATE enterprise_policies SET key_vault_id = ?, key_vault_key = ?, key_name = ?, key_name_key = ? WHERE system_key = ?`,
			theirs.ID(), strings.ToLower(theirs.ID()), "evil", "evil", strings.ToLower(pol.SystemID)); n != 1 {
			t.Fatalf("updated %d policies", n)
		}
		_, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		wantCode(t, err, keyhold.CodeRecordIntegrity)
		if ops := f.operations(t, env.ID); len(ops) != 0 {
			t.Fatalf("operations on the environment: %+v", ops)
		}
		if e := f.env(t, env.ID); e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.PolicyID != "" {
			t.Fatalf("environment after the refusal: %+v", e)
		}
		if after := f.wrapped(t, env.ID); len(after) != len(before) || !sameKey(after[0], before[0]) {
			t.Fatalf("wrapped keys %v, want %v", describeKeys(after), describeKeys(before))
		}
		if a := integrityAudits(t, f); len(a) != 1 || !strings.Contains(a[0].Detail, pol.ID()) {
			t.Fatalf("integrity audit entries: %+v", a)
		}
		f.check(t, env.ID, c)
	})
}

// lyingWrapper wraps honestly but unwraps to another key: a key vault (or
// a key record) that doesn't answer for the key it wraps under.
type lyingWrapper struct{ keyprovider.Provider }

func (l lyingWrapper) Unwrap(ctx context.Context, kid string, ct []byte) ([]byte, error) {
	pt, err := l.Provider.Unwrap(ctx, kid, ct)
	if err == nil && len(pt) > 0 {
		pt[len(pt)-1] ^= 1 // the EK ends the payload: another key, same environment and epoch
	}
	return pt, err
}

// TestRewrapProvesItself: a link whose new wrapped copy unwraps to another
// key fails before anything is replaced: the environment stays under the
// platform's key, with the copies it had, and serves.
func TestRewrapProvesItself(t *testing.T) {
	f := newCMKFixture(t, storetest.OpenSQLite(t), true)
	v := f.newVault(t, "kv-liar", true)
	f.newKey(t, v, "k")
	pol := f.newPolicy(t, "pol-liar", v, "k", nil)
	f.grantKey(t, pol, v, "k")
	env := f.managedEnv(t, "e-liar")
	c := f.fill(t, env.ID, 3)
	before := f.wrapped(t, env.ID)
	f.p.cmk = func(id *keyhold.Identity) keyhold.KeyWrapper { return lyingWrapper{keyprovider.NewBuiltin(f.kv, id)} }

	op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	op = f.wait(t, op)
	if op.State != keyhold.OperationFailed || !strings.Contains(op.ErrorMsg, "unwrapped to a different key") {
		t.Fatalf("link ended %s %s %q; want Failed, the new copy unwrapping to a different key", op.State, op.ErrorCode, op.ErrorMsg)
	}
	after := f.wrapped(t, env.ID)
	if len(after) != len(before) || !sameKey(after[0], before[0]) || after[0].Root != keyhold.RootMMK {
		t.Fatalf("wrapped keys %v, want %v", describeKeys(after), describeKeys(before))
	}
	if e := f.env(t, env.ID); e.State != keyhold.StateEnabled || e.KeyManagedBy != keyhold.KeyManagedByMicrosoft {
		t.Fatalf("environment after the failed link: %+v", e)
	}
	f.check(t, env.ID, c)
}

// TestRotationProvesItself: rotation, the path the attack of issue 10
// took, proves its new copy too. A key whose new copy doesn't unwrap to
// the key it wrapped is left where it is (the rotation goes on with the
// others, and rewraps none here), so no wrapped key changes; with an
// honest vault again, the environment serves under the version it had.
func TestRotationProvesItself(t *testing.T) {
	f := newCMKFixture(t, storetest.OpenSQLite(t), true)
	w := newCustodyWorld(t, f, "kv-rot-liar")
	honest := f.p.cmk
	f.p.cmk = func(id *keyhold.Identity) keyhold.KeyWrapper { return lyingWrapper{keyprovider.NewBuiltin(f.kv, id)} }
	if _, err := f.kv.RotateKey(f.ctx, w.v.Name, "k"); err != nil {
		t.Fatal(err)
	}
	if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
		t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
	}
	op := f.wait(t, f.operations(t, w.pol.ID())[0])
	if op.State != keyhold.OperationSucceeded || op.Done != 0 {
		t.Fatalf("rotation ended %s with %d rewrapped (%q); want it to end with none rewrapped", op.State, op.Done, op.ErrorMsg)
	}
	f.p.cmk = honest
	w.unchanged(t, f)
}

// epochLiar unwraps honestly except the payloads of one epoch, which it
// gives back with another key.
type epochLiar struct {
	keyprovider.Provider
	epoch byte
}

func (l epochLiar) Unwrap(ctx context.Context, kid string, ct []byte) ([]byte, error) {
	pt, err := l.Provider.Unwrap(ctx, kid, ct)
	if err == nil && len(pt) > 5 && pt[1] == 0 && pt[2] == 0 && pt[3] == 0 && pt[4] == l.epoch { // 0x01 | epoch(4) | …
		pt[len(pt)-1] ^= 1
	}
	return pt, err
}

// TestNewEpochProvesItself: the fresh key of a re-key's new epoch is
// proven too, before any write uses it: a link whose new epoch's copy
// unwraps to another key fails at that step, and rolls back to serving
// under the rewrapped epoch.
func TestNewEpochProvesItself(t *testing.T) {
	f := newCMKFixture(t, storetest.OpenSQLite(t), true)
	v := f.newVault(t, "kv-epoch-liar", true)
	f.newKey(t, v, "k")
	pol := f.newPolicy(t, "pol-epoch-liar", v, "k", nil)
	f.grantKey(t, pol, v, "k")
	env := f.managedEnv(t, "e-epoch-liar")
	c := f.fill(t, env.ID, 3)
	f.p.cmk = func(id *keyhold.Identity) keyhold.KeyWrapper {
		return epochLiar{keyprovider.NewBuiltin(f.kv, id), byte(env.Epoch + 1)}
	}
	op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	op = f.wait(t, op)
	newEpoch := fmt.Sprintf("epoch %d of environment", env.Epoch+1)
	if op.State != keyhold.OperationFailed || !strings.Contains(op.ErrorMsg, newEpoch) || !strings.Contains(op.ErrorMsg, "unwrapped to a different key") {
		t.Fatalf("link ended %s: %s %q; want Failed, the copy of the new epoch's key unwrapping to a different key", op.State, op.ErrorCode, op.ErrorMsg)
	}
	e := f.env(t, env.ID)
	if e.Epoch != env.Epoch || e.State != keyhold.StateEnabled || e.EncryptionStatus != keyhold.EncryptionFailed {
		t.Fatalf("environment after the failed link: epoch %d (was %d), %s, %s", e.Epoch, env.Epoch, e.State, e.EncryptionStatus)
	}
	if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].Epoch != env.Epoch || wks[0].Root != keyhold.RootCMK {
		t.Fatalf("wrapped keys %v, want only epoch %d under the CMK", describeKeys(wks), env.Epoch)
	}
	f.check(t, env.ID, c)
}

// TestProveRefusesAnotherKey: the proof itself, on one move: a wrapper
// whose unwrap returns a different key is refused, and so is one whose
// copy doesn't unwrap at all.
func TestProveRefusesAnotherKey(t *testing.T) {
	f := newCMKFixture(t, storetest.OpenSQLite(t), false)
	env := f.managedEnv(t, "e-prove")
	mmkCopy := f.wrapped(t, env.ID)[0]
	honest := func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error) {
		return f.p.wrapMMK(ctx, env.ID, mmkCopy.Epoch, ek)
	}
	m, err := f.p.prepareMove(context.Background(), mmkCopy, env.TenantID, honest)
	if err != nil || m.to.Root != keyhold.RootMMK {
		t.Fatalf("honest move: %+v, %v", m, err)
	}
	other, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Destroy()
	swapped := func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error) {
		return f.p.wrapMMK(ctx, env.ID, mmkCopy.Epoch, other) // wraps, but not the EK it was given
	}
	if _, err := f.p.prepareMove(context.Background(), mmkCopy, env.TenantID, swapped); err == nil || !strings.Contains(err.Error(), "unwrapped to a different key") {
		t.Fatalf("a copy of another key: %v, want a refusal", err)
	}
	garbled := func(ctx context.Context, ek *crypt.Key) (*keyhold.WrappedKey, error) {
		wk, err := f.p.wrapMMK(ctx, env.ID, mmkCopy.Epoch, ek)
		if err == nil {
			wk.Ciphertext = bytes.Clone(wk.Ciphertext)
			wk.Ciphertext[len(wk.Ciphertext)-1] ^= 1
		}
		return wk, err
	}
	if _, err := f.p.prepareMove(context.Background(), mmkCopy, env.TenantID, garbled); err == nil || !strings.Contains(err.Error(), "does not unwrap") {
		t.Fatalf("a copy that doesn't unwrap: %v, want a refusal", err)
	}
	if after := f.wrapped(t, env.ID); len(after) != 1 || !sameKey(after[0], mmkCopy) {
		t.Fatalf("wrapped keys %v after refused moves", describeKeys(after))
	}
}
