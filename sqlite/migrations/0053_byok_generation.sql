-- A tenant's BYOK rows carry its BYOK generation, which every write of its
-- BYOK state moves on and re-seals every row at; the byok_tenants row's
-- seal commits to it and to the tenant's key rows (crypt.SealBYOKTenant),
-- so one row put back from an earlier write (a lock row from before the
-- lock, a key row from before an activation) is refused. byok_seal_marker
-- holds the one-time, sealed "sealing done" marker: once written, no
-- unsealed BYOK row is ever sealed at start-up (platform/byok_seal.go).
ALTER TABLE byok_keys ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE byok_tenants ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE byok_seal_marker (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	sealed_at INTEGER NOT NULL,
	mac BLOB NOT NULL
) STRICT;
