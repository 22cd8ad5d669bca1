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
	SubscriptionID  string            `json:"subscriptionId"`
	ResourceGroup   string            `json:"resourceGroup"`
	Name            string            `json:"name"`
	Location        string            `json:"location"`
	Kind            string            `json:"kind"`
	TenantID        string            `json:"tenantId"`
	SystemID        string            `json:"systemId"`
	PrincipalID     string            `json:"principalId"`
	EncryptionState string            `json:"encryptionState"`
	KeyVaultID      string            `json:"keyVaultId"` // the vault's ARM resource id
	KeyName         string            `json:"keyName"`
	KeyVersion      string            `json:"keyVersion,omitempty"`
	HealthStatus    HealthStatus      `json:"healthStatus"`
	Tags            map[string]string `json:"tags,omitempty"`
	CreatedBy       string            `json:"createdBy"`
	CreatedAt       time.Time         `json:"createdAt"`
	UpdatedAt       time.Time         `json:"updatedAt"`
	Version         int64             `json:"version"` // optimistic concurrency, as Environment
	// MAC is the integrity seal of the policy's binding to its key under
	// the master key (crypt.RecordKey.SealPolicy); opaque to the store.
	MAC []byte `json:"-"`
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
