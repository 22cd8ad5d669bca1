package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
)

// maxBatch bounds how many queued writes one group commit takes. A batch
// holds SQLite's write lock while its writes run one after another, so an
// unbounded one would make the last write wait for all of them.
const maxBatch = 128

// savepoint is the name of each grouped write's savepoint. Writes run one
// at a time and each releases its savepoint before the next one starts,
// so one name is enough (and the statements stay three in the cache).
const savepoint = "keyhold_write"

var _ keyhold.GroupCommitter = (*Store)(nil)

// errClosed answers a grouped write after Close.
var errClosed = errors.New("sqlstore: the store is closed")

// groupWrite is one UpdateGrouped call waiting for its batch.
type groupWrite struct {
	ctx      context.Context
	fn       func(keyhold.Tx) error
	done     chan error
	attempts int
}

// committer runs grouped writes: one goroutine per store, which takes
// every write queued (up to maxBatch) while the previous batch committed,
// runs each in its own savepoint of one transaction, commits once, and
// then answers each write with its own result.
type committer struct {
	queue chan *groupWrite
	stop  chan struct{}
	done  chan struct{}
}

// UpdateGrouped runs fn in a transaction shared with other concurrent
// grouped writes and returns once the transaction's commit is durable
// (keyhold.GroupCommitter). Where the dialect doesn't group commits
// (Dialect.GroupCommit) it is Update. Only the store's writes that are small and
// many (the data plane's) should use it: a slow fn delays its batch.
//
// fn's statements run under the committer's context, not ctx: on SQLite
// an interrupted write rolls back the whole transaction, and with it the
// other writes of the batch. A write whose ctx ends before its turn is not
// run (UpdateGrouped then returns ctx's error); one whose ctx ends later
// may still commit, as any write whose client goes away after sending it.
func (s *Store) UpdateGrouped(ctx context.Context, fn func(keyhold.Tx) error) error {
	if !s.d.GroupCommit && !s.forceGroup.Load() {
		return s.Update(ctx, fn)
	}
	c := s.startCommitter()
	if c == nil {
		return errClosed
	}
	w := &groupWrite{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case c.queue <- w:
	case <-c.stop:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the answer even if ctx ends: fn may be
	// running on the committer, and its caller's variables must not be
	// released under it. The wait is one batch at most; a write whose
	// ctx has ended before its turn is not run.
	select {
	case err := <-w.done:
		return err
	case <-c.done:
		// The committer ended; it answers every write it took first.
		select {
		case err := <-w.done:
			return err
		default:
			return errClosed
		}
	}
}

func (s *Store) startCommitter() *committer {
	s.groupOnce.Do(func() {
		c := &committer{queue: make(chan *groupWrite, maxBatch), stop: make(chan struct{}), done: make(chan struct{})}
		s.group.Store(c)
		go s.commitLoop(c)
	})
	return s.group.Load()
}

// stopCommitter ends the committer after its current batch; writes still
// queued are answered with errClosed.
func (s *Store) stopCommitter() {
	s.groupOnce.Do(func() {}) // no committer may start after this
	c := s.group.Load()
	if c == nil {
		return
	}
	close(c.stop)
	<-c.done
}

func (s *Store) commitLoop(c *committer) {
	defer close(c.done)
	for {
		var batch []*groupWrite
		select {
		case w := <-c.queue:
			batch = append(batch, w)
		case <-c.stop:
			for {
				select {
				case w := <-c.queue:
					w.done <- errClosed
				default:
					return
				}
			}
		}
	take:
		for len(batch) < maxBatch {
			select {
			case w := <-c.queue:
				batch = append(batch, w)
			default:
				break take
			}
		}
		for len(batch) > 0 {
			batch = s.runBatch(batch)
			if len(batch) > 0 {
				// Writes that met a transient failure run again in a
				// batch of their own, after Update's backoff.
				d := time.Millisecond << min(batch[0].attempts-1, 4)
				time.Sleep(d)
			}
		}
	}
}

// runBatch runs a batch in one transaction and answers each write. It
// returns the writes to run again (a transient failure, within their
// attempts).
func (s *Store) runBatch(batch []*groupWrite) (again []*groupWrite) {
	ctx := context.Background()
	results := make([]error, len(batch))
	ran := make([]bool, len(batch))
	txs := make([]*tx, len(batch))
	retry := func(i int, err error) {
		batch[i].attempts++
		if s.d.Classify(err) == ErrRetry && batch[i].attempts < maxAttempts {
			again = append(again, batch[i])
			ran[i] = false
			return
		}
		if s.d.Classify(err) == ErrRetry {
			err = keyhold.Errorf(keyhold.CodeConflict,
				"the change conflicted with concurrent changes %d times in a row: retry it", maxAttempts).WithCause(err)
		}
		results[i] = err
		ran[i] = true
	}
	roleGen, accessGen := s.roleGen.Load(), s.accessSnapshot()
	sqlTx, err := s.write.BeginTx(ctx, &s.d.WriteTx)
	if err != nil {
		for i := range batch {
			retry(i, fmt.Errorf("%s: begin transaction: %w", s.d.Name, err))
		}
		s.answer(batch, results, ran, txs)
		return again
	}
	defer sqlTx.Rollback()
	broken := error(nil)
	for i, w := range batch {
		if broken != nil {
			retry(i, broken)
			continue
		}
		if err := w.ctx.Err(); err != nil {
			results[i], ran[i] = err, true
			continue
		}
		if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT "+savepoint); err != nil {
			broken = fmt.Errorf("%s: savepoint: %w", s.d.Name, err)
			retry(i, broken)
			continue
		}
		t := &tx{s: s, tx: sqlTx, ctx: ctx, roleGen: roleGen, accessGen: accessGen}
		txs[i] = t
		if err := w.fn(t); err != nil {
			// Undo this write only; the savepoint stays until
			// released, so release it too.
			if _, rerr := sqlTx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+savepoint); rerr != nil {
				broken = fmt.Errorf("%s: roll back to savepoint: %w", s.d.Name, rerr)
			} else if _, rerr := sqlTx.ExecContext(ctx, "RELEASE SAVEPOINT "+savepoint); rerr != nil {
				broken = fmt.Errorf("%s: release savepoint: %w", s.d.Name, rerr)
			}
			retry(i, err)
			continue
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE SAVEPOINT "+savepoint); err != nil {
			broken = fmt.Errorf("%s: release savepoint: %w", s.d.Name, err)
			retry(i, broken)
			continue
		}
		ran[i] = true // committed below, or failed with the commit
	}
	defer s.commits.Add(1)
	var commitErr error
	if broken != nil {
		// The transaction can't be trusted: commit none of it. Every
		// write not yet answered failed above and runs again.
		commitErr = broken
	} else if err := sqlTx.Commit(); err != nil {
		commitErr = fmt.Errorf("%s: commit: %w", s.d.Name, err)
	}
	// A write that changed access, committed or not (see update), ends
	// its change before any write is answered.
	for _, t := range txs {
		if t != nil {
			t.endAccess()
		}
	}
	if commitErr == nil {
		for i, t := range txs {
			if t != nil && t.rolesChanged && results[i] == nil {
				s.roleGen.Add(1)
				break
			}
		}
	}
	if commitErr != nil {
		for i := range batch {
			if ran[i] && results[i] == nil && batch[i].ctx.Err() == nil {
				retry(i, commitErr)
			}
		}
	}
	s.answer(batch, results, ran, txs)
	return again
}

