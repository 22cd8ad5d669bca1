package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// envHoldTests check EnvironmentForWrite, which orders a data write with a
// change of its environment (a restore's start).
var envHoldTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"EnvironmentForWrite", testEnvironmentForWrite},
}

// testEnvironmentForWrite: EnvironmentForWrite reads the environment; an
// UpdateEnvironment of another transaction waits until the holder ends;
// and a holder whose snapshot predates a committed UpdateEnvironment does
// not go on with the old environment: its transaction runs again and sees
// the new one.
func testEnvironmentForWrite(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		e, err := tx.EnvironmentForWrite(ctx, "e1")
		if err == nil && (e.ID != "e1" || e.Version != 1) {
			t.Errorf("EnvironmentForWrite = %+v, want e1 at version 1", e)
		}
		return err
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { _, err := tx.EnvironmentForWrite(ctx, "e9"); return err })
	wantCode(t, "EnvironmentForWrite(missing)", err, keyhold.CodeEnvironmentNotFound, "e9")

	bump := func() error {
		return tryUpdate(s, func(tx keyhold.Tx) error {
			e, err := tx.Environment(ctx, "e1")
			if err != nil {
				return err
			}
			e.UpdatedAt = at(time.Hour)
			return tx.UpdateEnvironment(ctx, e)
		})
	}

	// A holder makes an update wait for it.
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	var holder sync.WaitGroup
	holder.Go(func() {
		var once sync.Once
		err := tryUpdate(s, func(tx keyhold.Tx) error {
			if _, err := tx.EnvironmentForWrite(ctx, "e1"); err != nil {
				return err
			}
			once.Do(func() { close(held) })
			<-release
			return nil
		})
		if err != nil {
			t.Errorf("holder: %v", err)
		}
	})
	<-held
	go func() { done <- bump() }()
	var bumpErr error
	select {
	case bumpErr = <-done:
		t.Errorf("UpdateEnvironment ended (%v) while another transaction held the environment", bumpErr)
	case <-time.After(300 * time.Millisecond):
		close(release)
		bumpErr = <-done
	}
	if !isClosed(release) {
		close(release)
	}
	holder.Wait()
	if bumpErr != nil {
		t.Fatalf("UpdateEnvironment after the holder ended: %v", bumpErr)
	}

	// A holder whose snapshot is older than a committed update sees the
	// update (its transaction runs again). Where writers take turns
	// (SQLite) the update can't commit meanwhile, and comes after.
	var seen int64
	bumped := make(chan error, 1)
	var started sync.Once
	bumpDone := false
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		if _, err := tx.Tenant(ctx, "t1"); err != nil { // the snapshot
			return err
		}
		started.Do(func() { go func() { bumped <- bump() }() })
		if !bumpDone {
			select {
			case err := <-bumped:
				if err != nil {
					return err
				}
				bumpDone = true
			case <-time.After(300 * time.Millisecond):
			}
		}
		e, err := tx.EnvironmentForWrite(ctx, "e1")
		if err != nil {
			return err
		}
		seen = e.Version
		return nil
	})
	if err != nil {
		t.Fatalf("holder after a concurrent update: %v", err)
	}
	if bumpDone && seen != 3 {
		t.Fatalf("an update committed before EnvironmentForWrite, which then read version %d, want the update's 3", seen)
	}
	if !bumpDone {
		if err := <-bumped; err != nil {
			t.Fatal(err)
		}
		if seen != 2 {
			t.Fatalf("EnvironmentForWrite before the update read version %d, want 2", seen)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
