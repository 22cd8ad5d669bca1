package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// operationTests are the conformance tests of keyhold.OperationTx; Run
// runs them with the rest.
var operationTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"Operations", testOperations},
	{"UpdateOperation", testUpdateOperation},
	{"ListOperations", testListOperations},
	{"OneRunningOperationPerTarget", testOneRunningOperationPerTarget},
	{"ClaimOperation", testClaimOperation},
	{"ConcurrentClaims", testConcurrentClaims},
	{"OperationPhase", testOperationPhase},
}

// operation returns a Running operation on target created at at(created).
func operation(id, target string, created time.Duration) *keyhold.Operation {
	return &keyhold.Operation{
		ID: id, TenantID: "t1", Kind: "link", Target: target, State: keyhold.OperationRunning, Step: "first",
		Input: json.RawMessage(`{"policy":"p1"}`), CreatedBy: "u1", CreatedAt: at(created), UpdatedAt: at(created),
	}
}

func createOps(t *testing.T, s keyhold.Store, ops ...*keyhold.Operation) {
	t.Helper()
	update(t, s, func(tx keyhold.Tx) error {
		for _, op := range ops {
			if err := tx.CreateOperation(context.Background(), op); err != nil {
				return err
			}
		}
		return nil
	})
}

func getOp(t *testing.T, s keyhold.Store, id string) *keyhold.Operation {
	t.Helper()
	var op *keyhold.Operation
	view(t, s, func(tx keyhold.Tx) (err error) {
		op, err = tx.Operation(context.Background(), id)
		return err
	})
	return op
}

func testOperations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	full := &keyhold.Operation{
		ID: "op1", TenantID: "t1", Kind: "rekey", Target: "e1", State: keyhold.OperationFailed, Step: "",
		Input: json.RawMessage(`{"epoch":2}`), Progress: json.RawMessage(`{"after":"acct/9"}`), Done: 7, Total: 9,
		ErrorCode: keyhold.CodeKeyNotFound, ErrorMsg: "key k1 not found", Attempts: 3, CreatedBy: "u1",
		CreatedAt: at(time.Second), UpdatedAt: at(2 * time.Second), FinishedAt: at(3 * time.Second),
		LeaseOwner: "replica-a", LeaseUntil: at(4 * time.Second),
	}
	bare := &keyhold.Operation{ID: "op2", Kind: "unlink", State: keyhold.OperationRunning}
	createOps(t, s, full, bare)
	if full.Version != 1 || bare.Version != 1 {
		t.Errorf("versions after CreateOperation: %d, %d; want 1, 1", full.Version, bare.Version)
	}
	equal(t, "Operation(op1)", getOp(t, s, "op1"), full)
	got := getOp(t, s, "op2")
	equal(t, "Operation(op2)", got, bare)
	if got.Input != nil || got.Progress != nil {
		t.Errorf("absent input and progress came back as %q and %q, want nil", got.Input, got.Progress)
	}
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateOperation(ctx, operation("op1", "e9", 0)) })
	wantCode(t, "CreateOperation(existing id)", err, keyhold.CodeConflict, "op1")
	err = s.View(ctx, func(tx keyhold.Tx) error { _, err := tx.Operation(ctx, "nope"); return err })
	wantCode(t, "Operation(nope)", err, keyhold.CodeNotFound, "nope")
	bad := operation("op3", "e3", 0)
	bad.Progress = json.RawMessage(`{"half":`)
	if err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateOperation(ctx, bad) }); err == nil {
		t.Errorf("CreateOperation with progress that isn't JSON succeeded; want an error")
	}
}

