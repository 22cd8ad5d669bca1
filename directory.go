package keyhold

import (
	"context"
	"strings"
	"time"
)

// The directory: principals and directory roles, in Microsoft Graph's
// terms, and the Directory contract.

// DirectoryRoleTemplates are the Entra ID role template ids of the
// directory roles Keyhold knows, which Microsoft Graph's
// roleManagement/directory/roleAssignments name roles by.
var DirectoryRoleTemplates = map[DirectoryRole]string{
	RoleGlobalAdministrator:        "62e90394-69f5-4237-9190-012177145e10",
	RolePowerPlatformAdministrator: "11648597-926c-4cf3-9c36-bcebb0ba8dcc",
	RoleDynamics365Administrator:   "44367163-eba1-44c3-98af-f5787879f96a",
}

// FindDirectoryRole returns the directory role with the given template id
// or name, in any case.
func FindDirectoryRole(idOrName string) (DirectoryRole, bool) {
	for r, tid := range DirectoryRoleTemplates {
		if strings.EqualFold(tid, idOrName) || strings.EqualFold(string(r), idOrName) {
			return r, true
		}
	}
	return "", false
}

// NewServicePrincipal is a service principal just created, with its client
// secret: the only time the secret is shown.
type NewServicePrincipal struct {
	Principal     *Principal
	Secret        string
	SecretExpires time.Time
}

// User is a user principal with its sign-in name.
type User struct {
	*Principal
	UserPrincipalName string `json:"userPrincipalName"`
}

// NewUser is a user just created. Password is the generated password when
// none was given (shown only this once), and "" otherwise.
type NewUser struct {
	User     *User
	Password string
}

// DirectoryRoleAssignment is a directory role held by a principal, as
// Microsoft Graph shows it. Its ID is the role's template id, '_' and the
// principal's id.
type DirectoryRoleAssignment struct {
	ID               string        `json:"id"`
	PrincipalID      string        `json:"principalId"`
	Role             DirectoryRole `json:"role"`
	RoleDefinitionID string        `json:"roleDefinitionId"` // the template id
	DirectoryScopeID string        `json:"directoryScopeId"` // always "/"
}

// Directory is the directory: service principals, users, directory roles,
// the tenant's licences and environment membership. The arm package
// implements it, and so does the http package's Client, over HTTPS. Every
// method takes the caller's identity from ctx; see package arm for the
// rules.
type Directory interface {
	CreateServicePrincipal(ctx context.Context, displayName string) (*NewServicePrincipal, error)
	ServicePrincipals(ctx context.Context) ([]*Principal, error)
	CreateUser(ctx context.Context, displayName, upn, password string) (*NewUser, error)
	Users(ctx context.Context) ([]*User, error)
	AssignDirectoryRole(ctx context.Context, principalID string, role DirectoryRole) (*DirectoryRoleAssignment, error)
	DirectoryRoleAssignments(ctx context.Context, principalID string) ([]*DirectoryRoleAssignment, error)
	RemoveDirectoryRoleAssignment(ctx context.Context, id string) error

	ListLicences(ctx context.Context) ([]*Licence, error)
	AddLicence(ctx context.Context, name string) (*Licence, error)
	RemoveLicence(ctx context.Context, name string) error

	AddEnvironmentMember(ctx context.Context, envID, principalID string) (*EnvironmentMember, bool, error)
	RemoveEnvironmentMember(ctx context.Context, envID, principalID string) error
	EnvironmentMembers(ctx context.Context, envID string) ([]*EnvironmentMember, error)
}
