package platform

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestDataPlaneQueries pins how many statements a row put, get and delete
// run once the environment's key is cached (issue 12): the environment,
// the caller's membership and the restore check are one query
// (Tx.DataAccess), read once per request in the transaction that uses
// them. Before, a put ran nine: the same checks in a read transaction,
// then again in the writing one, with the restore check apart.
func TestDataPlaneQueries(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		store := open(t)
		f := newFixture(t, store)
		s := store.(*sqlstore.Store)
		e := f.createEnv(t, "queries")
		member := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "member-secret-1234567890", "")
		if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
			return tx.AddEnvironmentMember(context.Background(), &keyhold.EnvironmentMember{EnvID: e.ID, PrincipalID: member.ID, AddedBy: "test", AddedAt: f.clock.Now()})
		}); err != nil {
			t.Fatal(err)
		}
		ctx := f.login(t, f.creds.TenantID, member.AppID, "member-secret-1234567890")
		// The first write loads the key; the ones after find it cached.
		if _, err := f.p.PutRow(ctx, e.ID, "t", "warm", benchRow); err != nil {
			t.Fatal(err)
		}
		count := func(what string, want int64, fn func() error) {
			t.Helper()
			before := s.Queries()
			if err := fn(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if got := s.Queries() - before; got != want {
				t.Errorf("%s ran %d statements, want %d", what, got, want)
			}
		}
		// DataAccess, Row, PutRow, AppendAudit.
		count("a new row's put", 4, func() error { _, err := f.p.PutRow(ctx, e.ID, "t", "r1", benchRow); return err })
		count("a row's second put", 4, func() error { _, err := f.p.PutRow(ctx, e.ID, "t", "r1", benchRow); return err })
		// DataAccess, Row.
		count("a get", 2, func() error { _, err := f.p.GetRow(ctx, e.ID, "t", "r1"); return err })
		// DataAccess, DeleteRow, AppendAudit.
		count("a delete", 3, func() error { return f.p.DeleteRow(ctx, e.ID, "t", "r1") })
	})
}