func testUpdateOperation(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	op := operation("op1", "e1", 0)
	createOps(t, s, op)
	want := *op
	changed := *op
	changed.Step, changed.Progress, changed.Done, changed.Total = "second", json.RawMessage(`[1,2]`), 2, 10
	changed.Attempts, changed.UpdatedAt, changed.LeaseOwner, changed.LeaseUntil = 1, at(time.Minute), "w1", at(2*time.Minute)
	// Fields that never change, changed in vain.
	changed.Kind, changed.Target, changed.TenantID, changed.Input, changed.CreatedBy, changed.CreatedAt =
		"other", "e9", "t9", json.RawMessage(`{}`), "u9", at(time.Hour)
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, &changed) })
	if changed.Version != 2 {
		t.Errorf("version after UpdateOperation: %d, want 2", changed.Version)
	}
	want.Step, want.Progress, want.Done, want.Total = "second", json.RawMessage(`[1,2]`), 2, 10
	want.Attempts, want.UpdatedAt, want.LeaseOwner, want.LeaseUntil, want.Version = 1, at(time.Minute), "w1", at(2*time.Minute), 2
	equal(t, "after UpdateOperation", getOp(t, s, "op1"), &want)

	// A writer holding version 1 lost the race.
	stale := *op
	stale.State, stale.FinishedAt = keyhold.OperationSucceeded, at(time.Hour)
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, &stale) })
	wantCode(t, "UpdateOperation(stale)", err, keyhold.CodeConflict, "op1")
	if stale.Version != 1 {
		t.Errorf("a refused update changed op.Version to %d", stale.Version)
	}
	equal(t, "after a stale UpdateOperation", getOp(t, s, "op1"), &want)

	fin := want
	fin.State, fin.Step, fin.FinishedAt, fin.LeaseOwner, fin.LeaseUntil = keyhold.OperationSucceeded, "", at(time.Hour), "", time.Time{}
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, &fin) })
	equal(t, "after finishing", getOp(t, s, "op1"), &fin)

	missing := operation("ghost", "e1", 0)
	missing.Version = 1
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, missing) })
	wantCode(t, "UpdateOperation(missing)", err, keyhold.CodeNotFound, "ghost")
}

func testListOperations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := operation("a", "e1", 1*time.Second)
	b := operation("b", "e2", 2*time.Second)
	b.Kind = "unlink"
	c := operation("c", "e1", 3*time.Second)
	c.State, c.FinishedAt = keyhold.OperationSucceeded, at(4*time.Second)
	d := operation("d", "e3", 3*time.Second) // same time as c: id breaks the tie
	d.TenantID = "t2"
	createOps(t, s, a, b, c, d)
	for _, tc := range []struct {
		name string
		f    keyhold.OperationFilter
		want []*keyhold.Operation
	}{
		{"all", keyhold.OperationFilter{}, []*keyhold.Operation{d, c, b, a}},
		{"tenant", keyhold.OperationFilter{TenantID: "t1"}, []*keyhold.Operation{c, b, a}},
		{"target", keyhold.OperationFilter{Target: "e1"}, []*keyhold.Operation{c, a}},
		{"kind", keyhold.OperationFilter{Kind: "unlink"}, []*keyhold.Operation{b}},
		{"state", keyhold.OperationFilter{State: keyhold.OperationRunning}, []*keyhold.Operation{d, b, a}},
		{"combined", keyhold.OperationFilter{TenantID: "t1", Target: "e1", State: keyhold.OperationRunning, Kind: "link"}, []*keyhold.Operation{a}},
		{"limit", keyhold.OperationFilter{Limit: 2}, []*keyhold.Operation{d, c}},
		{"none", keyhold.OperationFilter{Target: "e9"}, []*keyhold.Operation{}},
	} {
		view(t, s, func(tx keyhold.Tx) error {
			got, err := tx.ListOperations(ctx, tc.f)
			if err != nil {
				return err
			}
			if got == nil {
				t.Errorf("ListOperations(%s) = nil, want an empty, non-nil slice", tc.name)
			}
			equal(t, "ListOperations("+tc.name+")", got, tc.want)
			return nil
		})
	}
}

func testOneRunningOperationPerTarget(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := operation("op-a", "e1", 0)
	createOps(t, s, a)
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateOperation(ctx, operation("op-b", "e1", time.Second)) })
	wantCode(t, "CreateOperation(second running on e1)", err, keyhold.CodeConflict, "e1", "op-a")
	update(t, s, func(tx keyhold.Tx) error {
		// The conflict leaves the transaction usable.
		wantCode(t, "CreateOperation(second running, same transaction)",
			tx.CreateOperation(ctx, operation("op-b", "e1", time.Second)), keyhold.CodeConflict, "op-a")
		done := operation("op-c", "e1", 2*time.Second)
		done.State = keyhold.OperationFailed
		if err := tx.CreateOperation(ctx, done); err != nil {
			return fmt.Errorf("a finished operation next to a running one: %w", err)
		}
		return tx.CreateOperation(ctx, operation("op-d", "e2", 3*time.Second))
	})
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: "e1", State: keyhold.OperationRunning})
		if err == nil && (len(l) != 1 || l[0].ID != "op-a") {
			t.Errorf("running operations of e1: %s, want only op-a", show(l))
		}
		_, err = tx.Operation(ctx, "op-b")
		wantCode(t, "Operation(refused op-b)", err, keyhold.CodeNotFound)
		return nil
	})

	// Once op-a is finished, e1 takes a new one; reviving op-a is then
	// refused, naming the new one.
	a.State, a.FinishedAt = keyhold.OperationSucceeded, at(time.Minute)
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, a) })
	createOps(t, s, operation("op-b", "e1", time.Second))
	a.State = keyhold.OperationRunning
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, a) })
	wantCode(t, "UpdateOperation(revive op-a)", err, keyhold.CodeConflict, "op-b")
	if got := getOp(t, s, "op-a"); got.State != keyhold.OperationSucceeded {
		t.Errorf("op-a is %s after the refused revival, want Succeeded", got.State)
	}
}

