package keyhold

import "time"

// Tenant is a directory: the unit that owns principals, subscriptions and
// environments. Exactly one tenant is the platform's own system tenant.
type Tenant struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"displayName"`
	System      bool      `json:"system"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Subscription is an Azure-style billing and resource container in a tenant.
type Subscription struct {
	ID          string    `json:"subscriptionId"`
	TenantID    string    `json:"tenantId"`
	DisplayName string    `json:"displayName"`
	CreatedAt   time.Time `json:"createdAt"`
}

// PrincipalType says what kind of identity a principal is.
type PrincipalType string

// Principal types.
const (
	PrincipalUser             PrincipalType = "User"
	PrincipalServicePrincipal PrincipalType = "ServicePrincipal"
	PrincipalManagedIdentity  PrincipalType = "ManagedIdentity"
)

// Principal is an identity in a tenant. ID is its object id. AppID is the
// client id used at the token endpoint; users have none.
type Principal struct {
	ID          string        `json:"objectId"`
	TenantID    string        `json:"tenantId"`
	Type        PrincipalType `json:"principalType"`
	DisplayName string        `json:"displayName"`
	AppID       string        `json:"appId,omitempty"`
	CreatedAt   time.Time     `json:"createdAt"`
}

// Credential is a principal's client secret, kept only as a hash: client
// secrets are 256-bit random values, so a SHA-256 hash is enough to make a
// stolen database useless for signing in (no password stretching needed).
//
// A certificate credential has Certificate set (the X.509 DER of a
// ClientCertificate, public); its SecretHash is then the certificate's
// hash (crypt.HashClientCertificate), a value no client secret hashes to,
// and it never matches a client secret.
type Credential struct {
	PrincipalID string
	SecretHash  []byte
	Certificate []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// DirectoryRole is a tenant-wide administrator role.
type DirectoryRole string

// Directory roles that matter to Keyhold.
const (
	RoleGlobalAdministrator        DirectoryRole = "Global Administrator"
	RolePowerPlatformAdministrator DirectoryRole = "Power Platform Administrator"
	RoleDynamics365Administrator   DirectoryRole = "Dynamics 365 Administrator"
)

// IsPlatformAdmin reports whether r may administer Power Platform
// environments, as the spec lists: Global, Power Platform or Dynamics 365
// administrator.
func (r DirectoryRole) IsPlatformAdmin() bool {
	switch r {
	case RoleGlobalAdministrator, RolePowerPlatformAdministrator, RoleDynamics365Administrator:
		return true
	}
	return false
}

// Audience is the API a token is good for, named by the resource part of the
// OAuth2 scope the client asked for.
type Audience string

// Audiences Keyhold issues tokens for. The scope a client asks for is the
// audience followed by "/.default".
const (
	AudienceManagement Audience = "https://management.azure.com"
	AudienceVault      Audience = "https://vault.azure.net"
	AudiencePowerApps  Audience = "https://service.powerapps.com"
	// AudienceManagedHSM is a Managed HSM's data plane (issue 18).
	AudienceManagedHSM Audience = "https://managedhsm.azure.net"
)

// Identity is the authenticated caller of a request, established from its
// bearer token before any handler runs.
type Identity struct {
	TenantID    string
	PrincipalID string
	AppID       string
	Type        PrincipalType
	Audience    Audience
}
