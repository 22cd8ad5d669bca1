package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// The Client's resource manager and directory methods: it implements
// ResourceManager and Directory over HTTPS, with tokens for the management
// audience.

// Compile-time checks that the Client implements the contracts.
var (
	_ keyhold.ResourceManager = (*Client)(nil)
	_ keyhold.Directory       = (*Client)(nil)
)

// managementScope is the scope of the resource manager and directory APIs.
const managementScope = string(keyhold.AudienceManagement) + "/.default"

// mgmt sends in as JSON (unless nil) with a management token and decodes
// the answer into out (unless nil or the answer is 204). It returns the
// answer's status.
func (c *Client) mgmt(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("keyhold: encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.sendAs(ctx, managementScope, method, path, body, "application/json")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == nethttp.StatusNoContent {
		out = nil
	}
	return resp.StatusCode, decodeAnswer(resp, out)
}

// escapeScope escapes each segment of an ARM scope, which starts with '/'.
func escapeScope(scope string) string {
	return escape(strings.Split(strings.Trim(scope, "/"), "/")...)
}

// withFilter appends an OData $filter to path, if filter is set.
func withFilter(path, filter string) string {
	if filter == "" {
		return path
	}
	return path + "?" + url.Values{"$filter": {filter}}.Encode()
}

// odataString quotes s as an OData string literal.
func odataString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Subscriptions returns the subscriptions the caller holds a role in.
func (c *Client) Subscriptions(ctx context.Context) ([]*keyhold.Subscription, error) {
	var out listJSON[subscriptionJSON]
	if _, err := c.mgmt(ctx, "GET", subsPath, nil, &out); err != nil {
		return nil, err
	}
	subs := make([]*keyhold.Subscription, len(out.Value))
	for i, s := range out.Value {
		subs[i] = &keyhold.Subscription{ID: s.SubscriptionID, TenantID: s.TenantID, DisplayName: s.DisplayName}
	}
	return subs, nil
}

// Subscription returns one subscription; CodeNotFound if the caller holds
// no role in it.
func (c *Client) Subscription(ctx context.Context, id string) (*keyhold.Subscription, error) {
	var s subscriptionJSON
	if _, err := c.mgmt(ctx, "GET", escape("subscriptions", id), nil, &s); err != nil {
		return nil, err
	}
	return &keyhold.Subscription{ID: s.SubscriptionID, TenantID: s.TenantID, DisplayName: s.DisplayName}, nil
}

func groupPath(sub, name string) string { return escape("subscriptions", sub, "resourceGroups", name) }

func fromResourceGroupJSON(sub string, j *resourceGroupJSON) *keyhold.ResourceGroup {
	return &keyhold.ResourceGroup{SubscriptionID: sub, Name: j.Name, Location: j.Location, Tags: j.Tags}
}

// PutResourceGroup creates g (created=true) or updates its tags, and fills
// g in from the answer.
func (c *Client) PutResourceGroup(ctx context.Context, g *keyhold.ResourceGroup) (bool, error) {
	in := struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags,omitempty"`
	}{g.Location, g.Tags}
	var out resourceGroupJSON
	status, err := c.mgmt(ctx, "PUT", groupPath(g.SubscriptionID, g.Name), in, &out)
	if err != nil {
		return false, err
	}
	*g = *fromResourceGroupJSON(g.SubscriptionID, &out)
	return status == nethttp.StatusCreated, nil
}

// ResourceGroup returns a resource group; CodeResourceGroupNotFound if
// there is none.
func (c *Client) ResourceGroup(ctx context.Context, sub, name string) (*keyhold.ResourceGroup, error) {
	var out resourceGroupJSON
	if _, err := c.mgmt(ctx, "GET", groupPath(sub, name), nil, &out); err != nil {
		return nil, err
	}
	return fromResourceGroupJSON(sub, &out), nil
}

// ListResourceGroups returns the resource groups of sub the caller may
// read.
func (c *Client) ListResourceGroups(ctx context.Context, sub string) ([]*keyhold.ResourceGroup, error) {
	var out listJSON[resourceGroupJSON]
	if _, err := c.mgmt(ctx, "GET", escape("subscriptions", sub, "resourceGroups"), nil, &out); err != nil {
		return nil, err
	}
	gs := make([]*keyhold.ResourceGroup, len(out.Value))
	for i := range out.Value {
		gs[i] = fromResourceGroupJSON(sub, &out.Value[i])
	}
	return gs, nil
}