// claim runs ClaimOperation and returns the operation's id, or "" for
// CodeNotFound.
func claim(t *testing.T, s keyhold.Store, owner string, now, until time.Time) *keyhold.Operation {
	t.Helper()
	var op *keyhold.Operation
	err := tryUpdate(s, func(tx keyhold.Tx) (err error) {
		op, err = tx.ClaimOperation(context.Background(), owner, now, until)
		return err
	})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil
	}
	if err != nil {
		t.Fatalf("ClaimOperation(%s): %v", owner, err)
	}
	return op
}

func claimedID(op *keyhold.Operation) string {
	if op == nil {
		return ""
	}
	return op.ID
}

func testClaimOperation(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	if op := claim(t, s, "w1", at(0), at(time.Minute)); op != nil {
		t.Fatalf("ClaimOperation on an empty store = %s, want CodeNotFound", op.ID)
	}
	// Created out of order; the finished one and the one leased into the
	// future are never claimed.
	newer := operation("newer", "e1", 2*time.Second)
	older := operation("older", "e2", 1*time.Second)
	finished := operation("finished", "e3", 0)
	finished.State, finished.FinishedAt = keyhold.OperationSucceeded, at(time.Second)
	held := operation("held", "e4", 0)
	held.LeaseOwner, held.LeaseUntil = "w0", at(time.Hour)
	free := operation("free", "e5", 3*time.Second)
	free.LeaseUntil = at(time.Hour) // no owner: free whatever the time
	createOps(t, s, newer, older, finished, held, free)

	now := at(time.Minute)
	first := claim(t, s, "w1", now, now.Add(30*time.Second))
	if claimedID(first) != "older" {
		t.Fatalf("first claim got %q, want the oldest running operation, older", claimedID(first))
	}
	if first.LeaseOwner != "w1" || !first.LeaseUntil.Equal(now.Add(30*time.Second)) || first.Version != 2 {
		t.Errorf("claimed operation: owner %q until %v version %d; want w1, %v, 2",
			first.LeaseOwner, first.LeaseUntil, first.Version, now.Add(30*time.Second))
	}
	equal(t, "stored after the claim", getOp(t, s, "older"), first)
	if got := claimedID(claim(t, s, "w2", now, now.Add(30*time.Second))); got != "newer" {
		t.Fatalf("second claim got %q, want newer", got)
	}
	if got := claimedID(claim(t, s, "w2", now, now.Add(30*time.Second))); got != "free" {
		t.Fatalf("third claim got %q, want free (no owner)", got)
	}
	if got := claimedID(claim(t, s, "w3", now, now.Add(30*time.Second))); got != "" {
		t.Fatalf("fourth claim got %q, want none: every lease is held", got)
	}
	// A lease that ends exactly now is still held; one that ended before
	// now is taken over, oldest first, and the old holder can no longer
	// write.
	if got := claimedID(claim(t, s, "w3", now.Add(30*time.Second), now.Add(time.Minute))); got != "" {
		t.Fatalf("claim at the lease's end got %q, want none", got)
	}
	later := now.Add(30*time.Second + time.Nanosecond)
	if got := claimedID(claim(t, s, "w3", later, later.Add(time.Minute))); got != "older" {
		t.Fatalf("claim after the leases ended got %q, want older", got)
	}
	first.Step = "second"
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, first) })
	wantCode(t, "UpdateOperation by the holder that lost its lease", err, keyhold.CodeConflict, "older")
	if got := claimedID(claim(t, s, "w3", at(2*time.Hour), at(3*time.Hour))); got != "held" {
		t.Fatalf("claim after held's lease got %q, want held", got)
	}
}

