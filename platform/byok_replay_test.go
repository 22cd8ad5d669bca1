package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// savedRows are rows of one table as the database held them, to put back
// later past Keyhold: what a database writer with an older copy of them
// (a backup, a log) can do without the master key.
type savedRows struct {
	table string
	cols  []string
	rows  [][]any
}

// saveRows reads the rows of table matching where ($1 placeholders, which
// SQLite takes too).
func saveRows(t *testing.T, f *fixture, table, where string, args ...any) *savedRows {
	t.Helper()
	rs, err := rawDB(f).Query(`SELECT * FROM `+table+` WHERE `+where, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	s := &savedRows{table: table}
	if s.cols, err = rs.Columns(); err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		vals := make([]any, len(s.cols))
		ptrs := make([]any, len(s.cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		s.rows = append(s.rows, vals)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if len(s.rows) == 0 {
		t.Fatalf("no rows in %s where %s", table, where)
	}
	return s
}

// putBack deletes the rows of s's table matching where (? placeholders)
// and inserts s's rows in their place.
func (s *savedRows) putBack(t *testing.T, f *fixture, where string, args ...any) {
	t.Helper()
	storetest.Exec(t, f.store, `DELETE FROM `+s.table+` WHERE `+where, args...)
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(s.cols)), ", ")
	for _, r := range s.rows {
		storetest.Exec(t, f.store, `INSERT INTO `+s.table+` (`+strings.Join(s.cols, ", ")+`) VALUES (`+marks+`)`, r...)
	}
}

// byokSnapshot is what a refusal must leave as it was: the tenant's
// environments (state, key owner, wrapped keys), its BYOK rows and its
// tenant row, as stored.
func (f *fixture) byokSnapshot(t *testing.T) string {
	t.Helper()
	var envs []string
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		es, err := tx.ListEnvironments(context.Background(), keyhold.EnvironmentFilter{TenantID: f.creds.TenantID})
		for _, e := range es {
			wks, err := tx.WrappedKeys(context.Background(), e.ID)
			if err != nil {
				return err
			}
			line := fmt.Sprintf("%s %s %s", e.ID, e.State, e.KeyManagedBy)
			for _, wk := range wks {
				line += fmt.Sprintf(" %d:%s:%s:%x", wk.Epoch, wk.Root, wk.KeyID, wk.Ciphertext[:8])
			}
			envs = append(envs, line)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(envs)
	st := f.byokTenantState(t)
	return strings.Join(envs, "\n") + "\n" + byokRows(t, rawDB(f)) +
		fmt.Sprintf("state: locked %s removal %s shredded %s generation %d mac %x\n", st.LockedAt, st.RemovalRequestedAt, st.ShreddedAt, st.Generation, st.MAC)
}

// refusedAll runs each try and checks that it is refused with
// CodeRecordIntegrity, audited (integrity.refused), and that nothing
// changed.
func (f *fixture) refusedAll(t *testing.T, what string, tries map[string]func() error) {
	t.Helper()
	before := f.byokSnapshot(t)
	for name, try := range tries {
		refused := f.auditCount(t, auditIntegrity)
		err := try()
		if keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity || !strings.Contains(keyhold.ErrorMessage(err), "outside Keyhold") {
			t.Errorf("%s after %s: %v, want %s", name, what, err, keyhold.CodeRecordIntegrity)
		}
		if n := f.auditCount(t, auditIntegrity); n <= refused {
			t.Errorf("%s after %s: no %s audit entry", name, what, auditIntegrity)
		}
		if got := f.byokSnapshot(t); got != before {
			t.Fatalf("%s after %s changed the state:\n%s\nwant\n%s", name, what, got, before)
		}
	}
}

// TestBYOKLockRowReplay: the tenant's state row from before a lock, put
// back after the lock by raw SQL (a sealed row Keyhold itself wrote),
// doesn't unlock the tenant: every read of the tenant's BYOK state checks
// its generation against the key rows, which the lock re-sealed. Even
// with the environment's row set back to Enabled too, its data is
// refused and nothing is unwrapped; applying, creating, unlocking and
// locking are refused and audited, and nothing changes. Put back, the
// genuine row unlocks with the key as before.
func TestBYOKLockRowReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		tenant := f.creds.TenantID
		plain := f.createEnv(t, "plain") // under the platform key
		up, _ := f.byokTenant(t)
		env := f.createEnv(t, "byok")
		if _, err := f.p.PutRow(f.ctx, env.ID, "t", "r", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		unlocked := saveRows(t, f, "byok_tenants", "tenant_id = $1", tenant)
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatal(err)
		}
		locked := saveRows(t, f, "byok_tenants", "tenant_id = $1", tenant)

		unlocked.putBack(t, f, "tenant_id = ?", tenant)
		if st := f.byokTenantState(t); !st.LockedAt.IsZero() || len(st.MAC) == 0 {
			t.Fatalf("the put-back row is not the sealed, unlocked one: %+v", st)
		}
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Enabled' WHERE id = ?`, env.ID)
		unwraps := f.p.Unwraps()
		f.refusedAll(t, "the pre-lock row put back", map[string]func() error{
			"read":   func() error { _, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); return err },
			"write":  func() error { _, err := f.p.PutRow(f.ctx, env.ID, "t", "r2", json.RawMessage(`{}`)); return err },
			"delete": func() error { return f.p.DeleteRow(f.ctx, env.ID, "t", "r") },
			"list":   func() error { _, err := f.p.ListRows(f.ctx, env.ID, "t", keyhold.RowQuery{}); return err },
			"upload": func() error {
				_, err := f.p.PutFile(f.ctx, env.ID, "f.bin", strings.NewReader("data"))
				return err
			},
			"file":   func() error { _, _, err := f.p.OpenFile(f.ctx, env.ID, "f.bin"); return err },
			"apply":  func() error { _, err := f.p.ApplyBYOK(f.ctx, plain.ID); return err },
			"unlock": func() error { _, err := f.p.UnlockBYOKTenant(f.ctx, up); return err },
			"lock":   func() error { _, err := f.p.LockBYOKTenant(f.ctx); return err },
			"create": func() error {
				return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "new", Location: "europe", SKU: keyhold.SKUProduction})
			},
		})
		if f.p.Unwraps() != unwraps {
			t.Fatal("a BYOK key unwrapped under a put-back lock row")
		}
		// The data plane's refusals are audited at most once a minute
		// for each environment and kind of request: a refused read
		// repeated adds no entry within the minute, and the next entry
		// counts those it left out.
		entries := f.auditCount(t, auditIntegrity)
		for range 5 {
			if _, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
				t.Fatalf("a read repeated under the put-back row: %v", err)
			}
		}
		if n := f.auditCount(t, auditIntegrity); n != entries {
			t.Fatalf("5 refused reads within the minute wrote %d audit entries, want none", n-entries)
		}
		f.clock.Advance(dataTamperEvery)
		if _, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Fatalf("a read a minute later: %v", err)
		}
		if n := f.auditCount(t, auditIntegrity); n != entries+1 {
			t.Fatalf("a refused read a minute later wrote %d audit entries, want 1", n-entries)
		}
		if last := f.lastAudit(t, auditIntegrity); !strings.Contains(last.Detail, "a row read of environment "+env.ID) || !strings.Contains(last.Detail, "and 5 more refused since the last entry") {
			t.Fatalf("the entry a minute later: %q", last.Detail)
		}
		if _, err := f.p.storeKey(context.Background(), env.ID, 1, "rows"); keyhold.ErrorCode(err) != keyhold.CodeRecordIntegrity {
			t.Fatalf("unwrapping the environment's key under a put-back lock row: %v", err)
		}
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Disabled' WHERE id = ?`, env.ID)

		locked.putBack(t, f, "tenant_id = ?", tenant)
		if _, err := f.p.UnlockBYOKTenant(f.ctx, up); err != nil {
			t.Fatalf("unlock with the genuine row: %v", err)
		}
		if r, err := f.p.GetRow(f.ctx, env.ID, "t", "r"); err != nil || string(r.Data) != `{"v":1}` {
			t.Fatalf("read after the genuine unlock: %v, %v", r, err)
		}
	})
}

