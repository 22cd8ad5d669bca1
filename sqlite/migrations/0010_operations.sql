-- Durable operations (issue 4): link, unlink, swap, re-key and the like,
-- run step by step by a worker that leases them (package ops).
--
-- input and progress are the kind's JSON, kept as opaque bytes. lease_owner
-- is '' and lease_until the zero time while nobody holds the lease. version
-- is the optimistic-concurrency counter; a claim increments it too, so a
-- worker that lost its lease can't write the operation any more.

CREATE TABLE operations (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	target TEXT NOT NULL,
	state TEXT NOT NULL,
	step TEXT NOT NULL,
	input BLOB NOT NULL,
	progress BLOB NOT NULL,
	done INTEGER NOT NULL,
	total INTEGER NOT NULL,
	error_code TEXT NOT NULL,
	error_msg TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	finished_at INTEGER NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_until INTEGER NOT NULL,
	version INTEGER NOT NULL
) STRICT;
-- At most one Running operation per target: two link operations racing for
-- one environment can't both start.
CREATE UNIQUE INDEX operations_one_running ON operations (target) WHERE state = 'Running';
-- The claim walks Running operations oldest first.
CREATE INDEX operations_claim ON operations (created_at, id) WHERE state = 'Running';
-- ListOperations, newest first, by tenant or by target.
CREATE INDEX operations_by_tenant ON operations (tenant_id, created_at, id);
CREATE INDEX operations_by_target ON operations (target, created_at, id);
CREATE INDEX operations_by_created ON operations (created_at, id);
