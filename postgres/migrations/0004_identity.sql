-- Users' sign-in names and password hashes, and environment membership.
-- upn_key is the user principal name folded to lower case (by Keyhold, as
-- the ARM *_key columns of 0002), so UPNs are unique in a tenant whatever
-- their case. password_hash is an argon2id hash in its PHC string form: a
-- slow, salted hash, never the password. Key columns are COLLATE "C", as
-- in 0001.

CREATE TABLE user_accounts (
	principal_id TEXT COLLATE "C" PRIMARY KEY REFERENCES principals (id) ON DELETE CASCADE,
	tenant_id TEXT COLLATE "C" NOT NULL,
	upn_key TEXT COLLATE "C" NOT NULL,
	upn TEXT NOT NULL,
	password_hash BYTEA NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_accounts_by_upn ON user_accounts (tenant_id, upn_key);

-- Who may use an environment's data, besides the tenant's platform
-- administrators.
CREATE TABLE environment_members (
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	added_by TEXT NOT NULL,
	added_at BIGINT NOT NULL,
	PRIMARY KEY (env_id, principal_id)
);
CREATE INDEX environment_members_by_principal ON environment_members (principal_id);