// testConcurrentClaims has several goroutines claim until nothing is left:
// every operation must be claimed exactly once.
func testConcurrentClaims(t *testing.T, s keyhold.Store) {
	const ops, claimers = 40, 6
	all := make([]*keyhold.Operation, ops)
	for i := range all {
		all[i] = operation(fmt.Sprintf("op%02d", i), fmt.Sprintf("e%02d", i), time.Duration(i%7)*time.Second)
	}
	createOps(t, s, all...)
	now := at(time.Minute)
	var mu sync.Mutex
	claimedBy := map[string]int{}
	var wg sync.WaitGroup
	errs := make([]error, claimers)
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var op *keyhold.Operation
				err := s.Update(context.Background(), func(tx keyhold.Tx) (err error) {
					op, err = tx.ClaimOperation(context.Background(), fmt.Sprintf("w%d", c), now, now.Add(time.Hour))
					return err
				})
				switch keyhold.ErrorCode(err) {
				case "":
					mu.Lock()
					claimedBy[op.ID]++
					mu.Unlock()
					continue
				case keyhold.CodeNotFound:
					return
				case keyhold.CodeConflict: // lost to concurrent claimers too often in a row
					continue
				}
				errs[c] = err
				return
			}
		}()
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Errorf("claimer %d: %v", c, err)
		}
	}
	for _, op := range all {
		if n := claimedBy[op.ID]; n != 1 {
			t.Errorf("%s was claimed %d times, want exactly once", op.ID, n)
		}
	}
}

// testOperationPhase: the phase and its reason are stored in their own
// columns, apart from the error message, through every write and read;
// a phase no runner knows is refused and changes nothing.
func testOperationPhase(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	queued := operation("queued", "e1", 0)
	queued.Phase = keyhold.OperationQueued
	paused := operation("paused", "e2", time.Second)
	paused.Phase, paused.PhaseReason, paused.ErrorMsg = keyhold.OperationPaused, "environment e2 is locked", "Paused: environment e2 is locked"
	back := operation("back", "e3", 2*time.Second)
	back.Phase, back.PhaseReason, back.ErrorCode, back.ErrorMsg = keyhold.OperationRollingBack, "key k1 not found", keyhold.CodeKeyNotFound, "key k1 not found"
	done := operation("done", "e4", 3*time.Second)
	done.State, done.FinishedAt = keyhold.OperationSucceeded, at(4*time.Second)
	createOps(t, s, queued, paused, back, done)
	for _, op := range []*keyhold.Operation{queued, paused, back, done} {
		equal(t, "Operation("+op.ID+")", getOp(t, s, op.ID), op)
	}
	var listed []*keyhold.Operation
	view(t, s, func(tx keyhold.Tx) (err error) {
		listed, err = tx.ListOperations(ctx, keyhold.OperationFilter{})
		return err
	})
	equal(t, "ListOperations", listed, []*keyhold.Operation{done, back, paused, queued})

	// Each phase survives an update, and an update that clears the
	// reason clears it.
	for _, ph := range keyhold.OperationPhases {
		next := *getOp(t, s, "queued")
		next.Phase, next.PhaseReason = ph, "why: "+string(ph)
		update(t, s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, &next) })
		equal(t, "after updating to "+string(ph), getOp(t, s, "queued"), &next)
	}
	next := *getOp(t, s, "queued")
	next.Phase, next.PhaseReason = keyhold.OperationInProgress, ""
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, &next) })
	equal(t, "after clearing the reason", getOp(t, s, "queued"), &next)

	// A claim hands the phase over as stored.
	claimed := claim(t, s, "w1", at(time.Hour), at(2*time.Hour))
	if claimedID(claimed) != "queued" || claimed.Phase != keyhold.OperationInProgress || claimed.PhaseReason != "" {
		t.Errorf("claimed %q in phase %q (%q); want queued, Running, no reason", claimedID(claimed), claimed.Phase, claimed.PhaseReason)
	}
	claimed = claim(t, s, "w1", at(time.Hour), at(2*time.Hour))
	if claimedID(claimed) != "paused" || claimed.Phase != keyhold.OperationPaused || claimed.PhaseReason != paused.PhaseReason {
		t.Errorf("claimed %q in phase %q (%q); want paused, Paused, %q", claimedID(claimed), claimed.Phase, claimed.PhaseReason, paused.PhaseReason)
	}

	// An unknown phase: refused, quoted, nothing written.
	bad := operation("bad", "e5", 0)
	bad.Phase = "Sleeping"
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateOperation(ctx, bad) })
	wantCode(t, "CreateOperation(phase Sleeping)", err, keyhold.CodeBadRequest, "bad", "Sleeping", "Paused")
	err = s.View(ctx, func(tx keyhold.Tx) error { _, err := tx.Operation(ctx, "bad"); return err })
	wantCode(t, "Operation(bad) after the refused create", err, keyhold.CodeNotFound, "bad")
	before := getOp(t, s, "back")
	worse := *before
	worse.Phase, worse.Step = "rolling back", "other"
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateOperation(ctx, &worse) })
	wantCode(t, "UpdateOperation(phase \"rolling back\")", err, keyhold.CodeBadRequest, "back", "rolling back")
	equal(t, "after the refused update", getOp(t, s, "back"), before)
}
