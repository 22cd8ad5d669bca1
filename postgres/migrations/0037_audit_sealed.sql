-- The environment's own audit entries (the data plane's: rows and files)
-- sealed under the environment's key (issue 14): target and detail are
-- then '' and sealed holds them, under the audit store key of epoch
-- `epoch`, bound to the environment, the entry's id and `version`. An
-- entry in clear has epoch 0 and sealed NULL.
ALTER TABLE audit_log ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN sealed BYTEA;
CREATE INDEX audit_log_by_env_epoch ON audit_log (env_id, epoch, id);
