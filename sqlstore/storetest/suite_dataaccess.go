package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// dataAccessTests check Tx.DataAccess, the one-query read of a data-plane
// request's checks.
var dataAccessTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"DataAccess", testDataAccess},
}

func testDataAccess(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedPrincipals(t, s,
		&keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, CreatedAt: at(0)},
		&keyhold.Principal{ID: "u2", TenantID: "t1", Type: keyhold.PrincipalUser, CreatedAt: at(0)},
	)
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	update(t, s, func(tx keyhold.Tx) error {
		return tx.AddEnvironmentMember(ctx, &keyhold.EnvironmentMember{EnvID: "e1", PrincipalID: "u1", AddedBy: "admin", AddedAt: at(time.Minute)})
	})
	check := func(what, envID, principalID string, member bool, opID, opKind string) {
		t.Helper()
		for _, forWrite := range []bool{false, true} {
			run := s.View
			if forWrite {
				run = s.Update
			}
			if err := run(ctx, func(tx keyhold.Tx) error {
				a, err := tx.DataAccess(ctx, envID, principalID, forWrite)
				if err != nil {
					return err
				}
				want, err := tx.Environment(ctx, envID)
				if err != nil {
					return err
				}
				equal(t, what+": environment", a.Env, want)
				if a.Member != member || a.RunningOpID != opID || a.RunningOpKind != opKind {
					t.Errorf("%s (forWrite %v): member %v, running %q %q; want %v, %q %q", what, forWrite, a.Member, a.RunningOpID, a.RunningOpKind, member, opID, opKind)
				}
				return nil
			}); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	check("a member, nothing running", "e1", "u1", true, "", "")
	check("a non-member", "e1", "u2", false, "", "")
	check("a member of another environment", "e2", "u1", false, "", "")

	// A running operation on e1 shows; one on e2, or one that ended,
	// doesn't.
	restore := operation("op1", "e1", 0)
	restore.Kind = "restore"
	other := operation("op2", "e2", time.Second)
	createOps(t, s, restore, other)
	check("a restore running", "e1", "u1", true, "op1", "restore")
	check("an operation on another environment", "e2", "u2", false, "op2", "link")
	update(t, s, func(tx keyhold.Tx) error {
		op, err := tx.Operation(ctx, "op1")
		if err != nil {
			return err
		}
		op.State = keyhold.OperationSucceeded
		return tx.UpdateOperation(ctx, op)
	})
	check("the restore ended", "e1", "u1", true, "", "")

	for _, forWrite := range []bool{false, true} {
		err := s.View(ctx, func(tx keyhold.Tx) error {
			_, err := tx.DataAccess(ctx, "nope", "u1", false)
			return err
		})
		if forWrite {
			err = s.Update(ctx, func(tx keyhold.Tx) error {
				_, err := tx.DataAccess(ctx, "nope", "u1", true)
				return err
			})
		}
		if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentNotFound {
			t.Errorf("DataAccess of an unknown environment (forWrite %v): %v, want %s", forWrite, err, keyhold.CodeEnvironmentNotFound)
		}
	}
}