// DeleteResourceGroup deletes a resource group and what it holds.
func (c *Client) DeleteResourceGroup(ctx context.Context, sub, name string) error {
	_, err := c.mgmt(ctx, "DELETE", groupPath(sub, name), nil, nil)
	return err
}

func fromProviderJSON(sub string, j *providerJSON) *keyhold.ProviderRegistration {
	return &keyhold.ProviderRegistration{SubscriptionID: sub, Namespace: j.Namespace, State: j.RegistrationState}
}

// RegisterProvider registers a resource provider namespace for sub.
func (c *Client) RegisterProvider(ctx context.Context, sub, namespace string) (*keyhold.ProviderRegistration, error) {
	var out providerJSON
	if _, err := c.mgmt(ctx, "POST", escape("subscriptions", sub, "providers", namespace, "register"), nil, &out); err != nil {
		return nil, err
	}
	return fromProviderJSON(sub, &out), nil
}

// Provider returns sub's registration of a namespace.
func (c *Client) Provider(ctx context.Context, sub, namespace string) (*keyhold.ProviderRegistration, error) {
	var out providerJSON
	if _, err := c.mgmt(ctx, "GET", escape("subscriptions", sub, "providers", namespace), nil, &out); err != nil {
		return nil, err
	}
	return fromProviderJSON(sub, &out), nil
}

// ListProviders returns sub's registration of every namespace the server
// serves.
func (c *Client) ListProviders(ctx context.Context, sub string) ([]*keyhold.ProviderRegistration, error) {
	var out listJSON[providerJSON]
	if _, err := c.mgmt(ctx, "GET", escape("subscriptions", sub, "providers"), nil, &out); err != nil {
		return nil, err
	}
	ps := make([]*keyhold.ProviderRegistration, len(out.Value))
	for i := range out.Value {
		ps[i] = fromProviderJSON(sub, &out.Value[i])
	}
	return ps, nil
}

func fromRoleDefinitionJSON(j *roleDefinitionJSON) *keyhold.RoleDefinition {
	d := &keyhold.RoleDefinition{ID: j.Name, Name: j.Properties.RoleName, Description: j.Properties.Description}
	for _, p := range j.Properties.Permissions {
		d.Actions = append(d.Actions, p.Actions...)
		d.NotActions = append(d.NotActions, p.NotActions...)
		d.DataActions = append(d.DataActions, p.DataActions...)
		d.NotDataActions = append(d.NotDataActions, p.NotDataActions...)
	}
	return d
}

// RoleDefinitions returns the role definitions at scope, or with roleName
// the one of that name.
func (c *Client) RoleDefinitions(ctx context.Context, scope, roleName string) ([]*keyhold.RoleDefinition, error) {
	filter := ""
	if roleName != "" {
		filter = "roleName eq " + odataString(roleName)
	}
	var out listJSON[roleDefinitionJSON]
	if _, err := c.mgmt(ctx, "GET", withFilter(escapeScope(scope)+authzProvider+"roleDefinitions", filter), nil, &out); err != nil {
		return nil, err
	}
	ds := make([]*keyhold.RoleDefinition, len(out.Value))
	for i := range out.Value {
		ds[i] = fromRoleDefinitionJSON(&out.Value[i])
	}
	return ds, nil
}

// RoleDefinition returns a role definition by GUID.
func (c *Client) RoleDefinition(ctx context.Context, scope, id string) (*keyhold.RoleDefinition, error) {
	var out roleDefinitionJSON
	if _, err := c.mgmt(ctx, "GET", escapeScope(scope)+authzProvider+"roleDefinitions/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return fromRoleDefinitionJSON(&out), nil
}

func assignmentPath(scope, name string) string {
	return escapeScope(scope) + authzProvider + "roleAssignments/" + url.PathEscape(name)
}

// CreateRoleAssignment creates a role assignment and fills a in from the
// answer. An empty a.ID gets a new GUID; a.RoleDefinitionID may be a
// role's GUID or its full id.
func (c *Client) CreateRoleAssignment(ctx context.Context, a *keyhold.RoleAssignment) error {
	if a.ID == "" {
		a.ID = uuid.NewString()
	}
	role := a.RoleDefinitionID
	if !strings.Contains(role, "/") {
		sc, err := keyhold.ParseScope(a.Scope)
		if err != nil {
			return err
		}
		role = keyhold.RoleDefinitionID(sc.SubscriptionID, role)
	}
	type properties struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType,omitempty"`
	}
	in := struct {
		Properties properties `json:"properties"`
	}{properties{role, a.PrincipalID, a.PrincipalType}}
	var out roleAssignmentJSON
	if _, err := c.mgmt(ctx, "PUT", assignmentPath(a.Scope, a.ID), in, &out); err != nil {
		return err
	}
	*a = *fromRoleAssignmentJSON(&out)
	return nil
}

