-- Pre-migration run history (issue 16): the finished runs of flows that
-- moved to a customer-managed key at a link are not carried forward. They
-- are sealed under a fresh key per (environment, link), wrapped by the
-- platform key, readable by platform administrators until expires_at,
-- then crypto-shredded: the key row is deleted first, then the runs. The
-- runs have no foreign key to their key, so they outlive it for that
-- instant; the sweeper deletes runs whose key is gone.
CREATE TABLE flow_premigration_keys (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	partition_id TEXT NOT NULL,
	key_id TEXT NOT NULL,
	wrapped BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, partition_id)
) STRICT;
CREATE INDEX flow_premigration_keys_expiry ON flow_premigration_keys (expires_at);

CREATE TABLE flow_premigration_runs (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	partition_id TEXT NOT NULL,
	flow_id TEXT NOT NULL,
	id TEXT NOT NULL,
	status TEXT NOT NULL,
	trigger_name TEXT NOT NULL,
	started_at INTEGER NOT NULL,
	ended_at INTEGER NOT NULL,
	state_version INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	PRIMARY KEY (env_id, partition_id, flow_id, id)
) STRICT;
