-- A Managed HSM's local role assignments are sealed under the master
-- key (crypt.RecordKey.SealHSMRoleAssignment), as the resource manager's
-- are: a database writer can't grant a principal Crypto User on a key.
ALTER TABLE hsm_role_assignments ADD COLUMN mac BYTEA;
