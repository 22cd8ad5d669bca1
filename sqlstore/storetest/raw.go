package storetest

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
)

// Exec runs a statement on s's database directly, past Keyhold, as someone
// who can write the database but holds no master key would: tamper tests
// use it. Write it with ? placeholders; Exec rebinds them for PostgreSQL.
// It returns the number of rows changed, and fails the test on an error.
func Exec(t testing.TB, s keyhold.Store, query string, args ...any) int64 {
	t.Helper()
	ss, ok := s.(*sqlstore.Store)
	if !ok {
		t.Fatalf("storetest.Exec: %T is not a *sqlstore.Store", s)
	}
	if ss.Dialect().Numbered {
		query = sqlstore.Rebind(query)
	}
	res, err := ss.DB().ExecContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("storetest.Exec %q: %v", query, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Read returns what fn reads in a read transaction of s, and fails the
// test on an error: the one-line reads of stored records tests check.
func Read[T any](t testing.TB, s keyhold.Store, fn func(ctx context.Context, tx keyhold.Tx) (T, error)) T {
	t.Helper()
	var v T
	if err := s.View(context.Background(), func(tx keyhold.Tx) (err error) {
		v, err = fn(context.Background(), tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}
