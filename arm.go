package keyhold

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The resource manager (ARM) side of Keyhold: resource groups, resource
// provider registration, role definitions and role assignments.
//
// # Scopes and inheritance
//
// A scope is an ARM resource id prefix: "/subscriptions/{sub}",
// "/subscriptions/{sub}/resourceGroups/{rg}" or a resource's full id. A role
// assignment at a scope applies to that scope and to everything below it
// (ScopeCovers). Ids compare case-insensitively, as ARM's do.

// ResourceGroup is a container of resources in a subscription.
type ResourceGroup struct {
	SubscriptionID string            `json:"subscriptionId"`
	Name           string            `json:"name"`
	Location       string            `json:"location"`
	Tags           map[string]string `json:"tags,omitempty"`
	CreatedAt      time.Time         `json:"createdAt"`
}

// ID returns the group's resource id.
func (g *ResourceGroup) ID() string {
	return "/subscriptions/" + g.SubscriptionID + "/resourceGroups/" + g.Name
}

// Provider registration states, as ARM reports them.
const (
	ProviderRegistered    = "Registered"
	ProviderNotRegistered = "NotRegistered"
)

// Resource provider namespaces that Keyhold serves.
const (
	NamespaceKeyVault      = "Microsoft.KeyVault"
	NamespacePowerPlatform = "Microsoft.PowerPlatform"
	NamespaceAuthorization = "Microsoft.Authorization"
	NamespaceResources     = "Microsoft.Resources"
)

// ProviderRegistration records that a subscription registered a resource
// provider namespace. Microsoft.Authorization and Microsoft.Resources are
// always registered, as in Azure.
type ProviderRegistration struct {
	SubscriptionID string    `json:"subscriptionId"`
	Namespace      string    `json:"namespace"`
	State          string    `json:"registrationState"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// RoleDefinition is an Azure built-in role: what control-plane actions and
// data-plane data actions it grants. Patterns use '*' as ARM does.
type RoleDefinition struct {
	ID             string   `json:"id"` // the GUID
	Name           string   `json:"roleName"`
	Description    string   `json:"description"`
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions,omitempty"`
	DataActions    []string `json:"dataActions,omitempty"`
	NotDataActions []string `json:"notDataActions,omitempty"`
}

// Built-in role names.
const (
	RoleOwner                            = "Owner"
	RoleContributor                      = "Contributor"
	RoleReader                           = "Reader"
	RoleUserAccessAdministrator          = "User Access Administrator"
	RoleKeyVaultAdministrator            = "Key Vault Administrator"
	RoleKeyVaultCryptoOfficer            = "Key Vault Crypto Officer"
	RoleKeyVaultCryptoServiceEncryptUser = "Key Vault Crypto Service Encryption User"
	RoleKeyVaultCryptoUser               = "Key Vault Crypto User"
	RoleKeyVaultReader                   = "Key Vault Reader"
)

