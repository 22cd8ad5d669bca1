package keyhold

import (
	"context"
	"time"
)

// The built-in key vault: vaults (an ARM resource, Microsoft.KeyVault/vaults)
// and their keys (the Azure Key Vault data plane). Field names follow the
// real services so that the HTTP layer maps them one to one.
//
// # Soft delete and purge protection
//
// Deleting a vault or a key is always a soft delete: the item is kept, with
// DeletedAt and ScheduledPurgeAt = DeletedAt + the vault's retention, and
// can be recovered until it is purged. Under purge protection a purge is
// refused until ScheduledPurgeAt; without it a purge is allowed at once.
// A background sweep purges items whose ScheduledPurgeAt has passed.

// Vault limits and defaults, as Azure Key Vault has them.
const (
	MinSoftDeleteRetentionDays     = 7
	MaxSoftDeleteRetentionDays     = 90
	DefaultSoftDeleteRetentionDays = 90
)

// Network rule values.
const (
	BypassAzureServices = "AzureServices"
	BypassNone          = "None"
	NetworkAllow        = "Allow"
	NetworkDeny         = "Deny"
	PublicAccessEnabled = "Enabled"
	PublicAccessDisable = "Disabled"
)

// AccessPolicy grants a principal key permissions on a vault that uses the
// access-policy model (EnableRbacAuthorization false).
type AccessPolicy struct {
	TenantID string   `json:"tenantId"`
	ObjectID string   `json:"objectId"`
	Keys     []string `json:"keys"` // KeyPermission values, lower case
}

// Key permissions of the access-policy model, as Azure names them.
const (
	PermGet               = "get"
	PermList              = "list"
	PermUpdate            = "update"
	PermCreate            = "create"
	PermImport            = "import"
	PermDelete            = "delete"
	PermRecover           = "recover"
	PermBackup            = "backup"
	PermRestore           = "restore"
	PermDecrypt           = "decrypt"
	PermEncrypt           = "encrypt"
	PermUnwrapKey         = "unwrapkey"
	PermWrapKey           = "wrapkey"
	PermVerify            = "verify"
	PermSign              = "sign"
	PermPurge             = "purge"
	PermRotate            = "rotate"
	PermGetRotationPolicy = "getrotationpolicy"
	PermSetRotationPolicy = "setrotationpolicy"
)

// NetworkACLs are a vault's firewall rules.
type NetworkACLs struct {
	Bypass        string   `json:"bypass"`        // AzureServices or None
	DefaultAction string   `json:"defaultAction"` // Allow or Deny
	IPRules       []string `json:"ipRules"`       // addresses or CIDR prefixes
}

// Vault is a key vault.
type Vault struct {
	SubscriptionID          string         `json:"subscriptionId"`
	ResourceGroup           string         `json:"resourceGroup"`
	Name                    string         `json:"name"`
	Location                string         `json:"location"`
	TenantID                string         `json:"tenantId"`
	SKU                     string         `json:"sku"` // standard or premium
	SoftDeleteRetentionDays int            `json:"softDeleteRetentionInDays"`
	EnablePurgeProtection   bool           `json:"enablePurgeProtection"`
	EnableRbacAuthorization bool           `json:"enableRbacAuthorization"`
	AccessPolicies          []AccessPolicy `json:"accessPolicies"`
	NetworkACLs             NetworkACLs    `json:"networkAcls"`
	PublicNetworkAccess     string         `json:"publicNetworkAccess"`
	URI                     string         `json:"vaultUri"`
	CreatedAt               time.Time      `json:"createdAt"`
	UpdatedAt               time.Time      `json:"updatedAt"`
	DeletedAt               time.Time      `json:"deletedAt"`        // zero while live
	ScheduledPurgeAt        time.Time      `json:"scheduledPurgeAt"` // zero while live
	Version                 int64          `json:"version"`          // optimistic concurrency, as Environment
	// MAC is the record's integrity seal under the master key
	// (crypt.RecordKey.SealVault); opaque to the store.
	MAC []byte `json:"-"`
}

// ID returns the vault's ARM resource id.
func (v *Vault) ID() string {
	return "/subscriptions/" + v.SubscriptionID + "/resourceGroups/" + v.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/" + v.Name
}

// Deleted reports whether the vault is soft-deleted.
func (v *Vault) Deleted() bool { return !v.DeletedAt.IsZero() }

