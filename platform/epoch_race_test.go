package platform

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// triggerStore is a real store that runs before() once, just ahead of its
// first Update after arm() — the moment between a data write's key fetch
// and its writing transaction.
type triggerStore struct {
	sealingStore
	mu     sync.Mutex
	before func()
}

func (s *triggerStore) arm(fn func()) { s.mu.Lock(); s.before = fn; s.mu.Unlock() }

func (s *triggerStore) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	s.mu.Lock()
	before := s.before
	s.before = nil
	s.mu.Unlock()
	if before != nil {
		before()
	}
	return s.Store.Update(ctx, fn)
}

// TestPutRowFollowsANewEpoch: a re-key that moves the environment to a new
// epoch between PutRow's key fetch and its write must not fail the write;
// the row is sealed under the new epoch.
func TestPutRowFollowsANewEpoch(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		ts := &triggerStore{sealingStore: sealingStore{open(t)}}
		f := newFixture(t, ts)
		e := f.createEnv(t, "moving")
		if _, err := f.p.PutRow(f.ctx, e.ID, "t", "r", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		// What the re-key's newepoch step does: a fresh EK for epoch 2, and
		// the environment moved to it, in one transaction.
		ts.arm(func() {
			ek, wk, err := f.p.newEnvKey(context.Background(), e.ID, 2)
			if err != nil {
				t.Error(err)
				return
			}
			ek.Destroy()
			err = ts.Store.Update(context.Background(), func(tx keyhold.Tx) error {
				env, err := tx.Environment(context.Background(), e.ID)
				if err != nil {
					return err
				}
				env.Epoch = 2
				if err := tx.PutWrappedKey(context.Background(), wk); err != nil {
					return err
				}
				return tx.UpdateEnvironment(context.Background(), env)
			})
			if err != nil {
				t.Error(err)
			}
		})
		row, err := f.p.PutRow(f.ctx, e.ID, "t", "r", json.RawMessage(`{"v":2}`))
		if err != nil {
			t.Fatalf("PutRow across an epoch change: %v", err)
		}
		if row.Version != 2 {
			t.Fatalf("version = %d, want 2", row.Version)
		}
		var rec *keyhold.RowRecord
		if err := ts.View(context.Background(), func(tx keyhold.Tx) error {
			rec, err = tx.Row(context.Background(), e.ID, "t", "r")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if rec.Epoch != 2 {
			t.Fatalf("row sealed under epoch %d, want the new epoch 2", rec.Epoch)
		}
		got, err := f.p.GetRow(f.ctx, e.ID, "t", "r")
		if err != nil || string(got.Data) != `{"v":2}` {
			t.Fatalf("GetRow = %+v, %v", got, err)
		}
	})
}
