package platform

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// byokRollback builds a tenant whose BYOK environment holds a row, saves
// all of the tenant's BYOK rows (a consistent earlier write), locks the
// tenant, and then puts every saved row back together, with the
// environment set Enabled and the platform's caches dropped: the whole
// database rolled back to before the lock, as far as BYOK goes.
func byokRollback(t *testing.T, f *cmkFixture) (env *keyhold.Environment, up keyhold.BYOKUpload, locked []*savedRows) {
	t.Helper()
	tenant := f.creds.TenantID
	up, _ = f.byokTenant(t)
	env = f.createEnv(t, "byok")
	if _, err := f.p.PutRow(f.ctx, env.ID, "t", "r", json.RawMessage(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	before := []*savedRows{saveRows(t, f.fixture, "byok_tenants", "tenant_id = $1", tenant), saveRows(t, f.fixture, "byok_keys", "tenant_id = $1", tenant)}
	if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
		t.Fatal(err)
	}
	locked = []*savedRows{saveRows(t, f.fixture, "byok_tenants", "tenant_id = $1", tenant), saveRows(t, f.fixture, "byok_keys", "tenant_id = $1", tenant)}
	for _, s := range before {
		s.putBack(t, f.fixture, "tenant_id = ?", tenant)
	}
	storetest.Exec(t, f.store, `UPDATE environments SET state = 'Enabled' WHERE id = ?`, env.ID)
	f.p.DropKeys(env.ID) // as a restart would
	return env, up, locked
}

// TestBYOKRollbackAnchored: with a PKCS#11 token, the tenant's BYOK
// generation is kept in the token too, so all of a tenant's BYOK rows put
// back together from before a lock (consistent with each other: what
// rolling the whole database back gives) unlock nothing: the data is
// refused as changed outside Keyhold, audited, nothing is unwrapped and
// nothing changes (without a token the same put-back reads the data:
// TestBYOKRollbackWithoutToken). The genuine rows put back, the tenant
// unlocks with its key as before.
func TestBYOKRollbackAnchored(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		f.byokHSM(t)
		env, up, locked := byokRollback(t, f)
		unwraps := f.p.Unwraps()
		f.refusedAll(t, "the tenant's BYOK rows rolled back to before the lock", map[string]func() error{
			"read":  func() error { _, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); return err },
			"write": func() error { _, err := f.p.PutRow(f.ctx, env.ID, "t", "r2", json.RawMessage(`{}`)); return err },
		})
		_, err := f.p.GetRow(f.ctx, env.ID, "t", "r")
		if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, "PKCS#11 token recorded generation") {
			t.Fatalf("the refusal doesn't say the token's generation is ahead: %q", msg)
		}
		if f.p.Unwraps() != unwraps {
			t.Fatal("a BYOK key unwrapped under rows rolled back to before the lock")
		}

		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Disabled' WHERE id = ?`, env.ID)
		for _, s := range locked {
			s.putBack(t, f.fixture, "tenant_id = ?", f.creds.TenantID)
		}
		if _, err := f.p.UnlockBYOKTenant(f.ctx, up); err != nil {
			t.Fatalf("unlock with the genuine rows: %v", err)
		}
		if r, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); err != nil || string(r.Data) != `{"v":1}` {
			t.Fatalf("read after the genuine unlock: %v, %v", r, err)
		}
	})
}

// TestBYOKRollbackWithoutToken: without a PKCS#11 token nothing outside
// the database keeps the generation, and the same roll-back as
// TestBYOKRollbackAnchored's reads the data: the limit stated in
// docs/architecture.md ("Threat model"). If this fails, the limit is
// gone: update the docs.
func TestBYOKRollbackWithoutToken(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		env, _, _ := byokRollback(t, f)
		if r, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); err != nil || string(r.Data) != `{"v":1}` {
			t.Fatalf("without a token, a read under the rolled-back rows: %v, %v", r, err)
		}
	})
}

// TestBYOKAnchorCatchesUp: a generation the token missed (its raise lost
// to a crash after the commit, or the counter object gone) is raised again
// at the next use of the tenant's key, since the database's rows are
// sealed and so were written by Keyhold; from then on the rows from
// before that write are refused.
func TestBYOKAnchorCatchesUp(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		f.byokHSM(t)
		tenant := f.creds.TenantID
		f.byokTenant(t)
		env := f.createEnv(t, "byok")
		if _, err := f.p.PutRow(f.ctx, env.ID, "t", "r", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		gen := f.byokTenantState(t).Generation
		// The counter lost: its object destroyed.
		tok, err := hsm.Open(hsmtest.Token(t))
		if err != nil {
			t.Fatal(err)
		}
		defer tok.Close()
		if n, err := hsmtest.RemoveLabelled(tok, vault.BYOKGenerationLabel(tenant)); err != nil || n != 1 {
			t.Fatalf("%d generation counters of the tenant removed from the token, %v; want 1", n, err)
		}
		if v, err := tok.Counter(vault.BYOKGenerationLabel(tenant)); err != nil || v != 0 {
			t.Fatalf("counter after its destruction: %d, %v", v, err)
		}
		f.p.DropKeys(env.ID)
		if r, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); err != nil || string(r.Data) != `{"v":1}` {
			t.Fatalf("read with the counter lost: %v, %v", r, err)
		}
		if v, err := tok.Counter(vault.BYOKGenerationLabel(tenant)); err != nil || v != uint64(gen) {
			t.Fatalf("counter after the next use of the key: %d, %v; want the database's generation %d", v, err, gen)
		}
	})
}

// TestBYOKStrippedNotResealedWithToken: with a token, the one-time
// sealing at start-up seals no tenant the token recorded a generation of.
// Every seal stripped by raw SQL, the lock cleared, the "sealing done"
// marker deleted and the generation set past the token's (what the
// database alone can do), a restart seals nothing: the rows stay refused,
// audited, and nothing is unwrapped.
func TestBYOKStrippedNotResealedWithToken(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		f.byokHSM(t)
		f.byokTenant(t)
		env := f.createEnv(t, "byok")
		if _, err := f.p.PutRow(f.ctx, env.ID, "t", "r", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatal(err)
		}
		tenant := f.creds.TenantID
		storetest.Exec(t, f.store, `UPDATE byok_keys SET mac = NULL, generation = 1000 WHERE tenant_id = ?`, tenant)
		storetest.Exec(t, f.store, `UPDATE byok_tenants SET mac = NULL, generation = 1000, locked_at = 0, locked_by = '' WHERE tenant_id = ?`, tenant)
		storetest.Exec(t, f.store, `DELETE FROM byok_seal_marker`)
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Enabled' WHERE id = ?`, env.ID)
		seals := f.auditCount(t, "integrity.seal")
		p, err := Open(context.Background(), Config{Store: f.store, MasterKey: f.master, Clock: f.clock, Issuer: "https://keyhold.test", BYOKToken: f.p.BYOK.token})
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		if n := f.auditCount(t, "integrity.seal"); n != seals {
			t.Fatalf("the restart wrote %d integrity.seal entries: it sealed stripped rows", n-seals)
		}
		if st := f.byokTenantState(t); len(st.MAC) != 0 {
			t.Fatalf("the tenant's state was sealed again at the restart: %+v", st)
		}
		f.p.DropKeys(env.ID)
		unwraps := f.p.Unwraps()
		f.refusedAll(t, "the stripped rows and a restart", map[string]func() error{
			"read": func() error { _, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); return err },
		})
		if f.p.Unwraps() != unwraps {
			t.Fatal("a BYOK key unwrapped under stripped rows")
		}
	})
}
