package arm

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// The directory: principals and directory roles, in Microsoft Graph's
// terms.

// SecretLifetime is how long a new service principal's client secret is
// valid.
const SecretLifetime = 2 * 365 * 24 * time.Hour

func directoryRoleAssignment(principalID string, r keyhold.DirectoryRole) *keyhold.DirectoryRoleAssignment {
	tid := keyhold.DirectoryRoleTemplates[r]
	return &keyhold.DirectoryRoleAssignment{ID: tid + "_" + principalID, PrincipalID: principalID, Role: r, RoleDefinitionID: tid, DirectoryScopeID: "/"}
}

// maxDisplayName bounds principals' display names, as Entra ID does.
const maxDisplayName = 256

// checkDisplayName checks a principal's display name: 1 to maxDisplayName
// characters, none of them a control or bidirectional formatting
// character (keyhold.CheckText), since it is shown in audit entries and
// role assignment lists.
func checkDisplayName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if err := keyhold.CheckText(keyhold.CodeBadRequest, "displayName", name); err != nil {
		return "", err
	}
	if name == "" || utf8.RuneCountInString(name) > maxDisplayName {
		return "", keyhold.Errorf(keyhold.CodeBadRequest, "displayName '%s' is not valid: give 1 to %d printable characters", keyhold.Clip(name), maxDisplayName)
	}
	return name, nil
}

// upnRE is a user principal name: alias@domain.
var upnRE = regexp.MustCompile(`^[A-Za-z0-9._%+'\-]{1,64}@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*$`)

// CreateServicePrincipal creates a service principal with a new client
// secret, valid for SecretLifetime. It needs the Global Administrator
// directory role.
func (s *Service) CreateServicePrincipal(ctx context.Context, displayName string) (*keyhold.NewServicePrincipal, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	name, err := checkDisplayName(displayName)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	sp := &keyhold.Principal{ID: uuid.NewString(), TenantID: id.TenantID, Type: keyhold.PrincipalServicePrincipal,
		DisplayName: name, AppID: uuid.NewString(), CreatedAt: now}
	secret := crypt.NewClientSecret()
	expires := now.Add(SecretLifetime)
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireGlobalAdmin(ctx, tx, id, "create service principals"); err != nil {
			return err
		}
		if err := tx.CreatePrincipal(ctx, sp); err != nil {
			return err
		}
		if err := tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: sp.ID, SecretHash: crypt.HashClientSecret(secret), CreatedAt: now, ExpiresAt: expires}); err != nil {
			return err
		}
		return s.audit(ctx, tx, id, "servicePrincipal.create", "/servicePrincipals/"+sp.ID, "", "created service principal "+name+" with app id "+sp.AppID+" and a client secret")
	})
	if err != nil {
		return nil, err
	}
	return &keyhold.NewServicePrincipal{Principal: sp, Secret: secret, SecretExpires: expires}, nil
}

// ServicePrincipals returns the tenant's service principals and managed
// identities. It needs a platform administrator directory role.
func (s *Service) ServicePrincipals(ctx context.Context) ([]*keyhold.Principal, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.Principal
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requirePlatformAdmin(ctx, tx, id, "read the directory"); err != nil {
			return err
		}
		ps, err := tx.ListPrincipals(ctx, id.TenantID)
		if err != nil {
			return err
		}
		out = make([]*keyhold.Principal, 0, len(ps))
		for _, p := range ps {
			if p.Type != keyhold.PrincipalUser {
				out = append(out, p)
			}
		}
		return nil
	})
	return out, err
}