// BuiltinRoles are the role definitions Keyhold knows, with Azure's real
// ids, so that templates and scripts that name them by id work unchanged.
var BuiltinRoles = []RoleDefinition{
	{ID: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", Name: RoleOwner,
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Actions:     []string{"*"}},
	{ID: "b24988ac-6180-42a0-ab88-20f7382dd24c", Name: RoleContributor,
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
		Actions:     []string{"*"},
		NotActions:  []string{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action"}},
	{ID: "acdd72a7-3385-48ef-bd42-f606fba81ae7", Name: RoleReader,
		Description: "View all resources, but does not allow you to make any changes.",
		Actions:     []string{"*/read"}},
	{ID: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", Name: RoleUserAccessAdministrator,
		Description: "Lets you manage user access to Azure resources.",
		Actions:     []string{"*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"}},
	{ID: "00482a5a-887f-4fb3-b363-3b7fe8e74483", Name: RoleKeyVaultAdministrator,
		Description: "Perform all data plane operations on a key vault and all objects in it.",
		Actions:     []string{"Microsoft.Authorization/*/read", "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.KeyVault/checkNameAvailability/read", "Microsoft.KeyVault/deletedVaults/read", "Microsoft.KeyVault/locations/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"},
		DataActions: []string{"Microsoft.KeyVault/vaults/*"}},
	{ID: "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", Name: RoleKeyVaultCryptoOfficer,
		Description: "Perform any action on the keys of a key vault, except manage permissions.",
		Actions:     []string{"Microsoft.Authorization/*/read", "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.KeyVault/checkNameAvailability/read", "Microsoft.KeyVault/deletedVaults/read", "Microsoft.KeyVault/locations/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"},
		DataActions: []string{"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"}},
	{ID: "e147488a-f6f5-4113-8e2d-b22465e65bf6", Name: RoleKeyVaultCryptoServiceEncryptUser,
		Description: "Read metadata of keys and perform wrap/unwrap operations.",
		Actions:     []string{"Microsoft.EventGrid/eventSubscriptions/write", "Microsoft.EventGrid/eventSubscriptions/read", "Microsoft.EventGrid/eventSubscriptions/delete"},
		DataActions: []string{"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action", "Microsoft.KeyVault/vaults/keys/unwrap/action"}},
	{ID: "12338af0-0e69-4776-bea7-57ae8d297424", Name: RoleKeyVaultCryptoUser,
		Description: "Perform cryptographic operations using keys.",
		DataActions: []string{"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/update/action", "Microsoft.KeyVault/vaults/keys/backup/action", "Microsoft.KeyVault/vaults/keys/encrypt/action", "Microsoft.KeyVault/vaults/keys/decrypt/action", "Microsoft.KeyVault/vaults/keys/wrap/action", "Microsoft.KeyVault/vaults/keys/unwrap/action", "Microsoft.KeyVault/vaults/keys/sign/action", "Microsoft.KeyVault/vaults/keys/verify/action"}},
	{ID: "21090545-7ca7-4776-b22c-e363652d74d2", Name: RoleKeyVaultReader,
		Description: "Read metadata of key vaults and its certificates, keys, and secrets.",
		Actions:     []string{"Microsoft.Authorization/*/read", "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.KeyVault/checkNameAvailability/read", "Microsoft.KeyVault/deletedVaults/read", "Microsoft.KeyVault/locations/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"},
		DataActions: []string{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"}},
}

// FindRoleDefinition returns the built-in role with the given GUID, full
// role definition id (".../roleDefinitions/{guid}") or role name.
func FindRoleDefinition(idOrName string) (*RoleDefinition, bool) {
	if i := strings.LastIndex(idOrName, "/roleDefinitions/"); i >= 0 {
		idOrName = idOrName[i+len("/roleDefinitions/"):]
	}
	for i := range BuiltinRoles {
		r := &BuiltinRoles[i]
		if strings.EqualFold(r.ID, idOrName) || strings.EqualFold(r.Name, idOrName) {
			return r, true
		}
	}
	return nil, false
}

// Allows reports whether the role grants the control-plane action.
func (r *RoleDefinition) Allows(action string) bool {
	return matchesAny(r.Actions, action) && !matchesAny(r.NotActions, action)
}

// AllowsData reports whether the role grants the data-plane action.
func (r *RoleDefinition) AllowsData(action string) bool {
	return matchesAny(r.DataActions, action) && !matchesAny(r.NotDataActions, action)
}

func matchesAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if ActionMatches(p, action) {
			return true
		}
	}
	return false
}

// ActionMatches reports whether an ARM action pattern matches an action,
// case-insensitively, '*' matching any run of characters ('/' included),
// as ARM evaluates "Microsoft.KeyVault/vaults/keys/*" and "*/read".
func ActionMatches(pattern, action string) bool {
	p, a := strings.ToLower(pattern), strings.ToLower(action)
	star := strings.IndexByte(p, '*')
	if star < 0 {
		return p == a
	}
	if !strings.HasPrefix(a, p[:star]) {
		return false
	}
	rest := p[star+1:]
	for i := star; i <= len(a); i++ {
		if ActionMatches(rest, a[i:]) {
			return true
		}
	}
	return false
}

// RoleAssignment grants a principal a role at a scope. ID is the
// assignment's name (a GUID chosen by the caller, as in ARM).
type RoleAssignment struct {
	ID               string    `json:"name"`
	Scope            string    `json:"scope"`
	RoleDefinitionID string    `json:"roleDefinitionId"` // the role's GUID
	PrincipalID      string    `json:"principalId"`
	PrincipalType    string    `json:"principalType"`
	TenantID         string    `json:"tenantId"`
	CreatedBy        string    `json:"createdBy"`
	CreatedAt        time.Time `json:"createdOn"`
}

// ScopeCovers reports whether an assignment at scope applies to resourceID:
// the same id, or one below it.
func ScopeCovers(scope, resourceID string) bool {
	s, r := strings.ToLower(strings.TrimSuffix(scope, "/")), strings.ToLower(strings.TrimSuffix(resourceID, "/"))
	return s == r || strings.HasPrefix(r, s+"/")
}

// RoleAssignmentFilter selects role assignments. Empty fields match all.
type RoleAssignmentFilter struct {
	TenantID    string
	PrincipalID string
	// Scope, if set, selects the assignments at exactly that scope.
	Scope string
}

// ARMTx is the part of a store transaction that holds resource-manager
// state. Lookups of missing items return CodeNotFound (or the more specific
// code named).
type ARMTx interface {
	CreateResourceGroup(ctx context.Context, g *ResourceGroup) error // CodeConflict if it exists
	// UpdateResourceGroup replaces the tags of an existing group (its
	// location and creation time never change).
	UpdateResourceGroup(ctx context.Context, g *ResourceGroup) error
	ResourceGroup(ctx context.Context, subscriptionID, name string) (*ResourceGroup, error)
	ListResourceGroups(ctx context.Context, subscriptionID string) ([]*ResourceGroup, error)
	DeleteResourceGroup(ctx context.Context, subscriptionID, name string) error

	PutProviderRegistration(ctx context.Context, r *ProviderRegistration) error // upsert
	ProviderRegistration(ctx context.Context, subscriptionID, namespace string) (*ProviderRegistration, error)
	ListProviderRegistrations(ctx context.Context, subscriptionID string) ([]*ProviderRegistration, error)

	CreateRoleAssignment(ctx context.Context, a *RoleAssignment) error // CodeConflict if the id exists
	RoleAssignment(ctx context.Context, id string) (*RoleAssignment, error)
	DeleteRoleAssignment(ctx context.Context, id string) error
	ListRoleAssignments(ctx context.Context, f RoleAssignmentFilter) ([]*RoleAssignment, error)
}

// Allowed reports whether the assignments grant action on resourceID:
// some assignment whose scope covers resourceID names a built-in role that
// allows it (a data action when data is true). Unknown role ids grant
// nothing.
func Allowed(assignments []*RoleAssignment, resourceID, action string, data bool) bool {
	for _, a := range assignments {
		if !ScopeCovers(a.Scope, resourceID) {
			continue
		}
		r, ok := FindRoleDefinition(a.RoleDefinitionID)
		if !ok {
			continue
		}
		if (data && r.AllowsData(action)) || (!data && r.Allows(action)) {
			return true
		}
	}
	return false
}

// Scope is a parsed ARM scope: a subscription, a resource group, or a
// resource in a resource group.
type Scope struct {
	SubscriptionID string
	ResourceGroup  string // "" at subscription scope
	// Namespace and Path name a resource: "Microsoft.KeyVault" and
	// "vaults/kv1" (or "vaults/kv1/keys/k1" for a child resource).
	Namespace string
	Path      string
}

// String returns the scope's id, with ARM's spelling of the fixed
// segments and the names as given.
func (s *Scope) String() string {
	id := "/subscriptions/" + s.SubscriptionID
	if s.ResourceGroup != "" {
		id += "/resourceGroups/" + s.ResourceGroup
	}
	if s.Namespace != "" {
		id += "/providers/" + s.Namespace + "/" + s.Path
	}
	return id
}

// Kind names the scope's level: "subscription", "resource group" or
// "resource".
func (s *Scope) Kind() string {
	switch {
	case s.Namespace != "":
		return "resource"
	case s.ResourceGroup != "":
		return "resource group"
	}
	return "subscription"
}

// segmentRE is what one segment of a scope may hold: ARM names never hold
// '/', '?', '#', control characters or spaces at the ends.
var segmentRE = regexp.MustCompile(`^[^/?#\x00-\x1f\x7f]{1,260}$`)

// ParseScope parses an ARM scope: /subscriptions/{sub},
// /subscriptions/{sub}/resourceGroups/{rg}, or a resource id
// /subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{type}/{name}[/{type}/{name}…].
// The fixed segments match in any case; a trailing '/' is ignored. Anything
// else is CodeBadRequest (ARM's InvalidScope, say).
func ParseScope(scope string) (*Scope, error) {
	bad := func(why string) error {
		return Errorf(CodeBadRequest, "the scope '%s' is not valid: %s; use /subscriptions/{id}, /subscriptions/{id}/resourceGroups/{name} or a resource id", Clip(scope), why)
	}
	segs := strings.Split(strings.TrimPrefix(strings.TrimSuffix(scope, "/"), "/"), "/")
	if !strings.HasPrefix(scope, "/") || len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return nil, bad("it must start with /subscriptions/{id}")
	}
	for _, s := range segs {
		if err := CheckText(CodeBadRequest, "the scope segment", s); err != nil {
			return nil, err
		}
		if !segmentRE.MatchString(s) || strings.TrimSpace(s) != s {
			return nil, bad("it has an empty or malformed segment")
		}
	}
	sc := &Scope{SubscriptionID: segs[1]}
	rest := segs[2:]
	if len(rest) == 0 {
		return sc, nil
	}
	if !strings.EqualFold(rest[0], "resourceGroups") || len(rest) < 2 {
		return nil, bad("after the subscription comes /resourceGroups/{name}")
	}
	sc.ResourceGroup = rest[1]
	rest = rest[2:]
	if len(rest) == 0 {
		return sc, nil
	}
	if !strings.EqualFold(rest[0], "providers") || len(rest) < 4 || len(rest)%2 != 0 {
		return nil, bad("a resource id continues /providers/{namespace}/{type}/{name}")
	}
	sc.Namespace = CanonicalNamespace(rest[1])
	sc.Path = strings.Join(rest[2:], "/")
	return sc, nil
}

// CanonicalNamespace spells a namespace Keyhold knows as ARM does.
func CanonicalNamespace(ns string) string {
	if p, ok := Provider(ns); ok {
		return p.Namespace
	}
	return ns
}

// ProviderInfo describes a resource provider namespace Keyhold serves.
type ProviderInfo struct {
	Namespace string
	// ResourceTypes are the types it serves, as ARM lists them.
	ResourceTypes []string
	// Always: registered in every subscription, as Microsoft.Authorization
	// and Microsoft.Resources are in Azure.
	Always bool
}

// providers are the namespaces Keyhold knows, in the order listed.
var providers = []ProviderInfo{
	{Namespace: NamespaceAuthorization, ResourceTypes: []string{"roleAssignments", "roleDefinitions"}, Always: true},
	{Namespace: NamespaceKeyVault, ResourceTypes: []string{"vaults", "vaults/accessPolicies", "deletedVaults", "locations", "locations/deletedVaults", "managedHSMs", "deletedManagedHSMs", "locations/deletedManagedHSMs", "checkNameAvailability", "operations"}},
	{Namespace: NamespacePowerPlatform, ResourceTypes: []string{"enterprisePolicies", "locations", "operations"}},
	{Namespace: NamespaceResources, ResourceTypes: []string{"deployments", "resourceGroups", "subscriptions"}, Always: true},
}

// Providers returns the namespaces Keyhold knows, in the order listed.
func Providers() []ProviderInfo { return slices.Clone(providers) }

// Provider returns what Keyhold knows of a namespace (in any case).
func Provider(namespace string) (ProviderInfo, bool) {
	for _, p := range providers {
		if strings.EqualFold(p.Namespace, namespace) {
			return p, true
		}
	}
	return ProviderInfo{}, false
}

// RoleDefinitionID returns the full id of a built-in role at a
// subscription, as ARM shows it.
func RoleDefinitionID(subscriptionID, roleGUID string) string {
	return "/subscriptions/" + subscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + roleGUID
}

// AssignmentID returns the full id of a role assignment.
func AssignmentID(scope, name string) string {
	return strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + name
}

// AssignmentFilter selects the role assignments ListRoleAssignments
// returns.
type AssignmentFilter struct {
	// PrincipalID, if set, selects one principal's assignments.
	PrincipalID string
	// AtScope selects the assignments that apply at the scope (at it or
	// above it), as ARM's $filter=atScope() does; otherwise those below it
	// are listed too.
	AtScope bool
}

// ResourceManager is the resource manager: subscriptions, resource groups,
// provider registration, role definitions and role assignments.
// The arm package implements it, and so does the http package's Client,
// over HTTPS. Every method takes the caller's identity from ctx; see package
// arm for the rules.
type ResourceManager interface {
	Subscriptions(ctx context.Context) ([]*Subscription, error)
	Subscription(ctx context.Context, id string) (*Subscription, error)

	PutResourceGroup(ctx context.Context, g *ResourceGroup) (created bool, err error)
	ResourceGroup(ctx context.Context, sub, name string) (*ResourceGroup, error)
	ListResourceGroups(ctx context.Context, sub string) ([]*ResourceGroup, error)
	DeleteResourceGroup(ctx context.Context, sub, name string) error

	RegisterProvider(ctx context.Context, sub, namespace string) (*ProviderRegistration, error)
	Provider(ctx context.Context, sub, namespace string) (*ProviderRegistration, error)
	ListProviders(ctx context.Context, sub string) ([]*ProviderRegistration, error)

	RoleDefinitions(ctx context.Context, scope, roleName string) ([]*RoleDefinition, error)
	RoleDefinition(ctx context.Context, scope, id string) (*RoleDefinition, error)
	CreateRoleAssignment(ctx context.Context, a *RoleAssignment) error
	RoleAssignment(ctx context.Context, scope, name string) (*RoleAssignment, error)
	DeleteRoleAssignment(ctx context.Context, scope, name string) (*RoleAssignment, error)
	ListRoleAssignments(ctx context.Context, scope string, f AssignmentFilter) ([]*RoleAssignment, error)
}
