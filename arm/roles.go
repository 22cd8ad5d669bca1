package arm

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// Role assignment actions, as Azure names them.
const (
	ActionRoleAssignmentRead   = "Microsoft.Authorization/roleAssignments/read"
	ActionRoleAssignmentWrite  = "Microsoft.Authorization/roleAssignments/write"
	ActionRoleAssignmentDelete = "Microsoft.Authorization/roleAssignments/delete"
)

// ARM's principal types of a role assignment. Managed identities are
// service principals to ARM.
const (
	PrincipalTypeUser             = "User"
	PrincipalTypeServicePrincipal = "ServicePrincipal"
	PrincipalTypeGroup            = "Group"
)

// ARMPrincipalType returns how ARM names a principal's type in a role
// assignment.
func ARMPrincipalType(t keyhold.PrincipalType) string {
	if t == keyhold.PrincipalUser {
		return PrincipalTypeUser
	}
	return PrincipalTypeServicePrincipal
}

// resolveScope parses a scope and checks that it exists for the caller.
func resolveScope(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, scope string) (*keyhold.Scope, error) {
	sc, err := keyhold.ParseScope(scope)
	if err != nil {
		return nil, err
	}
	if err := requireScope(ctx, tx, id, sc); err != nil {
		return nil, err
	}
	return sc, nil
}

// RoleDefinitions returns the built-in roles, or with roleName the one of
// that name (in any case; none if there is none), as seen at scope, which
// must exist. Every principal of the tenant may read them.
func (s *Service) RoleDefinitions(ctx context.Context, scope, roleName string) ([]*keyhold.RoleDefinition, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		_, err := resolveScope(ctx, tx, id, scope)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := []*keyhold.RoleDefinition{}
	for i := range keyhold.BuiltinRoles {
		r := keyhold.BuiltinRoles[i]
		if roleName == "" || strings.EqualFold(r.Name, roleName) {
			out = append(out, &r)
		}
	}
	return out, nil
}

// RoleDefinition returns a built-in role by GUID (or full role definition
// id) at scope; CodeNotFound if there is none.
func (s *Service) RoleDefinition(ctx context.Context, scope, roleID string) (*keyhold.RoleDefinition, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		_, err := resolveScope(ctx, tx, id, scope)
		return err
	})
	if err != nil {
		return nil, err
	}
	r, ok := findRoleByID(roleID)
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "The specified role definition with ID '%s' does not exist.", keyhold.Clip(roleID))
	}
	cp := *r
	return &cp, nil
}

// findRoleByID finds a built-in role by GUID or full id, not by name: ARM's
// roleDefinitionId is never a name.
func findRoleByID(roleID string) (*keyhold.RoleDefinition, bool) {
	guid := roleID
	if i := strings.LastIndex(strings.ToLower(roleID), "/roledefinitions/"); i >= 0 {
		guid = roleID[i+len("/roledefinitions/"):]
	}
	if _, err := uuid.Parse(guid); err != nil {
		return nil, false
	}
	return keyhold.FindRoleDefinition(guid)
}

// CreateRoleAssignment creates the role assignment a: a.ID (its name, a
// GUID the caller chooses, as in ARM), a.Scope, a.RoleDefinitionID (a
// built-in role's GUID or full id), a.PrincipalID and optionally
// a.PrincipalType. It fills in the rest. It needs the role assignment write
// action at the scope (Owner, User Access Administrator), which must exist.
//
// Putting the same assignment again succeeds and changes nothing; the same
// name with other properties, or the same principal, role and scope under
// another name, is CodeConflict. An unknown role or principal, or a
// principal type that is not the principal's, is CodeBadRequest.
func (s *Service) CreateRoleAssignment(ctx context.Context, a *keyhold.RoleAssignment) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	if _, err := uuid.Parse(a.ID); err != nil {
		return keyhold.Errorf(keyhold.CodeBadRequest, "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", keyhold.Clip(a.ID))
	}
	sc, err := keyhold.ParseScope(a.Scope)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := Authorize(ctx, tx, id, sc.String(), ActionRoleAssignmentWrite); err != nil {
			return err
		}
		if err := requireScope(ctx, tx, id, sc); err != nil {
			return err
		}
		role, ok := findRoleByID(a.RoleDefinitionID)
		if !ok {
			return keyhold.Errorf(keyhold.CodeBadRequest, "The specified role definition with ID '%s' does not exist.", keyhold.Clip(a.RoleDefinitionID))
		}
		p, err := tx.Principal(ctx, a.PrincipalID)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound || (err == nil && p.TenantID != id.TenantID) {
			return keyhold.Errorf(keyhold.CodeBadRequest, "Principal %s does not exist in the directory %s.", keyhold.Clip(a.PrincipalID), id.TenantID)
		} else if err != nil {
			return err
		}
		ptype := ARMPrincipalType(p.Type)
		if a.PrincipalType != "" && !strings.EqualFold(a.PrincipalType, ptype) {
			return keyhold.Errorf(keyhold.CodeBadRequest, "The PrincipalId '%s' has type '%s', which is different from specified PrincipalType '%s'.", p.ID, ptype, keyhold.Clip(a.PrincipalType))
		}
		want := &keyhold.RoleAssignment{ID: a.ID, Scope: sc.String(), RoleDefinitionID: role.ID, PrincipalID: p.ID,
			PrincipalType: ptype, TenantID: id.TenantID, CreatedBy: id.PrincipalID, CreatedAt: s.clock.Now().UTC()}

		old, err := tx.RoleAssignment(ctx, a.ID)
		switch {
		case err == nil && old.TenantID == id.TenantID && keyhold.ScopeCovers(old.Scope, want.Scope) && keyhold.ScopeCovers(want.Scope, old.Scope) &&
			strings.EqualFold(old.RoleDefinitionID, want.RoleDefinitionID) && old.PrincipalID == want.PrincipalID:
			*a = *old // the same assignment again
			return nil
		case err == nil:
			return keyhold.Errorf(keyhold.CodeConflict, "The role assignment '%s' already exists with other properties: role assignments can't be updated; delete it first, or use a new GUID.", a.ID)
		case keyhold.ErrorCode(err) != keyhold.CodeNotFound:
			return err
		}
		same, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: id.TenantID, PrincipalID: p.ID, Scope: want.Scope})
		if err != nil {
			return err
		}
		for _, o := range same {
			if strings.EqualFold(o.RoleDefinitionID, role.ID) {
				return keyhold.Errorf(keyhold.CodeConflict, "The role assignment already exists: '%s' gives principal %s the role '%s' at this scope.", o.ID, p.ID, role.Name)
			}
		}
		if err := tx.CreateRoleAssignment(ctx, want); err != nil {
			return err
		}
		*a = *want
		return s.audit(ctx, tx, id, "roleAssignment.create", keyhold.AssignmentID(want.Scope, want.ID), "",
			"gave "+ptype+" "+p.ID+" the role '"+role.Name+"'")
	})
}

