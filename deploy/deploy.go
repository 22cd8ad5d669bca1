// Package deploy is the template deployment engine
// (Microsoft.Resources/deployments): it deploys an ARM template into a
// resource group (mode Incremental only), evaluating the subset of ARM's
// template expressions that the spec's enterprise policy template and
// templates like it use (expr.go), and stores the deployment's outcome.
//
// A template is deployed in two passes. The first evaluates the whole
// template (parameters, variables, every resource, the outputs) and checks
// its shape; any error there is CodeInvalidTemplate and changes nothing,
// as ARM's validation. The second deploys the resources in order through
// their services, with the caller's identity: a resource the caller may
// not create, or that its service refuses, stops the deployment, which is
// stored as Failed with that error and answered with it (the resources
// deployed before it stay, as in ARM's Incremental mode).
//
// Resource types: Microsoft.PowerPlatform/enterprisePolicies (through
// package policy's Put); Microsoft.KeyVault/vaults (with Config.Vaults);
// and Microsoft.Authorization/roleAssignments, at the resource group or at
// the resource its "scope" names. Template features not listed here
// ("functions", "copy", nested deployments, reference(), …) are
// CodeInvalidTemplate.
//
// Deleting a resource group deletes its deployment records with its
// enterprise policies, in one transaction: package policy's resource
// group deleter does it.
//
// The Service is safe for concurrent use.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/policy"
)

// Config configures a Service. Store, Policies and ARM are required.
type Config struct {
	Store keyhold.Store
	// Clock tells the time (default: the wall clock).
	Clock keyhold.Clock
	// Policies deploys the Microsoft.PowerPlatform/enterprisePolicies
	// resources of templates, with the caller's identity.
	Policies *policy.Service
	// ARM authorizes the deployments and deploys the role assignments of
	// templates.
	ARM *arm.Service
	// Vaults, if set, deploys the Microsoft.KeyVault/vaults resources of
	// templates (a *vault.Service); nil refuses them.
	Vaults VaultWriter
}

// VaultWriter is what template deployments need from the key vault
// service; *vault.Service implements it.
type VaultWriter interface {
	GetVault(ctx context.Context, sub, rg, name string) (*keyhold.Vault, error)
	PutVault(ctx context.Context, v *keyhold.Vault) (created bool, err error)
}

// Service is the template deployment engine. It is safe for concurrent
// use.
type Service struct {
	store    keyhold.Store
	clock    keyhold.Clock
	policies *policy.Service
	arm      *arm.Service
	vaults   VaultWriter
}

var _ keyhold.DeploymentService = (*Service)(nil)

// New returns a Service over cfg.Store. It panics without cfg.Store,
// cfg.Policies or cfg.ARM, a wiring mistake.
func New(cfg Config) *Service {
	if cfg.Store == nil || cfg.Policies == nil || cfg.ARM == nil {
		panic("deploy: Config.Store, Config.Policies and Config.ARM are required")
	}
	s := &Service{store: cfg.Store, clock: cfg.Clock, policies: cfg.Policies, arm: cfg.ARM, vaults: cfg.Vaults}
	if s.clock == nil {
		s.clock = keyhold.SystemClock{}
	}
	return s
}

// Deployment actions, as Azure names them.
const (
	ActionDeploymentWrite = "Microsoft.Resources/deployments/write"
	ActionDeploymentRead  = "Microsoft.Resources/deployments/read"
)

// Resource types a template may hold.
const (
	typeVault          = "Microsoft.KeyVault/vaults"
	typeRoleAssignment = "Microsoft.Authorization/roleAssignments"
)

// deploymentNameRE is ARM's rule for deployment names.
var deploymentNameRE = regexp.MustCompile(`^[-\w._()]{1,64}$`)

