package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold"
)

var _ keyhold.PointReader = (*Store)(nil)

// rowQuery is Tx.Row's statement, which PointRow shares (and so its
// prepared statement).
const rowQuery = `SELECT ` + rowCols + ` FROM data_rows WHERE env_id = ? AND table_name = ? AND id = ?`

// PointRow reads a row in one statement on the read pool, outside any
// transaction (keyhold.PointReader), or returns CodeRowNotFound. It counts
// in Queries as a transaction's statement does, and in Transactions not
// at all. The connection is taken under ctx; the statement runs under ctx
// too unless the dialect's PointReadsUncancelled says it can't wait long.
func (s *Store) PointRow(ctx context.Context, envID, table, id string) (*keyhold.RowRecord, error) {
	conn, err := s.read.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: get row: %w", s.d.Name, err)
	}
	defer conn.Close()
	qctx := ctx
	if s.d.PointReadsUncancelled {
		qctx = context.WithoutCancel(ctx)
	}
	s.queries.Add(1)
	r, err := scanRow(conn.QueryRowContext(qctx, s.q(rowQuery), envID, table, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, rowNotFound(envID, table, id)
	} else if err != nil {
		return nil, fmt.Errorf("%s: get row: %w", s.d.Name, err)
	}
	return r, nil
}
