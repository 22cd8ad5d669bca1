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

// AccessGenerations is a Store, or a Tx, that counts the transactions,
// in this process, that change anything a data-plane access check reads:
// environments, their members and operations, directory roles, a BYOK
// tenant's state. The count moves twice for each: at its first such
// statement, before it can commit, and again once it has committed or
// rolled back. A Store answers its count now (never 0); a Tx, the count
// when it began, or 0 if such a change was in flight then: an answer
// checked in it may predate a change about to commit, and is never
// cached. An answer cached from a transaction of generation g is stale
// once the Store shows another, so a cache of access answers can't
// answer anyone who has seen this process's change (a lock, a member
// removed) committed. Changes made by other
// processes (other replicas) don't count: such a cache must also bound
// its entries' age and drop them on the replicas' broadcasts.
type AccessGenerations interface {
	AccessGeneration() uint64
}