func deploymentID(sub, rg, name string) string {
	d := keyhold.Deployment{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	return d.ID()
}

// Deploy deploys req's template into the resource group rg of sub as the
// deployment name, and stores the deployment's outcome; created reports
// whether the deployment record is new. It needs
// Microsoft.Resources/deployments/write at the deployment, and each
// resource needs what its own service asks. A template that can't be
// evaluated is CodeInvalidTemplate and stores nothing. A resource that
// fails stores the deployment as Failed and returns its record with the
// resource's error.
func (s *Service) Deploy(ctx context.Context, sub, rg, name string, req keyhold.DeploymentRequest) (d *keyhold.Deployment, created bool, err error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, false, err
	}
	switch {
	case req.Mode == "":
		return nil, false, keyhold.Errorf(keyhold.CodeBadRequest, "properties.mode is missing: use \"%s\"", keyhold.DeploymentModeIncremental)
	case strings.EqualFold(req.Mode, keyhold.DeploymentModeComplete):
		return nil, false, keyhold.Errorf(keyhold.CodeNotSupported,
			"properties.mode Complete is not supported: it deletes the resources a template doesn't name; use \"%s\"", keyhold.DeploymentModeIncremental)
	case !strings.EqualFold(req.Mode, keyhold.DeploymentModeIncremental):
		return nil, false, keyhold.Errorf(keyhold.CodeBadRequest, "properties.mode '%s' is not valid: use \"%s\"", keyhold.Clip(req.Mode), keyhold.DeploymentModeIncremental)
	}
	if !deploymentNameRE.MatchString(name) {
		return nil, false, keyhold.Errorf(keyhold.CodeInvalidName,
			"The deployment name '%s' is not valid: use 1 to 64 letters, digits, hyphens, underscores, periods or parentheses.", keyhold.Clip(name))
	}
	var scope Scope
	var old *keyhold.Deployment
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := arm.Authorize(ctx, tx, id, deploymentID(sub, rg, name), ActionDeploymentWrite); err != nil {
			return err
		}
		subscription, err := arm.SubscriptionFor(ctx, tx, id, sub)
		if err != nil {
			return err
		}
		g, err := arm.GroupIn(ctx, tx, subscription.ID, rg)
		if err != nil {
			return err
		}
		scope = Scope{SubscriptionID: subscription.ID, TenantID: id.TenantID, ResourceGroup: g}
		old, err = tx.Deployment(ctx, subscription.ID, g.Name, name)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			old, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}

	plan, outputs, err := s.plan(scope, req)
	if err != nil {
		return nil, false, err
	}

	now := s.clock.Now().UTC()
	d = &keyhold.Deployment{SubscriptionID: scope.SubscriptionID, ResourceGroup: scope.ResourceGroup.Name, Name: name,
		TenantID: id.TenantID, Mode: keyhold.DeploymentModeIncremental, ProvisioningState: keyhold.DeploymentSucceeded, OutputResources: []string{},
		Outputs: outputs, CreatedBy: id.PrincipalID, CreatedAt: now, UpdatedAt: now}
	if old != nil {
		d.Name, d.CreatedBy, d.CreatedAt = old.Name, old.CreatedBy, old.CreatedAt
	}
	var failure error
	for _, r := range plan {
		if err := r.deploy(ctx); err != nil {
			failure = keyhold.Errorf(keyhold.ErrorCode(err), "The resource '%s' of deployment '%s' failed: %s", r.id, d.Name, keyhold.ErrorMessage(err)).WithCause(err)
			d.ProvisioningState, d.Outputs = keyhold.DeploymentFailed, nil
			d.ErrorCode, d.ErrorMessage = keyhold.ErrorCode(failure), keyhold.ErrorMessage(failure)
			break
		}
		d.OutputResources = append(d.OutputResources, r.id)
	}

	// The outcome is recorded even if the caller has gone away meanwhile.
	rctx := context.WithoutCancel(ctx)
	err = s.store.Update(rctx, func(tx keyhold.Tx) error {
		if err := tx.PutDeployment(rctx, d); err != nil {
			return err
		}
		action, result, detail := "deployment.create", "Succeeded", fmt.Sprintf("deployed %d resource(s)", len(d.OutputResources))
		if old != nil {
			action = "deployment.update"
		}
		if failure != nil {
			result, detail = d.ErrorCode, d.ErrorMessage
		}
		return s.audit(rctx, tx, id, action, d.ID(), result, detail)
	})
	if err != nil {
		return nil, false, errors.Join(failure, err)
	}
	return d, old == nil, failure
}

// Deployment returns a deployment's record. It needs
// Microsoft.Resources/deployments/read at it; a missing one is
// CodeNotFound.
func (s *Service) Deployment(ctx context.Context, sub, rg, name string) (*keyhold.Deployment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var d *keyhold.Deployment
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := arm.Authorize(ctx, tx, id, deploymentID(sub, rg, name), ActionDeploymentRead); err != nil {
			return err
		}
		subscription, err := arm.SubscriptionFor(ctx, tx, id, sub)
		if err != nil {
			return err
		}
		d, err = tx.Deployment(ctx, subscription.ID, rg, name)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return keyhold.Errorf(keyhold.CodeNotFound, "Deployment '%s' could not be found.", keyhold.Clip(name))
		}
		return err
	})
	return d, err
}

