package sqlstore

import (
	"context"
	"database/sql"
	"strings"

	"github.com/keyhold/keyhold"
)

// ARM ids compare case-insensitively. Each such id is stored twice: as
// given, to show, and folded by key (in Go, so that both backends fold
// alike), to look up and to keep unique.
func key(s string) string { return strings.ToLower(s) }

// scopeKey folds a scope as keyhold.ScopeCovers compares it.
func scopeKey(s string) string { return strings.ToLower(strings.TrimSuffix(s, "/")) }

// CreateResourceGroup stores a new resource group; a group of the same name
// (in any case) in the subscription is a CodeConflict.
func (t *tx) CreateResourceGroup(ctx context.Context, g *keyhold.ResourceGroup) error {
	if err := checkTimes(g.CreatedAt); err != nil {
		return err
	}
	tags, err := jsonArg(g.Tags)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO resource_groups (sub_key, name_key, subscription_id, name, location, tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key(g.SubscriptionID), key(g.Name), g.SubscriptionID, g.Name, g.Location, tags, nanos(g.CreatedAt))
	if err != nil {
		return t.fail("create resource group", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "resource group %q already exists in subscription %q", g.Name, g.SubscriptionID)
	}
	return nil
}

// UpdateResourceGroup replaces an existing group's tags, or returns
// CodeNotFound. Its name as stored, location and creation time stay.
func (t *tx) UpdateResourceGroup(ctx context.Context, g *keyhold.ResourceGroup) error {
	tags, err := jsonArg(g.Tags)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE resource_groups SET tags = ? WHERE sub_key = ? AND name_key = ?`, tags, key(g.SubscriptionID), key(g.Name))
	if err != nil {
		return t.fail("update resource group", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "resource group %q not found in subscription %q", g.Name, g.SubscriptionID)
	}
	return nil
}

const resourceGroupCols = `subscription_id, name, location, tags, created_at`

func scanResourceGroup(sc scanner) (*keyhold.ResourceGroup, error) {
	g := &keyhold.ResourceGroup{}
	err := sc.Scan(&g.SubscriptionID, &g.Name, &g.Location, jsonCol{&g.Tags}, timeCol{&g.CreatedAt})
	return g, err
}

// ResourceGroup returns a resource group, or CodeNotFound.
func (t *tx) ResourceGroup(ctx context.Context, subscriptionID, name string) (*keyhold.ResourceGroup, error) {
	g, err := get(t, ctx, "get resource group", scanResourceGroup,
		`SELECT `+resourceGroupCols+` FROM resource_groups WHERE sub_key = ? AND name_key = ?`, key(subscriptionID), key(name))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "resource group %q not found in subscription %q", name, subscriptionID))
	}
	return g, nil
}

// ListResourceGroups returns a subscription's resource groups by name.
func (t *tx) ListResourceGroups(ctx context.Context, subscriptionID string) ([]*keyhold.ResourceGroup, error) {
	return list(t, ctx, "list resource groups", scanResourceGroup,
		`SELECT `+resourceGroupCols+` FROM resource_groups WHERE sub_key = ? ORDER BY name_key`, key(subscriptionID))
}

// DeleteResourceGroup deletes a resource group's record (not the resources
// in it), or returns CodeNotFound.
func (t *tx) DeleteResourceGroup(ctx context.Context, subscriptionID, name string) error {
	n, err := t.execN(ctx, `DELETE FROM resource_groups WHERE sub_key = ? AND name_key = ?`, key(subscriptionID), key(name))
	if err != nil {
		return t.fail("delete resource group", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "resource group %q not found in subscription %q", name, subscriptionID)
	}
	return nil
}

// PutProviderRegistration inserts or replaces a subscription's registration
// of a namespace.
func (t *tx) PutProviderRegistration(ctx context.Context, r *keyhold.ProviderRegistration) error {
	if err := checkTimes(r.UpdatedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO provider_registrations (sub_key, ns_key, subscription_id, namespace, state, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (sub_key, ns_key) DO UPDATE SET subscription_id = excluded.subscription_id, namespace = excluded.namespace, state = excluded.state, updated_at = excluded.updated_at`,
		key(r.SubscriptionID), key(r.Namespace), r.SubscriptionID, r.Namespace, r.State, nanos(r.UpdatedAt))
	if err != nil {
		return t.fail("put provider registration", err)
	}
	return nil
}

const providerCols = `subscription_id, namespace, state, updated_at`

func scanProvider(sc scanner) (*keyhold.ProviderRegistration, error) {
	r := &keyhold.ProviderRegistration{}
	err := sc.Scan(&r.SubscriptionID, &r.Namespace, &r.State, timeCol{&r.UpdatedAt})
	return r, err
}

// ProviderRegistration returns a registration, or CodeNotFound.
func (t *tx) ProviderRegistration(ctx context.Context, subscriptionID, namespace string) (*keyhold.ProviderRegistration, error) {
	r, err := get(t, ctx, "get provider registration", scanProvider,
		`SELECT `+providerCols+` FROM provider_registrations WHERE sub_key = ? AND ns_key = ?`, key(subscriptionID), key(namespace))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "subscription %q has no registration of %q", subscriptionID, namespace))
	}
	return r, nil
}