// Key types.
const (
	KeyTypeRSA    = "RSA"
	KeyTypeRSAHSM = "RSA-HSM"
)

// Key is a named key in a vault; its material lives in its versions.
// RotationPolicy is nil when none was set.
type Key struct {
	VaultName        string            `json:"vaultName"`
	Name             string            `json:"name"`
	Type             string            `json:"kty"`
	Size             int               `json:"keySize"`
	CurrentVersion   string            `json:"currentVersion"`
	Tags             map[string]string `json:"tags,omitempty"`
	RotationPolicy   *RotationPolicy   `json:"rotationPolicy,omitempty"`
	CreatedAt        time.Time         `json:"createdAt"`
	UpdatedAt        time.Time         `json:"updatedAt"`
	DeletedAt        time.Time         `json:"deletedAt"`
	ScheduledPurgeAt time.Time         `json:"scheduledPurgeAt"`
	// MAC is the record's integrity seal under the master key
	// (crypt.RecordKey.SealKey); opaque to the store.
	MAC []byte `json:"-"`
}

// Deleted reports whether the key is soft-deleted.
func (k *Key) Deleted() bool { return !k.DeletedAt.IsZero() }

// KeyVersion is one version of a key: its public part, its attributes and
// its private material. Material is opaque to the store: for an RSA key,
// the private key sealed under the server's master key; for RSA-HSM, a
// reference to the object in the PKCS#11 token. It never leaves the vault.
type KeyVersion struct {
	VaultName string    `json:"vaultName"`
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Type      string    `json:"kty"`
	Size      int       `json:"keySize"`
	N         []byte    `json:"n"` // public modulus, big-endian
	E         int       `json:"e"` // public exponent
	KeyOps    []string  `json:"keyOps"`
	Enabled   bool      `json:"enabled"`
	NotBefore time.Time `json:"nbf"` // zero: none
	Expires   time.Time `json:"exp"` // zero: none
	Material  []byte    `json:"-"`
	CreatedAt time.Time `json:"created"`
	UpdatedAt time.Time `json:"updated"`
	// MAC is the record's integrity seal under the master key
	// (crypt.RecordKey.SealKeyVersion); opaque to the store.
	MAC []byte `json:"-"`
}

// RotationPolicy is a key's rotation policy, with ISO 8601 durations as
// Key Vault has them ("P90D", "P1Y2M").
type RotationPolicy struct {
	LifetimeActions []LifetimeAction `json:"lifetimeActions"`
	ExpiryTime      string           `json:"expiryTime,omitempty"`
	CreatedAt       time.Time        `json:"created"`
	UpdatedAt       time.Time        `json:"updated"`
}

// LifetimeAction is one Rotate or Notify action, triggered a duration after
// the version's creation or before its expiry (exactly one of the two).
type LifetimeAction struct {
	Action           string `json:"action"` // Rotate or Notify
	TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
	TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
}

// VaultFilter selects vaults.
type VaultFilter struct {
	SubscriptionID string
	ResourceGroup  string // "" for the whole subscription
	Deleted        bool   // true: the soft-deleted ones; false: the live ones
}

// VaultTx is the part of a store transaction that holds key vaults. Vault
// names are unique across the server (a vault's URI is /vaults/{name}),
// deleted ones included until purged. Lookups return CodeNotFound; stale
// UpdateVault versions return CodeConflict.
type VaultTx interface {
	CreateVault(ctx context.Context, v *Vault) error // CodeConflict if the name is taken
	Vault(ctx context.Context, name string) (*Vault, error)
	UpdateVault(ctx context.Context, v *Vault) error // CAS on Version, then Version++
	ListVaults(ctx context.Context, f VaultFilter) ([]*Vault, error)
	PurgeVault(ctx context.Context, name string) error // removes the vault, its keys and versions

	PutKey(ctx context.Context, k *Key) error // upsert
	Key(ctx context.Context, vaultName, name string) (*Key, error)
	ListKeys(ctx context.Context, vaultName string, deleted bool) ([]*Key, error)
	PurgeKey(ctx context.Context, vaultName, name string) error // removes the key and its versions

	PutKeyVersion(ctx context.Context, v *KeyVersion) error // upsert
	KeyVersion(ctx context.Context, vaultName, name, version string) (*KeyVersion, error)
	ListKeyVersions(ctx context.Context, vaultName, name string) ([]*KeyVersion, error) // oldest first
	// KeysWithRotationPolicy lists live keys that have a rotation policy,
	// across vaults, for the rotation scheduler.
	KeysWithRotationPolicy(ctx context.Context) ([]*Key, error)
}