// step is one resource of a planned deployment.
type step struct {
	id     string
	deploy func(ctx context.Context) error
}

// template is a parsed deployment template.
type template struct {
	Schema         string                     `json:"$schema"`
	ContentVersion *string                    `json:"contentVersion"`
	Parameters     map[string]json.RawMessage `json:"parameters"`
	Variables      map[string]any             `json:"variables"`
	Resources      json.RawMessage            `json:"resources"`
	Outputs        map[string]json.RawMessage `json:"outputs"`
}

// templateKeys are the top-level template properties Keyhold reads or
// ignores; any other is refused rather than silently dropped.
var templateKeys = map[string]bool{"$schema": true, "contentversion": true, "parameters": true, "variables": true,
	"resources": true, "outputs": true, "metadata": true, "apiprofile": true}

// paramDecl is a parameter's declaration.
type paramDecl struct {
	Type          string          `json:"type"`
	DefaultValue  json.RawMessage `json:"defaultValue"`
	AllowedValues []any           `json:"allowedValues"`
}

// decodeObject decodes a JSON object, refusing anything else.
func decodeObject(raw []byte, what string, v any) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return invalid("", "%s must be a JSON object", what)
	}
	if err := json.Unmarshal(t, v); err != nil {
		return invalid("", "%s is not valid: %v", what, err)
	}
	return nil
}

