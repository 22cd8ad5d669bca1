package platform

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// readAheadStore is a real store whose first re-seal of a page waits (up
// to a bound) for a read of a later page of the same epoch to begin: it
// records whether the re-key read ahead while a page's write was open.
type readAheadStore struct {
	sealingStore
	once       sync.Once
	laterRead  chan struct{} // closed at the first ListRows past a cursor
	readOnce   sync.Once
	overlapped bool
}

func (s *readAheadStore) View(ctx context.Context, fn func(keyhold.Tx) error) error {
	return s.Store.View(ctx, func(tx keyhold.Tx) error { return fn(readAheadTx{Tx: tx, s: s}) })
}

func (s *readAheadStore) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	return s.Store.Update(ctx, func(tx keyhold.Tx) error { return fn(readAheadTx{Tx: tx, s: s}) })
}

type readAheadTx struct {
	keyhold.Tx
	s *readAheadStore
}

func (t readAheadTx) ListRows(ctx context.Context, f keyhold.RowFilter) ([]*keyhold.RowRecord, error) {
	if f.Epoch != 0 && f.AfterID != "" {
		t.s.readOnce.Do(func() { close(t.s.laterRead) })
	}
	return t.Tx.ListRows(ctx, f)
}

func (t readAheadTx) ResealRows(ctx context.Context, envID string, rs []*keyhold.RowRecord, fromEpoch uint32) (int64, error) {
	t.s.once.Do(func() {
		select {
		case <-t.s.laterRead:
			t.s.overlapped = true
		case <-time.After(10 * time.Second):
		}
	})
	return t.Tx.ResealRows(ctx, envID, rs, fromEpoch)
}

// runLinkSteps runs a link operation's steps in this goroutine, each until
// it is done, and returns the first step's error.
func (f *cmkFixture) runLinkSteps(op *keyhold.Operation) error {
	for _, s := range f.p.kinds()[keyhold.OpLink].Steps {
		for {
			res, err := s.Run(context.Background(), op)
			if err != nil {
				return fmt.Errorf("step %s: %w", s.Name, err)
			}
			if !res.Again {
				break
			}
		}
	}
	return nil
}

// TestRekeyReadsAheadWhileWriting: the re-key reads and re-seals the next
// page while the write transaction of the page before it is still open
// (rekeypipe.go), and the re-key still moves every row, intact. Without
// the pipeline the first page's write waits here for a read that only
// comes after it, and the test fails.
func TestRekeyReadsAheadWhileWriting(t *testing.T) {
	fastLockRecheck(t, 8, time.Hour)
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		ts := &readAheadStore{sealingStore: sealingStore{open(t)}, laterRead: make(chan struct{})}
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
		if !ts.overlapped {
			t.Error("the first page's write ended before the next page was read: no read-ahead")
		}
		if cs := f.epochCounts(t, env.ID); len(cs) != 1 || cs[0].Epoch != 2 {
			t.Fatalf("items per epoch after the re-key: %v, want all on 2", cs)
		}
		f.check(t, env.ID, c)
	})
}

// TestRekeyStopsAtACorruptRow: a row that fails its integrity check stops
// the re-key with a permanent error; the pages before it, written while
// the pipeline was reading ahead, stay moved, and every row of the failing
// page and after it is left exactly as it was: the pipeline never writes a
// page out of order or in part.
func TestRekeyStopsAtACorruptRow(t *testing.T) {
	fastLockRecheck(t, 8, time.Hour)
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		pol := benchPolicy(t, f, "pol")
		env := f.managedEnv(t, "e")
		f.fill(t, env.ID, 40)
		rows := f.rowsOn(t, env.ID, 0)
		if len(rows) != 40 {
			t.Fatalf("%d rows, want 40", len(rows))
		}
		// Row 20 in the walk's order is on the third page (rows 16-23).
		bad := *rows[20]
		bad.Ciphertext = append([]byte{}, bad.Ciphertext...)
		bad.Ciphertext[len(bad.Ciphertext)-1] ^= 1
		bad.Version++ // PutRow replaces exactly its predecessor
		if err := f.store.Update(f.ctx, func(tx keyhold.Tx) error { return tx.PutRow(f.ctx, &bad) }); err != nil {
			t.Fatal(err)
		}
		op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		if err != nil {
			t.Fatal(err)
		}
		err = f.runLinkSteps(op)
		if !ops.IsPermanent(err) || !strings.Contains(err.Error(), bad.ID) || !strings.Contains(err.Error(), "integrity check") {
			t.Fatalf("re-key over a corrupt row: %v; want a permanent error naming row %s", err, bad.ID)
		}
		after := f.rowsOn(t, env.ID, 0)
		for i, r := range after {
			was := rows[i]
			if i == 20 {
				was = &bad
			}
			if r.Table != was.Table || r.ID != was.ID || r.Version != was.Version {
				t.Fatalf("row %d is %s/%s v%d, was %s/%s v%d", i, r.Table, r.ID, r.Version, was.Table, was.ID, was.Version)
			}
			switch {
			case i < 16 && r.Epoch != 2:
				t.Errorf("row %d (%s/%s), on a page before the corrupt one: epoch %d, want 2", i, r.Table, r.ID, r.Epoch)
			case i >= 16 && (r.Epoch != was.Epoch || string(r.Ciphertext) != string(was.Ciphertext)):
				t.Errorf("row %d (%s/%s), on or after the corrupt row's page, changed: epoch %d, was %d", i, r.Table, r.ID, r.Epoch, was.Epoch)
			}
		}
	})
}

// rowsOn lists an environment's rows on epoch (0: every epoch), in the
// re-key's walk order.
func (f *cmkFixture) rowsOn(t *testing.T, envID string, epoch uint32) []*keyhold.RowRecord {
	t.Helper()
	var rows []*keyhold.RowRecord
	if err := f.store.View(f.ctx, func(tx keyhold.Tx) (err error) {
		rows, err = tx.ListRows(f.ctx, keyhold.RowFilter{EnvID: envID, Epoch: epoch, Limit: 1000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}
