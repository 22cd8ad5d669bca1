package platform

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestReadAccessCache shows what the cache of granted read accesses
// (accesscache.go) saves and where it stops: a member's second GET runs
// one statement (the row) instead of two; a change committed through
// this process (a lock, the member removed, an administrator's role
// taken away) refuses the very next GET, and the refusal changes
// nothing; a change made by another replica (straight in the database)
// refuses at once when its key drop is received, and otherwise within
// accessCacheTTL, by the injected clock.
func TestReadAccessCache(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		store := open(t)
		f := newFixture(t, store)
		s := store.(*sqlstore.Store)
		ctx := context.Background()
		e := f.createEnv(t, "cached")
		member := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "member-secret-1234567890", "")
		update := func(fn func(tx keyhold.Tx) error) {
			t.Helper()
			if err := f.store.Update(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		setState := func(st keyhold.RuntimeState) {
			t.Helper()
			update(func(tx keyhold.Tx) error {
				env, err := tx.Environment(ctx, e.ID)
				if err != nil {
					return err
				}
				env.State = st
				return tx.UpdateEnvironment(ctx, env)
			})
		}
		f.addMember(t, e.ID, member.ID)
		mctx := f.login(t, f.creds.TenantID, member.AppID, "member-secret-1234567890")
		if _, err := f.p.PutRow(mctx, e.ID, "t", "r", benchRow); err != nil {
			t.Fatal(err)
		}
		get := func(ctx context.Context, what, wantCode string, wantQueries int64) {
			t.Helper()
			before := s.Queries()
			_, err := f.p.GetRow(ctx, e.ID, "t", "r")
			if got := keyhold.ErrorCode(err); got != wantCode {
				t.Fatalf("%s: %q (%v), want %q", what, got, err, wantCode)
			}
			if n := s.Queries() - before; wantQueries > 0 && n != wantQueries {
				t.Errorf("%s ran %d statements, want %d", what, n, wantQueries)
			}
		}
		get(mctx, "the first get", "", 2) // DataAccess, Row
		get(mctx, "a cached get", "", 1)  // Row
		// A put is no change of access: reads stay cached after it.
		if _, err := f.p.PutRow(mctx, e.ID, "t", "r2", benchRow); err != nil {
			t.Fatal(err)
		}
		get(mctx, "a get after a put", "", 1)

		// Through this process: a lock refuses the next get, which
		// changes nothing.
		setState(keyhold.StateLocked)
		before := f.snapshot(t)
		get(mctx, "the get after a lock", keyhold.CodeEnvironmentLocked, 0)
		if after := f.snapshot(t); after != before {
			t.Fatalf("the refused get changed state: %+v, was %+v", after, before)
		}
		setState(keyhold.StateEnabled)
		get(mctx, "the get after the enable", "", 2)
		// The member removed: refused at once.
		update(func(tx keyhold.Tx) error { return tx.RemoveEnvironmentMember(ctx, e.ID, member.ID) })
		get(mctx, "the get after the member's removal", keyhold.CodeForbidden, 0)
		f.addMember(t, e.ID, member.ID)
		get(mctx, "the get after the member's return", "", 2)

		// An administrator who is no member: its role taken away here
		// refuses its next get.
		admin := keyhold.IdentityFrom(f.ctx)
		var roles []keyhold.DirectoryRole
		if err := f.store.View(ctx, func(tx keyhold.Tx) error {
			var err error
			roles, err = tx.DirectoryRoles(ctx, admin.TenantID, admin.PrincipalID)
			return err
		}); err != nil || len(roles) == 0 {
			t.Fatalf("the fixture's caller holds roles %v (%v): it must be an administrator", roles, err)
		}
		get(f.ctx, "an administrator's get", "", 0)
		get(f.ctx, "an administrator's cached get", "", 1)
		update(func(tx keyhold.Tx) error {
			for _, r := range roles {
				if err := tx.RemoveDirectoryRole(ctx, admin.TenantID, admin.PrincipalID, r); err != nil {
					return err
				}
			}
			return nil
		})
		get(f.ctx, "the get after the role was taken", keyhold.CodeForbidden, 0)
		update(func(tx keyhold.Tx) error {
			for _, r := range roles {
				if err := tx.AssignDirectoryRole(ctx, admin.TenantID, admin.PrincipalID, r); err != nil {
					return err
				}
			}
			return nil
		})

		// Another replica locks the environment (straight in the
		// database, which this process's generations don't see) and
		// its key drop arrives: refused at once.
		get(mctx, "a get", "", 0)
		get(mctx, "a cached get", "", 1)
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Locked' WHERE id = ?`, e.ID)
		get(mctx, "before the drop arrives", "", 1) // no news yet: the cache answers
		f.p.receiveDrop(msgDrop + " " + e.ID)
		get(mctx, "after the drop arrived", keyhold.CodeEnvironmentLocked, 0)
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Enabled' WHERE id = ?`, e.ID)

		// Its drop lost: refused within accessCacheTTL of the fill.
		get(mctx, "a get", "", 0)
		storetest.Exec(t, f.store, `UPDATE environments SET state = 'Locked' WHERE id = ?`, e.ID)
		f.clock.Advance(accessCacheTTL - time.Millisecond)
		get(mctx, "within the bound", "", 1)
		f.clock.Advance(time.Millisecond)
		get(mctx, "at the bound", keyhold.CodeEnvironmentLocked, 0)
	})
}
