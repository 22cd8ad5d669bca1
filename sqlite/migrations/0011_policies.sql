-- Enterprise policies (Microsoft.PowerPlatform/enterprisePolicies) and
-- template deployments (Microsoft.Resources/deployments), issue 4. As in
-- 0002, each *_key column holds an ARM name or id folded to lower case by
-- Keyhold, for lookups and uniqueness, next to the value as given.
--
-- system_key is the policy's systemId folded: environments are linked by
-- it, in any case. key_vault_key (the vault's resource id, folded, without
-- a trailing '/') and key_name_key find the policies that name a key, for
-- rotation pickup and health. tags is JSON text.

CREATE TABLE enterprise_policies (
	sub_key TEXT NOT NULL,
	rg_key TEXT NOT NULL,
	name_key TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	resource_group TEXT NOT NULL,
	name TEXT NOT NULL,
	location TEXT NOT NULL,
	kind TEXT NOT NULL,
	tenant_id TEXT NOT NULL,
	system_key TEXT NOT NULL UNIQUE,
	system_id TEXT NOT NULL,
	principal_id TEXT NOT NULL,
	encryption_state TEXT NOT NULL,
	key_vault_key TEXT NOT NULL,
	key_vault_id TEXT NOT NULL,
	key_name_key TEXT NOT NULL,
	key_name TEXT NOT NULL,
	key_version TEXT NOT NULL,
	health_status TEXT NOT NULL,
	tags TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (sub_key, rg_key, name_key)
) STRICT;
CREATE INDEX enterprise_policies_by_key ON enterprise_policies (key_vault_key, key_name_key);

-- A deployment is the record ARM answers about a template deployment:
-- output_resources is a JSON array of resource ids, outputs the template's
-- evaluated outputs as JSON text ('' when it has none).
CREATE TABLE deployments (
	sub_key TEXT NOT NULL,
	rg_key TEXT NOT NULL,
	name_key TEXT NOT NULL,
	subscription_id TEXT NOT NULL,
	resource_group TEXT NOT NULL,
	name TEXT NOT NULL,
	tenant_id TEXT NOT NULL,
	mode TEXT NOT NULL,
	provisioning_state TEXT NOT NULL,
	output_resources TEXT NOT NULL,
	outputs TEXT NOT NULL,
	error_code TEXT NOT NULL,
	error_message TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (sub_key, rg_key, name_key)
) STRICT;