// plan evaluates the template: its parameters, variables, resources and
// outputs. It changes nothing; its errors are CodeInvalidTemplate.
func (s *Service) plan(scope Scope, req keyhold.DeploymentRequest) ([]step, json.RawMessage, error) {
	if len(bytes.TrimSpace(req.Template)) == 0 || bytes.Equal(bytes.TrimSpace(req.Template), []byte("null")) {
		return nil, nil, invalid("", "properties.template is missing: send the template inline (templateLink is not supported)")
	}
	var keys map[string]json.RawMessage
	if err := decodeObject(req.Template, "properties.template", &keys); err != nil {
		return nil, nil, err
	}
	for k := range keys {
		if !templateKeys[strings.ToLower(k)] {
			return nil, nil, invalid("", "the template property '%s' is not supported: Keyhold reads $schema, contentVersion, parameters, variables, resources and outputs", keyhold.Clip(k))
		}
	}
	var t template
	if err := decodeObject(req.Template, "properties.template", &t); err != nil {
		return nil, nil, err
	}
	if _, ok := lookup(t.Variables, "copy"); ok {
		return nil, nil, invalid("variables.copy", "variable loops (copy) are not supported: declare each variable")
	}
	if t.ContentVersion == nil || *t.ContentVersion == "" {
		return nil, nil, invalid("", "the template has no contentVersion: add \"contentVersion\": \"1.0.0.0\"")
	}

	// Parameters: the values given, checked against the declarations.
	given := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(req.Parameters)) > 0 && !bytes.Equal(bytes.TrimSpace(req.Parameters), []byte("null")) {
		if err := decodeObject(req.Parameters, "properties.parameters", &given); err != nil {
			return nil, nil, err
		}
	}
	decls := map[string]paramDecl{}
	names := map[string]string{} // lower case -> as declared
	for n, raw := range t.Parameters {
		var d paramDecl
		if err := decodeObject(raw, "the declaration of parameter '"+n+"'", &d); err != nil {
			return nil, nil, err
		}
		if _, ok := paramTypes[strings.ToLower(d.Type)]; !ok {
			return nil, nil, invalid("parameters."+n, "the type '%s' is not valid: use string, securestring, int, bool, object, secureObject or array", keyhold.Clip(d.Type))
		}
		decls[strings.ToLower(n)], names[strings.ToLower(n)] = d, n
	}
	values := map[string]any{}
	for n, raw := range given {
		decl, ok := names[strings.ToLower(n)]
		if !ok {
			return nil, nil, invalid("", "the parameter '%s' is given, but the template does not declare it: remove it, or declare it in the template's \"parameters\"", keyhold.Clip(n))
		}
		var v struct {
			Value     *json.RawMessage `json:"value"`
			Reference json.RawMessage  `json:"reference"`
		}
		if err := decodeObject(raw, "the value of parameter '"+n+"'", &v); err != nil {
			return nil, nil, invalid("", "the parameter '%s' must be given as {\"value\": …}", keyhold.Clip(n))
		}
		if v.Reference != nil {
			return nil, nil, invalid("", "the parameter '%s' is a Key Vault reference, which Keyhold does not support: give its value", keyhold.Clip(n))
		}
		if v.Value == nil {
			return nil, nil, invalid("", "the parameter '%s' must be given as {\"value\": …}", keyhold.Clip(n))
		}
		var val any
		if err := json.Unmarshal(*v.Value, &val); err != nil {
			return nil, nil, invalid("", "the value of parameter '%s' is not valid JSON", keyhold.Clip(n))
		}
		values[decl] = val
	}
	defaults := map[string]any{}
	for k, d := range decls {
		if _, ok := values[names[k]]; ok {
			continue
		}
		if isNull(d.DefaultValue) {
			return nil, nil, invalid("", "The value for the template parameter '%s' is not provided: give it in properties.parameters as {\"%s\": {\"value\": …}}, or declare a defaultValue", names[k], names[k])
		}
		var dv any
		if err := json.Unmarshal(d.DefaultValue, &dv); err != nil {
			return nil, nil, invalid("parameters."+names[k], "the defaultValue is not valid JSON")
		}
		defaults[names[k]] = dv
	}
	e := NewEvaluator(scope, values, defaults, t.Variables)
	for k, d := range decls {
		v, err := e.Parameter(names[k])
		if err != nil {
			return nil, nil, err
		}
		if err := CheckSize("parameters."+names[k], v); err != nil {
			return nil, nil, err
		}
		if err := checkParam(names[k], d, v); err != nil {
			return nil, nil, err
		}
	}

	// Resources.
	var resources []any
	if isNull(t.Resources) {
		return nil, nil, invalid("", "the template has no resources: add \"resources\": [ … ]")
	}
	if err := json.Unmarshal(t.Resources, &resources); err != nil {
		return nil, nil, invalid("", "\"resources\" must be an array of resources (symbolic resource names of languageVersion 2.0 are not supported)")
	}
	var plan []step
	for i, raw := range resources {
		path := fmt.Sprintf("resources[%d]", i)
		obj, ok := raw.(map[string]any)
		if !ok {
			return nil, nil, invalid(path, "a resource must be a JSON object")
		}
		for _, k := range []string{"copy", "resources", "subscriptionId", "resourceGroup"} {
			if _, ok := lookup(obj, k); ok {
				return nil, nil, invalid(path, "the resource property '%s' is not supported: deploy each resource at the top level of \"resources\", into this deployment's resource group", k)
			}
		}
		v, err := e.Evaluate(path, obj)
		if err != nil {
			return nil, nil, err
		}
		if err := CheckSize(path, v); err != nil {
			return nil, nil, err
		}
		res := v.(map[string]any)
		if c, ok := lookup(res, "condition"); ok {
			b, isBool := c.(bool)
			if !isBool {
				return nil, nil, invalid(path+".condition", "a condition must be true or false, not %s", typeName(c))
			}
			if !b {
				continue
			}
		}
		st, err := s.step(scope, path, res)
		if err != nil {
			return nil, nil, err
		}
		plan = append(plan, st)
	}

	// Outputs.
	if len(t.Outputs) == 0 {
		return plan, nil, nil
	}
	out := map[string]any{}
	for n, raw := range t.Outputs {
		var o struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		}
		if err := decodeObject(raw, "the output '"+n+"'", &o); err != nil {
			return nil, nil, err
		}
		v, err := e.Evaluate("outputs."+n+".value", o.Value)
		if err != nil {
			return nil, nil, err
		}
		if err := CheckSize("outputs."+n, v); err != nil {
			return nil, nil, err
		}
		out[n] = map[string]any{"type": o.Type, "value": v}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, nil, invalid("outputs", "%v", err)
	}
	return plan, b, nil
}

// paramTypes are the parameter types, by lower-case name, and what their
// values must be.
var paramTypes = map[string]string{"string": "string", "securestring": "string", "int": "number", "bool": "boolean",
	"object": "object", "secureobject": "object", "array": "array"}

