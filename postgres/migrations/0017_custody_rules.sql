-- Issue 10 (custody rules): key retention after removal, finance and
-- operations integration.

-- After an environment leaves an enterprise policy (unlink, swap, reset),
-- the spec asks that the policy's key and its grant be kept 30 days, not
-- the 28 a rotated-away version needs (issue 10, item 19). retain_until is
-- the latest end of retention any use of the version asked for, in Unix
-- nanoseconds; -9223372036854775808 (the zero time) for the uses recorded
-- before this column, which mean last_used_at + 28 days.
ALTER TABLE key_version_uses ADD COLUMN retain_until BIGINT NOT NULL DEFAULT -9223372036854775808;

-- Finance and operations environments (issue 10, item 17): fin_ops (0001)
-- says the environment has finance and operations apps; this says whether
-- Power Platform integration is enabled on it, without which 002 keeps it
-- under the Microsoft-managed key (a link is refused).
ALTER TABLE environments ADD COLUMN power_platform_integration BOOLEAN NOT NULL DEFAULT FALSE;

-- Tenant licences (issue 10, item 18): 002 requires the tenant to hold one
-- of the Microsoft 365 / Office 365 licences it lists before its
-- environments can be linked to an enterprise policy. name is the
-- licence's canonical name (keyhold.Licences); name_key the same folded to
-- lower case.
CREATE TABLE tenant_licences (
	tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name_key TEXT COLLATE "C" NOT NULL,
	name TEXT NOT NULL,
	added_by TEXT NOT NULL,
	added_at BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, name_key)
);