// RoleAssignment returns the role assignment name at scope.
func (c *Client) RoleAssignment(ctx context.Context, scope, name string) (*keyhold.RoleAssignment, error) {
	var out roleAssignmentJSON
	if _, err := c.mgmt(ctx, "GET", assignmentPath(scope, name), nil, &out); err != nil {
		return nil, err
	}
	return fromRoleAssignmentJSON(&out), nil
}

// DeleteRoleAssignment deletes the role assignment name at scope and
// returns it; CodeNotFound if there was none (the server's 204).
func (c *Client) DeleteRoleAssignment(ctx context.Context, scope, name string) (*keyhold.RoleAssignment, error) {
	var out roleAssignmentJSON
	status, err := c.mgmt(ctx, "DELETE", assignmentPath(scope, name), nil, &out)
	if err != nil {
		return nil, err
	}
	if status == nethttp.StatusNoContent {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "The role assignment '%s' is not found at scope '%s'.", name, scope)
	}
	return fromRoleAssignmentJSON(&out), nil
}

// ListRoleAssignments returns the role assignments at, above and (unless
// f.AtScope) below scope.
func (c *Client) ListRoleAssignments(ctx context.Context, scope string, f keyhold.AssignmentFilter) ([]*keyhold.RoleAssignment, error) {
	var terms []string
	if f.AtScope {
		terms = append(terms, "atScope()")
	}
	if f.PrincipalID != "" {
		terms = append(terms, "principalId eq "+odataString(f.PrincipalID))
	}
	var out listJSON[roleAssignmentJSON]
	if _, err := c.mgmt(ctx, "GET", withFilter(escapeScope(scope)+authzProvider+"roleAssignments", strings.Join(terms, " and ")), nil, &out); err != nil {
		return nil, err
	}
	as := make([]*keyhold.RoleAssignment, len(out.Value))
	for i := range out.Value {
		as[i] = fromRoleAssignmentJSON(&out.Value[i])
	}
	return as, nil
}

// CreateServicePrincipal creates a service principal and returns it with
// its client secret, which the server shows only this once.
func (c *Client) CreateServicePrincipal(ctx context.Context, displayName string) (*keyhold.NewServicePrincipal, error) {
	var out servicePrincipalJSON
	in := struct {
		DisplayName string `json:"displayName"`
	}{displayName}
	if _, err := c.mgmt(ctx, "POST", graphSPs, in, &out); err != nil {
		return nil, err
	}
	sp := &keyhold.NewServicePrincipal{Principal: fromServicePrincipalJSON(&out, c.tenantID)}
	if len(out.PasswordCredentials) > 0 {
		sp.Secret, sp.SecretExpires = out.PasswordCredentials[0].SecretText, out.PasswordCredentials[0].EndDateTime
		sp.Principal.CreatedAt = out.PasswordCredentials[0].StartDateTime
	}
	return sp, nil
}

// ServicePrincipals returns the tenant's service principals and managed
// identities.
func (c *Client) ServicePrincipals(ctx context.Context) ([]*keyhold.Principal, error) {
	var out listJSON[servicePrincipalJSON]
	if _, err := c.mgmt(ctx, "GET", graphSPs, nil, &out); err != nil {
		return nil, err
	}
	ps := make([]*keyhold.Principal, len(out.Value))
	for i := range out.Value {
		ps[i] = fromServicePrincipalJSON(&out.Value[i], c.tenantID)
	}
	return ps, nil
}

func (c *Client) fromUserJSON(j *userJSON) *keyhold.User {
	return &keyhold.User{Principal: &keyhold.Principal{ID: j.ID, TenantID: c.tenantID, Type: keyhold.PrincipalUser, DisplayName: j.DisplayName},
		UserPrincipalName: j.UserPrincipalName}
}

