-- Environment backups (backup.go): a point-in-time copy of an environment's
-- rows and files exactly as stored, ciphertext under the environment's key
-- epochs, never decrypted. A backup belongs to its environment: deleting
-- the environment deletes its backups, and deleting a backup deletes its
-- rows and files (the foreign keys cascade). Times are Unix nanoseconds;
-- -9223372036854775808 is the zero time.
CREATE TABLE backups (
	id TEXT COLLATE "C" PRIMARY KEY,
	env_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	tenant_id TEXT COLLATE "C" NOT NULL,
	label TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	row_count BIGINT NOT NULL,
	file_count BIGINT NOT NULL,
	byte_count BIGINT NOT NULL -- plaintext bytes of its files
);
-- An environment's backups, newest first; the pruner's walk by expiry.
CREATE INDEX backups_by_env ON backups (env_id, created_at, id);
CREATE INDEX backups_by_expiry ON backups (expires_at, id);

-- The rows of a backup, as data_rows held them when it was taken.
CREATE TABLE backup_rows (
	backup_id TEXT COLLATE "C" NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
	table_name TEXT COLLATE "C" NOT NULL,
	id TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	ciphertext BYTEA NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (backup_id, table_name, id)
);
-- The epochs backups hold items under decide which wrapped keys must stay.
CREATE INDEX backup_rows_by_epoch ON backup_rows (backup_id, epoch);

-- The files of a backup. Their content is in file_chunks of the backup's
-- environment, under generation 'backup:' || backup_id || ':' || the
-- generation the live file had: a generation that no data_files or
-- file_uploads row names, so replacing, deleting or cleaning up live
-- files never touches it.
CREATE TABLE backup_files (
	backup_id TEXT COLLATE "C" NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
	name TEXT COLLATE "C" NOT NULL,
	generation TEXT COLLATE "C" NOT NULL,
	epoch BIGINT NOT NULL,
	version BIGINT NOT NULL,
	size BIGINT NOT NULL,
	chunks BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (backup_id, name)
);

-- Ciphertext doesn't compress (see 0001).
ALTER TABLE backup_rows ALTER COLUMN ciphertext SET STORAGE EXTERNAL;
