package keyhold

import "context"

// GroupCommitter is a Store that can commit many concurrent writes with
// one durable commit (issue 12): the data plane's row and file writes use
// it when the store offers it, and Update otherwise.
type GroupCommitter interface {
	// UpdateGrouped is Update, as the caller sees it: fn runs in a
	// read-write transaction, its changes are durable when UpdateGrouped
	// returns nil and rolled back when fn fails, and fn may run more than
	// once. The transaction is shared: fn runs inside a savepoint of it,
	// after the other writes queued before it and before those queued
	// after, so it sees their changes, and its own failure rolls back its
	// savepoint only. A failed commit fails every write of the batch; no
	// write is acknowledged before its commit is durable.
	UpdateGrouped(ctx context.Context, fn func(Tx) error) error
}