// TestBYOKKeyRowReplay: a key row put back by raw SQL from before a later
// write of the tenant's BYOK state is refused. After a second key's
// activation, its row from before (Installing) put back leaves the
// tenant with no Active key and no two Active keys, which the set checks
// alone would accept, and a new environment would be created under the
// platform key: it is refused instead, as is the rest. After the removal
// and the crypto-shred, the deleted key rows put back open nothing either.
func TestBYOKKeyRowReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		tenant := f.creds.TenantID
		plain := f.createEnv(t, "plain")
		_, a := f.byokTenant(t)
		f.clock.Advance(time.Second)
		upB := keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))}
		b, err := f.p.UploadBYOKKey(f.ctx, upB)
		if err != nil {
			t.Fatal(err)
		}
		installing := saveRows(t, f, "byok_keys", "id = $1", b.ID)
		f.clock.Advance(keyhold.BYOKActivationInterval + time.Minute)
		if _, err := f.p.ActivateBYOKKey(f.ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		active := saveRows(t, f, "byok_keys", "id = $1", b.ID)

		installing.putBack(t, f, "id = ?", b.ID)
		f.refusedAll(t, "key "+b.ID+"'s row from before its activation put back", map[string]func() error{
			"create": func() error {
				return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "new", Location: "europe", SKU: keyhold.SKUProduction})
			},
			"apply":    func() error { _, err := f.p.ApplyBYOK(f.ctx, plain.ID); return err },
			"activate": func() error { _, err := f.p.ActivateBYOKKey(f.ctx, a.ID); return err },
			"lock":     func() error { _, err := f.p.LockBYOKTenant(f.ctx); return err },
			"remove":   func() error { _, err := f.p.RemoveBYOK(f.ctx); return err },
			"upload": func() error {
				_, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
				return err
			},
		})
		active.putBack(t, f, "id = ?", b.ID)
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatalf("lock with the genuine rows: %v", err)
		}
		if _, err := f.p.UnlockBYOKTenant(f.ctx, upB); err != nil {
			t.Fatalf("unlock with the genuine rows: %v", err)
		}

		// Remove BYOK and shred its keys; then put the deleted rows back.
		keys := saveRows(t, f, "byok_keys", "tenant_id = $1", tenant)
		if _, err := f.p.RemoveBYOK(f.ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := f.p.RunBYOKShred(f.ctx); err != nil || n != 1 {
			t.Fatalf("shred: %d, %v", n, err)
		}
		keys.putBack(t, f, "tenant_id = ?", tenant)
		f.refusedAll(t, "the shredded key rows put back", map[string]func() error{
			"unwrap under a shredded key": func() error {
				_, err := f.p.BYOK.wrapper(tenant).Unwrap(f.ctx, byokKIDPrefix+b.ID, []byte("ciphertext"))
				return err
			},
			"create": func() error {
				return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "new", Location: "europe", SKU: keyhold.SKUProduction})
			},
		})
	})
}

