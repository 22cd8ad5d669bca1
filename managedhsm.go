package keyhold

import (
	"context"
	"time"
)

// Managed HSM (issue 18): a second vault kind, Microsoft.KeyVault/managedHSMs.
// Its keys live in the PKCS#11 token only, its data plane is at
// https://{name}.managedhsm.{domain}[:{port}]/, and who may do what on it is
// decided by its own role assignments (local RBAC, HSMRoleAssignment), not
// by the resource manager's. A new HSM is inactive: its data plane serves
// nothing but the security domain download until an administrator has
// downloaded the security domain (split over ≥ 3 of the customer's RSA keys
// with a quorum), or uploaded one to it.

// DefaultManagedHSMDomain is the domain Managed HSMs are addressed under
// when the vault domain is the default one: an HSM "contoso-hsm" is
// https://contoso-hsm.managedhsm.localhost[:{port}]/.
const DefaultManagedHSMDomain = "managedhsm.localhost"

// ManagedHSMDomain returns the HSM domain that goes with a vault domain:
// vault.X gives managedhsm.X (vault.azure.net gives managedhsm.azure.net),
// any other domain D gives managedhsm.D.
func ManagedHSMDomain(vaultDomain string) string {
	d := VaultAddress{Domain: vaultDomain}.VaultDomain()
	if rest, ok := cutLabel(d, "vault"); ok {
		return "managedhsm." + rest
	}
	return "managedhsm." + d
}

func cutLabel(d, label string) (string, bool) {
	if len(d) > len(label)+1 && d[:len(label)+1] == label+"." {
		return d[len(label)+1:], true
	}
	return "", false
}

// HSMAddress returns the address the outside sees of Managed HSMs: a, with
// the HSM domain in place of the vault domain. Its VaultURI, KeyID and
// VaultOfHost then render and read HSM URIs and key ids.
func HSMAddress(a VaultAddress) VaultAddress {
	return VaultAddress{PublicURL: a.PublicURL, Domain: ManagedHSMDomain(a.Domain)}
}

// The built-in Managed HSM local roles, with Azure's role definition ids.
const (
	RoleHSMCryptoUser    = "21dbd100-6940-42c2-9190-5d6cb909625b"
	RoleHSMCryptoOfficer = "515eb02d-2335-4d2d-92f2-b1cbdf9c3778"
	RoleHSMAdministrator = "a290e904-7015-4bba-90c8-60543313cdb4"
)

// HSMRoleDefinitionPrefix is how a local role definition's id starts, as
// the data plane returns it: {prefix}{role id}.
const HSMRoleDefinitionPrefix = "/Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"

// Security domain activation states, as ARM reports them
// (properties.securityDomainProperties.activationStatus).
const (
	HSMNotActivated = "NotActivated"
	HSMActive       = "Active"
)

