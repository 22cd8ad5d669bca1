package platform

import (
	"context"
	"runtime"
	"sync"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// The re-key's row pipeline. A page of rows costs three things: reading
// it, opening and re-sealing every row (CPU), and the write transaction
// (the database's CPU and, on SQLite, an fsync). Done one after the other
// they add up; here the reading and re-sealing of page N+1 run in a
// goroutine while page N is written, and the re-sealing of one page is
// split over the cores. The writes stay in rekeyRows, one page at a time
// and in order, and only they move the cursor: what the pipeline reads
// ahead is lost on a crash or an error, never half-written.

// rekeyPage is one page of rows read from an old epoch and re-sealed
// under the new one, ready to write. An empty page without an error says
// the epoch holds no more rows after the cursor.
type rekeyPage struct {
	rows []*keyhold.RowRecord
	// afterTable, afterID is the page's last row: the cursor once the
	// page has committed.
	afterTable, afterID string
	// full says a whole page was read: the epoch may hold more.
	full bool
	err  error
}

// rekeyWorkers is how many goroutines re-seal one page. The cryptography
// is a small part of a page's cost (the write is most of it), so more
// than the cores only adds scheduling.
var rekeyWorkers = max(1, min(runtime.GOMAXPROCS(0), 4))

// readResealPages reads the rows of epoch from after (afterTable,
// afterID), a page at a time, re-seals them under epoch to and sends the
// pages, at most one ahead of the one being written. The channel closes
// after the last page (short or empty) or an error; stop ends the
// goroutine early and waits for it.
func (p *CMK) readResealPages(ctx context.Context, envID string, from, to uint32, afterTable, afterID string) (<-chan rekeyPage, func()) {
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan rekeyPage, 1)
	done := make(chan struct{})
	batch := 0 // set by the first read: rowsPage
	go func() {
		defer close(done)
		defer close(pages)
		send := func(pg rekeyPage) bool {
			select {
			case pages <- pg:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			var rows []*keyhold.RowRecord
			if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
				if batch == 0 {
					batch = rowsPage(tx.ResealPageRows())
				}
				rows, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: envID, Epoch: from, AfterTable: afterTable, AfterID: afterID, Limit: batch})
				return err
			}); err != nil {
				send(rekeyPage{err: err})
				return
			}
			if len(rows) == 0 {
				send(rekeyPage{})
				return
			}
			out, err := p.resealWithKeys(ctx, envID, rows, from, to)
			if err != nil {
				send(rekeyPage{err: err})
				return
			}
			last := rows[len(rows)-1]
			full := len(rows) == batch
			if !send(rekeyPage{rows: out, afterTable: last.Table, afterID: last.ID, full: full}) || !full {
				return
			}
			afterTable, afterID = last.Table, last.ID
		}
	}()
	return pages, func() { cancel(); <-done }
}

// resealWithKeys re-seals a page under store keys derived for it and
// destroyed after it. Deriving them per page (from the cached EK: a hash,
// no unwrap) keeps what a lock does to the re-key: once the lock drops
// the environment's keys, the next page's derivation needs an unwrap, the
// revoked key refuses it, and nothing more is decrypted.
func (p *CMK) resealWithKeys(ctx context.Context, envID string, rows []*keyhold.RowRecord, from, to uint32) ([]*keyhold.RowRecord, error) {
	oldSK, err := p.storeKey(ctx, envID, from, keyhold.StoreRows)
	if err != nil {
		return nil, err
	}
	defer oldSK.Destroy()
	newSK, err := p.storeKey(ctx, envID, to, keyhold.StoreRows)
	if err != nil {
		return nil, err
	}
	defer newSK.Destroy()
	return resealPage(envID, rows, to, oldSK, newSK)
}

// resealPage opens every row of a page under oldSK and seals it under
// newSK as epoch to, at the same version, split over rekeyWorkers
// goroutines in contiguous runs. The records are copies (one allocation
// for the page); a row that fails its integrity check fails the page,
// permanently.
func resealPage(envID string, rows []*keyhold.RowRecord, to uint32, oldSK, newSK *crypt.StoreKey) ([]*keyhold.RowRecord, error) {
	recs := make([]keyhold.RowRecord, len(rows))
	out := make([]*keyhold.RowRecord, len(rows))
	// A goroutine is worth its start-up for a few dozen rows, not fewer.
	workers := max(1, min(rekeyWorkers, len(rows)/32))
	errs := make([]error, workers)
	run := func(w, lo, hi int) {
		for i := lo; i < hi; i++ {
			r := rows[i]
			item := rowItemID(r.Table, r.ID)
			pt, err := oldSK.Open(item, r.Version, r.Ciphertext)
			if err != nil {
				errs[w] = ops.Permanent(keyhold.Errorf(keyhold.CodeInternal,
					"row %q of table %q of environment %s failed its integrity check and can't be re-keyed: restore it from a backup or delete it, then link the environment again", r.ID, r.Table, envID).WithCause(err))
				return
			}
			ct, err := newSK.Seal(item, r.Version, pt)
			clear(pt)
			if err != nil {
				errs[w] = err
				return
			}
			recs[i] = *r
			recs[i].Epoch, recs[i].Ciphertext = to, ct
			out[i] = &recs[i]
		}
	}
	if workers == 1 {
		run(0, 0, len(rows))
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(w, w*len(rows)/workers, (w+1)*len(rows)/workers)
			}()
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
