-- The last successful unwrap of each enterprise policy's key, per vault
-- (issue 13, operator view): principal_id is the policy's managed
-- identity, vault the vault as keyhold.UnwrapVault names it, unwrapped_at
-- Unix nanoseconds. The platform writes it at most once a minute per
-- policy and vault, and never moves it back (replicas race).
CREATE TABLE policy_unwraps (
	principal_id TEXT NOT NULL,
	vault TEXT NOT NULL,
	unwrapped_at INTEGER NOT NULL,
	PRIMARY KEY (principal_id, vault)
) STRICT;
