-- Legacy BYOK (issue 14): a tenant's own RSA keys, kept in the platform's
-- key store. sealed is the PKCS #8 private key sealed under the master key
-- for a purpose naming the tenant and the key id (crypt.BYOKKeyPurpose), so
-- a row copied to another tenant or id opens nothing. thumbprint is the
-- public key's RFC 7638 thumbprint: one tenant can't hold one key twice.
CREATE TABLE byok_keys (
	tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	id TEXT NOT NULL,
	state TEXT NOT NULL,
	source TEXT NOT NULL,
	size INTEGER NOT NULL,
	thumbprint TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	activated_at INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, thumbprint)
) STRICT;

-- A tenant's BYOK state. Its lock: while locked_at is set, every environment under
-- the tenant's BYOK key is disabled and its key refused, until an
-- administrator supplies the same key again.
CREATE TABLE byok_tenants (
	tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
	locked_at INTEGER NOT NULL,
	locked_by TEXT NOT NULL,
	-- removal: when the administrator asked to remove BYOK (after the last
	-- migration), when its keys may be shredded (28 days after that
	-- migration), and when they were.
	removal_requested_at INTEGER NOT NULL DEFAULT 0,
	shred_after INTEGER NOT NULL DEFAULT 0,
	shredded_at INTEGER NOT NULL DEFAULT 0
) STRICT;

-- An environment's migration from its tenant's BYOK key to a customer-
-- managed key: when, and from which BYOK key. It keeps the environment
-- from returning to the BYOK key, and from the platform key for 7 days.
CREATE TABLE byok_migrations (
	env_id TEXT PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
	tenant_id TEXT NOT NULL,
	key_id TEXT NOT NULL,
	migrated_at INTEGER NOT NULL
) STRICT;
