package keyhold

import (
	"context"
	"time"
)

// The customer-managed key lifecycle of environments: link an environment
// to an enterprise policy (its data then comes under the policy's key),
// unlink it (back to the platform's key), swap it to another policy (a link
// while linked), and follow key-version rotation. Each is a durable
// Operation; the API answers 202 with an operation-location.

// Operation kinds of the CMK lifecycle.
const (
	OpLink   = "link"   // link or swap
	OpUnlink = "unlink" // back to the MMK
	OpRekey  = "rekey"  // move items to the current epoch, destroy old epochs
	OpRotate = "rotate" // rewrap under the policy key's new current version
)

// PolicyLink is one row of "Environments with policies".
type PolicyLink struct {
	Environment   *Environment      `json:"environment"`
	Policy        *EnterprisePolicy `json:"policy,omitempty"`
	LastOperation *Operation        `json:"lastOperation,omitempty"`
}

// KeyVersionUsage says what still depends on one version of a policy's key,
// and from when it is safe to disable it: the spec asks that a version stay
// enabled at least 28 days after its last use, and the key 30 days after an
// environment was removed from its policy, for database restores.
type KeyVersionUsage struct {
	KeyID   string `json:"kid"` // versioned
	Version string `json:"version"`
	Current bool   `json:"current"`
	// LiveKeys counts environment keys wrapped under this version now,
	// including the keys of old epochs kept because backups hold items
	// under them (see backup.go): a version a backup needs stays in use
	// until the backup expires.
	LiveKeys int `json:"liveEnvironmentKeys"`
	// Backups is kept for the API's shape and is always 0: a backup holds
	// no keys of its own (the environment keys it needs count in LiveKeys).
	Backups int `json:"backups"`
	// LastUsedAt is when the last environment key moved off this version
	// (zero while it is in use, or if it never was).
	LastUsedAt time.Time `json:"lastUsedAt"`
	// SafeToDisableAt is LastUsedAt + 28 days (KeyVersionRetention), or
	// + 30 days (KeyRetentionAfterRemoval) if an environment left the
	// policy while on this version, whichever ends later over the
	// version's uses; zero while anything depends on the version, or
	// while it is current.
	SafeToDisableAt time.Time `json:"safeToDisableAt"`
	// RetainedBYOK, when set, makes this entry not a version of the
	// policy's key but the legacy BYOK key that environments now under
	// the policy migrated from, still kept (issue 14): KeyID and Version
	// are its "byok/{id}", Backups its pre-migration backups, LastUsedAt
	// the migration and SafeToDisableAt its shred date.
	RetainedBYOK *RetainedBYOKKey `json:"retainedByokKey,omitempty"`
}

// KeyVersionRetention is how long a key version must stay enabled after
// its last use by a rotation or re-key.
const KeyVersionRetention = 28 * 24 * time.Hour

// KeyRetentionAfterRemoval is how long the key of an enterprise policy,
// and the policy identity's access to it, must be kept after an
// environment was removed from the policy (unlink, swap, reset): the spec
// says "You may delete and remove the enterprise policy's permissions
// after 30 days", because restores of the environment's database need it.
const KeyRetentionAfterRemoval = 30 * 24 * time.Hour

// CMKService runs the customer-managed key lifecycle. Every method checks
// the caller: a Power Platform, Dynamics 365 or Global Administrator who
// also holds Reader on the policy involved.
type CMKService interface {
	// LinkPolicy starts linking an environment to the policy with the given
	// systemId (swapping it if another policy is linked). Its checks run
	// before anything changes; a refusal is an error and starts nothing.
	LinkPolicy(ctx context.Context, envID, systemID string) (*Operation, error)
	// UnlinkPolicy starts returning an environment to the platform's key.
	UnlinkPolicy(ctx context.Context, envID, systemID string) (*Operation, error)
	// GetOperation returns an operation of the caller's tenant.
	GetOperation(ctx context.Context, id string) (*Operation, error)
	// PolicyLinks lists the caller's tenant's linked environments.
	PolicyLinks(ctx context.Context) ([]*PolicyLink, error)
	// KeyVersionUsage reports, for each version of the key that the policy
	// (its ARM resource id) names, what depends on it.
	KeyVersionUsage(ctx context.Context, policyID string) ([]*KeyVersionUsage, error)
}

// EnvironmentEnabler is the optional ability of a CMKService to
// re-enable a Locked environment, returning the finished operation that
// records it.
type EnvironmentEnabler interface {
	EnableEnvironmentOp(ctx context.Context, envID string) (*Operation, error)
}
