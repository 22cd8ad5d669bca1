// Package sqlstore implements keyhold.Store once, over database/sql, for
// every SQL backend. A small Dialect carries what differs between databases:
// the placeholder style, how to read a driver's errors, and the transaction
// options. The sqlite and postgres packages open a database, run their
// embedded migrations and hand the *sql.DB to New; the conformance suite in
// sqlstore/storetest runs against both.
//
// # Representation
//
// Timestamps are stored as INTEGER (BIGINT) Unix nanoseconds in UTC, so they
// round-trip exactly and compare the same way on every backend; the zero
// time is stored as math.MinInt64 (zeroNanos), so time columns stay NOT
// NULL and sort the same on both. Byte strings are BLOB in SQLite and BYTEA in
// PostgreSQL, both read and written as []byte. The store never looks inside
// ciphertext, wrapped keys or sealed keys, and never puts them in an error.
//
// # Concurrency
//
// A Store is safe for concurrent use; a keyhold.Tx is not, and is valid only
// inside the View or Update call that made it. Update runs fn again (five
// attempts in all) when the database reports a transient failure: a busy or
// locked SQLite database, or a PostgreSQL serialization failure (40001) or
// deadlock (40P01); if every attempt fails so, it returns CodeConflict.
// Writes that lose an optimistic-concurrency race (a stale version, an
// existing key) return CodeConflict at once.
//
// fn must pass errors from the Tx up, wrapped or not (Update looks for the
// driver's error in the chain to decide whether to retry).
//
// After a write returns an error other than CodeConflict, fn should return
// that error: on PostgreSQL a failed statement aborts the whole transaction.
// Not-found answers and conflicts never abort it.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
)

// ErrorClass is what a Dialect says a database error means.
type ErrorClass int

// Error classes.
const (
	// ErrOther is any error the store does not handle specially.
	ErrOther ErrorClass = iota
	// ErrUnique is a unique or primary-key violation.
	ErrUnique
	// ErrForeignKey is a foreign-key violation: the parent row is missing.
	ErrForeignKey
	// ErrRetry is a transient failure after which the whole transaction
	// may be run again: SQLITE_BUSY, SQLITE_LOCKED, or PostgreSQL's
	// serialization failure or deadlock.
	ErrRetry
)

// Dialect describes what differs between SQL databases. Queries are written
// once, with ? placeholders.
type Dialect struct {
	// Name names the backend in errors, e.g. "sqlite" or "postgres".
	Name string
	// Numbered says the driver wants $1, $2, … instead of ?.
	Numbered bool
	// Classify says what a driver error (anywhere in err's chain) means.
	Classify func(err error) ErrorClass
	// SkipLocked is appended to a SELECT that picks one row to claim, so
	// that concurrent claimers pass over rows another transaction holds
	// (" FOR UPDATE SKIP LOCKED" on PostgreSQL). Empty where writes are
	// serialized anyway (SQLite has a single writer and no row locks).
	SkipLocked string
	// ForShare is appended to a SELECT of a row that must not change
	// until the transaction ends (" FOR SHARE" on PostgreSQL). Empty
	// where writes are serialized anyway.
	ForShare string
	// Arrays says the driver takes Go slices ([]string, []int64,
	// [][]byte) as SQL arrays and the database has unnest (PostgreSQL):
	// batch statements then send a page of rows as one array per column
	// (batch.go), not one placeholder per value.
	Arrays bool
	// ResealPage is the rows of a re-key page (Tx.ResealPageRows), 0 for
	// the caller's default.
	ResealPage int
	// ReadTx and WriteTx are the options of View and Update transactions.
	ReadTx, WriteTx sql.TxOptions
	// GroupCommit makes UpdateGrouped group concurrent writes into one
	// transaction (group.go). It pays where the database commits one
	// transaction at a time (SQLite: one fsync per commit); PostgreSQL
	// already shares its WAL flushes between concurrent commits, and
	// grouped writes would only wait for each other on one connection,
	// so there UpdateGrouped is Update.
	GroupCommit bool
	// PointReadsUncancelled runs PointRow's statement without the
	// caller's cancellation (the wait for a connection still has it),
	// so that neither database/sql nor the driver starts a goroutine to
	// watch the context. Only where such a read can't wait long:
	// SQLite's, a primary-key lookup in a local file whose lock waits
	// the busy timeout bounds (WAL readers don't wait for the writer).
	PointReadsUncancelled bool
}

