-- The flows a backup holds (issue 15): each flow, its callback key and
-- recurrence schedule, and each connection of the environment, as stored
-- (record: the record's fields with its ciphertext, as JSON; nothing is
-- decrypted). Run history is not backed up. epoch is the item's (0 for a
-- schedule, the manifest and a non-OAuth connection, which the platform
-- key's partition seals): the epochs backups hold items under decide
-- which wrapped keys must stay.
CREATE TABLE backup_flow_items (
	backup_id TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
	kind TEXT NOT NULL,
	item TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	record BLOB NOT NULL,
	PRIMARY KEY (backup_id, kind, item)
) STRICT;
CREATE INDEX backup_flow_items_by_epoch ON backup_flow_items (backup_id, epoch);

-- A tenant's allowlist for its flows' Http action (a JSON array of
-- CIDRs, addresses and host names); no row: no restriction beyond the
-- operator's egress policy.
CREATE TABLE tenant_egress (
	tenant_id TEXT PRIMARY KEY,
	allow TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	updated_by TEXT NOT NULL
) STRICT;
