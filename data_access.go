package keyhold

import "context"

// DataAccess is what a data-plane request checks before it touches an
// environment's data, read in one query (DataAccessTx): the environment,
// whether the caller is one of its members, and the operation running on
// it, if any.
type DataAccess struct {
	Env *Environment
	// Member says the principal asked about is a member of Env.
	Member bool
	// RunningOpID and RunningOpKind name the operation running on Env
	// (at most one runs per environment); empty if none.
	RunningOpID, RunningOpKind string
}

// DataAccessTx reads a data-plane request's checks in one round trip. It
// exists for throughput (issue 12): the same answers from Environment,
// IsEnvironmentMember and ListOperations cost three queries per request.
type DataAccessTx interface {
	// DataAccess returns the environment (else CodeEnvironmentNotFound),
	// whether principalID is a member of it, and its running operation.
	// With forWrite it holds the environment's row until the transaction
	// ends, as EnvironmentForWrite does.
	DataAccess(ctx context.Context, envID, principalID string, forWrite bool) (*DataAccess, error)
}
