-- Customer-managed key lifecycle (issue 4): when an environment key last
-- moved off each version of a customer's key, so that the product can say
-- when a version is safe to disable (28 days after its last use, for
-- database restores). The *_key columns hold the vault and key names
-- folded to lower case, as in 0002; version is a lower-case hex id.
CREATE TABLE key_version_uses (
	vault_key TEXT NOT NULL,
	key_name_key TEXT NOT NULL,
	version TEXT NOT NULL,
	vault_name TEXT NOT NULL,
	key_name TEXT NOT NULL,
	last_used_at INTEGER NOT NULL,
	PRIMARY KEY (vault_key, key_name_key, version)
) STRICT;

-- Rotation pickup and key-version usage list the keys that one enterprise
-- policy's managed identity wrapped, across environments.
CREATE INDEX wrapped_keys_by_principal ON wrapped_keys (principal_id, env_id, epoch, root_kind);
