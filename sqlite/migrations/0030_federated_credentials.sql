-- Federated identity credentials (issue 13): a service principal trusts
-- another OpenID issuer's tokens for one subject as client assertions.
-- Nothing here is secret, but each row decides who signs in as the
-- principal, so it is sealed (mac, crypt/access.go) like the other
-- credentials: a row inserted in the database trusts no one.
CREATE TABLE federated_credentials (
	id TEXT NOT NULL PRIMARY KEY,
	principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	issuer TEXT NOT NULL,
	subject TEXT NOT NULL,
	audiences TEXT NOT NULL,
	description TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	mac BLOB,
	UNIQUE (principal_id, name),
	UNIQUE (principal_id, issuer, subject)
) STRICT;
