package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
)

func init() {
	dataAccessTests = append(dataAccessTests, struct {
		name string
		fn   func(t *testing.T, s keyhold.Store)
	}{"AccessGeneration", testAccessGeneration})
}

// testAccessGeneration checks keyhold.AccessGenerations, on which the
// data plane's cache of read accesses rests: a transaction, plain or
// grouped, that changes what an access check reads (a member, an
// environment's state, a directory role, an operation) moves the count
// at its first such statement, before it commits, and again before its
// caller hears back, and a later transaction begins at the new count; a
// transaction begun while such a change is in flight reports 0 (never
// cached); reads and data writes (a row, an audit entry) don't count, so
// reads stay cached under a write load.
func testAccessGeneration(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	store := s.(*sqlstore.Store)
	store.SetGroupCommit(true) // PostgreSQL's dialect doesn't group: test the mechanism there too
	seedPrincipals(t, s, &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, CreatedAt: at(0)})
	seedEnv(t, s, "t1", "e1")
	step := func(what string, want uint64, run func(func(keyhold.Tx) error) error, fn func(tx keyhold.Tx) error) {
		t.Helper()
		before := store.AccessGeneration()
		if err := run(fn); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := store.AccessGeneration() - before; got != want {
			t.Errorf("%s: the access generation moved by %d, want %d", what, got, want)
		}
		view(t, s, func(tx keyhold.Tx) error {
			if g := tx.(keyhold.AccessGenerations).AccessGeneration(); g != store.AccessGeneration() {
				t.Errorf("%s: a transaction begun after it is at generation %d, the store at %d", what, g, store.AccessGeneration())
			}
			return nil
		})
	}
	plain := func(fn func(keyhold.Tx) error) error { return s.Update(ctx, fn) }
	grouped := func(fn func(keyhold.Tx) error) error { return store.UpdateGrouped(ctx, fn) }
	viewing := func(fn func(keyhold.Tx) error) error { return s.View(ctx, fn) }

	step("a read", 0, viewing, func(tx keyhold.Tx) error {
		_, err := tx.DataAccess(ctx, "e1", "u1", false)
		return err
	})
	step("a member added", 2, plain, func(tx keyhold.Tx) error {
		return tx.AddEnvironmentMember(ctx, &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "u1", AddedBy: "admin", AddedAt: at(time.Minute)})
	})
	row := &keyhold.RowRecord{EnvID: "e1", Table: "t", ID: "r", Epoch: 1, Version: 0, Ciphertext: []byte("x"), UpdatedAt: at(time.Minute)}
	for _, g := range []struct {
		name string
		run  func(func(keyhold.Tx) error) error
	}{{"", plain}, {" (grouped)", grouped}} {
		step("a row written"+g.name, 0, g.run, func(tx keyhold.Tx) error {
			row.Version++
			if err := tx.PutRow(ctx, row); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, &keyhold.AuditEntry{At: at(time.Minute), TenantID: "t1", ActorID: "u1", Action: "row.put", Target: "/rows/r", EnvID: "e1"})
		})
		step("the environment locked"+g.name, 2, g.run, func(tx keyhold.Tx) error {
			env, err := tx.Environment(ctx, "e1")
			if err != nil {
				return err
			}
			env.State = keyhold.StateLocked
			return tx.UpdateEnvironment(ctx, env)
		})
		step("a role given"+g.name, 2, g.run, func(tx keyhold.Tx) error {
			return tx.AssignDirectoryRole(ctx, "t1", "u1", keyhold.RoleGlobalAdministrator)
		})
		step("a role taken"+g.name, 2, g.run, func(tx keyhold.Tx) error {
			return tx.RemoveDirectoryRole(ctx, "t1", "u1", keyhold.RoleGlobalAdministrator)
		})
	}
	step("an operation created", 2, plain, func(tx keyhold.Tx) error {
		return tx.CreateOperation(ctx, operation("op1", "e1", 0))
	})
	// A grouped write that fails counts too (it may have changed access
	// before failing; a needless refill costs little), and still before
	// its caller hears back.
	boom := errors.New("boom")
	before := store.AccessGeneration()
	if err := store.UpdateGrouped(ctx, func(tx keyhold.Tx) error {
		if err := tx.RemoveEnvironmentMember(ctx, "e1", "u1"); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("a failing grouped write: %v", err)
	}
	if store.AccessGeneration() == before {
		t.Error("a grouped write that removed a member, then failed, did not count")
	}

	// In flight: the count moves at the change's statement, before the
	// commit, and a transaction begun before the commit reports 0, so
	// nothing it checks is cached; once it ends, a new one is cacheable.
	before = store.AccessGeneration()
	if err := s.Update(ctx, func(tx keyhold.Tx) error {
		env, err := tx.Environment(ctx, "e1")
		if err != nil {
			return err
		}
		env.State = keyhold.StateEnabled
		if err := tx.UpdateEnvironment(ctx, env); err != nil {
			return err
		}
		if store.AccessGeneration() == before {
			t.Error("the environment's change did not move the count before its commit")
		}
		view(t, s, func(v keyhold.Tx) error {
			if g := v.(keyhold.AccessGenerations).AccessGeneration(); g != 0 {
				t.Errorf("a transaction begun while a change to access is in flight reports generation %d, want 0 (never cached)", g)
			}
			return nil
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	view(t, s, func(v keyhold.Tx) error {
		if g := v.(keyhold.AccessGenerations).AccessGeneration(); g == 0 || g != store.AccessGeneration() {
			t.Errorf("after the change: a transaction reports generation %d, the store %d", g, store.AccessGeneration())
		}
		return nil
	})
}
