-- People's sign-in (issue 11): device codes and authorization codes
-- (signin_grants), refresh tokens, and applications' redirect URIs. Codes
-- and tokens are kept only as SHA-256 hashes; mac seals each row under a
-- key derived from the master key (crypt.RecordKey.SealSignIn), so that a
-- row inserted without it signs no one in. In the database, not in a
-- replica's memory, so that any replica answers a client's poll.
CREATE TABLE signin_grants (
	id_hash BYTEA PRIMARY KEY,
	kind TEXT NOT NULL,
	user_code_hash BYTEA UNIQUE,
	tenant_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	scope TEXT NOT NULL,
	redirect_uri TEXT COLLATE "C" NOT NULL,
	code_challenge TEXT NOT NULL,
	state TEXT NOT NULL,
	principal_id TEXT NOT NULL,
	upn TEXT NOT NULL,
	poll_interval BIGINT NOT NULL,
	last_poll BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	mac BYTEA
);
CREATE INDEX signin_grants_by_expiry ON signin_grants (expires_at);

CREATE TABLE refresh_tokens (
	token_hash BYTEA PRIMARY KEY,
	family_id TEXT NOT NULL,
	tenant_id TEXT NOT NULL,
	principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	client_id TEXT NOT NULL,
	scope TEXT NOT NULL,
	account_stamp BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at BIGINT NOT NULL,
	revoked BOOLEAN NOT NULL,
	mac BYTEA
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_principal ON refresh_tokens (principal_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE redirect_uris (
	principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	uri TEXT COLLATE "C" NOT NULL,
	added_at BIGINT NOT NULL,
	mac BYTEA,
	PRIMARY KEY (principal_id, uri)
);
