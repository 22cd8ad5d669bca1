-- A tenant's BYOK state (its lock, its removal) is sealed under the master
-- key (crypt.RecordKey.SealBYOKTenant): a database writer without the
-- master key must not be able to clear locked_at and so undo an
-- administrator's tenant lock.
ALTER TABLE byok_tenants ADD COLUMN mac BLOB;
