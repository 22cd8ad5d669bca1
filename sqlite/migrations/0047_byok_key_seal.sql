-- A tenant's BYOK keys are sealed under the master key
-- (crypt.RecordKey.SealBYOKKey): which key is Active decides what new
-- environment keys are wrapped under, so a database writer must not be
-- able to flip a state or swap a key's identity. Rows written before are
-- sealed at the first start after the upgrade (platform/byok_seal.go).
ALTER TABLE byok_keys ADD COLUMN mac BLOB;
