package keyhold

import (
	"context"
	"time"
)

// Users' sign-in names and passwords, environment membership, and the
// removal of principals: the identity state beyond principals, their client
// secrets and directory roles.

// UserAccount is what a user principal signs in with: its user principal
// name (UPN, unique in the tenant, compared case-insensitively) and the hash
// of its password. Passwords are chosen by people and so have little
// entropy: PasswordHash is a deliberately slow, salted hash (argon2id, see
// crypt.HashPassword), never the password.
type UserAccount struct {
	PrincipalID       string    `json:"objectId"`
	TenantID          string    `json:"tenantId"`
	UserPrincipalName string    `json:"userPrincipalName"`
	PasswordHash      []byte    `json:"-"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

// EnvironmentMember records that a principal may use an environment's data.
// Platform administrators may use every environment of their tenant without
// being members.
type EnvironmentMember struct {
	EnvID       string    `json:"environmentId"`
	PrincipalID string    `json:"principalId"`
	AddedBy     string    `json:"addedBy"`
	AddedAt     time.Time `json:"addedAt"`
}

// IdentityTx is the part of a store transaction that holds user accounts
// and environment membership. Lookups of missing items return CodeNotFound.
type IdentityTx interface {
	// CreateUserAccount stores the account of an existing user principal.
	// A UPN already used in the tenant (in any case), or a second account
	// for the principal, is a CodeConflict; an unknown principal is
	// CodeNotFound.
	CreateUserAccount(ctx context.Context, u *UserAccount) error
	UserAccount(ctx context.Context, principalID string) (*UserAccount, error)
	UserAccountByUPN(ctx context.Context, tenantID, upn string) (*UserAccount, error)
	// ListUserAccounts returns a tenant's accounts, by UPN.
	ListUserAccounts(ctx context.Context, tenantID string) ([]*UserAccount, error)

	// DeletePrincipal removes a principal with its credentials, directory
	// roles, user account and environment memberships (not its role
	// assignments, which name it by id only).
	DeletePrincipal(ctx context.Context, id string) error

	// AddEnvironmentMember makes a principal a member of an environment:
	// CodeConflict if it is one already, CodeNotFound if either is unknown.
	AddEnvironmentMember(ctx context.Context, m *EnvironmentMember) error
	RemoveEnvironmentMember(ctx context.Context, envID, principalID string) error
	// EnvironmentMembers lists an environment's members, oldest first.
	EnvironmentMembers(ctx context.Context, envID string) ([]*EnvironmentMember, error)
	IsEnvironmentMember(ctx context.Context, envID, principalID string) (bool, error)
}
