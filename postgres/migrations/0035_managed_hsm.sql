-- Managed HSMs (issue 18): the pools, their keys and key versions, and
-- their local role assignments. Each record is a JSON document with the
-- columns its lookups need; a key version's material is a reference to
-- an object in the PKCS#11 token (never key material).
CREATE TABLE managed_hsms (
	name_key TEXT COLLATE "C" PRIMARY KEY,
	sub_key TEXT COLLATE "C" NOT NULL,
	rg_key TEXT COLLATE "C" NOT NULL,
	deleted_at BIGINT NOT NULL,
	version BIGINT NOT NULL,
	doc TEXT NOT NULL
);
CREATE INDEX managed_hsms_by_group ON managed_hsms (sub_key, rg_key, name_key);

CREATE TABLE hsm_keys (
	hsm_key TEXT COLLATE "C" NOT NULL REFERENCES managed_hsms (name_key) ON DELETE CASCADE,
	name_key TEXT COLLATE "C" NOT NULL,
	deleted_at BIGINT NOT NULL,
	doc TEXT NOT NULL,
	PRIMARY KEY (hsm_key, name_key)
);

CREATE TABLE hsm_key_versions (
	hsm_key TEXT COLLATE "C" NOT NULL,
	name_key TEXT COLLATE "C" NOT NULL,
	version_key TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	doc TEXT NOT NULL,
	material BYTEA NOT NULL,
	PRIMARY KEY (hsm_key, name_key, version_key),
	FOREIGN KEY (hsm_key, name_key) REFERENCES hsm_keys (hsm_key, name_key) ON DELETE CASCADE
);

CREATE TABLE hsm_role_assignments (
	hsm_key TEXT COLLATE "C" NOT NULL REFERENCES managed_hsms (name_key) ON DELETE CASCADE,
	name_key TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	doc TEXT NOT NULL,
	PRIMARY KEY (hsm_key, name_key)
);