// maxAttempts bounds how many times Update runs fn when the database asks
// for a retry.
const maxAttempts = 5

// Store is a keyhold.Store over database/sql. It is safe for concurrent use.
type Store struct {
	read  *sql.DB
	write *sql.DB
	d     Dialect
	// rebound caches queries rewritten to numbered placeholders.
	rebound sync.Map // string -> string
	// access seals and checks access records (see access.go); nil
	// until SetRecordSealer.
	access atomic.Pointer[accessSealer]
	// queries counts the statements transactions have run (Queries).
	queries atomic.Int64
	// views counts the View transactions begun (Views).
	views atomic.Int64
	// groupState is the committer of UpdateGrouped (group.go).
	groupState
	// roleGen counts committed transactions that changed directory
	// roles (keyhold.RoleGenerations).
	roleGen atomic.Uint64
	// accessGen counts the starts and the ends of transactions that
	// change what a data-plane access check reads
	// (keyhold.AccessGenerations): it moves when such a transaction runs
	// its first such statement, before it can commit, and again once it
	// has committed or rolled back. accessBusy counts those between the
	// two. It starts at 1: 0 is the generation that is never cached.
	accessGen  atomic.Uint64
	accessBusy atomic.Int64
}

var _ keyhold.Store = (*Store)(nil)

// New returns a Store that runs View transactions on read and Update
// transactions on write. They may be the same *sql.DB. The Store owns both
// and closes them in Close. The schema must already be migrated.
func New(read, write *sql.DB, d Dialect) *Store {
	if d.Classify == nil {
		d.Classify = func(error) ErrorClass { return ErrOther }
	}
	s := &Store{read: read, write: write, d: d}
	s.accessGen.Store(1)
	return s
}

// accessSnapshot is the access generation a transaction beginning now
// reports: the store's, or 0 (never cached) while a transaction that
// changes access is between its first such statement and its end. A
// check run then may read the state from before a change that commits
// a moment later, and an answer cached from it would hold after the
// commit until the end's bump; 0 keeps it out of the caches. The
// generation is read before the busy count, and a writer counts itself
// busy before it moves the generation (beginAccess), so a snapshot that
// sees a writer's start also sees it busy.
func (s *Store) accessSnapshot() uint64 {
	g := s.accessGen.Load()
	if s.accessBusy.Load() > 0 {
		return 0
	}
	return g
}

// q returns query in the dialect's placeholder style.
func (s *Store) q(query string) string {
	if !s.d.Numbered {
		return query
	}
	if r, ok := s.rebound.Load(query); ok {
		return r.(string)
	}
	r := Rebind(query)
	s.rebound.Store(query, r)
	return r
}

// DB returns the database that Update transactions use (for SQLite, its
// single-connection write pool; for PostgreSQL, the only pool). It is meant
// for backend-specific work such as LISTEN/NOTIFY, and for tests.
func (s *Store) DB() *sql.DB { return s.write }

// ReadDB returns the database that View transactions use. It is DB() when
// the backend has a single pool.
func (s *Store) ReadDB() *sql.DB { return s.read }

// Queries returns how many statements the store's transactions have run
// since it opened (not counting BEGIN and COMMIT), and the statements
// PointRow ran outside any. The tests use it to pin
// how many queries a request costs.
func (s *Store) Queries() int64 { return s.queries.Load() }

// Views returns how many View transactions the store has begun since it
// opened. The tests use it to show that a cached GET runs none (PointRow).
func (s *Store) Views() int64 { return s.views.Load() }

var _ keyhold.AccessGenerations = (*Store)(nil)

// AccessGeneration returns how many transactions that changed what a
// data-plane access check reads (tx.writesAccess) this store has
// committed (keyhold.AccessGenerations).
func (s *Store) AccessGeneration() uint64 { return s.accessGen.Load() }

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.d }