// reopen starts another platform on f's database, as a restart does, and
// closes it.
func (f *fixture) reopen(t *testing.T) {
	t.Helper()
	p, err := Open(context.Background(), Config{Store: f.store, MasterKey: f.master, Clock: f.clock, Issuer: "https://keyhold.test"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// byokKeysStored reads the tenant's key rows as stored, seals included.
func (f *fixture) byokKeysStored(t *testing.T) []*keyhold.BYOKKey {
	t.Helper()
	return storetest.Read(t, f.store, func(ctx context.Context, tx keyhold.Tx) ([]*keyhold.BYOKKey, error) {
		return tx.BYOKKeys(ctx, f.creds.TenantID)
	})
}

// TestBYOKSealedOnceAtStart: the BYOK rows of a database from before
// migration 0053 (unsealed ones from before 0047 and 0051, or v1 seals
// without a generation) are sealed at the first start, at generation 1,
// audited (integrity.seal) once per tenant, and the sealed "sealing done"
// marker is written; they work afterwards. Before the marker, as before
// it existed, an unsealed key row is left (and refused) while another has
// a seal. Once the marker exists, stripping every seal (and clearing the
// lock) by raw SQL, and restarting, seals nothing: every BYOK action is
// refused and audited, nothing changes; nor are v1 rows put back
// upgraded.
func TestBYOKSealedOnceAtStart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		up, _ := f.byokTenant(t)
		f.clock.Advance(time.Second)
		if _, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatal(err)
		}
		marker := func() int {
			var n int
			if err := rawDB(f).QueryRow(`SELECT COUNT(*) FROM byok_seal_marker`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if marker() != 1 {
			t.Fatal("no marker on a database started by this version")
		}
		// preUpgrade makes the rows what Keyhold wrote before 0053 (v1
		// seals) or before 0047 and 0051 (none), without the marker.
		preUpgrade := func(v1 bool) {
			t.Helper()
			rec := f.p.BYOK.rec
			if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
				ks, err := tx.BYOKKeys(context.Background(), f.creds.TenantID)
				if err != nil {
					return err
				}
				for _, k := range ks {
					k.Generation, k.MAC = 0, nil
					if v1 {
						rec.SealBYOKKeyV1(k)
					}
					if err := tx.UpdateBYOKKey(context.Background(), k); err != nil {
						return err
					}
				}
				st, err := tx.BYOKTenant(context.Background(), f.creds.TenantID)
				if err != nil {
					return err
				}
				st.Generation, st.MAC = 0, nil
				if v1 {
					rec.SealBYOKTenantV1(st)
				}
				return tx.PutBYOKTenant(context.Background(), st)
			}); err != nil {
				t.Fatal(err)
			}
			storetest.Exec(t, f.store, `DELETE FROM byok_seal_marker`)
		}
		for _, v1 := range []bool{false, true} {
			preUpgrade(v1)
			seals := f.auditCount(t, "integrity.seal")
			f.reopen(t)
			if n := f.auditCount(t, "integrity.seal"); n != seals+1 {
				t.Fatalf("v1 %v: integrity.seal entries %d, want %d", v1, n, seals+1)
			}
			if st := f.byokTenantState(t); st.Generation != 1 || len(st.MAC) == 0 || st.LockedAt.IsZero() {
				t.Fatalf("v1 %v: state after the start: %+v", v1, st)
			}
			for _, k := range f.byokKeysStored(t) {
				if k.Generation != 1 || f.p.BYOK.rec.CheckBYOKKey(k) != nil {
					t.Fatalf("v1 %v: key %s after the start: generation %d, %v", v1, k.ID, k.Generation, f.p.BYOK.rec.CheckBYOKKey(k))
				}
			}
			if marker() != 1 {
				t.Fatalf("v1 %v: no marker after the start", v1)
			}
			if _, err := f.p.UnlockBYOKTenant(f.ctx, up); err != nil {
				t.Fatalf("v1 %v: unlock of the rows sealed at start: %v", v1, err)
			}
			if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
				t.Fatal(err)
			}
		}

		// Before the marker, one unsealed key among v1-sealed ones is
		// written outside Keyhold: left, and refused.
		tries := map[string]func() error{
			"unlock": func() error { _, err := f.p.UnlockBYOKTenant(f.ctx, up); return err },
			"lock":   func() error { _, err := f.p.LockBYOKTenant(f.ctx); return err },
			"create": func() error {
				return f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: "new", Location: "europe", SKU: keyhold.SKUProduction})
			},
		}
		genuine := saveRows(t, f, "byok_keys", "tenant_id = $1", f.creds.TenantID)
		genuineState := saveRows(t, f, "byok_tenants", "tenant_id = $1", f.creds.TenantID)
		preUpgrade(true)
		v1Keys := saveRows(t, f, "byok_keys", "tenant_id = $1", f.creds.TenantID)
		v1State := saveRows(t, f, "byok_tenants", "tenant_id = $1", f.creds.TenantID)
		storetest.Exec(t, f.store, `UPDATE byok_keys SET mac = NULL WHERE id = ?`, f.byokKeysStored(t)[0].ID)
		seals := f.auditCount(t, "integrity.seal")
		f.reopen(t)
		if n := f.auditCount(t, "integrity.seal"); n != seals {
			t.Fatalf("an unsealed key was sealed while another had a seal (%d entries, want %d)", n, seals)
		}
		f.refusedAll(t, "one key unsealed before the marker", tries)
		if marker() != 1 {
			t.Fatal("no marker after the start")
		}

		// With the marker: every seal stripped, the lock cleared, a
		// restart: nothing sealed, all refused.
		genuine.putBack(t, f, "tenant_id = ?", f.creds.TenantID)
		genuineState.putBack(t, f, "tenant_id = ?", f.creds.TenantID)
		storetest.Exec(t, f.store, `UPDATE byok_keys SET mac = NULL`)
		storetest.Exec(t, f.store, `UPDATE byok_tenants SET mac = NULL, locked_at = -9223372036854775808, locked_by = ''`)
		for _, rows := range []string{"stripped", "v1 put back"} {
			if rows == "v1 put back" {
				v1Keys.putBack(t, f, "tenant_id = ?", f.creds.TenantID)
				v1State.putBack(t, f, "tenant_id = ?", f.creds.TenantID)
			}
			seals := f.auditCount(t, "integrity.seal")
			before := f.byokSnapshot(t)
			f.reopen(t)
			if n := f.auditCount(t, "integrity.seal"); n != seals {
				t.Fatalf("%s: sealed at a start after the marker (%d entries, want %d)", rows, n, seals)
			}
			if got := f.byokSnapshot(t); got != before {
				t.Fatalf("%s: the start changed the rows:\n%s\nwant\n%s", rows, got, before)
			}
			f.refusedAll(t, rows+" after the marker", tries)
		}

		// Put back, the genuine rows work.
		genuine.putBack(t, f, "tenant_id = ?", f.creds.TenantID)
		genuineState.putBack(t, f, "tenant_id = ?", f.creds.TenantID)
		if _, err := f.p.UnlockBYOKTenant(f.ctx, up); err != nil {
			t.Fatalf("unlock with the genuine rows: %v", err)
		}
	})
}