// CreateUser creates a user; with an empty password the server generates
// one and NewUser.Password holds it.
func (c *Client) CreateUser(ctx context.Context, displayName, upn, password string) (*keyhold.NewUser, error) {
	in := struct {
		DisplayName       string               `json:"displayName"`
		UserPrincipalName string               `json:"userPrincipalName"`
		AccountEnabled    bool                 `json:"accountEnabled"`
		PasswordProfile   *passwordProfileJSON `json:"passwordProfile,omitempty"`
	}{DisplayName: displayName, UserPrincipalName: upn, AccountEnabled: true}
	if password != "" {
		in.PasswordProfile = &passwordProfileJSON{Password: password}
	}
	var out userJSON
	if _, err := c.mgmt(ctx, "POST", graphUsers, in, &out); err != nil {
		return nil, err
	}
	u := &keyhold.NewUser{User: c.fromUserJSON(&out)}
	if out.PasswordProfile != nil {
		u.Password = out.PasswordProfile.Password
	}
	return u, nil
}

// Users returns the tenant's users.
func (c *Client) Users(ctx context.Context) ([]*keyhold.User, error) {
	var out listJSON[userJSON]
	if _, err := c.mgmt(ctx, "GET", graphUsers, nil, &out); err != nil {
		return nil, err
	}
	us := make([]*keyhold.User, len(out.Value))
	for i := range out.Value {
		us[i] = c.fromUserJSON(&out.Value[i])
	}
	return us, nil
}

// AssignDirectoryRole gives a principal a directory role.
func (c *Client) AssignDirectoryRole(ctx context.Context, principalID string, role keyhold.DirectoryRole) (*keyhold.DirectoryRoleAssignment, error) {
	tid, ok := keyhold.DirectoryRoleTemplates[role]
	if !ok {
		tid = string(role) // the server names the roles it knows
	}
	in := directoryRoleAssignmentJSON{PrincipalID: principalID, RoleDefinitionID: tid, DirectoryScopeID: "/"}
	var out directoryRoleAssignmentJSON
	if _, err := c.mgmt(ctx, "POST", graphDirAssigns, in, &out); err != nil {
		return nil, err
	}
	return fromDirectoryRoleAssignmentJSON(&out), nil
}

// DirectoryRoleAssignments returns the directory roles held in the tenant,
// by one principal if principalID is set.
func (c *Client) DirectoryRoleAssignments(ctx context.Context, principalID string) ([]*keyhold.DirectoryRoleAssignment, error) {
	filter := ""
	if principalID != "" {
		filter = "principalId eq " + odataString(principalID)
	}
	var out listJSON[directoryRoleAssignmentJSON]
	if _, err := c.mgmt(ctx, "GET", withFilter(graphDirAssigns, filter), nil, &out); err != nil {
		return nil, err
	}
	as := make([]*keyhold.DirectoryRoleAssignment, len(out.Value))
	for i := range out.Value {
		as[i] = fromDirectoryRoleAssignmentJSON(&out.Value[i])
	}
	return as, nil
}

// RemoveDirectoryRoleAssignment takes a directory role from a principal.
func (c *Client) RemoveDirectoryRoleAssignment(ctx context.Context, id string) error {
	_, err := c.mgmt(ctx, "DELETE", graphDirAssigns+"/"+url.PathEscape(id), nil, nil)
	return err
}

func memberPath(envID string, principalID ...string) string {
	return adminEnvPrefix + escape(append([]string{envID, "members"}, principalID...)...)
}

// AddEnvironmentMember makes a principal a member of an environment;
// created is false if it was one already.
func (c *Client) AddEnvironmentMember(ctx context.Context, envID, principalID string) (*keyhold.EnvironmentMember, bool, error) {
	var out memberJSON
	status, err := c.mgmt(ctx, "PUT", memberPath(envID, principalID), nil, &out)
	if err != nil {
		return nil, false, err
	}
	return fromMemberJSON(&out), status == nethttp.StatusCreated, nil
}

// RemoveEnvironmentMember ends a principal's membership of an environment.
func (c *Client) RemoveEnvironmentMember(ctx context.Context, envID, principalID string) error {
	_, err := c.mgmt(ctx, "DELETE", memberPath(envID, principalID), nil, nil)
	return err
}

// EnvironmentMembers lists an environment's members.
func (c *Client) EnvironmentMembers(ctx context.Context, envID string) ([]*keyhold.EnvironmentMember, error) {
	var out listJSON[memberJSON]
	if _, err := c.mgmt(ctx, "GET", memberPath(envID), nil, &out); err != nil {
		return nil, err
	}
	ms := make([]*keyhold.EnvironmentMember, len(out.Value))
	for i := range out.Value {
		ms[i] = fromMemberJSON(&out.Value[i])
	}
	return ms, nil
}
