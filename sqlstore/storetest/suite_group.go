package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
)

func init() {
	dataAccessTests = append(dataAccessTests, struct {
		name string
		fn   func(t *testing.T, s keyhold.Store)
	}{"GroupCommit", testGroupCommit})
}

// testGroupCommit queues writes behind one that holds the committer, so
// that they all run in the next batch, one transaction, and checks what
// group commit promises: a failing write (its own error, or a statement
// the database refuses) rolls back only itself; writes to one row run in
// queue order, each seeing the one before; an optimistic-concurrency
// conflict still fires for the stale write alone.
func testGroupCommit(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	store := s.(*sqlstore.Store)
	store.SetGroupCommit(true) // PostgreSQL's dialect doesn't group: test the mechanism there too
	seedEnv(t, s, "t1", "e1")

	release := make(chan struct{})
	started := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- store.UpdateGrouped(ctx, func(tx keyhold.Tx) error {
			close(started)
			<-release
			return tx.CreateTenant(ctx, tenant("holder"))
		})
	}()
	<-started
	commitsBefore := store.GroupCommits()

	type write struct {
		name string
		fn   func(tx keyhold.Tx) error
		want string // the error code wanted, "" for success, "boom" for errBoom
	}
	errBoom := errors.New("boom")
	seen := make([]uint64, 5)
	putNext := func(k int) func(tx keyhold.Tx) error {
		return func(tx keyhold.Tx) error {
			r := row("e1", "tb", "same", 1, 1)
			switch old, err := tx.Row(ctx, "e1", "tb", "same"); {
			case err == nil:
				seen[k] = old.Version
				r.Version = old.Version + 1
			case keyhold.ErrorCode(err) != keyhold.CodeRowNotFound:
				return err
			}
			r.Ciphertext = fmt.Appendf(nil, "write %d", k)
			return tx.PutRow(ctx, r)
		}
	}
	writes := []write{
		{"a tenant", func(tx keyhold.Tx) error { return tx.CreateTenant(ctx, tenant("ok1")) }, ""},
		{"a write that fails after writing", func(tx keyhold.Tx) error {
			if err := tx.CreateTenant(ctx, tenant("bad")); err != nil {
				return err
			}
			return errBoom
		}, "boom"},
		{"a statement the database refuses", func(tx keyhold.Tx) error {
			// A foreign key violation: on PostgreSQL it aborts the
			// transaction, which only the savepoint's rollback mends.
			err := tx.CreateEnvironment(ctx, env("e-orphan", "no-such-tenant"))
			if err == nil {
				return errors.New("an environment of an unknown tenant was created")
			}
			return err
		}, keyhold.CodeNotFound},
		{"row put 0", putNext(0), ""},
		{"row put 1", putNext(1), ""},
		{"row put 2", putNext(2), ""},
		{"a stale row put", func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "tb", "same", 2, 1)) }, keyhold.CodeConflict},
		{"row put 3", putNext(3), ""},
		{"row put 4", putNext(4), ""},
		{"another tenant", func(tx keyhold.Tx) error { return tx.CreateTenant(ctx, tenant("ok2")) }, ""},
	}
	results := make([]chan error, len(writes))
	for i, w := range writes {
		results[i] = make(chan error, 1)
		go func() { results[i] <- store.UpdateGrouped(ctx, w.fn) }()
		// Queue them in order: wait until this one is queued.
		deadline := time.Now().Add(10 * time.Second)
		for store.QueuedWrites() != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("write %d never queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	if err := <-holder; err != nil {
		t.Fatalf("the holding write: %v", err)
	}
	for i, w := range writes {
		err := <-results[i]
		switch {
		case w.want == "" && err != nil:
			t.Errorf("%s failed: %v", w.name, err)
		case w.want == "boom" && !errors.Is(err, errBoom):
			t.Errorf("%s: %v, want its own error", w.name, err)
		case w.want != "" && w.want != "boom" && keyhold.ErrorCode(err) != w.want:
			t.Errorf("%s: %v, want %s", w.name, err, w.want)
		}
	}
	if got := store.GroupCommits() - commitsBefore; got != 2 {
		t.Errorf("%d batches ended after the holder's started, want 2 (the holder's, then every queued write's)", got)
	}
	view(t, s, func(tx keyhold.Tx) error {
		for id, want := range map[string]bool{"holder": true, "ok1": true, "ok2": true, "bad": false} {
			_, err := tx.Tenant(ctx, id)
			if got := err == nil; got != want {
				t.Errorf("tenant %s exists: %v, want %v (%v)", id, got, want, err)
			}
		}
		if _, err := tx.Environment(ctx, "e-orphan"); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentNotFound {
			t.Errorf("the refused environment: %v, want not found", err)
		}
		r, err := tx.Row(ctx, "e1", "tb", "same")
		if err != nil {
			return err
		}
		if r.Version != 5 || string(r.Ciphertext) != "write 4" {
			t.Errorf("the row is at version %d holding %q, want 5 holding %q", r.Version, r.Ciphertext, "write 4")
		}
		return nil
	})
	// Each put saw the one queued before it.
	if want := []uint64{0, 1, 2, 3, 4}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("the row puts saw versions %v, want %v", seen, want)
	}
}
