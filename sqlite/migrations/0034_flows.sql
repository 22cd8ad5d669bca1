-- Cloud flows (issue 15). Definitions, run state, callback keys and
-- connection credentials are sealed (the sealed columns); the rest is what
-- listing, leasing and scheduling need. Each sealed item records the epoch
-- it was sealed under (0: the platform key's partition).
CREATE TABLE flows (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	id TEXT NOT NULL,
	display_name TEXT NOT NULL,
	state TEXT NOT NULL,
	solution_id TEXT NOT NULL,
	trigger_name TEXT NOT NULL,
	trigger_type TEXT NOT NULL,
	trigger_kind TEXT NOT NULL,
	created_by TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, id)
) STRICT;

CREATE TABLE flow_runs (
	env_id TEXT NOT NULL,
	flow_id TEXT NOT NULL,
	id TEXT NOT NULL,
	status TEXT NOT NULL,
	trigger_name TEXT NOT NULL,
	parent_run_id TEXT NOT NULL,
	depth INTEGER NOT NULL,
	started_at INTEGER NOT NULL,
	ended_at INTEGER NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_until INTEGER NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	state_version INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, flow_id, id),
	FOREIGN KEY (env_id, flow_id) REFERENCES flows (env_id, id) ON DELETE CASCADE
) STRICT;
-- Engines look for runs to claim; listings are newest first.
CREATE INDEX flow_runs_runnable ON flow_runs (status, lease_until);
CREATE INDEX flow_runs_by_start ON flow_runs (env_id, flow_id, started_at);
CREATE INDEX flow_runs_by_end ON flow_runs (ended_at);

CREATE TABLE flow_schedules (
	env_id TEXT NOT NULL,
	flow_id TEXT NOT NULL,
	next_slot INTEGER NOT NULL,
	last_slot INTEGER NOT NULL,
	PRIMARY KEY (env_id, flow_id),
	FOREIGN KEY (env_id, flow_id) REFERENCES flows (env_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX flow_schedules_due ON flow_schedules (next_slot);

CREATE TABLE flow_keys (
	env_id TEXT NOT NULL,
	flow_id TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, flow_id),
	FOREIGN KEY (env_id, flow_id) REFERENCES flows (env_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE flow_connections (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	api TEXT NOT NULL,
	name TEXT NOT NULL,
	display_name TEXT NOT NULL,
	kind TEXT NOT NULL,
	principal_id TEXT NOT NULL,
	created_by TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, api, name)
) STRICT;
