-- Keyhold's schema for SQLite. Times are INTEGER Unix nanoseconds (UTC;
-- -9223372036854775808 is the zero time); booleans are INTEGER 0 or 1;
-- ciphertext, wrapped and sealed keys are opaque BLOBs. STRICT makes SQLite
-- refuse a value of the wrong type instead of storing it.

CREATE TABLE tenants (
	id TEXT PRIMARY KEY,
	display_name TEXT NOT NULL,
	is_system INTEGER NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
-- Exactly one tenant is the platform's system tenant.
CREATE UNIQUE INDEX tenants_one_system ON tenants (is_system) WHERE is_system;

CREATE TABLE subscriptions (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	display_name TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX subscriptions_by_tenant ON subscriptions (tenant_id, id);

CREATE TABLE principals (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	type TEXT NOT NULL,
	display_name TEXT NOT NULL,
	app_id TEXT, -- NULL for users, so the unique index skips them
	created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX principals_by_app_id ON principals (tenant_id, app_id);
CREATE INDEX principals_by_tenant ON principals (tenant_id, id);

CREATE TABLE credentials (
	principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	secret_hash BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (principal_id, secret_hash)
) STRICT;

CREATE TABLE directory_roles (
	tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	role TEXT NOT NULL,
	PRIMARY KEY (tenant_id, principal_id, role)
) STRICT;
CREATE INDEX directory_roles_by_principal ON directory_roles (principal_id);

CREATE TABLE sealed_keys (
	id TEXT PRIMARY KEY,
	sealed BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE environments (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants (id),
	display_name TEXT NOT NULL,
	location TEXT NOT NULL,
	sku TEXT NOT NULL,
	managed INTEGER NOT NULL,
	fin_ops INTEGER NOT NULL,
	state TEXT NOT NULL,
	key_managed_by TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX environments_by_tenant ON environments (tenant_id, created_at, id);
CREATE INDEX environments_by_created ON environments (created_at, id);

CREATE TABLE wrapped_keys (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	epoch INTEGER NOT NULL,
	root_kind TEXT NOT NULL,
	key_id TEXT NOT NULL,
	ciphertext BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, epoch, root_kind)
) STRICT;

CREATE TABLE data_rows (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	table_name TEXT NOT NULL,
	id TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	ciphertext BLOB NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, table_name, id)
) STRICT;
-- Re-key jobs walk the rows still sealed under an old epoch.
CREATE INDEX data_rows_by_epoch ON data_rows (env_id, epoch, table_name, id);

CREATE TABLE data_files (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	generation TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	size INTEGER NOT NULL,
	chunks INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, name)
) STRICT;

CREATE TABLE file_uploads (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	generation TEXT NOT NULL,
	started_at INTEGER NOT NULL,
	PRIMARY KEY (env_id, generation)
) STRICT;
CREATE INDEX file_uploads_by_start ON file_uploads (started_at);

CREATE TABLE file_chunks (
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	generation TEXT NOT NULL,
	seq INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (env_id, generation, seq)
) STRICT;

-- The audit log has no foreign keys: its entries outlive what they record.
-- AUTOINCREMENT: ids are never reused, even after pruning the newest.
CREATE TABLE audit_log (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	occurred_at INTEGER NOT NULL,
	tenant_id TEXT NOT NULL,
	actor_id TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	env_id TEXT NOT NULL,
	result TEXT NOT NULL,
	detail TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_by_env ON audit_log (env_id, id);
