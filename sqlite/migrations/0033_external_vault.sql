-- A policy naming a key vault Keyhold doesn't run (issue 13): the vault's
-- URI, and the customer's directory, app and authority as which the
-- platform reaches it with a federated credential. '' for a built-in
-- vault (key_vault_id is then set, and '' for an external one). The
-- fields are in the policy's seal (mac): a row changed in the database
-- redirects no wrapping.
ALTER TABLE enterprise_policies ADD COLUMN external_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE enterprise_policies ADD COLUMN external_tenant_id TEXT NOT NULL DEFAULT '';
ALTER TABLE enterprise_policies ADD COLUMN external_client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE enterprise_policies ADD COLUMN external_authority TEXT NOT NULL DEFAULT '';
