package sqlstore

import (
	"context"
	"encoding/json"

	"github.com/keyhold/keyhold"
)

// Enterprise policies and template deployments. Subscription, group and
// policy names, systemIds and key vault ids compare case-insensitively, as
// ARM's do; see key and scopeKey.

var _ keyhold.DeploymentTx = (*tx)(nil)

func policyNotFound(rg, name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeResourceNotFound,
		"The Resource 'Microsoft.PowerPlatform/enterprisePolicies/%s' under resource group '%s' was not found.", name, rg)
}

// CreatePolicy stores a new policy. A zero p.Version is stored, and set, as
// 1. A policy of the same name in the group, or one with the same systemId
// (in any case), is a CodeConflict.
func (t *tx) CreatePolicy(ctx context.Context, p *keyhold.EnterprisePolicy) error {
	if err := checkTimes(p.CreatedAt, p.UpdatedAt); err != nil {
		return err
	}
	tags, err := jsonArg(p.Tags)
	if err != nil {
		return err
	}
	x := externalCols(p)
	version := p.Version
	if version == 0 {
		version = 1
	}
	n, err := t.execN(ctx, `INSERT INTO enterprise_policies (sub_key, rg_key, name_key, subscription_id, resource_group, name, location, kind,
		tenant_id, system_key, system_id, principal_id, encryption_state, key_vault_key, key_vault_id, key_name_key, key_name, key_version,
		health_status, tags, created_by, created_at, updated_at, version, mac,
		external_uri, external_tenant_id, external_client_id, external_authority)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key(p.SubscriptionID), key(p.ResourceGroup), key(p.Name), p.SubscriptionID, p.ResourceGroup, p.Name, p.Location, p.Kind,
		p.TenantID, key(p.SystemID), p.SystemID, p.PrincipalID, p.EncryptionState, scopeKey(p.KeyVaultID), p.KeyVaultID, key(p.KeyName), p.KeyName, p.KeyVersion,
		string(p.HealthStatus), tags, p.CreatedBy, nanos(p.CreatedAt), nanos(p.UpdatedAt), version, p.MAC, x.URI, x.TenantID, x.ClientID, x.AuthorityHost)
	if err != nil {
		return t.fail("create enterprise policy", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "enterprise policy %q already exists in resource group %q, or its systemId %q is taken",
			p.Name, p.ResourceGroup, p.SystemID)
	}
	p.Version = version
	return nil
}

const policyCols = `subscription_id, resource_group, name, location, kind, tenant_id, system_id, principal_id, encryption_state,
	key_vault_id, key_name, key_version, health_status, tags, created_by, created_at, updated_at, version, mac,
	external_uri, external_tenant_id, external_client_id, external_authority`

// externalCols returns the external vault columns of p: empty for a
// built-in vault.
func externalCols(p *keyhold.EnterprisePolicy) keyhold.ExternalKeyVault {
	if p.External == nil {
		return keyhold.ExternalKeyVault{}
	}
	return *p.External
}

func scanPolicy(sc scanner) (*keyhold.EnterprisePolicy, error) {
	p := &keyhold.EnterprisePolicy{}
	var health string
	var x keyhold.ExternalKeyVault
	err := sc.Scan(&p.SubscriptionID, &p.ResourceGroup, &p.Name, &p.Location, &p.Kind, &p.TenantID, &p.SystemID, &p.PrincipalID,
		&p.EncryptionState, &p.KeyVaultID, &p.KeyName, &p.KeyVersion, &health, jsonCol{&p.Tags}, &p.CreatedBy,
		timeCol{&p.CreatedAt}, timeCol{&p.UpdatedAt}, &p.Version, &p.MAC, &x.URI, &x.TenantID, &x.ClientID, &x.AuthorityHost)
	p.HealthStatus = keyhold.HealthStatus(health)
	if x.URI != "" {
		p.External = &x
	}
	return p, err
}

// Policy returns a policy, or CodeResourceNotFound.
func (t *tx) Policy(ctx context.Context, sub, rg, name string) (*keyhold.EnterprisePolicy, error) {
	p, err := get(t, ctx, "get enterprise policy", scanPolicy,
		`SELECT `+policyCols+` FROM enterprise_policies WHERE sub_key = ? AND rg_key = ? AND name_key = ?`, key(sub), key(rg), key(name))
	if err != nil {
		return nil, notFound(err, policyNotFound(rg, name))
	}
	return p, nil
}

// PolicyBySystemID returns the policy whose systemId is systemID (in any
// case), or CodeResourceNotFound.
func (t *tx) PolicyBySystemID(ctx context.Context, systemID string) (*keyhold.EnterprisePolicy, error) {
	p, err := get(t, ctx, "get enterprise policy by systemId", scanPolicy,
		`SELECT `+policyCols+` FROM enterprise_policies WHERE system_key = ?`, key(systemID))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeResourceNotFound, "no enterprise policy has the systemId %q", systemID))
	}
	return p, nil
}

// UpdatePolicy writes p if the stored version is p.Version, and then
// increments p.Version. Its names, systemId, creator and creation time
// never change. A stale version is CodeConflict; a missing policy,
// CodeResourceNotFound.
func (t *tx) UpdatePolicy(ctx context.Context, p *keyhold.EnterprisePolicy) error {
	if err := checkTimes(p.UpdatedAt); err != nil {
		return err
	}
	tags, err := jsonArg(p.Tags)
	if err != nil {
		return err
	}
	x := externalCols(p)
	n, err := t.execN(ctx, `UPDATE enterprise_policies SET location = ?, kind = ?, tenant_id = ?, principal_id = ?, encryption_state = ?,
		key_vault_key = ?, key_vault_id = ?, key_name_key = ?, key_name = ?, key_version = ?, health_status = ?, tags = ?, updated_at = ?,
		mac = ?, external_uri = ?, external_tenant_id = ?, external_client_id = ?, external_authority = ?,
		version = version + 1 WHERE sub_key = ? AND rg_key = ? AND name_key = ? AND version = ?`,
		p.Location, p.Kind, p.TenantID, p.PrincipalID, p.EncryptionState, scopeKey(p.KeyVaultID), p.KeyVaultID, key(p.KeyName), p.KeyName,
		p.KeyVersion, string(p.HealthStatus), tags, nanos(p.UpdatedAt), p.MAC, x.URI, x.TenantID, x.ClientID, x.AuthorityHost,
		key(p.SubscriptionID), key(p.ResourceGroup), key(p.Name), p.Version)
	if err != nil {
		return t.fail("update enterprise policy", err)
	}
	if n == 0 {
		found, err := t.exists(ctx, `SELECT 1 FROM enterprise_policies WHERE sub_key = ? AND rg_key = ? AND name_key = ?`,
			key(p.SubscriptionID), key(p.ResourceGroup), key(p.Name))
		if err != nil {
			return t.fail("update enterprise policy", err)
		}
		if !found {
			return policyNotFound(p.ResourceGroup, p.Name)
		}
		return keyhold.Errorf(keyhold.CodeConflict,
			"enterprise policy %q was changed by another request since version %d was read: read it again and retry", p.Name, p.Version)
	}
	p.Version++
	return nil
}

// DeletePolicy deletes a policy, with the last unwraps recorded for its
// identity, or returns CodeResourceNotFound.
func (t *tx) DeletePolicy(ctx context.Context, sub, rg, name string) error {
	if _, err := t.exec(ctx, `DELETE FROM policy_unwraps WHERE principal_id IN
		(SELECT principal_id FROM enterprise_policies WHERE sub_key = ? AND rg_key = ? AND name_key = ?)`, key(sub), key(rg), key(name)); err != nil {
		return t.fail("delete enterprise policy", err)
	}
	n, err := t.execN(ctx, `DELETE FROM enterprise_policies WHERE sub_key = ? AND rg_key = ? AND name_key = ?`, key(sub), key(rg), key(name))
	if err != nil {
		return t.fail("delete enterprise policy", err)
	}
	if n == 0 {
		return policyNotFound(rg, name)
	}
	return nil
}

// ListPolicies returns the policies that match f (every one for a zero
// filter) by subscription, resource group and name.
func (t *tx) ListPolicies(ctx context.Context, f keyhold.PolicyFilter) ([]*keyhold.EnterprisePolicy, error) {
	var conds []string
	var args []any
	if f.SubscriptionID != "" {
		conds, args = append(conds, "sub_key = ?"), append(args, key(f.SubscriptionID))
	}
	if f.ResourceGroup != "" {
		conds, args = append(conds, "rg_key = ?"), append(args, key(f.ResourceGroup))
	}
	if f.KeyVaultID != "" {
		conds, args = append(conds, "key_vault_key = ?"), append(args, scopeKey(f.KeyVaultID))
	}
	if f.KeyName != "" {
		conds, args = append(conds, "key_name_key = ?"), append(args, key(f.KeyName))
	}
	return list(t, ctx, "list enterprise policies", scanPolicy,
		`SELECT `+policyCols+` FROM enterprise_policies`+where(conds)+` ORDER BY sub_key, rg_key, name_key`, args...)
}

func deploymentNotFound(rg, name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeNotFound, "deployment %q not found in resource group %q", name, rg)
}

// PutDeployment inserts d, or replaces the deployment of that name (in any
// case) keeping its name as first given, creator and creation time.
func (t *tx) PutDeployment(ctx context.Context, d *keyhold.Deployment) error {
	if err := checkTimes(d.CreatedAt, d.UpdatedAt); err != nil {
		return err
	}
	res := d.OutputResources
	if res == nil {
		res = []string{}
	}
	resources, err := jsonArg(res)
	if err != nil {
		return err
	}
	var outputs string
	if len(d.Outputs) > 0 {
		if !json.Valid(d.Outputs) {
			return keyhold.Errorf(keyhold.CodeBadRequest, "the outputs of deployment %q are not valid JSON", d.Name)
		}
		outputs = string(d.Outputs)
	}
	_, err = t.exec(ctx, `INSERT INTO deployments (sub_key, rg_key, name_key, subscription_id, resource_group, name, tenant_id, mode,
		provisioning_state, output_resources, outputs, error_code, error_message, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sub_key, rg_key, name_key) DO UPDATE SET tenant_id = excluded.tenant_id, mode = excluded.mode,
		provisioning_state = excluded.provisioning_state, output_resources = excluded.output_resources, outputs = excluded.outputs,
		error_code = excluded.error_code, error_message = excluded.error_message, updated_at = excluded.updated_at`,
		key(d.SubscriptionID), key(d.ResourceGroup), key(d.Name), d.SubscriptionID, d.ResourceGroup, d.Name, d.TenantID, d.Mode,
		d.ProvisioningState, resources, outputs, d.ErrorCode, d.ErrorMessage, d.CreatedBy, nanos(d.CreatedAt), nanos(d.UpdatedAt))
	if err != nil {
		return t.fail("put deployment", err)
	}
	return nil
}

const deploymentCols = `subscription_id, resource_group, name, tenant_id, mode, provisioning_state, output_resources, outputs,
	error_code, error_message, created_by, created_at, updated_at`

func scanDeployment(sc scanner) (*keyhold.Deployment, error) {
	d := &keyhold.Deployment{}
	var outputs string
	err := sc.Scan(&d.SubscriptionID, &d.ResourceGroup, &d.Name, &d.TenantID, &d.Mode, &d.ProvisioningState, jsonCol{&d.OutputResources},
		&outputs, &d.ErrorCode, &d.ErrorMessage, &d.CreatedBy, timeCol{&d.CreatedAt}, timeCol{&d.UpdatedAt})
	if outputs != "" {
		d.Outputs = json.RawMessage(outputs)
	}
	return d, err
}

// Deployment returns a deployment, or CodeNotFound.
func (t *tx) Deployment(ctx context.Context, sub, rg, name string) (*keyhold.Deployment, error) {
	d, err := get(t, ctx, "get deployment", scanDeployment,
		`SELECT `+deploymentCols+` FROM deployments WHERE sub_key = ? AND rg_key = ? AND name_key = ?`, key(sub), key(rg), key(name))
	if err != nil {
		return nil, notFound(err, deploymentNotFound(rg, name))
	}
	return d, nil
}

// ListDeployments returns a resource group's deployments by name.
func (t *tx) ListDeployments(ctx context.Context, sub, rg string) ([]*keyhold.Deployment, error) {
	return list(t, ctx, "list deployments", scanDeployment,
		`SELECT `+deploymentCols+` FROM deployments WHERE sub_key = ? AND rg_key = ? ORDER BY name_key`, key(sub), key(rg))
}

// DeleteDeployment deletes a deployment record (not what it deployed), or
// returns CodeNotFound.
func (t *tx) DeleteDeployment(ctx context.Context, sub, rg, name string) error {
	n, err := t.execN(ctx, `DELETE FROM deployments WHERE sub_key = ? AND rg_key = ? AND name_key = ?`, key(sub), key(rg), key(name))
	if err != nil {
		return t.fail("delete deployment", err)
	}
	if n == 0 {
		return deploymentNotFound(rg, name)
	}
	return nil
}
