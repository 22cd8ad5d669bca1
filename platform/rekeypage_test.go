package platform

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// pageStore is a real store that asks for re-key pages of page rows
// (Tx.ResealPageRows) and records the size of every page written.
type pageStore struct {
	sealingStore
	page  int
	mu    sync.Mutex
	sizes []int
}

func (s *pageStore) View(ctx context.Context, fn func(keyhold.Tx) error) error {
	return s.Store.View(ctx, func(tx keyhold.Tx) error { return fn(pageTx{Tx: tx, s: s}) })
}

func (s *pageStore) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	return s.Store.Update(ctx, func(tx keyhold.Tx) error { return fn(pageTx{Tx: tx, s: s}) })
}

type pageTx struct {
	keyhold.Tx
	s *pageStore
}

func (t pageTx) ResealPageRows() int { return t.s.page }

func (t pageTx) ResealRows(ctx context.Context, envID string, rs []*keyhold.RowRecord, fromEpoch uint32) (int64, error) {
	t.s.mu.Lock()
	t.s.sizes = append(t.s.sizes, len(rs))
	t.s.mu.Unlock()
	return t.Tx.ResealRows(ctx, envID, rs, fromEpoch)
}

// TestRekeyPagesAsTheStoreAsks: the re-key writes its rows in pages of
// the size the store asks for (Tx.ResealPageRows: PostgreSQL asks for
// long pages, to save round trips), not its own default, and still moves
// every row intact. Without it the 40 rows go in one page of the default
// 256, and the test fails.
func TestRekeyPagesAsTheStoreAsks(t *testing.T) {
	fastLockRecheck(t, defaultRekeyBatch, time.Hour)
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		ts := &pageStore{sealingStore: sealingStore{open(t)}, page: 7}
		f := newCMKFixture(t, ts, false)
		pol := benchPolicy(t, f, "pol")
		env := f.managedEnv(t, "e")
		c := f.fill(t, env.ID, 40)
		op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.runLinkSteps(op); err != nil {
			t.Fatal(err)
		}
		if want := []int{7, 7, 7, 7, 7, 5}; !slices.Equal(ts.sizes, want) {
			t.Errorf("re-key pages of %v rows, want %v (the store asked for 7)", ts.sizes, want)
		}
		if cs := f.epochCounts(t, env.ID); len(cs) != 1 || cs[0].Epoch != 2 {
			t.Fatalf("items per epoch after the re-key: %v, want all on 2", cs)
		}
		f.check(t, env.ID, c)
	})
}

// TestRowsPage: a test's own rekeyBatch wins over the store's page, so
// that the crash tests' pages of two rows stay pages of two.
func TestRowsPage(t *testing.T) {
	if got := rowsPage(0); got != rekeyBatch {
		t.Errorf("rowsPage(0) = %d, want rekeyBatch %d", got, rekeyBatch)
	}
	if got := rowsPage(1000); rekeyBatch == defaultRekeyBatch && got != 1000 {
		t.Errorf("rowsPage(1000) = %d at the default rekeyBatch, want 1000", got)
	}
	defer func(n int) { rekeyBatch = n }(rekeyBatch)
	rekeyBatch = 2
	if got := rowsPage(1000); got != 2 {
		t.Errorf("rowsPage(1000) with rekeyBatch 2 = %d, want 2", got)
	}
}
