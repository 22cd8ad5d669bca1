-- Durable operations (issue 4): link, unlink, swap, re-key and the like,
-- run step by step by a worker that leases them (package ops). Key columns
-- are COLLATE "C", as in 0001.
--
-- input and progress are the kind's JSON, kept as opaque bytes. lease_owner
-- is '' and lease_until the zero time while nobody holds the lease. version
-- is the optimistic-concurrency counter; a claim increments it too, so a
-- worker that lost its lease can't write the operation any more.

CREATE TABLE operations (
	id TEXT COLLATE "C" PRIMARY KEY,
	tenant_id TEXT COLLATE "C" NOT NULL,
	kind TEXT COLLATE "C" NOT NULL,
	target TEXT COLLATE "C" NOT NULL,
	state TEXT COLLATE "C" NOT NULL,
	step TEXT NOT NULL,
	input BYTEA NOT NULL,
	progress BYTEA NOT NULL,
	done BIGINT NOT NULL,
	total BIGINT NOT NULL,
	error_code TEXT NOT NULL,
	error_msg TEXT NOT NULL,
	attempts BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	finished_at BIGINT NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_until BIGINT NOT NULL,
	version BIGINT NOT NULL
);
-- At most one Running operation per target: two link operations racing for
-- one environment can't both start.
CREATE UNIQUE INDEX operations_one_running ON operations (target) WHERE state = 'Running';
-- The claim walks Running operations oldest first.
CREATE INDEX operations_claim ON operations (created_at, id) WHERE state = 'Running';
-- ListOperations, newest first, by tenant or by target.
CREATE INDEX operations_by_tenant ON operations (tenant_id, created_at, id);
CREATE INDEX operations_by_target ON operations (target, created_at, id);
CREATE INDEX operations_by_created ON operations (created_at, id);