// CreateUser creates a user who signs in with upn (alias@domain, unique in
// the tenant in any case) and password. An empty password makes a
// generated one, returned in NewUser.Password. It needs the Global
// Administrator directory role. The password is stored only as an argon2id
// hash.
func (s *Service) CreateUser(ctx context.Context, displayName, upn, password string) (*keyhold.NewUser, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	name, err := checkDisplayName(displayName)
	if err != nil {
		return nil, err
	}
	if !upnRE.MatchString(upn) || len(upn) > 113 {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "userPrincipalName '%s' is not valid: use alias@domain, as ada@contoso.example", keyhold.Clip(upn))
	}
	generated := ""
	if password == "" {
		password = crypt.NewPassword()
		generated = password
	}
	hash, err := crypt.HashPassword(password)
	if errors.Is(err, crypt.ErrPasswordPolicy) {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "passwordProfile.password is not valid: %v; or leave it out to have one generated", err)
	} else if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	u := &keyhold.User{
		Principal:         &keyhold.Principal{ID: uuid.NewString(), TenantID: id.TenantID, Type: keyhold.PrincipalUser, DisplayName: name, CreatedAt: now},
		UserPrincipalName: upn,
	}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireGlobalAdmin(ctx, tx, id, "create users"); err != nil {
			return err
		}
		if err := tx.CreatePrincipal(ctx, u.Principal); err != nil {
			return err
		}
		err := tx.CreateUserAccount(ctx, &keyhold.UserAccount{PrincipalID: u.ID, TenantID: id.TenantID, UserPrincipalName: upn, PasswordHash: hash, UpdatedAt: now})
		if keyhold.ErrorCode(err) == keyhold.CodeConflict {
			return keyhold.Errorf(keyhold.CodeConflict, "Another object with the same value for property userPrincipalName already exists: '%s'.", upn)
		} else if err != nil {
			return err
		}
		return s.audit(ctx, tx, id, "user.create", "/users/"+u.ID, "", "created user "+upn)
	})
	if err != nil {
		return nil, err
	}
	return &keyhold.NewUser{User: u, Password: generated}, nil
}

// Users returns the tenant's users, by sign-in name. It needs a platform
// administrator directory role.
func (s *Service) Users(ctx context.Context) ([]*keyhold.User, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.User
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requirePlatformAdmin(ctx, tx, id, "read the directory"); err != nil {
			return err
		}
		accts, err := tx.ListUserAccounts(ctx, id.TenantID)
		if err != nil {
			return err
		}
		out = make([]*keyhold.User, 0, len(accts))
		for _, a := range accts {
			p, err := tx.Principal(ctx, a.PrincipalID)
			if err != nil {
				return err
			}
			out = append(out, &keyhold.User{Principal: p, UserPrincipalName: a.UserPrincipalName})
		}
		return nil
	})
	return out, err
}

// CreateManagedIdentity creates a system-assigned managed identity in a
// tenant, for a resource the platform creates (an enterprise policy). It
// has an app id but no secret: the platform acts as it (see
// platform.TokenFor). It is not an API: the resource's service calls it and
// has authorized its caller; the identity in ctx, if any, is audited as the
// actor ("system" otherwise).
func (s *Service) CreateManagedIdentity(ctx context.Context, tenantID, displayName string) (*keyhold.Principal, error) {
	var mi *keyhold.Principal
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		var err error
		mi, err = s.CreateManagedIdentityTx(ctx, tx, tenantID, displayName)
		return err
	})
	return mi, err
}

// CreateManagedIdentityTx is CreateManagedIdentity in the caller's
// transaction, so that a resource and its identity are created together.
func (s *Service) CreateManagedIdentityTx(ctx context.Context, tx keyhold.Tx, tenantID, displayName string) (*keyhold.Principal, error) {
	name, err := checkDisplayName(displayName)
	if err != nil {
		return nil, err
	}
	mi := &keyhold.Principal{ID: uuid.NewString(), TenantID: tenantID, Type: keyhold.PrincipalManagedIdentity,
		DisplayName: name, AppID: uuid.NewString(), CreatedAt: s.clock.Now().UTC()}
	if err := tx.CreatePrincipal(ctx, mi); err != nil {
		return nil, err
	}
	if err := s.audit(ctx, tx, systemActor(ctx, tenantID), "managedIdentity.create", "/servicePrincipals/"+mi.ID, "", "created managed identity "+name); err != nil {
		return nil, err
	}
	return mi, nil
}