// KeyAttributes are the settable attributes of a key version; nil: unchanged.
type KeyAttributes struct {
	Enabled   *bool
	NotBefore *time.Time
	Expires   *time.Time
}

// CreateKeyParams are the parameters of VaultService.CreateKey.
type CreateKeyParams struct {
	Type       string // RSA or RSA-HSM
	Size       int    // 2048, 3072 or 4096; 0 means 2048
	KeyOps     []string
	Attributes KeyAttributes
	Tags       map[string]string
}

// JSONWebKey is an RSA key in JWK form (raw bytes; base64url is the HTTP
// layer's business). D and the CRT values are present only on import.
type JSONWebKey struct {
	Kty                 string
	N, E                []byte
	D, P, Q, DP, DQ, QI []byte
	KeyOps              []string
	// HSM is a key-transfer blob ("key_hsm", the .byok file's JSON) in
	// place of the private fields: the target key wrapped to a key
	// exchange key (KEK) of the vault, imported by unwrapping it in the
	// vault's HSM (Azure Key Vault's BYOK format; docs/keyvault.md).
	HSM []byte
}

// KeyBundle is a key version as the data plane answers it. Version never
// carries Material.
type KeyBundle struct {
	Key     *Key
	Version *KeyVersion
	KID     string
	// RecoveryID is set for deleted keys: VaultURI/deletedkeys/{name}.
	RecoveryID string
}

// VaultService is the built-in key vault: vaults (the Microsoft.KeyVault
// resource provider) and their keys (the Key Vault data plane). The vault
// package implements it. Every method takes the caller's identity and
// network origin from ctx; see package vault for the rules.
type VaultService interface {
	PutVault(ctx context.Context, v *Vault) (created bool, err error)
	GetVault(ctx context.Context, sub, rg, name string) (*Vault, error)
	ListVaults(ctx context.Context, sub, rg string) ([]*Vault, error)
	DeleteVault(ctx context.Context, sub, rg, name string) error
	ListDeletedVaults(ctx context.Context, sub string) ([]*Vault, error)
	GetDeletedVault(ctx context.Context, sub, location, name string) (*Vault, error)
	RecoverVault(ctx context.Context, sub, rg, name string) (*Vault, error)
	PurgeDeletedVault(ctx context.Context, sub, location, name string) error
	UpdateAccessPolicies(ctx context.Context, sub, rg, name, kind string, policies []AccessPolicy) (*Vault, error)

	CreateKey(ctx context.Context, vault, name string, p CreateKeyParams) (*KeyBundle, error)
	ImportKey(ctx context.Context, vault, name string, jwk JSONWebKey, hsm bool, attrs KeyAttributes, tags map[string]string) (*KeyBundle, error)
	GetKey(ctx context.Context, vault, name, version string) (*KeyBundle, error)
	ListKeys(ctx context.Context, vault string) ([]*KeyBundle, error)
	ListKeyVersions(ctx context.Context, vault, name string) ([]*KeyBundle, error)
	UpdateKey(ctx context.Context, vault, name, version string, attrs KeyAttributes, keyOps []string, tags map[string]string) (*KeyBundle, error)
	WrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (kid string, result []byte, err error)
	UnwrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (kid string, result []byte, err error)
	RotateKey(ctx context.Context, vault, name string) (*KeyBundle, error)
	GetRotationPolicy(ctx context.Context, vault, name string) (*RotationPolicy, error)
	SetRotationPolicy(ctx context.Context, vault, name string, p *RotationPolicy) (*RotationPolicy, error)
	DeleteKey(ctx context.Context, vault, name string) (*KeyBundle, error)
	GetDeletedKey(ctx context.Context, vault, name string) (*KeyBundle, error)
	ListDeletedKeys(ctx context.Context, vault string) ([]*KeyBundle, error)
	RecoverDeletedKey(ctx context.Context, vault, name string) (*KeyBundle, error)
	PurgeDeletedKey(ctx context.Context, vault, name string) error
}
