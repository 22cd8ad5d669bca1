-- Cloud flows (issue 15). Definitions, run state, callback keys and
-- connection credentials are sealed (the sealed columns); the rest is what
-- listing, leasing and scheduling need. Each sealed item records the epoch
-- it was sealed under (0: the platform key's partition).
CREATE TABLE flows (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	id TEXT COLLATE "C" NOT NULL,
	display_name TEXT COLLATE "C" NOT NULL,
	state TEXT COLLATE "C" NOT NULL,
	solution_id TEXT COLLATE "C" NOT NULL,
	trigger_name TEXT COLLATE "C" NOT NULL,
	trigger_type TEXT COLLATE "C" NOT NULL,
	trigger_kind TEXT COLLATE "C" NOT NULL,
	created_by TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	sealed BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, id)
);

CREATE TABLE flow_runs (
	env_id TEXT COLLATE "C" NOT NULL,
	flow_id TEXT COLLATE "C" NOT NULL,
	id TEXT COLLATE "C" NOT NULL,
	status TEXT COLLATE "C" NOT NULL,
	trigger_name TEXT COLLATE "C" NOT NULL,
	parent_run_id TEXT COLLATE "C" NOT NULL,
	depth BIGINT NOT NULL,
	started_at BIGINT NOT NULL,
	ended_at BIGINT NOT NULL,
	lease_owner TEXT COLLATE "C" NOT NULL,
	lease_until BIGINT NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	state_version BIGINT NOT NULL,
	sealed BYTEA NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, flow_id, id),
	FOREIGN KEY (env_id, flow_id) REFERENCES flows (env_id, id) ON DELETE CASCADE
);
-- Engines look for runs to claim; listings are newest first.
CREATE INDEX flow_runs_runnable ON flow_runs (status, lease_until);
CREATE INDEX flow_runs_by_start ON flow_runs (env_id, flow_id, started_at);
CREATE INDEX flow_runs_by_end ON flow_runs (ended_at);

CREATE TABLE flow_schedules (
	env_id TEXT COLLATE "C" NOT NULL,
	flow_id TEXT COLLATE "C" NOT NULL,
	next_slot BIGINT NOT NULL,
	last_slot BIGINT NOT NULL,
	PRIMARY KEY (env_id, flow_id),
	FOREIGN KEY (env_id, flow_id) REFERENCES flows (env_id, id) ON DELETE CASCADE
);
CREATE INDEX flow_schedules_due ON flow_schedules (next_slot);

CREATE TABLE flow_keys (
	env_id TEXT COLLATE "C" NOT NULL,
	flow_id TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	sealed BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, flow_id),
	FOREIGN KEY (env_id, flow_id) REFERENCES flows (env_id, id) ON DELETE CASCADE
);

CREATE TABLE flow_connections (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	api TEXT COLLATE "C" NOT NULL,
	name TEXT COLLATE "C" NOT NULL,
	display_name TEXT COLLATE "C" NOT NULL,
	kind TEXT COLLATE "C" NOT NULL,
	principal_id TEXT COLLATE "C" NOT NULL,
	created_by TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	sealed BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, api, name)
);
