// Package arm implements Keyhold's resource manager and directory: what
// Azure Resource Manager and Entra ID do for the customer-managed key
// scenario. It holds subscriptions' resource groups, resource provider
// registration, the built-in role definitions and role assignments at
// subscription, resource group and resource scope; and the directory's
// principals (users, service principals, managed identities), directory
// roles and environment membership.
//
// Every exported Service method takes the caller's identity from ctx,
// checks it, runs in one store transaction and audits each change it makes
// in that transaction.
//
// # Authorization
//
// Control-plane actions are authorized as ARM does: a role assignment at a
// scope applies at that scope and below it (subscription, then resource
// group, then resource), and its built-in role grants actions by pattern
// (keyhold.Allowed). A refusal is CodeAuthorizationFailed with ARM's
// message. Creating principals and assigning directory roles needs the
// Global Administrator directory role; reading the directory and managing
// environment membership needs a platform administrator role.
//
// Resource providers in other packages call Authorize and
// RequireRegistered in their own transactions, and may register a
// ResourceDeleter so that deleting a resource group deletes their
// resources in it.
package arm

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/keyhold/keyhold"
)

// Config configures a Service.
type Config struct {
	Store keyhold.Store
	// Clock tells the time (default: the wall clock).
	Clock keyhold.Clock
	// Logger receives failures of resource deleters (nil: discarded).
	Logger *slog.Logger
}

// Service is the resource manager and directory. It is safe for concurrent
// use.
type Service struct {
	store keyhold.Store
	clock keyhold.Clock
	log   *slog.Logger

	mu       sync.RWMutex
	deleters []ResourceDeleter
}

var (
	_ keyhold.ResourceManager = (*Service)(nil)
	_ keyhold.Directory       = (*Service)(nil)
)

// New returns a Service over cfg.Store.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, clock: cfg.Clock, log: cfg.Logger}
	if s.clock == nil {
		s.clock = keyhold.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// ResourceDeleter deletes a resource provider's resources in a resource
// group that is being deleted. DeleteResourcesIn runs after the caller was
// authorized to delete the group, with the caller's identity in ctx, and
// before the group itself is deleted: it must not check the caller's
// rights again, should delete everything it holds in the group, and
// returns an error only if the group must stay.
type ResourceDeleter interface {
	DeleteResourcesIn(ctx context.Context, subscriptionID, resourceGroup string) error
}

// RegisterDeleter adds d to the deleters that DeleteResourceGroup calls, in
// the order registered.
func (s *Service) RegisterDeleter(d ResourceDeleter) {
	s.mu.Lock()
	s.deleters = append(s.deleters, d)
	s.mu.Unlock()
}

// audit appends an entry in tx on behalf of the caller.
func (s *Service) audit(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, action, target, envID, detail string) error {
	_, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{
		At: s.clock.Now(), TenantID: id.TenantID, ActorID: id.PrincipalID,
		Action: action, Target: target, EnvID: envID, Detail: detail,
	})
	return err
}

// Authorize checks, in tx, that the caller may perform the control-plane
// action on the resource or scope resourceID: that one of its role
// assignments in its tenant covers resourceID and grants the action. A
// refusal is CodeAuthorizationFailed with ARM's message, which names the
// caller, the action and the scope. Other resource providers call it in
// their own transactions.
func Authorize(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, resourceID, action string) error {
	as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: id.TenantID, PrincipalID: id.PrincipalID})
	if err != nil {
		return err
	}
	if keyhold.Allowed(as, resourceID, action, false) {
		return nil
	}
	return AuthorizationFailed(ctx, tx, id, action, resourceID)
}

// AuthorizationFailed returns ARM's refusal of action on scope, naming the
// caller by application id, or a user by sign-in name.
func AuthorizationFailed(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, action, scope string) error {
	client := id.AppID
	if client == "" {
		if u, err := tx.UserAccount(ctx, id.PrincipalID); err == nil {
			client = u.UserPrincipalName
		} else {
			client = id.PrincipalID
		}
	}
	return keyhold.Errorf(keyhold.CodeAuthorizationFailed,
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid.",
		client, id.PrincipalID, action, scope)
}

