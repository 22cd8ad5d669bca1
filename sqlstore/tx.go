package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold"
)

// tx is a keyhold.Tx over one *sql.Tx.
type tx struct {
	s  *Store
	tx *sql.Tx
	// refused collects the access records reads passed over because
	// their seals failed, reported when the transaction ends.
	refused []keyhold.RefusedRecord
	// ctx, if set, replaces the context of every statement: a grouped
	// write's statements run under the committer's (group.go).
	ctx context.Context
	// roleGen is the store's role generation when the transaction began
	// (RoleGeneration); rolesChanged says it wrote directory roles.
	roleGen      uint64
	rolesChanged bool
	// accessGen is the store's access generation when the transaction
	// began (AccessGeneration); accessChanged says it ran a statement
	// that writes a table a data-plane access check reads (writesAccess).
	accessGen     uint64
	accessChanged bool
	accessEnded   bool
}

var _ keyhold.RoleGenerations = (*tx)(nil)

// RoleGeneration returns how many transactions that changed directory
// roles this store had committed when the transaction began
// (keyhold.RoleGenerations).
func (t *tx) RoleGeneration() uint64 { return t.roleGen }

var _ keyhold.AccessGenerations = (*tx)(nil)

// AccessGeneration returns the store's access generation when the
// transaction began, or 0 if a change to access was in flight then
// (keyhold.AccessGenerations, Store.accessSnapshot).
func (t *tx) AccessGeneration() uint64 { return t.accessGen }

// accessTables name the tables whose contents a data-plane access check
// reads (the environment, its members and operations, directory roles,
// a BYOK tenant's state and keys) or whose deletes cascade into them
// (tenants, principals, user accounts). A statement that names one is
// taken to change access: a false alarm costs a cache refill, a miss
// would serve a stale answer, so the test is by name, not by intent.
var accessTables = [...]string{"environment", "operations", "byok_", "directory_roles", "principals", "tenants", "user_accounts"}

// writesAccess says whether query, run in a transaction, may change what
// a data-plane access check reads: any statement but a SELECT that names
// one of accessTables.
func writesAccess(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	if len(q) >= 6 && strings.EqualFold(q[:6], "SELECT") {
		return false
	}
	for _, name := range accessTables {
		if strings.Contains(query, name) {
			return true
		}
	}
	return false
}

// note records what a statement about to run may change.
func (t *tx) note(query string) {
	t.s.queries.Add(1)
	if !t.accessChanged && writesAccess(query) {
		t.accessChanged = true
		t.beginAccess()
	}
}

// beginAccess counts the transaction as changing access from its first
// such statement on, before it can commit: busy first, then the
// generation (see Store.accessSnapshot). Every cached access answer
// ends here, so a reader that sees the change once committed can't be
// answered from one.
func (t *tx) beginAccess() {
	t.s.accessBusy.Add(1)
	t.s.accessGen.Add(1)
}

// endAccess, once the transaction has committed or rolled back, moves
// the generation again and counts it no longer busy (a no-op for a
// transaction that changed no access, and after the first call).
func (t *tx) endAccess() {
	if !t.accessChanged || t.accessEnded {
		return
	}
	t.accessEnded = true
	t.s.accessGen.Add(1)
	t.s.accessBusy.Add(-1)
}

var _ keyhold.Tx = (*tx)(nil)

func (t *tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t.note(query)
	if t.ctx != nil {
		ctx = t.ctx
	}
	return t.tx.ExecContext(ctx, t.s.q(query), args...)
}

func (t *tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t.note(query)
	if t.ctx != nil {
		ctx = t.ctx
	}
	return t.tx.QueryContext(ctx, t.s.q(query), args...)
}

func (t *tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	t.note(query)
	if t.ctx != nil {
		ctx = t.ctx
	}
	return t.tx.QueryRowContext(ctx, t.s.q(query), args...)
}

// class says what a database error means.
func (t *tx) class(err error) ErrorClass { return t.s.d.Classify(err) }

// fail wraps an unexpected database error with the operation's name. The
// cause keeps the driver's error (for retry decisions and the server log);
// driver messages name columns and keys, never the values of byte columns.
func (t *tx) fail(op string, err error) error {
	return fmt.Errorf("%s: %s: %w", t.s.d.Name, op, err)
}

// execN runs a statement and returns the number of rows it changed.
func (t *tx) execN(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// exists reports whether query returns a row.
func (t *tx) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var one int
	err := t.queryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// get runs a single-row query. A missing row is sql.ErrNoRows, returned
// as is so that the caller can answer with its own not-found error; other
// failures are wrapped.
func get[T any](t *tx, ctx context.Context, op string, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(t.queryRow(ctx, query, args...))
	if err != nil {
		var zero T
		if errors.Is(err, sql.ErrNoRows) {
			return zero, sql.ErrNoRows
		}
		return zero, t.fail(op, err)
	}
	return v, nil
}

// notFound returns e if err is sql.ErrNoRows, and err otherwise.
func notFound(err error, e *keyhold.Error) error {
	if err == sql.ErrNoRows {
		return e
	}
	return err
}

// list runs a query and scans every row. It returns an empty, non-nil slice
// when nothing matches, so that callers encode [] rather than null.
func list[T any](t *tx, ctx context.Context, op string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return nil, t.fail(op, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, t.fail(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, t.fail(op, err)
	}
	return out, nil
}

// clampLimit applies a list's default and maximum page size.
func clampLimit(n, def, max int) int {
	switch {
	case n <= 0:
		return def
	case n > max:
		return max
	}
	return n
}

// where joins conditions with AND, or returns "" for none.
func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	s := " WHERE " + conds[0]
	for _, c := range conds[1:] {
		s += " AND " + c
	}
	return s
}
