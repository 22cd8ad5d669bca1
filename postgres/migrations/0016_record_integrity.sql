-- Record integrity (crypt/integrity.go): the seal, under a key derived from
-- the master key, of the fields of a record that custody decisions rest
-- on. NULL: a record from before this migration, which the server seals
-- at its first start after the upgrade (vault.Service.SealRecords) and
-- which is refused until then.
ALTER TABLE vaults ADD COLUMN mac BYTEA;
ALTER TABLE vault_keys ADD COLUMN mac BYTEA;
ALTER TABLE key_versions ADD COLUMN mac BYTEA;
ALTER TABLE enterprise_policies ADD COLUMN mac BYTEA;
