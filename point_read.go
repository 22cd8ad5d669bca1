package keyhold

import "context"

// PointReader is a Store that reads one row in one statement of its own,
// outside any transaction (issue 12). A GET whose read access is already
// cached (platform's access cache) needs nothing else from the store: a
// transaction around the one statement cost its BEGIN and COMMIT and, on
// SQLite, a goroutine each for database/sql and the driver to watch the
// request's context (docs/benchmarks.md, "GET at 16 clients against a
// bare handler").
type PointReader interface {
	// PointRow is Tx.Row as a statement of its own: its answer is as of
	// that statement's snapshot. ctx bounds the wait for a connection;
	// where the store says such a read can't wait long (SQLite: a
	// primary-key lookup in a local file, lock waits bounded by its busy
	// timeout) the statement runs to its end without watching ctx.
	PointRow(ctx context.Context, envID, table, id string) (*RowRecord, error)
}
