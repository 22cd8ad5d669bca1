package platform

import (
	"context"
	"encoding/json"
	"fmt"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
		f.addMember(t, e.ID, member.ID)
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
		// DataAccess, Row, PutRow, AppendAudit: the audit entry is sealed
		// under the environment's key (issue 14) before it is appended
		// (audit_seal.go's v2 format), so the sealed entry is one INSERT.
		count("a new row's put", 4, func() error { _, err := f.p.PutRow(ctx, e.ID, "t", "r1", benchRow); return err })
		count("a row's second put", 4, func() error { _, err := f.p.PutRow(ctx, e.ID, "t", "r1", benchRow); return err })
		// DataAccess, Row.
		count("a get", 2, func() error { _, err := f.p.GetRow(ctx, e.ID, "t", "r1"); return err })
		// Row: the access granted is cached (accesscache.go), and the
		// row is read in a statement of its own, with no transaction
		// (keyhold.PointReader).
		views := s.Views()
		count("a second get", 1, func() error { _, err := f.p.GetRow(ctx, e.ID, "t", "r1"); return err })
		if n := s.Views() - views; n != 0 {
			t.Errorf("a get with its access cached began %d read transactions, want 0", n)
		}
		// A row that doesn't exist: the same one statement, and the
		// same refusal as through a transaction.
		count("a cached get of a missing row", 1, func() error {
			if _, err := f.p.GetRow(ctx, e.ID, "t", "nope"); keyhold.ErrorCode(err) != keyhold.CodeRowNotFound {
				return fmt.Errorf("%v, want %s", err, keyhold.CodeRowNotFound)
			}
			return nil
		})
		// DataAccess, DeleteRow, AppendAudit.
		count("a delete", 3, func() error { return f.p.DeleteRow(ctx, e.ID, "t", "r1") })
	})
}

// TestCachedGetStartsNoGoroutine: on SQLite, a GET whose access is cached
// reads its row with no transaction and without watching the request's
// context (keyhold.PointReader, Dialect.PointReadsUncancelled), so it
// starts no goroutine, where a read transaction started five (BEGIN, the
// query and COMMIT each watched by database/sql or the driver). The
// request's context is a cancellable one, as a server's is. PostgreSQL
// keeps the statement cancellable: it is only checked to read the row.
func TestCachedGetStartsNoGoroutine(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		store := open(t)
		f := newFixture(t, store)
		s := store.(*sqlstore.Store)
		e := f.createEnv(t, "goroutines")
		if _, err := f.p.PutRow(f.ctx, e.ID, "t", "r", benchRow); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(f.ctx)
		defer cancel()
		if _, err := f.p.GetRow(ctx, e.ID, "t", "r"); err != nil { // fills the access cache
			t.Fatal(err)
		}
		const gets = 200
		created := goroutinesCreated()
		for range gets {
			r, err := f.p.GetRow(ctx, e.ID, "t", "r")
			if err != nil || string(r.Data) != string(benchRow) {
				t.Fatalf("a cached get: %v", err)
			}
		}
		n := goroutinesCreated() - created
		t.Logf("%d cached gets started %d goroutines", gets, n)
		if s.Dialect().PointReadsUncancelled && n >= gets/4 {
			t.Errorf("%d cached gets started %d goroutines: the row read watches the request's context", gets, n)
		}
	})
}

// goroutinesCreated returns how many goroutines the process has started.
func goroutinesCreated() uint64 {
	m := []rtmetrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	rtmetrics.Read(m)
	return m[0].Value.Uint64()
}

