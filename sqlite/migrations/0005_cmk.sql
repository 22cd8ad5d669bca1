-- Customer-managed key custody: the policy an environment is linked to and
-- the state of its last encryption operation; and the identity that wrapped
-- each environment key (a CMK is reached as the policy's managed identity).
-- policy_key is the policy id in lower case: ARM ids compare
-- case-insensitively.
ALTER TABLE environments ADD COLUMN policy_id TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN policy_key TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN policy_system_id TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN link_status TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN encryption_status TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN last_operation_id TEXT NOT NULL DEFAULT '';
CREATE INDEX environments_by_policy ON environments (policy_key, id);
ALTER TABLE wrapped_keys ADD COLUMN principal_id TEXT NOT NULL DEFAULT '';