// Close closes the databases.
func (s *Store) Close() error {
	s.stopCommitter()
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	// A transaction whose context is cancelled while it runs (a request
	// or a loop stopped by shutdown) is rolled back, and its connection
	// closed, by database/sql in that transaction's own goroutine: that
	// close can come after DB.Close returns. On SQLite the last close
	// checkpoints the WAL into the database file, so the files would
	// still change after Close. Wait, bounded, for every connection to be
	// closed: when Close returns, a restart, a copy of the data directory
	// or `keyhold doctor` sees the files as final.
	waitClosed(s.write, 5*time.Second)
	waitClosed(s.read, 5*time.Second)
	return err
}

// waitClosed waits up to limit for db to have no open connection (a
// closed DB's count falls as each connection finishes closing).
func waitClosed(db *sql.DB, limit time.Duration) {
	for end := time.Now().Add(limit); db.Stats().OpenConnections > 0 && time.Now().Before(end); {
		time.Sleep(2 * time.Millisecond)
	}
}

// View runs fn in a read-only transaction. Writes inside it fail.
func (s *Store) View(ctx context.Context, fn func(keyhold.Tx) error) error {
	// Refused records are reported after the transaction has ended (the
	// deferred calls run last first), so that the report may write.
	t := &tx{s: s, roleGen: s.roleGen.Load(), accessGen: s.accessSnapshot()}
	defer t.reportRefused(ctx)
	s.views.Add(1)
	sqlTx, err := s.read.BeginTx(ctx, &s.d.ReadTx)
	if err != nil {
		return fmt.Errorf("%s: begin read transaction: %w", s.d.Name, err)
	}
	defer sqlTx.Rollback()
	t.tx = sqlTx
	if err := fn(t); err != nil {
		return err
	}
	// Committing a read-only transaction ends it cleanly; nothing is written.
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("%s: end read transaction: %w", s.d.Name, err)
	}
	return nil
}

// Update runs fn in a read-write transaction and commits it if fn returns
// nil. When the database reports a transient failure (see ErrRetry) the
// transaction is rolled back and fn runs again, after a short randomised
// backoff, up to maxAttempts times in all; if the last attempt fails too,
// Update returns CodeConflict with the database's error as the cause.
func (s *Store) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			// 1–2 ms, 2–4 ms, 4–8 ms, 8–16 ms: enough for the
			// winner of a race to commit, short enough not to matter.
			d := time.Millisecond << (attempt - 1)
			d += rand.N(d)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		err = s.update(ctx, fn)
		if err == nil || s.d.Classify(err) != ErrRetry || ctx.Err() != nil {
			return err
		}
	}
	// Every attempt lost to concurrent transactions: to the caller that is
	// a lost race like any other, to be answered by reading again.
	return keyhold.Errorf(keyhold.CodeConflict,
		"the change conflicted with concurrent changes %d times in a row: retry it", maxAttempts).WithCause(err)
}

func (s *Store) update(ctx context.Context, fn func(keyhold.Tx) error) error {
	t := &tx{s: s, roleGen: s.roleGen.Load(), accessGen: s.accessSnapshot()}
	defer t.reportRefused(ctx) // after the rollback: see View
	sqlTx, err := s.write.BeginTx(ctx, &s.d.WriteTx)
	if err != nil {
		return fmt.Errorf("%s: begin transaction: %w", s.d.Name, err)
	}
	defer t.endAccess() // after the rollback, if fn failed
	defer sqlTx.Rollback()
	t.tx = sqlTx
	if err := fn(t); err != nil {
		return err
	}
	err = sqlTx.Commit()
	// Even if the commit failed: it may have committed all the same
	// (a connection lost after COMMIT), and a stale access cache costs
	// more than a refill.
	t.endAccess()
	if err != nil {
		return fmt.Errorf("%s: commit: %w", s.d.Name, err)
	}
	if t.rolesChanged {
		s.roleGen.Add(1)
	}
	return nil
}

// Rebind rewrites ? placeholders as $1, $2, …. Queries here never hold a
// literal question mark, so no quoting rules apply.
func Rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
