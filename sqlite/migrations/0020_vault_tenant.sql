-- A vault's tenant is its subscription's. A vault PUT used to take any
-- properties.tenantId, and a vault's tenant is the audit log its actions
-- go to, so a subscription owner in one tenant could write into another
-- tenant's log. PutVault now refuses that; this moves the vaults created
-- before to their subscription's tenant. Vaults whose subscription is not
-- known here keep theirs.
UPDATE vaults SET tenant_id = (
	SELECT s.tenant_id FROM subscriptions s WHERE lower(s.id) = vaults.sub_key
)
WHERE EXISTS (
	SELECT 1 FROM subscriptions s WHERE lower(s.id) = vaults.sub_key AND lower(s.tenant_id) <> lower(vaults.tenant_id)
);