// TestRowPutKeyMiss writes with the key cache empty: the writing
// transaction checks access first and, finding no key cached, ends; the
// key is unwrapped outside it, once, and the write goes through. A caller
// without access causes no unwrap at all.
func TestRowPutKeyMiss(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open(t))
		e := f.createEnv(t, "miss")
		outsider := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "outsider-secret-1234567890", "")
		octx := f.login(t, f.creds.TenantID, outsider.AppID, "outsider-secret-1234567890")

		f.p.DropKeys("")
		before := f.p.Unwraps()
		if _, err := f.p.PutRow(octx, e.ID, "t", "r", benchRow); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("an outsider's put: %v, want %s", err, keyhold.CodeForbidden)
		}
		if n := f.p.Unwraps() - before; n != 0 {
			t.Fatalf("an outsider's refused put unwrapped the environment's key %d times, want 0", n)
		}
		r, err := f.p.PutRow(f.ctx, e.ID, "t", "r", benchRow)
		if err != nil {
			t.Fatalf("a put with the key cache empty: %v", err)
		}
		if n := f.p.Unwraps() - before; n != 1 || r.Version != 1 {
			t.Fatalf("the put unwrapped %d times and wrote version %d, want 1 and 1", n, r.Version)
		}
		got, err := f.p.GetRow(f.ctx, e.ID, "t", "r")
		if err != nil || string(got.Data) != string(benchRow) {
			t.Fatalf("reading the row back: %v", err)
		}
	})
}