// DeleteManagedIdentity deletes a managed identity and its role
// assignments, when the resource it belongs to is deleted. Like
// CreateManagedIdentity it is not an API. A principal that is not a
// managed identity is CodeBadRequest; a missing one CodeNotFound.
func (s *Service) DeleteManagedIdentity(ctx context.Context, principalID string) error {
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		return s.DeleteManagedIdentityTx(ctx, tx, principalID)
	})
}

// DeleteManagedIdentityTx is DeleteManagedIdentity in the caller's
// transaction.
func (s *Service) DeleteManagedIdentityTx(ctx context.Context, tx keyhold.Tx, principalID string) error {
	mi, err := tx.Principal(ctx, principalID)
	if err != nil {
		return err
	}
	if mi.Type != keyhold.PrincipalManagedIdentity {
		return keyhold.Errorf(keyhold.CodeBadRequest, "principal %s is a %s, not a managed identity", principalID, mi.Type)
	}
	as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: mi.TenantID, PrincipalID: mi.ID})
	if err != nil {
		return err
	}
	for _, a := range as {
		if err := tx.DeleteRoleAssignment(ctx, a.ID); err != nil {
			return err
		}
	}
	if err := tx.DeletePrincipal(ctx, mi.ID); err != nil {
		return err
	}
	return s.audit(ctx, tx, systemActor(ctx, mi.TenantID), "managedIdentity.delete", "/servicePrincipals/"+mi.ID, "", "deleted managed identity "+mi.DisplayName+" and its role assignments")
}

// systemActor is the identity audited for work the platform does: the
// caller's, if ctx has one in the tenant, or "system".
func systemActor(ctx context.Context, tenantID string) *keyhold.Identity {
	if id := keyhold.IdentityFrom(ctx); id != nil && id.TenantID == tenantID {
		return id
	}
	return &keyhold.Identity{TenantID: tenantID, PrincipalID: "system"}
}

// principalIn loads a principal of the caller's tenant; another tenant's is
// reported as not found.
func principalIn(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, principalID string) (*keyhold.Principal, error) {
	p, err := tx.Principal(ctx, principalID)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound || (err == nil && p.TenantID != id.TenantID) {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "principal '%s' does not exist in the directory %s: list service principals or users to find its object id", keyhold.Clip(principalID), id.TenantID)
	}
	return p, err
}

// AssignDirectoryRole gives a principal of the caller's tenant a directory
// role. It needs the Global Administrator directory role. A role the
// principal holds already is CodeConflict.
func (s *Service) AssignDirectoryRole(ctx context.Context, principalID string, role keyhold.DirectoryRole) (*keyhold.DirectoryRoleAssignment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := keyhold.DirectoryRoleTemplates[role]; !ok {
		return nil, unknownDirectoryRole(string(role))
	}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireGlobalAdmin(ctx, tx, id, "assign directory roles"); err != nil {
			return err
		}
		p, err := principalIn(ctx, tx, id, principalID)
		if err != nil {
			return err
		}
		held, err := tx.DirectoryRoles(ctx, id.TenantID, p.ID)
		if err != nil {
			return err
		}
		for _, r := range held {
			if r == role {
				return keyhold.Errorf(keyhold.CodeConflict, "principal %s already holds the %s role", p.ID, role)
			}
		}
		if err := tx.AssignDirectoryRole(ctx, id.TenantID, p.ID, role); err != nil {
			return err
		}
		return s.audit(ctx, tx, id, "directoryRole.assign", "/roleManagement/directory/roleAssignments/"+directoryRoleAssignment(p.ID, role).ID, "",
			"gave "+string(p.Type)+" "+p.ID+" the "+string(role)+" role")
	})
	if err != nil {
		return nil, err
	}
	return directoryRoleAssignment(principalID, role), nil
}