// answer sends each write that ran its result and reports the access
// records its reads refused, now that the transaction has ended.
func (s *Store) answer(batch []*groupWrite, results []error, ran []bool, txs []*tx) {
	for i, w := range batch {
		if !ran[i] {
			continue
		}
		if txs[i] != nil {
			txs[i].reportRefused(w.ctx)
		}
		w.done <- results[i]
	}
}

// groupState is the Store's committer, started by the first grouped write.
type groupState struct {
	groupOnce sync.Once
	group     atomic.Pointer[committer]
	// commits counts the batches committed or failed (GroupCommits).
	commits atomic.Int64
	// forceGroup groups writes whatever the dialect says (SetGroupCommit).
	forceGroup atomic.Bool
}

// SetGroupCommit makes UpdateGrouped group writes even where the dialect
// doesn't (Dialect.GroupCommit), or stops forcing it. The tests use it to
// run group commit on PostgreSQL as well.
func (s *Store) SetGroupCommit(on bool) { s.forceGroup.Store(on) }

// GroupCommits returns how many batches of grouped writes have ended (each
// in one commit, or one failed transaction) since the store opened: with
// the writes' count, the mean batch size.
func (s *Store) GroupCommits() int64 { return s.commits.Load() }

// QueuedWrites returns how many grouped writes wait for the committer.
func (s *Store) QueuedWrites() int {
	c := s.group.Load()
	if c == nil {
		return 0
	}
	return len(c.queue)
}