// SubscriptionFor returns a subscription of the caller's tenant. Another
// tenant's subscription is reported as not found, as ARM does, so ids
// can't be probed across tenants. Every resource provider (arm, policy,
// deploy) looks subscriptions up through it.
func SubscriptionFor(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, subID string) (*keyhold.Subscription, error) {
	sub, err := tx.Subscription(ctx, subID)
	if err == nil && !strings.EqualFold(sub.TenantID, id.TenantID) {
		sub, err = nil, nil
	}
	if sub == nil && (err == nil || keyhold.ErrorCode(err) == keyhold.CodeNotFound) {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "The subscription '%s' could not be found.", keyhold.Clip(subID))
	}
	return sub, err
}

// GroupIn returns an existing resource group of subscription sub, or
// CodeResourceGroupNotFound in ARM's words.
func GroupIn(ctx context.Context, tx keyhold.Tx, sub, rg string) (*keyhold.ResourceGroup, error) {
	g, err := tx.ResourceGroup(ctx, sub, rg)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil, keyhold.Errorf(keyhold.CodeResourceGroupNotFound, "Resource group '%s' could not be found.", keyhold.Clip(rg))
	}
	return g, err
}

// requireScope checks that a scope exists for the caller: its subscription
// is the caller's tenant's and its resource group exists. A resource scope
// is accepted under an existing group whatever the resource, since resource
// providers keep their own state.
func requireScope(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, sc *keyhold.Scope) error {
	sub, err := SubscriptionFor(ctx, tx, id, sc.SubscriptionID)
	if err != nil {
		return err
	}
	sc.SubscriptionID = sub.ID // as stored
	if sc.ResourceGroup == "" {
		return nil
	}
	g, err := tx.ResourceGroup(ctx, sub.ID, sc.ResourceGroup)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return groupNotFound(sc.ResourceGroup)
	} else if err != nil {
		return err
	}
	sc.ResourceGroup = g.Name // as stored
	return nil
}

func groupNotFound(name string) error {
	return keyhold.Errorf(keyhold.CodeResourceGroupNotFound, "Resource group '%s' could not be found.", name)
}

// hasDirectoryRole reports whether the caller holds a directory role
// that ok accepts.
func hasDirectoryRole(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, ok func(keyhold.DirectoryRole) bool) (bool, error) {
	roles, err := tx.DirectoryRoles(ctx, id.TenantID, id.PrincipalID)
	if err != nil {
		return false, err
	}
	for _, r := range roles {
		if ok(r) {
			return true, nil
		}
	}
	return false, nil
}

// requireGlobalAdmin checks that the caller is a Global Administrator of
// its tenant.
func requireGlobalAdmin(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, what string) error {
	ok, err := hasDirectoryRole(ctx, tx, id, func(r keyhold.DirectoryRole) bool { return r == keyhold.RoleGlobalAdministrator })
	if err != nil || ok {
		return err
	}
	return keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not %s: it needs the %s directory role", id.PrincipalID, what, keyhold.RoleGlobalAdministrator)
}

// requirePlatformAdmin checks that the caller holds a directory role that
// administers the platform: Global, Power Platform or Dynamics 365
// Administrator.
func requirePlatformAdmin(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, what string) error {
	ok, err := hasDirectoryRole(ctx, tx, id, keyhold.DirectoryRole.IsPlatformAdmin)
	if err != nil || ok {
		return err
	}
	return keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not %s: it needs the %s, %s or %s directory role",
		id.PrincipalID, what, keyhold.RolePowerPlatformAdministrator, keyhold.RoleDynamics365Administrator, keyhold.RoleGlobalAdministrator)
}
