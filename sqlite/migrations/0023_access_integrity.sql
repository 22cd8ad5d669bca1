-- Access-record integrity (crypt/access.go): the seal, under a key derived
-- from the master key, of the records that authenticate callers and grant
-- them access. NULL: a record from before this migration, which the server
-- seals at its first start after the upgrade (SealAccessRecords) and which
-- is treated as absent until then.
ALTER TABLE credentials ADD COLUMN mac BLOB;
ALTER TABLE user_accounts ADD COLUMN mac BLOB;
ALTER TABLE role_assignments ADD COLUMN mac BLOB;
ALTER TABLE directory_roles ADD COLUMN mac BLOB;