// assignmentAt loads a role assignment of the caller's tenant that is at
// exactly scope.
func assignmentAt(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, sc *keyhold.Scope, name string) (*keyhold.RoleAssignment, error) {
	a, err := tx.RoleAssignment(ctx, name)
	if err == nil && (a.TenantID != id.TenantID || !strings.EqualFold(strings.TrimSuffix(a.Scope, "/"), sc.String())) {
		a, err = nil, nil
	}
	if a == nil && (err == nil || keyhold.ErrorCode(err) == keyhold.CodeNotFound) {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "The role assignment '%s' is not found at scope '%s'.", keyhold.Clip(name), sc)
	}
	return a, err
}

// RoleAssignment returns the role assignment named name at scope; it needs
// the role assignment read action there.
func (s *Service) RoleAssignment(ctx context.Context, scope, name string) (*keyhold.RoleAssignment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	sc, err := keyhold.ParseScope(scope)
	if err != nil {
		return nil, err
	}
	var a *keyhold.RoleAssignment
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := Authorize(ctx, tx, id, sc.String(), ActionRoleAssignmentRead); err != nil {
			return err
		}
		if err := requireScope(ctx, tx, id, sc); err != nil {
			return err
		}
		a, err = assignmentAt(ctx, tx, id, sc, name)
		return err
	})
	return a, err
}

// DeleteRoleAssignment deletes the role assignment named name at scope and
// returns it; it needs the role assignment delete action there. One that
// does not exist is CodeNotFound (which ARM answers 204).
func (s *Service) DeleteRoleAssignment(ctx context.Context, scope, name string) (*keyhold.RoleAssignment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	sc, err := keyhold.ParseScope(scope)
	if err != nil {
		return nil, err
	}
	var a *keyhold.RoleAssignment
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := Authorize(ctx, tx, id, sc.String(), ActionRoleAssignmentDelete); err != nil {
			return err
		}
		if a, err = assignmentAt(ctx, tx, id, sc, name); err != nil {
			return err
		}
		if err := tx.DeleteRoleAssignment(ctx, a.ID); err != nil {
			return err
		}
		role := a.RoleDefinitionID
		if r, ok := keyhold.FindRoleDefinition(role); ok {
			role = r.Name
		}
		return s.audit(ctx, tx, id, "roleAssignment.delete", keyhold.AssignmentID(a.Scope, a.ID), "",
			"took the role '"+role+"' from "+a.PrincipalType+" "+a.PrincipalID)
	})
	return a, err
}

// ListRoleAssignments returns the role assignments of the caller's tenant
// that apply at scope (at it or above it) and, unless f.AtScope, those
// below it, oldest first. It needs the role assignment read action at the
// scope, which must exist.
func (s *Service) ListRoleAssignments(ctx context.Context, scope string, f keyhold.AssignmentFilter) ([]*keyhold.RoleAssignment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	sc, err := keyhold.ParseScope(scope)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.RoleAssignment
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := Authorize(ctx, tx, id, sc.String(), ActionRoleAssignmentRead); err != nil {
			return err
		}
		if err := requireScope(ctx, tx, id, sc); err != nil {
			return err
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: id.TenantID, PrincipalID: f.PrincipalID})
		if err != nil {
			return err
		}
		out = make([]*keyhold.RoleAssignment, 0, len(as))
		for _, a := range as {
			if keyhold.ScopeCovers(a.Scope, sc.String()) || (!f.AtScope && keyhold.ScopeCovers(sc.String(), a.Scope)) {
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}
