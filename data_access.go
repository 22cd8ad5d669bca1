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

// RoleGenerations is a Tx that says which changes of directory roles its
// snapshot includes: the count of committed transactions that changed
// roles, in this process, when the transaction began. A cache of roles
// filled in a transaction of generation g is stale once a later
// transaction shows a greater one. Changes made by other processes (other
// replicas) don't count: a cache must also bound its entries' age.
type RoleGenerations interface {
	RoleGeneration() uint64
}

// AccessGenerations is a Store, or a Tx, that counts the committed
// transactions, in this process, that changed anything a data-plane
// access check reads: environments, their members and operations,
// directory roles, a BYOK tenant's state. A Store answers its count now;
// a Tx, the count when it began. An answer cached from a transaction of
// generation g is stale once a later transaction shows a greater one, so
// a cache of access answers sees this process's changes (a lock, a
// member removed) from the next request on. Changes made by other
// processes (other replicas) don't count: such a cache must also bound
// its entries' age and drop them on the replicas' broadcasts.
type AccessGenerations interface {
	AccessGeneration() uint64
}