// TestConcurrentRowWrites runs row puts from many clients at once, so that
// they commit in groups on SQLite (sqlstore's UpdateGrouped): every
// acknowledged put to the one shared row is a version of its own (none
// lost, none repeated; on PostgreSQL, where 32 transactions race for the
// row, a put may instead answer Conflict after its retries), every
// client's own row holds its last write, each row opens with its key, and
// a caller without access, refused in the same batches, writes nothing.
func TestConcurrentRowWrites(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		store := open(t)
		f := newFixture(t, store)
		s := store.(*sqlstore.Store)
		e := f.createEnv(t, "concurrent")
		outsider := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "outsider-secret-1234567890", "")
		octx := f.login(t, f.creds.TenantID, outsider.AppID, "outsider-secret-1234567890")
		const clients, puts = 32, 8
		commitsBefore := s.GroupCommits()
		var wg sync.WaitGroup
		versions := make(chan uint64, clients*puts)
		var conflicts atomic.Int64
		errs := make(chan error, 2*clients*puts)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range puts {
					r, err := f.p.PutRow(f.ctx, e.ID, "t", "shared", json.RawMessage(fmt.Sprintf(`{"c":%d,"i":%d}`, c, i)))
					switch {
					case err == nil:
						versions <- r.Version
					case keyhold.ErrorCode(err) == keyhold.CodeConflict && !s.Dialect().GroupCommit:
						// 32 transactions racing for one row on
						// PostgreSQL may exhaust their retries: the
						// client is told to retry, nothing is lost.
						conflicts.Add(1)
					default:
						errs <- err
					}
					if _, err := f.p.PutRow(f.ctx, e.ID, "t", fmt.Sprint("own", c), json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
						errs <- err
					}
					if _, err := f.p.PutRow(octx, e.ID, "t", "outsider", json.RawMessage(`{}`)); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
						errs <- fmt.Errorf("an outsider's put: %v, want %s", err, keyhold.CodeForbidden)
					}
				}
			}()
		}
		wg.Wait()
		close(versions)
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		seen := map[uint64]bool{}
		for v := range versions {
			if seen[v] {
				t.Errorf("two puts of the shared row were both acknowledged as version %d", v)
			}
			seen[v] = true
		}
		shared, err := f.p.GetRow(f.ctx, e.ID, "t", "shared")
		if err != nil {
			t.Fatal(err)
		}
		if int(shared.Version) != len(seen) || len(seen)+int(conflicts.Load()) != clients*puts {
			t.Errorf("the shared row is at version %d after %d acknowledged puts and %d conflicts, want a version per acknowledged put and %d in all", shared.Version, len(seen), conflicts.Load(), clients*puts)
		}
		if n := conflicts.Load(); n > 0 {
			t.Logf("%d puts of the shared row answered Conflict after their retries", n)
		}
		for c := range clients {
			r, err := f.p.GetRow(f.ctx, e.ID, "t", fmt.Sprint("own", c))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"i":%d}`, puts-1); string(r.Data) != want || r.Version != puts {
				t.Errorf("client %d's row holds %s at version %d, want %s at %d", c, r.Data, r.Version, want, puts)
			}
		}
		if _, err := f.p.GetRow(f.ctx, e.ID, "t", "outsider"); keyhold.ErrorCode(err) != keyhold.CodeRowNotFound {
			t.Errorf("the outsider's row: %v, want %s", err, keyhold.CodeRowNotFound)
		}
		// Grouped where the backend groups (SQLite): fewer commits than
		// writes (the refusals' batches count too).
		if !s.Dialect().GroupCommit {
			return
		}
		if n := s.GroupCommits() - commitsBefore; n >= 3*clients*puts {
			t.Errorf("%d commits for %d writes: none was grouped", n, 3*clients*puts)
		} else {
			t.Logf("%d writes in %d commits", 3*clients*puts, n)
		}
	})
}

// TestDataPlaneRoleCache shows the bound on the data plane's cache of
// administrators' roles: a role removed through this process stops the
// administrator's next data request, and one removed by another replica
// (here, straight in the database) within roleCacheTTL of the cached
// answer, by the injected clock.
func TestDataPlaneRoleCache(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		store := open(t)
		f := newFixture(t, store)
		s := store.(*sqlstore.Store)
		ctx := context.Background()
		admin := keyhold.IdentityFrom(f.ctx)
		e := f.createEnv(t, "roles")
		if _, err := f.p.PutRow(f.ctx, e.ID, "t", "r", benchRow); err != nil {
			t.Fatal(err)
		}
		var roles []keyhold.DirectoryRole
		if err := f.store.View(ctx, func(tx keyhold.Tx) error {
			var err error
			roles, err = tx.DirectoryRoles(ctx, admin.TenantID, admin.PrincipalID)
			return err
		}); err != nil || len(roles) == 0 {
			t.Fatalf("the fixture's caller holds roles %v (%v): it must be an administrator", roles, err)
		}
		get := func(what, wantCode string) {
			t.Helper()
			_, err := f.p.GetRow(f.ctx, e.ID, "t", "r")
			if got := keyhold.ErrorCode(err); got != wantCode {
				t.Fatalf("%s: %q (%v), want %q", what, got, err, wantCode)
			}
		}
		// A non-member administrator's get costs DataAccess and Row once
		// its roles are cached.
		before := s.Queries()
		get("a cached administrator", "")
		if n := s.Queries() - before; n != 2 {
			t.Errorf("a cached administrator's get ran %d statements, want 2", n)
		}

		// Another replica takes the roles away: the cached answer holds
		// until roleCacheTTL has passed since it was filled.
		storetest.Exec(t, f.store, `DELETE FROM directory_roles WHERE tenant_id = ? AND principal_id = ?`, admin.TenantID, admin.PrincipalID)
		f.clock.Advance(roleCacheTTL - time.Millisecond)
		get("within the bound", "")
		f.clock.Advance(time.Millisecond)
		get("at the bound", keyhold.CodeForbidden)
		if _, err := f.p.PutRow(f.ctx, e.ID, "t", "r", json.RawMessage(`{"x":1}`)); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("a put after the bound: %v, want %s", err, keyhold.CodeForbidden)
		}

		// Through this process, a change is seen at once, both ways.
		set := func(assign bool) {
			t.Helper()
			if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
				for _, r := range roles {
					if assign {
						if err := tx.AssignDirectoryRole(ctx, admin.TenantID, admin.PrincipalID, r); err != nil {
							return err
						}
					} else if err := tx.RemoveDirectoryRole(ctx, admin.TenantID, admin.PrincipalID, r); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		set(true)
		get("the roles given back here", "")
		set(false)
		get("the roles taken here", keyhold.CodeForbidden)
		r, err := func() (*keyhold.RowRecord, error) {
			var r *keyhold.RowRecord
			err := f.store.View(ctx, func(tx keyhold.Tx) error {
				var err error
				r, err = tx.Row(ctx, e.ID, "t", "r")
				return err
			})
			return r, err
		}()
		if err != nil || r.Version != 1 {
			t.Fatalf("the row after the refusals: version %v (%v), want 1: a refused put wrote", r, err)
		}
	})
}