// ListProviderRegistrations returns a subscription's registrations by
// namespace.
func (t *tx) ListProviderRegistrations(ctx context.Context, subscriptionID string) ([]*keyhold.ProviderRegistration, error) {
	return list(t, ctx, "list provider registrations", scanProvider,
		`SELECT `+providerCols+` FROM provider_registrations WHERE sub_key = ? ORDER BY ns_key`, key(subscriptionID))
}

// CreateRoleAssignment stores a role assignment; an existing id (in any
// case) is a CodeConflict.
func (t *tx) CreateRoleAssignment(ctx context.Context, a *keyhold.RoleAssignment) error {
	if err := checkTimes(a.CreatedAt); err != nil {
		return err
	}
	mac := t.sealOrNil(func(rs keyhold.RecordSealer) []byte { return rs.SealRoleAssignment(a) })
	n, err := t.execN(ctx, `INSERT INTO role_assignments (id_key, id, scope_key, scope, role_definition_id, principal_id, principal_type, tenant_id, created_by, created_at, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key(a.ID), a.ID, scopeKey(a.Scope), a.Scope, a.RoleDefinitionID, a.PrincipalID, a.PrincipalType, a.TenantID, a.CreatedBy, nanos(a.CreatedAt), mac)
	if err != nil {
		return t.fail("create role assignment", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "role assignment %q already exists", a.ID)
	}
	return nil
}

const roleAssignmentCols = `id, scope, role_definition_id, principal_id, principal_type, tenant_id, created_by, created_at`

func scanRoleAssignment(sc scanner) (*keyhold.RoleAssignment, error) {
	a := &keyhold.RoleAssignment{}
	err := sc.Scan(&a.ID, &a.Scope, &a.RoleDefinitionID, &a.PrincipalID, &a.PrincipalType, &a.TenantID, &a.CreatedBy, timeCol{&a.CreatedAt})
	return a, err
}

// sealedAssignment is a role assignment as read, with its seal.
type sealedAssignment struct {
	a   *keyhold.RoleAssignment
	mac []byte
}

func scanSealedAssignment(sc scanner) (sealedAssignment, error) {
	a := &keyhold.RoleAssignment{}
	var mac []byte
	err := sc.Scan(&a.ID, &a.Scope, &a.RoleDefinitionID, &a.PrincipalID, &a.PrincipalType, &a.TenantID, &a.CreatedBy, timeCol{&a.CreatedAt}, &mac)
	return sealedAssignment{a, mac}, err
}

// checkAssignment reports whether s's seal holds (or no sealer is
// installed), recording it as refused otherwise (see access.go).
func (t *tx) checkAssignment(s sealedAssignment) bool {
	rs := t.sealer()
	return rs == nil || t.keep(s.a.TenantID, s.a.Scope+"/providers/Microsoft.Authorization/roleAssignments/"+s.a.ID, rs.CheckRoleAssignment(s.a, s.mac))
}

// RoleAssignment returns a role assignment, or CodeNotFound (also for one
// whose seal fails).
func (t *tx) RoleAssignment(ctx context.Context, id string) (*keyhold.RoleAssignment, error) {
	s, err := get(t, ctx, "get role assignment", scanSealedAssignment,
		`SELECT `+roleAssignmentCols+`, mac FROM role_assignments WHERE id_key = ?`, key(id))
	if err == nil && !t.checkAssignment(s) {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "role assignment %q not found", id))
	}
	return s.a, nil
}

// DeleteRoleAssignment deletes a role assignment, or returns CodeNotFound.
func (t *tx) DeleteRoleAssignment(ctx context.Context, id string) error {
	n, err := t.execN(ctx, `DELETE FROM role_assignments WHERE id_key = ?`, key(id))
	if err != nil {
		return t.fail("delete role assignment", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "role assignment %q not found", id)
	}
	return nil
}

// ListRoleAssignments returns the assignments that match f, oldest first,
// leaving out those whose seal fails (see access.go).
// Scope matches exactly (case-insensitively, ignoring a trailing '/'); use
// keyhold.ScopeCovers on the results to find inherited assignments.
func (t *tx) ListRoleAssignments(ctx context.Context, f keyhold.RoleAssignmentFilter) ([]*keyhold.RoleAssignment, error) {
	var conds []string
	var args []any
	if f.TenantID != "" {
		conds, args = append(conds, "tenant_id = ?"), append(args, f.TenantID)
	}
	if f.PrincipalID != "" {
		conds, args = append(conds, "principal_id = ?"), append(args, f.PrincipalID)
	}
	if f.Scope != "" {
		conds, args = append(conds, "scope_key = ?"), append(args, scopeKey(f.Scope))
	}
	ss, err := list(t, ctx, "list role assignments", scanSealedAssignment,
		`SELECT `+roleAssignmentCols+`, mac FROM role_assignments`+where(conds)+` ORDER BY created_at, id_key`, args...)
	if err != nil {
		return nil, err
	}
	out := make([]*keyhold.RoleAssignment, 0, len(ss))
	for _, s := range ss {
		if t.checkAssignment(s) {
			out = append(out, s.a)
		}
	}
	return out, nil
}
