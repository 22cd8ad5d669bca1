-- Environment backups (backup.go): a point-in-time copy of an environment's
-- rows and files exactly as stored, ciphertext under the environment's key
-- epochs, never decrypted. A backup belongs to its environment: deleting
-- the environment deletes its backups, and deleting a backup deletes its
-- rows and files (the foreign keys cascade). Times are Unix nanoseconds;
-- -9223372036854775808 is the zero time.
CREATE TABLE backups (
	id TEXT PRIMARY KEY,
	env_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	tenant_id TEXT NOT NULL,
	label TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	row_count INTEGER NOT NULL,
	file_count INTEGER NOT NULL,
	byte_count INTEGER NOT NULL -- plaintext bytes of its files
) STRICT;
-- An environment's backups, newest first; the pruner's walk by expiry.
CREATE INDEX backups_by_env ON backups (env_id, created_at, id);
CREATE INDEX backups_by_expiry ON backups (expires_at, id);

-- The rows of a backup, as data_rows held them when it was taken.
CREATE TABLE backup_rows (
	backup_id TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
	table_name TEXT NOT NULL,
	id TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	ciphertext BLOB NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (backup_id, table_name, id)
) STRICT;
-- The epochs backups hold items under decide which wrapped keys must stay.
CREATE INDEX backup_rows_by_epoch ON backup_rows (backup_id, epoch);

-- The files of a backup. Their content is in file_chunks of the backup's
-- environment, under generation 'backup:' || backup_id || ':' || the
-- generation the live file had: a generation that no data_files or
-- file_uploads row names, so replacing, deleting or cleaning up live
-- files never touches it.
CREATE TABLE backup_files (
	backup_id TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	generation TEXT NOT NULL,
	epoch INTEGER NOT NULL,
	version INTEGER NOT NULL,
	size INTEGER NOT NULL,
	chunks INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (backup_id, name)
) STRICT;
