package http

import (
	"context"
	"encoding/json"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// PolicyClient is the Client's view of the enterprise policy provider and
// template deployments: it implements keyhold.PolicyService and
// keyhold.DeploymentService over HTTPS, with tokens for the management audience. Get one with
// Client.Policies; it is safe for concurrent use.
type PolicyClient struct {
	c *Client
}

var (
	_ keyhold.PolicyService     = (*PolicyClient)(nil)
	_ keyhold.DeploymentService = (*PolicyClient)(nil)
)

// Policies returns c's client of the enterprise policy and deployment
// routes.
func (c *Client) Policies() *PolicyClient { return &PolicyClient{c: c} }

func policyPath(sub, rg, name string) string {
	return escape("subscriptions", sub, "resourceGroups", rg, "providers", "Microsoft.PowerPlatform", "enterprisePolicies", name) +
		"?api-version=" + policyAPIVersion
}

func deploymentURLPath(sub, rg, name string) string {
	return escape("subscriptions", sub, "resourceGroups", rg, "providers", "Microsoft.Resources", "deployments", name) +
		"?api-version=" + deploymentsVersion
}

// resourceInput is the body the client sends for a spec.
func resourceInput(spec keyhold.PolicySpec) map[string]any {
	key := map[string]any{"name": spec.KeyName}
	if spec.KeyVersion != "" {
		key["version"] = spec.KeyVersion
	}
	in := map[string]any{
		"location": spec.Location, "kind": spec.Kind, "identity": map[string]any{"type": spec.IdentityType},
		"properties": map[string]any{"lockbox": nil, "networkInjection": nil,
			"encryption": map[string]any{"state": spec.EncryptionState, "keyVault": map[string]any{"id": spec.KeyVaultID, "key": key}}},
	}
	if x := spec.External; x != nil {
		kv := in["properties"].(map[string]any)["encryption"].(map[string]any)["keyVault"].(map[string]any)
		kv["uri"], kv["federatedIdentity"] = x.URI, federatedIdentityInput(x)
	}
	if spec.EncryptionState == "" {
		in["properties"].(map[string]any)["encryption"].(map[string]any)["state"] = keyhold.PolicyEncryptionEnabled
	}
	if spec.Tags != nil {
		in["tags"] = spec.Tags
	}
	return in
}

// federatedIdentityInput is the federatedIdentity of an external vault.
func federatedIdentityInput(x *keyhold.ExternalKeyVault) map[string]any {
	f := map[string]any{"tenantId": x.TenantID, "clientId": x.ClientID}
	if x.AuthorityHost != "" {
		f["authorityHost"] = x.AuthorityHost
	}
	return f
}

// Put creates or updates a policy (created reports which) and returns it
// as stored.
func (pc *PolicyClient) Put(ctx context.Context, sub, rg, name string, spec keyhold.PolicySpec) (*keyhold.EnterprisePolicy, bool, error) {
	var out keyhold.PolicyResource
	status, err := pc.c.mgmt(ctx, "PUT", policyPath(sub, rg, name), resourceInput(spec), &out)
	if err != nil {
		return nil, false, err
	}
	return out.Policy(), status == nethttp.StatusCreated, nil
}

// Get returns a policy; CodeResourceNotFound if there is none.
func (pc *PolicyClient) Get(ctx context.Context, sub, rg, name string) (*keyhold.EnterprisePolicy, error) {
	var out keyhold.PolicyResource
	if _, err := pc.c.mgmt(ctx, "GET", policyPath(sub, rg, name), nil, &out); err != nil {
		return nil, err
	}
	return out.Policy(), nil
}

// Patch changes what c names and returns the policy.
func (pc *PolicyClient) Patch(ctx context.Context, sub, rg, name string, c keyhold.PolicyPatch) (*keyhold.EnterprisePolicy, error) {
	in := map[string]any{}
	set := func(m map[string]any, k string, v *string) {
		if v != nil {
			m[k] = *v
		}
	}
	set(in, "location", c.Location)
	set(in, "kind", c.Kind)
	if c.IdentityType != nil {
		in["identity"] = map[string]any{"type": *c.IdentityType}
	}
	if c.Tags != nil {
		in["tags"] = *c.Tags
	}
	enc, kv, key := map[string]any{}, map[string]any{}, map[string]any{}
	set(enc, "state", c.EncryptionState)
	set(kv, "id", c.KeyVaultID)
	if x := c.External; x != nil {
		kv["uri"], kv["federatedIdentity"] = x.URI, federatedIdentityInput(x)
	}
	set(key, "name", c.KeyName)
	set(key, "version", c.KeyVersion)
	if len(key) > 0 {
		kv["key"] = key
	}
	if len(kv) > 0 {
		enc["keyVault"] = kv
	}
	if len(enc) > 0 {
		in["properties"] = map[string]any{"encryption": enc}
	}
	var out keyhold.PolicyResource
	if _, err := pc.c.mgmt(ctx, "PATCH", policyPath(sub, rg, name), in, &out); err != nil {
		return nil, err
	}
	return out.Policy(), nil
}

// Delete deletes a policy. The server answers 204 for a policy that does
// not exist; Delete returns CodeResourceNotFound then, as the service does.
func (pc *PolicyClient) Delete(ctx context.Context, sub, rg, name string) error {
	status, err := pc.c.mgmt(ctx, "DELETE", policyPath(sub, rg, name), nil, nil)
	if err != nil {
		return err
	}
	if status == nethttp.StatusNoContent {
		return keyhold.Errorf(keyhold.CodeResourceNotFound,
			"The Resource 'Microsoft.PowerPlatform/enterprisePolicies/%s' under resource group '%s' was not found.", name, rg)
	}
	return nil
}

// LinkedEnvironments counts the environments linked to a policy, which
// a Delete of it would lock.
func (pc *PolicyClient) LinkedEnvironments(ctx context.Context, sub, rg, name string) (int, error) {
	path := escape("subscriptions", sub, "resourceGroups", rg, "providers", "Microsoft.PowerPlatform", "enterprisePolicies", name, linkedEnvironmentsName) +
		"?api-version=" + policyAPIVersion
	var out linkedEnvironmentsJSON
	if _, err := pc.c.mgmt(ctx, "GET", path, nil, &out); err != nil {
		return 0, err
	}
	return out.Count, nil
}

func (pc *PolicyClient) list(ctx context.Context, path string) ([]*keyhold.EnterprisePolicy, error) {
	var out listJSON[keyhold.PolicyResource]
	if _, err := pc.c.mgmt(ctx, "GET", path+"?api-version="+policyAPIVersion, nil, &out); err != nil {
		return nil, err
	}
	ps := make([]*keyhold.EnterprisePolicy, len(out.Value))
	for i := range out.Value {
		ps[i] = out.Value[i].Policy()
	}
	return ps, nil
}

// ListByResourceGroup returns the policies of a resource group the caller
// may read.
func (pc *PolicyClient) ListByResourceGroup(ctx context.Context, sub, rg string) ([]*keyhold.EnterprisePolicy, error) {
	return pc.list(ctx, escape("subscriptions", sub, "resourceGroups", rg, "providers", "Microsoft.PowerPlatform", "enterprisePolicies"))
}

// ListBySubscription returns the policies of a subscription the caller
// may read.
func (pc *PolicyClient) ListBySubscription(ctx context.Context, sub string) ([]*keyhold.EnterprisePolicy, error) {
	return pc.list(ctx, escape("subscriptions", sub, "providers", "Microsoft.PowerPlatform", "enterprisePolicies"))
}

// fromDeploymentJSON reads a deployment back from ARM's answer.
func fromDeploymentJSON(j *deploymentJSON) *keyhold.Deployment {
	d := &keyhold.Deployment{Name: j.Name, Mode: j.Properties.Mode, ProvisioningState: j.Properties.ProvisioningState,
		OutputResources: make([]string, 0, len(j.Properties.OutputResources)), Outputs: j.Properties.Outputs}
	if segs := strings.Split(j.ID, "/"); len(segs) >= 5 {
		d.SubscriptionID, d.ResourceGroup = segs[2], segs[4]
	}
	for _, r := range j.Properties.OutputResources {
		d.OutputResources = append(d.OutputResources, r.ID)
	}
	if e := j.Properties.Error; e != nil {
		d.ErrorCode, d.ErrorMessage = e.Code, e.Message
	}
	if t, err := time.Parse(time.RFC3339Nano, j.Properties.Timestamp); err == nil {
		d.UpdatedAt = t
	}
	return d
}

// Deploy deploys a template (created reports whether the deployment is
// new). A resource that fails is the error, with its own code; the
// deployment is then stored as Failed (see Deployment).
func (pc *PolicyClient) Deploy(ctx context.Context, sub, rg, name string, req keyhold.DeploymentRequest) (*keyhold.Deployment, bool, error) {
	props := map[string]any{"mode": req.Mode, "template": json.RawMessage(req.Template)}
	if len(req.Template) == 0 {
		props["template"] = nil
	}
	if len(req.Parameters) > 0 {
		props["parameters"] = json.RawMessage(req.Parameters)
	}
	var out deploymentJSON
	status, err := pc.c.mgmt(ctx, "PUT", deploymentURLPath(sub, rg, name), map[string]any{"properties": props}, &out)
	if err != nil {
		return nil, false, err
	}
	return fromDeploymentJSON(&out), status == nethttp.StatusCreated, nil
}

// Deployment returns a deployment's record; CodeNotFound if there is none.
func (pc *PolicyClient) Deployment(ctx context.Context, sub, rg, name string) (*keyhold.Deployment, error) {
	var out deploymentJSON
	if _, err := pc.c.mgmt(ctx, "GET", deploymentURLPath(sub, rg, name), nil, &out); err != nil {
		return nil, err
	}
	return fromDeploymentJSON(&out), nil
}
