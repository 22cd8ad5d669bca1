package keyhold

import (
	"context"
	"time"
)

// Enterprise policies: the Microsoft.PowerPlatform/enterprisePolicies ARM
// resource. A policy of kind Encryption names a key in a key vault; creating
// it creates its system-assigned managed identity, which the key vault admin
// then grants wrapKey, unwrapKey and get on the key. Environments linked to
// the policy are protected by that key.

// Policy kinds. Only Encryption is implemented; the others are refused.
const (
	PolicyKindEncryption       = "Encryption"
	PolicyKindLockbox          = "Lockbox"
	PolicyKindPrivateEndpoint  = "PrivateEndpoint"
	PolicyKindNetworkInjection = "NetworkInjection"
)

// Policy encryption states.
const (
	PolicyEncryptionEnabled       = "Enabled"
	PolicyEncryptionDisabled      = "Disabled"
	PolicyEncryptionNotConfigured = "NotConfigured"
)

// HealthStatus is what the policy's key access looked like at the last probe.
type HealthStatus string

// Health statuses.
const (
	HealthUndetermined HealthStatus = "Undetermined"
	HealthHealthy      HealthStatus = "Healthy"
	HealthWarning      HealthStatus = "Warning"   // a transient fault reaching the key
	HealthUnhealthy    HealthStatus = "Unhealthy" // access revoked
)