// ManagedHSM is a Managed HSM pool.
type ManagedHSM struct {
	SubscriptionID          string    `json:"subscriptionId"`
	ResourceGroup           string    `json:"resourceGroup"`
	Name                    string    `json:"name"`
	Location                string    `json:"location"`
	TenantID                string    `json:"tenantId"`
	SKU                     string    `json:"sku"` // Standard_B1 or Custom_B32
	InitialAdminObjectIDs   []string  `json:"initialAdminObjectIds"`
	SoftDeleteRetentionDays int       `json:"softDeleteRetentionInDays"`
	EnablePurgeProtection   bool      `json:"enablePurgeProtection"`
	ActivatedAt             time.Time `json:"activatedAt"` // zero: not activated
	// DomainHash is the SHA-256 of the security domain's secret, set at
	// activation: an upload must bring the same secret back.
	DomainHash       []byte    `json:"domainHash,omitempty"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
	DeletedAt        time.Time `json:"deletedAt"`
	ScheduledPurgeAt time.Time `json:"scheduledPurgeAt"`
	Version          int64     `json:"-"` // optimistic concurrency
}

// ID returns the HSM's ARM resource id.
func (h *ManagedHSM) ID() string {
	return "/subscriptions/" + h.SubscriptionID + "/resourceGroups/" + h.ResourceGroup + "/providers/Microsoft.KeyVault/managedHSMs/" + h.Name
}

// Deleted reports whether the HSM is soft-deleted.
func (h *ManagedHSM) Deleted() bool { return !h.DeletedAt.IsZero() }

// Activated reports whether the HSM's security domain was downloaded (or
// uploaded).
func (h *ManagedHSM) Activated() bool { return !h.ActivatedAt.IsZero() }

// AsVault returns what the key data plane needs of the HSM in a vault's
// shape: its tenant (the bearer challenge), retention and purge protection
// (the keys' recoveryLevel).
func (h *ManagedHSM) AsVault() *Vault {
	return &Vault{SubscriptionID: h.SubscriptionID, ResourceGroup: h.ResourceGroup, Name: h.Name, Location: h.Location,
		TenantID: h.TenantID, SoftDeleteRetentionDays: h.SoftDeleteRetentionDays, EnablePurgeProtection: h.EnablePurgeProtection,
		DeletedAt: h.DeletedAt, ScheduledPurgeAt: h.ScheduledPurgeAt}
}

// HSMRoleAssignment is a local role assignment of a Managed HSM.
type HSMRoleAssignment struct {
	HSM              string    `json:"hsm"`
	Name             string    `json:"name"`  // a GUID
	Scope            string    `json:"scope"` // "/", "/keys" or "/keys/{name}"
	RoleDefinitionID string    `json:"roleDefinitionId"`
	PrincipalID      string    `json:"principalId"`
	CreatedAt        time.Time `json:"createdAt"`
}

// ManagedHSMTx is the part of a store transaction that holds Managed HSMs.
// HSM names are unique across the server, deleted ones included until
// purged. An HSM's keys and versions are keyhold.Key and KeyVersion with
// VaultName the HSM's name. Lookups return CodeNotFound; a stale
// UpdateManagedHSM version returns CodeConflict.
type ManagedHSMTx interface {
	CreateManagedHSM(ctx context.Context, h *ManagedHSM) error // CodeConflict if the name is taken
	ManagedHSM(ctx context.Context, name string) (*ManagedHSM, error)
	UpdateManagedHSM(ctx context.Context, h *ManagedHSM) error // CAS on Version, then Version++
	ListManagedHSMs(ctx context.Context, f VaultFilter) ([]*ManagedHSM, error)
	PurgeManagedHSM(ctx context.Context, name string) error // with its keys, versions and assignments

	PutHSMKey(ctx context.Context, k *Key) error // upsert
	HSMKey(ctx context.Context, hsm, name string) (*Key, error)
	ListHSMKeys(ctx context.Context, hsm string, deleted bool) ([]*Key, error)
	PurgeHSMKey(ctx context.Context, hsm, name string) error
	PutHSMKeyVersion(ctx context.Context, v *KeyVersion) error // upsert
	HSMKeyVersion(ctx context.Context, hsm, name, version string) (*KeyVersion, error)
	ListHSMKeyVersions(ctx context.Context, hsm, name string) ([]*KeyVersion, error) // oldest first

	PutHSMRoleAssignment(ctx context.Context, a *HSMRoleAssignment) error // CodeConflict if the name is taken
	ListHSMRoleAssignments(ctx context.Context, hsm string) ([]*HSMRoleAssignment, error)
	DeleteHSMRoleAssignment(ctx context.Context, hsm, name string) error
}

// VaultKeys is the key data plane of a vault kind, as the HTTP layer
// serves it for a vault's host and for a Managed HSM's: VaultService and
// ManagedHSMService both implement it, the vault argument naming the vault
// or the HSM.
type VaultKeys interface {
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

// SecurityDomainRequest asks for an HSM's security domain: the secret is
// split into len(Keys) shares, Quorum of which restore it, each share
// encrypted to one of Keys (RSA public keys, at least 3).
type SecurityDomainRequest struct {
	Keys   []SecurityDomainKey
	Quorum int
}

// SecurityDomainKey is one of the customer's RSA keys a share is
// encrypted to; KID names it in the download (the certificate's SHA-256
// thumbprint, hex).
type SecurityDomainKey struct {
	KID string
	N   []byte
	E   int
}

// SecurityDomain is a downloaded security domain: the quorum, and each
// share, encrypted with RSA-OAEP-256 to the key KID names.
type SecurityDomain struct {
	Version string // "keyhold-sd/1"
	HSM     string
	Quorum  int
	Shares  []SecurityDomainShare
}

// SecurityDomainShare is one encrypted (download) or decrypted (upload)
// share: X is its Shamir x coordinate, Value the share (ciphertext in a
// download, plaintext in an upload).
type SecurityDomainShare struct {
	KID   string
	X     int
	Value []byte
}

// ManagedHSMService is the Managed HSM: the Microsoft.KeyVault/managedHSMs
// resource, its security domain, its local role assignments and its keys.
// Every method takes the caller's identity from ctx.
type ManagedHSMService interface {
	VaultKeys
	PutManagedHSM(ctx context.Context, h *ManagedHSM, recover bool) (created bool, err error)
	GetManagedHSM(ctx context.Context, sub, rg, name string) (*ManagedHSM, error)
	ListManagedHSMs(ctx context.Context, sub, rg string) ([]*ManagedHSM, error)
	DeleteManagedHSM(ctx context.Context, sub, rg, name string) error
	ListDeletedManagedHSMs(ctx context.Context, sub string) ([]*ManagedHSM, error)
	GetDeletedManagedHSM(ctx context.Context, sub, location, name string) (*ManagedHSM, error)
	PurgeDeletedManagedHSM(ctx context.Context, sub, location, name string) error
	// LookupManagedHSM returns a live HSM by name without checking the
	// caller (the data plane's challenge needs its tenant).
	LookupManagedHSM(ctx context.Context, name string) (*ManagedHSM, error)

	DownloadSecurityDomain(ctx context.Context, hsm string, req SecurityDomainRequest) (*SecurityDomain, error)
	UploadSecurityDomain(ctx context.Context, hsm string, shares []SecurityDomainShare) error

	PutHSMRoleAssignment(ctx context.Context, hsm string, a *HSMRoleAssignment) (*HSMRoleAssignment, error)
	GetHSMRoleAssignment(ctx context.Context, hsm, name string) (*HSMRoleAssignment, error)
	ListHSMRoleAssignments(ctx context.Context, hsm, scope string) ([]*HSMRoleAssignment, error)
	DeleteHSMRoleAssignment(ctx context.Context, hsm, name string) (*HSMRoleAssignment, error)
}
