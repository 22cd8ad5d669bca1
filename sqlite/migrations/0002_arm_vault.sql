-- Resource-manager state and the built-in key vault. ARM and Key Vault
-- names compare case-insensitively: each *_key column holds the name
-- folded to lower case (by Keyhold, not SQL, so both backends fold alike)
-- for lookups and uniqueness, next to the name as given. Structured fields
-- (tags, access policies, network rules, rotation policies, key operations)
-- are JSON text.

CREATE TABLE resource_groups (
	sub_key TEXT NOT NULL,
	name_key TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	name TEXT NOT NULL,
	location TEXT NOT NULL,
	tags TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (sub_key, name_key)
) STRICT;

CREATE TABLE provider_registrations (
	sub_key TEXT NOT NULL,
	ns_key TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	namespace TEXT NOT NULL,
	state TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (sub_key, ns_key)
) STRICT;

CREATE TABLE role_assignments (
	id_key TEXT PRIMARY KEY,
	id TEXT NOT NULL,
	scope_key TEXT NOT NULL, -- lower case, without a trailing '/'
	scope TEXT NOT NULL,
	role_definition_id TEXT NOT NULL,
	principal_id TEXT NOT NULL,
	principal_type TEXT NOT NULL,
	tenant_id TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX role_assignments_by_principal ON role_assignments (principal_id, created_at);
CREATE INDEX role_assignments_by_tenant ON role_assignments (tenant_id, created_at);
CREATE INDEX role_assignments_by_scope ON role_assignments (scope_key, created_at);

-- Vault names are unique across the server, soft-deleted ones included.
CREATE TABLE vaults (
	name_key TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	sub_key TEXT NOT NULL,
	rg_key TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	resource_group TEXT NOT NULL,
	location TEXT NOT NULL,
	tenant_id TEXT NOT NULL,
	sku TEXT NOT NULL,
	soft_delete_retention_days INTEGER NOT NULL,
	enable_purge_protection INTEGER NOT NULL,
	enable_rbac_authorization INTEGER NOT NULL,
	access_policies TEXT NOT NULL,
	network_acls TEXT NOT NULL,
	public_network_access TEXT NOT NULL,
	uri TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	deleted_at INTEGER NOT NULL,
	scheduled_purge_at INTEGER NOT NULL,
	version INTEGER NOT NULL
) STRICT;
CREATE INDEX vaults_by_group ON vaults (sub_key, rg_key, name_key);

CREATE TABLE vault_keys (
	vault_key TEXT NOT NULL REFERENCES vaults (name_key) ON DELETE CASCADE,
	name_key TEXT NOT NULL,
	vault_name TEXT NOT NULL,
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	size INTEGER NOT NULL,
	current_version TEXT NOT NULL,
	tags TEXT NOT NULL,
	rotation_policy TEXT, -- NULL: none
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	deleted_at INTEGER NOT NULL,
	scheduled_purge_at INTEGER NOT NULL,
	PRIMARY KEY (vault_key, name_key)
) STRICT;
-- The rotation scheduler lists the keys that have a policy.
CREATE INDEX vault_keys_with_policy ON vault_keys (vault_key, name_key) WHERE rotation_policy IS NOT NULL;

-- material is the private key sealed under the master key, or a PKCS#11
-- reference: opaque to the store.
CREATE TABLE key_versions (
	vault_key TEXT NOT NULL,
	name_key TEXT NOT NULL,
	version_key TEXT NOT NULL,
	vault_name TEXT NOT NULL,
	name TEXT NOT NULL,
	version TEXT NOT NULL,
	type TEXT NOT NULL,
	size INTEGER NOT NULL,
	n BLOB NOT NULL,
	e INTEGER NOT NULL,
	key_ops TEXT NOT NULL,
	enabled INTEGER NOT NULL,
	not_before INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	material BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (vault_key, name_key, version_key),
	FOREIGN KEY (vault_key, name_key) REFERENCES vault_keys (vault_key, name_key) ON DELETE CASCADE
) STRICT;
CREATE INDEX key_versions_by_created ON key_versions (vault_key, name_key, created_at, version_key);