func unknownDirectoryRole(s string) error {
	return keyhold.Errorf(keyhold.CodeBadRequest, "directory role '%s' is not one Keyhold knows: use %s (%s), %s (%s) or %s (%s)", keyhold.Clip(s),
		keyhold.RoleGlobalAdministrator, keyhold.DirectoryRoleTemplates[keyhold.RoleGlobalAdministrator],
		keyhold.RolePowerPlatformAdministrator, keyhold.DirectoryRoleTemplates[keyhold.RolePowerPlatformAdministrator],
		keyhold.RoleDynamics365Administrator, keyhold.DirectoryRoleTemplates[keyhold.RoleDynamics365Administrator])
}

// DirectoryRoleAssignments returns the directory roles held in the
// caller's tenant, by one principal if principalID is set. A principal may
// list its own; listing others' needs a platform administrator role.
func (s *Service) DirectoryRoleAssignments(ctx context.Context, principalID string) ([]*keyhold.DirectoryRoleAssignment, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	out := []*keyhold.DirectoryRoleAssignment{}
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if principalID != id.PrincipalID {
			if err := requirePlatformAdmin(ctx, tx, id, "read the directory"); err != nil {
				return err
			}
		}
		var ids []string
		if principalID != "" {
			ids = []string{principalID}
		} else {
			ps, err := tx.ListPrincipals(ctx, id.TenantID)
			if err != nil {
				return err
			}
			for _, p := range ps {
				ids = append(ids, p.ID)
			}
		}
		for _, pid := range ids {
			roles, err := tx.DirectoryRoles(ctx, id.TenantID, pid)
			if err != nil {
				return err
			}
			for _, r := range roles {
				if _, ok := keyhold.DirectoryRoleTemplates[r]; ok {
					out = append(out, directoryRoleAssignment(pid, r))
				}
			}
		}
		return nil
	})
	return out, err
}

// RemoveDirectoryRoleAssignment takes a directory role from a principal,
// by assignment id (template id '_' principal id). It needs the Global
// Administrator role, and refuses (CodeConflict) to remove the tenant's
// last Global Administrator, which would leave nobody able to manage it.
func (s *Service) RemoveDirectoryRoleAssignment(ctx context.Context, assignmentID string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	tid, pid, ok := strings.Cut(assignmentID, "_")
	role, known := keyhold.FindDirectoryRole(tid)
	if !ok || !known || pid == "" {
		return keyhold.Errorf(keyhold.CodeNotFound, "directory role assignment '%s' not found: its id is the role's template id, '_' and the principal's object id", keyhold.Clip(assignmentID))
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireGlobalAdmin(ctx, tx, id, "remove directory roles"); err != nil {
			return err
		}
		err := tx.RemoveDirectoryRole(ctx, id.TenantID, pid, role)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return keyhold.Errorf(keyhold.CodeNotFound, "directory role assignment '%s' not found: principal %s does not hold the %s role", keyhold.Clip(assignmentID), keyhold.Clip(pid), role)
		} else if err != nil {
			return err
		}
		if role == keyhold.RoleGlobalAdministrator {
			left, err := s.globalAdmins(ctx, tx, id.TenantID)
			if err != nil {
				return err
			}
			if left == 0 {
				return keyhold.Errorf(keyhold.CodeConflict, "principal %s is the tenant's last %s: assign the role to another principal first", pid, role)
			}
		}
		return s.audit(ctx, tx, id, "directoryRole.remove", "/roleManagement/directory/roleAssignments/"+assignmentID, "",
			"took the "+string(role)+" role from "+pid)
	})
}

// globalAdmins counts a tenant's Global Administrators.
func (s *Service) globalAdmins(ctx context.Context, tx keyhold.Tx, tenantID string) (int, error) {
	ps, err := tx.ListPrincipals(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps {
		roles, err := tx.DirectoryRoles(ctx, tenantID, p.ID)
		if err != nil {
			return 0, err
		}
		for _, r := range roles {
			if r == keyhold.RoleGlobalAdministrator {
				n++
			}
		}
	}
	return n, nil
}
