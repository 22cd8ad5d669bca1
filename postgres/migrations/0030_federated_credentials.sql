-- Federated identity credentials (issue 13): a service principal trusts
-- another OpenID issuer's tokens for one subject as client assertions.
-- Nothing here is secret, but each row decides who signs in as the
-- principal, so it is sealed (mac, crypt/access.go) like the other
-- credentials: a row inserted in the database trusts no one.
CREATE TABLE federated_credentials (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	name TEXT COLLATE "C" NOT NULL,
	issuer TEXT COLLATE "C" NOT NULL,
	subject TEXT COLLATE "C" NOT NULL,
	audiences TEXT NOT NULL,
	description TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	mac BYTEA,
	UNIQUE (principal_id, name),
	UNIQUE (principal_id, issuer, subject)
);
