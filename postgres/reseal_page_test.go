package postgres_test

import (
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestResealPageRows: a PostgreSQL store asks for re-key pages of one
// statement's worth of rows (its pages lock only their own rows; shorter
// ones mostly pay for round trips, docs/benchmarks.md).
func TestResealPageRows(t *testing.T) {
	s := storetest.OpenPostgres(t)
	var got int
	if err := s.View(t.Context(), func(tx keyhold.Tx) error { got = tx.ResealPageRows(); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != sqlstore.MaxBatchRows {
		t.Errorf("ResealPageRows = %d, want %d", got, sqlstore.MaxBatchRows)
	}
}
