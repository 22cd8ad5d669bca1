-- The flows a backup holds (issue 15): each flow, its callback key and
-- recurrence schedule, and each connection of the environment, as stored
-- (record: the record's fields with its ciphertext, as JSON; nothing is
-- decrypted). Run history is not backed up. epoch is the item's (0 for a
-- schedule, the manifest and a non-OAuth connection, which the platform
-- key's partition seals): the epochs backups hold items under decide
-- which wrapped keys must stay.
CREATE TABLE backup_flow_items (
	backup_id TEXT COLLATE "C" NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
	kind TEXT COLLATE "C" NOT NULL,
	item TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	record BYTEA NOT NULL,
	PRIMARY KEY (backup_id, kind, item)
);
CREATE INDEX backup_flow_items_by_epoch ON backup_flow_items (backup_id, epoch);

-- A tenant's allowlist for its flows' Http action (a JSON array of
-- CIDRs, addresses and host names); no row: no restriction beyond the
-- operator's egress policy.
CREATE TABLE tenant_egress (
	tenant_id TEXT COLLATE "C" PRIMARY KEY,
	allow TEXT COLLATE "C" NOT NULL,
	updated_at BIGINT NOT NULL,
	updated_by TEXT COLLATE "C" NOT NULL
);