// checkParam checks a parameter's value against its declaration.
func checkParam(name string, d paramDecl, v any) error {
	want := paramTypes[strings.ToLower(d.Type)]
	got := typeName(v)
	if got != want {
		return invalid("", "the parameter '%s' is of type %s, but its value is a %s", name, d.Type, got)
	}
	if f, ok := v.(float64); ok && f != float64(int64(f)) {
		return invalid("", "the parameter '%s' is of type int, but its value %v is not an integer", name, f)
	}
	if len(d.AllowedValues) == 0 {
		return nil
	}
	vb, _ := json.Marshal(v)
	for _, a := range d.AllowedValues {
		if ab, _ := json.Marshal(a); bytes.Equal(ab, vb) {
			return nil
		}
	}
	return invalid("", "the value %s of parameter '%s' is not one of its allowedValues %s", show(v), name, show(d.AllowedValues))
}

// lookup finds a property of a template object, case-insensitively.
func lookup(obj map[string]any, key string) (any, bool) {
	for k, v := range obj {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// stringProp returns a required string property of a resource.
func stringProp(path string, obj map[string]any, key string) (string, error) {
	v, ok := lookup(obj, key)
	if !ok {
		return "", invalid(path, "the resource has no \"%s\"", key)
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", invalid(path+"."+key, "must be a non-empty string, not %s", show(v))
	}
	return s, nil
}

// redecode converts an evaluated value into a typed input.
func redecode(path string, v any, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return invalid(path, "%v", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid(path+"."+te.Field, "must be %s, not a %s", te.Type.Kind(), te.Value)
		}
		return invalid(path, "%v", err)
	}
	return nil
}

// step checks an evaluated resource and returns how to deploy it.
func (s *Service) step(scope Scope, path string, res map[string]any) (step, error) {
	typ, err := stringProp(path, res, "type")
	if err != nil {
		return step{}, err
	}
	if _, err := stringProp(path, res, "apiVersion"); err != nil {
		return step{}, err
	}
	name, err := stringProp(path, res, "name")
	if err != nil {
		return step{}, err
	}
	sub, rg := scope.SubscriptionID, scope.ResourceGroup.Name
	switch {
	case strings.EqualFold(typ, keyhold.PolicyResourceType):
		var in keyhold.PolicyResourceInput
		if err := redecode(path, res, &in); err != nil {
			return step{}, err
		}
		return step{id: policyID(sub, rg, name), deploy: func(ctx context.Context) error {
			spec, err := in.Spec()
			if err != nil {
				return err
			}
			_, _, err = s.policies.Put(ctx, sub, rg, name, spec)
			return err
		}}, nil

	case strings.EqualFold(typ, typeVault):
		if s.vaults == nil {
			break
		}
		var in vaultInput
		if err := redecode(path, res, &in); err != nil {
			return step{}, err
		}
		return step{id: vaultID(sub, rg, name), deploy: func(ctx context.Context) error { return s.deployVault(ctx, sub, rg, name, &in) }}, nil

	case strings.EqualFold(typ, typeRoleAssignment):
		var in struct {
			Scope      string `json:"scope"`
			Properties struct {
				RoleDefinitionID string `json:"roleDefinitionId"`
				PrincipalID      string `json:"principalId"`
				PrincipalType    string `json:"principalType"`
			} `json:"properties"`
		}
		if err := redecode(path, res, &in); err != nil {
			return step{}, err
		}
		if _, err := uuid.Parse(name); err != nil {
			return step{}, invalid(path+".name", "a role assignment's name must be a GUID, such as [guid(resourceGroup().id, 'reader')], not '%s'", keyhold.Clip(name))
		}
		at := "/subscriptions/" + sub + "/resourceGroups/" + rg
		switch {
		case strings.HasPrefix(in.Scope, "/"):
			at = in.Scope
		case in.Scope != "":
			at += "/providers/" + in.Scope // "Microsoft.KeyVault/vaults/kv1", relative to the group
		}
		a := keyhold.RoleAssignment{ID: name, Scope: at, RoleDefinitionID: in.Properties.RoleDefinitionID,
			PrincipalID: in.Properties.PrincipalID, PrincipalType: in.Properties.PrincipalType}
		return step{id: keyhold.AssignmentID(at, name), deploy: func(ctx context.Context) error {
			ra := a
			return s.arm.CreateRoleAssignment(ctx, &ra)
		}}, nil
	}
	supported := []string{keyhold.PolicyResourceType, typeRoleAssignment}
	if s.vaults != nil {
		supported = append(supported, typeVault)
	}
	return step{}, invalid(path+".type", "the resource type '%s' is not supported: Keyhold deploys %s", keyhold.Clip(typ), strings.Join(supported, ", "))
}

func vaultID(sub, rg, name string) string {
	v := keyhold.Vault{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	return v.ID()
}

// vaultInput is a Microsoft.KeyVault/vaults resource of a template.
type vaultInput struct {
	Location   *string `json:"location"`
	Properties *struct {
		TenantID *string `json:"tenantId"`
		SKU      *struct {
			Name *string `json:"name"`
		} `json:"sku"`
		EnableSoftDelete          *bool `json:"enableSoftDelete"`
		SoftDeleteRetentionInDays *int  `json:"softDeleteRetentionInDays"`
		EnableRbacAuthorization   *bool `json:"enableRbacAuthorization"`
		EnablePurgeProtection     *bool `json:"enablePurgeProtection"`
		AccessPolicies            *[]struct {
			TenantID    string `json:"tenantId"`
			ObjectID    string `json:"objectId"`
			Permissions struct {
				Keys []string `json:"keys"`
			} `json:"permissions"`
		} `json:"accessPolicies"`
		PublicNetworkAccess *string `json:"publicNetworkAccess"`
		NetworkACLs         *struct {
			Bypass        *string `json:"bypass"`
			DefaultAction *string `json:"defaultAction"`
			IPRules       *[]struct {
				Value string `json:"value"`
			} `json:"ipRules"`
		} `json:"networkAcls"`
	} `json:"properties"`
}

// deployVault creates or updates a vault: the properties the template
// gives replace the stored ones, the others stay (or take their defaults).
func (s *Service) deployVault(ctx context.Context, sub, rg, name string, in *vaultInput) error {
	v := &keyhold.Vault{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	if old, err := s.vaults.GetVault(ctx, sub, rg, name); err == nil {
		v = old
	} else if c := keyhold.ErrorCode(err); c != keyhold.CodeResourceNotFound && c != keyhold.CodeNotFound {
		return err
	}
	if in.Location != nil {
		v.Location = *in.Location
	}
	if p := in.Properties; p != nil {
		if p.EnableSoftDelete != nil && !*p.EnableSoftDelete {
			return keyhold.Errorf(keyhold.CodeBadRequest, "properties.enableSoftDelete can't be false: soft delete is always on; leave it out")
		}
		if p.TenantID != nil {
			v.TenantID = *p.TenantID
		}
		if p.SKU != nil && p.SKU.Name != nil {
			v.SKU = *p.SKU.Name
		}
		if p.SoftDeleteRetentionInDays != nil {
			v.SoftDeleteRetentionDays = *p.SoftDeleteRetentionInDays
		}
		if p.EnableRbacAuthorization != nil {
			v.EnableRbacAuthorization = *p.EnableRbacAuthorization
		}
		if p.EnablePurgeProtection != nil {
			v.EnablePurgeProtection = *p.EnablePurgeProtection
		}
		if p.AccessPolicies != nil {
			v.AccessPolicies = []keyhold.AccessPolicy{}
			for _, a := range *p.AccessPolicies {
				v.AccessPolicies = append(v.AccessPolicies, keyhold.AccessPolicy{TenantID: a.TenantID, ObjectID: a.ObjectID, Keys: a.Permissions.Keys})
			}
		}
		if p.PublicNetworkAccess != nil {
			v.PublicNetworkAccess = *p.PublicNetworkAccess
		}
		if n := p.NetworkACLs; n != nil {
			if n.Bypass != nil {
				v.NetworkACLs.Bypass = *n.Bypass
			}
			if n.DefaultAction != nil {
				v.NetworkACLs.DefaultAction = *n.DefaultAction
			}
			if n.IPRules != nil {
				v.NetworkACLs.IPRules = []string{}
				for _, r := range *n.IPRules {
					v.NetworkACLs.IPRules = append(v.NetworkACLs.IPRules, r.Value)
				}
			}
		}
	}
	_, err := s.vaults.PutVault(ctx, v)
	return err
}

// isNull reports whether a raw property is absent or null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// policyID returns the resource id of the policy name in sub and rg.
func policyID(sub, rg, name string) string {
	p := keyhold.EnterprisePolicy{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	return p.ID()
}

// audit appends an entry of the caller's change in tx.
func (s *Service) audit(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, action, target, result, detail string) error {
	_, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: s.clock.Now(), TenantID: id.TenantID, ActorID: id.PrincipalID,
		Action: action, Target: target, Result: result, Detail: detail})
	return err
}