// EnterprisePolicy is an enterprise policy. SystemID is
// "/regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid}",
// the id environments are linked by. PrincipalID is its managed identity's
// object id. KeyVersion "" means "the key's current version", which
// rotation follows.
type EnterprisePolicy struct {
	SubscriptionID  string `json:"subscriptionId"`
	ResourceGroup   string `json:"resourceGroup"`
	Name            string `json:"name"`
	Location        string `json:"location"`
	Kind            string `json:"kind"`
	TenantID        string `json:"tenantId"`
	SystemID        string `json:"systemId"`
	PrincipalID     string `json:"principalId"`
	EncryptionState string `json:"encryptionState"`
	KeyVaultID      string `json:"keyVaultId"` // the vault's ARM resource id
	KeyName         string `json:"keyName"`
	KeyVersion      string `json:"keyVersion,omitempty"`
	// External, when set, names a vault Keyhold doesn't run (issue 13):
	// KeyVaultID is then "" and KeyName and KeyVersion name the key in
	// External.URI.
	External     *ExternalKeyVault `json:"external,omitempty"`
	HealthStatus HealthStatus      `json:"healthStatus"`
	Tags         map[string]string `json:"tags,omitempty"`
	CreatedBy    string            `json:"createdBy"`
	CreatedAt    time.Time         `json:"createdAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	Version      int64             `json:"version"` // optimistic concurrency, as Environment
	// MAC is the integrity seal of the policy's binding to its key under
	// the master key (crypt.RecordKey.SealPolicy); opaque to the store.
	MAC []byte `json:"-"`

	// LastUnwrap, read-only and not part of the policy's record, is when
	// its identity last unwrapped with its key in the vault it names now
	// (UnwrapTx; nil: never); the policy service's Get sets it. Stored at
	// most once a minute per replica, it may be up to a minute behind.
	LastUnwrap *time.Time `json:"lastUnwrap,omitempty"`
}

// ExternalKeyVault is a key vault the operator doesn't run: any Azure Key
// Vault protocol endpoint (Azure Key Vault, a Managed HSM, the customer's
// own Keyhold). The platform reaches it as the app ClientID of the
// customer's directory TenantID, whose federated credential trusts the
// platform's assertion for the policy's managed identity: no secret is
// stored. All of it is in the policy's integrity seal, since each field
// decides where environment keys are wrapped.
type ExternalKeyVault struct {
	// URI is the vault's URI, https://{host} (no path, query or fragment).
	URI string `json:"uri"`
	// TenantID and ClientID are the customer's directory and app.
	TenantID string `json:"tenantId"`
	ClientID string `json:"clientId"`
	// AuthorityHost is the customer's authority, https; "" means Entra
	// ID's, https://login.microsoftonline.com/.
	AuthorityHost string `json:"authorityHost,omitempty"`
}

// DefaultAuthorityHost is Entra ID's authority, an external vault's
// default.
const DefaultAuthorityHost = "https://login.microsoftonline.com/"

// KeyRef returns where the policy's key is, for messages: the external
// vault's URI or the built-in vault's resource id, and the key's name.
func (p *EnterprisePolicy) KeyRef() string {
	if p.External != nil {
		return "key '" + p.KeyName + "' of external vault " + p.External.URI
	}
	return "key '" + p.KeyName + "' of " + p.KeyVaultID
}

// ID returns the policy's ARM resource id.
func (p *EnterprisePolicy) ID() string {
	return "/subscriptions/" + p.SubscriptionID + "/resourceGroups/" + p.ResourceGroup +
		"/providers/Microsoft.PowerPlatform/enterprisePolicies/" + p.Name
}

// PolicyFilter selects policies. Empty fields match all.
type PolicyFilter struct {
	SubscriptionID string
	ResourceGroup  string
	// KeyVaultID and KeyName select the policies naming a key (for rotation
	// pickup and health), compared case-insensitively.
	KeyVaultID string
	KeyName    string
}

// PolicyTx is the part of a store transaction that holds enterprise
// policies. Names compare case-insensitively, as ARM's do; lookups of a
// missing policy return CodeResourceNotFound.
type PolicyTx interface {
	CreatePolicy(ctx context.Context, p *EnterprisePolicy) error // CodeConflict if it exists
	Policy(ctx context.Context, subscriptionID, resourceGroup, name string) (*EnterprisePolicy, error)
	PolicyBySystemID(ctx context.Context, systemID string) (*EnterprisePolicy, error)
	UpdatePolicy(ctx context.Context, p *EnterprisePolicy) error // CAS on Version, then Version++
	DeletePolicy(ctx context.Context, subscriptionID, resourceGroup, name string) error
	ListPolicies(ctx context.Context, f PolicyFilter) ([]*EnterprisePolicy, error)
}

// PolicySpec is the policy a PUT asks for. Location, Kind, IdentityType
// (SystemAssigned), KeyVaultID and KeyName are required; EncryptionState
// "" means Enabled; KeyVersion "" means the key's current version, which
// rotation follows.
type PolicySpec struct {
	Location        string
	Kind            string
	IdentityType    string
	EncryptionState string
	KeyVaultID      string
	KeyName         string
	KeyVersion      string
	// External names an external vault instead of KeyVaultID.
	External *ExternalKeyVault
	Tags     map[string]string
}

// PolicyPatch holds the changes a PATCH asks for; nil means unchanged. Location,
// Kind, IdentityType and EncryptionState can't change: giving them with
// another value is refused. A new vault or key without a version clears
// the version.
type PolicyPatch struct {
	Location        *string
	Kind            *string
	IdentityType    *string
	EncryptionState *string
	KeyVaultID      *string
	KeyName         *string
	KeyVersion      *string
	// External, if not nil, moves the key to an external vault (and
	// KeyVaultID must not be given with another vault).
	External *ExternalKeyVault
	Tags     *map[string]string
}

// PolicyService is the Microsoft.PowerPlatform resource provider. The
// policy package implements it, and so does the http package's
// PolicyClient, over HTTPS. Every method takes the caller's identity from
// ctx; see package policy for the rules.
type PolicyService interface {
	Put(ctx context.Context, sub, rg, name string, spec PolicySpec) (*EnterprisePolicy, bool, error)
	Get(ctx context.Context, sub, rg, name string) (*EnterprisePolicy, error)
	Patch(ctx context.Context, sub, rg, name string, c PolicyPatch) (*EnterprisePolicy, error)
	Delete(ctx context.Context, sub, rg, name string) error
	// LinkedEnvironments counts the environments linked to a policy: those
	// a Delete of it would lock.
	LinkedEnvironments(ctx context.Context, sub, rg, name string) (int, error)
	ListByResourceGroup(ctx context.Context, sub, rg string) ([]*EnterprisePolicy, error)
	ListBySubscription(ctx context.Context, sub string) ([]*EnterprisePolicy, error)
}
