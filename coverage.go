package keyhold

import (
	"context"
	"time"
)

// The stores of an environment's encryption coverage report, in the
// report's order. The flows' stores (flows, run history, connections,
// pre-migration runs) exist once the flows land: until then the report
// lists them with no items and root CoverageRootNone.
const (
	CoverageRows             = "rows"
	CoverageFiles            = "files"
	CoverageBackups          = "backups"
	CoverageAudit            = "audit"
	CoverageFlows            = "flows"
	CoverageRunHistory       = "runHistory"
	CoverageOAuthConnections = "oauthConnections"
	CoverageConnections      = "connections"
	CoveragePreMigrationRuns = "preMigrationRuns"
)

// Roots of a coverage entry: the key that holds the items, through the
// environment key of their epoch.
const (
	CoverageRootPlatform = "platform" // the platform's key (MMK)
	CoverageRootCustomer = "customer" // the enterprise policy's key, at KeyID's version
	CoverageRootBYOK     = "byok"     // the tenant's legacy BYOK key
	CoverageRootNone     = "none"     // no items, or no key (a store not built yet)
)

// EncryptionCoverage answers "is everything under my key?" for one
// environment: every store, and which root key holds how many of its
// items. Every number is counted in the store when the report is made.
type EncryptionCoverage struct {
	EnvID        string          `json:"environmentId"`
	KeyManagedBy KeyManagedBy    `json:"keyManagedBy"`
	PolicyID     string          `json:"policyId,omitempty"`
	Epoch        uint32          `json:"epoch"`
	Stores       []CoverageStore `json:"stores"`
	At           time.Time       `json:"generatedAt"`
	// RetainedBYOK is the legacy BYOK key the environment migrated from,
	// while it is kept (nil once shredded, or if it never had one).
	RetainedBYOK *RetainedBYOKKey `json:"retainedByokKey,omitempty"`
}

// CoverageStore is one store of the report: its item count and the roots
// that hold them.
type CoverageStore struct {
	Store string         `json:"store"`
	Items int64          `json:"items"`
	Roots []CoverageRoot `json:"roots"`
}

// CoverageRoot is how many of a store's items one root key holds, under
// one epoch of the environment's key. ExpiresAt, set for items that are
// deleted on a date (backups), says when the last of them goes: for items
// on the platform's key, when nothing of the store is on it any more.
//
// For the customer's key, Vault is the URL of the vault that holds it,
// External says whether that vault is one the operator doesn't run (issue
// 13), and LastUnwrap is when the policy's identity that wrapped the
// epoch's key last unwrapped with a key of that vault (UnwrapTx; nil:
// never; recorded at most once a minute).
type CoverageRoot struct {
	Root       string     `json:"root"`
	KeyID      string     `json:"keyId,omitempty"`
	Epoch      uint32     `json:"epoch,omitempty"`
	Items      int64      `json:"items"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	Vault      string     `json:"vault,omitempty"`
	External   bool       `json:"external,omitempty"`
	LastUnwrap *time.Time `json:"lastSuccessfulUnwrap,omitempty"`
}

// BackupEpochCount is how many rows and files an environment's backups
// hold under one epoch, and when the last backup holding any expires.
type BackupEpochCount struct {
	Epoch     uint32
	Items     int64
	ExpiresAt time.Time
}

// CoverageService reports an environment's encryption coverage. It needs
// an administrator role, as reading the environment's audit does.
type CoverageService interface {
	EncryptionCoverage(ctx context.Context, envID string) (*EncryptionCoverage, error)
}
