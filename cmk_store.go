package keyhold

import (
	"context"
	"time"
)

// WrappedKeyFilter selects wrapped environment keys across environments,
// in (environment, epoch, root kind) order. Empty fields match all.
type WrappedKeyFilter struct {
	// PrincipalID selects the keys wrapped by one identity: for a CMK, an
	// enterprise policy's managed identity, so the keys of every
	// environment linked to that policy.
	PrincipalID string
	// Root selects one root kind.
	Root RootKind
	// ExceptKeyID leaves out the keys wrapped under exactly this versioned
	// key id: the ones already on a key's current version.
	ExceptKeyID string
	// AfterEnvID and AfterEpoch resume a walk: only keys after
	// (AfterEnvID, AfterEpoch) are listed.
	AfterEnvID string
	AfterEpoch uint32
	// Limit caps the page (a store default if 0).
	Limit int
}

// EpochCount is how many rows, files and audit entries of an environment
// are sealed under one of its epochs.
type EpochCount struct {
	Epoch uint32
	Rows  int64
	Files int64
	Audit int64
}

// KeyVersionUse records when an environment key last moved off a version
// of a customer's key (a rotation, swap, unlink or the end of a re-key), so
// that the product can say when the version is safe to disable. Vault and
// key names compare case-insensitively.
type KeyVersionUse struct {
	VaultName  string
	KeyName    string
	Version    string
	LastUsedAt time.Time
	// RetainUntil is until when the use asks the version to stay enabled:
	// LastUsedAt + KeyVersionRetention after a rotation or re-key,
	// LastUsedAt + KeyRetentionAfterRemoval after an environment left the
	// policy (unlink, swap, reset). The store keeps the latest; zero for
	// uses recorded before it was (they mean LastUsedAt +
	// KeyVersionRetention).
	RetainUntil time.Time
}

// CMKTx is the part of a store transaction that the customer-managed key
// lifecycle needs beyond an environment's own records: finding the keys a
// policy's identity wrapped, re-sealing rows under a new epoch without
// changing their version, counting items per epoch, and remembering when
// key versions were last used.
type CMKTx interface {
	// ListWrappedKeys lists wrapped keys across environments.
	ListWrappedKeys(ctx context.Context, f WrappedKeyFilter) ([]*WrappedKey, error)
	// PolicyWrappedKeys returns, in one query, the customer-managed-key
	// wraps (RootCMK) of the current epoch of every environment linked to
	// the policy (by its ARM resource id, compared without case), in
	// environment order: what a health check probes. One query, however many
	// environments the policy has, so a check of a policy with thousands of
	// them costs one round trip, not one per environment.
	PolicyWrappedKeys(ctx context.Context, policyID string) ([]*WrappedKey, error)
	// ResealRow replaces the ciphertext and epoch of row r, keeping its
	// version and update time (a re-key changes how a row is sealed, not
	// what it holds), only if the stored row is at r.Version and sealed
	// under fromEpoch. Otherwise it returns CodeConflict: the row was
	// written or deleted meanwhile, so the writer already moved it.
	ResealRow(ctx context.Context, r *RowRecord, fromEpoch uint32) error
	// ResealRows is ResealRow for a page of rows of environment envID, in
	// one statement rather than one per row (a re-key's page): each row
	// moves only if it is still at its Version and sealed under
	// fromEpoch; a row written or deleted since it was read is left as it
	// is, without error, as its writer already moved it. It returns how
	// many rows moved.
	ResealRows(ctx context.Context, envID string, rs []*RowRecord, fromEpoch uint32) (int64, error)
	// ResealPageRows is how many rows a re-key page should hold on this
	// store, or 0 for the caller's default. A page is one write
	// transaction: where it excludes every other writer (SQLite) it must
	// stay short, where writers lock only their rows (PostgreSQL) a
	// longer one saves round trips.
	ResealPageRows() int
	// EpochCounts counts an environment's rows and files per epoch, in
	// epoch order; epochs without items are left out.
	EpochCounts(ctx context.Context, envID string) ([]EpochCount, error)
	// TouchKeyVersion records u.LastUsedAt and u.RetainUntil for a key
	// version, keeping for each the later time if one is recorded already.
	TouchKeyVersion(ctx context.Context, u *KeyVersionUse) error
	// KeyVersionUses lists what TouchKeyVersion recorded for a key's
	// versions, in version order.
	KeyVersionUses(ctx context.Context, vaultName, keyName string) ([]*KeyVersionUse, error)
}
