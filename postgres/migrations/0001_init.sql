-- Keyhold's schema for PostgreSQL. Times are BIGINT Unix nanoseconds (UTC;
-- -9223372036854775808 is the zero time), the same representation as the
-- SQLite schema so that both round-trip a time.Time exactly. Ciphertext,
-- wrapped and sealed keys are opaque BYTEA.
--
-- Every key column is COLLATE "C": names then sort bytewise, as in SQLite,
-- whatever the database's locale, so that paged walks (ListRows) visit the
-- same order on both backends.

CREATE TABLE tenants (
	id TEXT COLLATE "C" PRIMARY KEY,
	display_name TEXT NOT NULL,
	is_system BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL
);
-- Exactly one tenant is the platform's system tenant.
CREATE UNIQUE INDEX tenants_one_system ON tenants (is_system) WHERE is_system;

CREATE TABLE subscriptions (
	id TEXT COLLATE "C" PRIMARY KEY,
	tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	display_name TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX subscriptions_by_tenant ON subscriptions (tenant_id, id);

CREATE TABLE principals (
	id TEXT COLLATE "C" PRIMARY KEY,
	tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	type TEXT NOT NULL,
	display_name TEXT NOT NULL,
	app_id TEXT COLLATE "C", -- NULL for users, so the unique index skips them
	created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX principals_by_app_id ON principals (tenant_id, app_id);
CREATE INDEX principals_by_tenant ON principals (tenant_id, id);

CREATE TABLE credentials (
	principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	secret_hash BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (principal_id, secret_hash)
);

CREATE TABLE directory_roles (
	tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	role TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (tenant_id, principal_id, role)
);
CREATE INDEX directory_roles_by_principal ON directory_roles (principal_id);

CREATE TABLE sealed_keys (
	id TEXT COLLATE "C" PRIMARY KEY,
	sealed BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE environments (
	id TEXT COLLATE "C" PRIMARY KEY,
	tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	display_name TEXT NOT NULL,
	location TEXT NOT NULL,
	sku TEXT NOT NULL,
	managed BOOLEAN NOT NULL,
	fin_ops BOOLEAN NOT NULL,
	state TEXT NOT NULL,
	key_managed_by TEXT NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX environments_by_tenant ON environments (tenant_id, created_at, id);
CREATE INDEX environments_by_created ON environments (created_at, id);

CREATE TABLE wrapped_keys (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	epoch BIGINT NOT NULL,
	root_kind TEXT COLLATE "C" NOT NULL,
	key_id TEXT NOT NULL,
	ciphertext BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, epoch, root_kind)
);

CREATE TABLE data_rows (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	table_name TEXT COLLATE "C" NOT NULL,
	id TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	ciphertext BYTEA NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, table_name, id)
);
-- Re-key jobs walk the rows still sealed under an old epoch.
CREATE INDEX data_rows_by_epoch ON data_rows (env_id, epoch, table_name, id);

CREATE TABLE data_files (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	name TEXT COLLATE "C" NOT NULL,
	generation TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	size BIGINT NOT NULL,
	chunks BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, name)
);

CREATE TABLE file_uploads (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	generation TEXT COLLATE "C" NOT NULL,
	started_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, generation)
);
CREATE INDEX file_uploads_by_start ON file_uploads (started_at);

CREATE TABLE file_chunks (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	generation TEXT COLLATE "C" NOT NULL,
	seq BIGINT NOT NULL,
	data BYTEA NOT NULL,
	PRIMARY KEY (env_id, generation, seq)
);

-- Ciphertext doesn't compress: EXTERNAL stores large values out of line
-- without PostgreSQL first trying (and failing) to compress them.
ALTER TABLE data_rows ALTER COLUMN ciphertext SET STORAGE EXTERNAL;
ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The audit log has no foreign keys: its entries outlive what they record.
CREATE TABLE audit_log (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	occurred_at BIGINT NOT NULL,
	tenant_id TEXT COLLATE "C" NOT NULL,
	actor_id TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	env_id TEXT COLLATE "C" NOT NULL,
	result TEXT NOT NULL,
	detail TEXT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_by_env ON audit_log (env_id, id);
