package keyhold

import (
	"context"
	"encoding/json"
	"time"
)

// PreMigrationRetention is how long the run history kept from before an
// environment's link to a customer-managed key stays readable (spec 004:
// "up to 30 days after migration"); then it is crypto-shredded.
const PreMigrationRetention = 30 * 24 * time.Hour

// StorePreMigration names the store of pre-migration runs in their
// partition keys' derivation.
const StorePreMigration = "premigration"

// PreMigrationKey is the key of one pre-migration partition: a fresh
// random key per (environment, link), wrapped by the platform key (KeyID)
// with the environment and partition bound in. PartitionID is the link
// operation's id. Deleting it crypto-shreds the partition's runs.
type PreMigrationKey struct {
	EnvID       string
	PartitionID string
	KeyID       string
	Wrapped     []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// PreMigrationRunRecord is a finished run of a flow that moved to the
// customer key at a link, as it was then: sealed under its partition's
// key (item FlowRunItemID, version StateVersion), out of every normal run
// listing, retention and engine path.
type PreMigrationRunRecord struct {
	EnvID        string
	PartitionID  string
	FlowID       string
	ID           string
	Status       string
	TriggerName  string
	StartedAt    time.Time
	EndedAt      time.Time
	StateVersion uint64
	Sealed       []byte
}

// PreMigrationTx is the part of a store transaction that holds
// pre-migration partitions (issue 16).
type PreMigrationTx interface {
	// PutPreMigrationKey inserts a partition's key; CodeConflict if the
	// partition has one.
	PutPreMigrationKey(ctx context.Context, k *PreMigrationKey) error
	PreMigrationKey(ctx context.Context, envID, partitionID string) (*PreMigrationKey, error)
	// PreMigrationKeys lists an environment's partitions' keys, oldest
	// first.
	PreMigrationKeys(ctx context.Context, envID string) ([]*PreMigrationKey, error)
	// ExpiredPreMigrationKeys lists at most limit keys, of any
	// environment, that expire at or before now.
	ExpiredPreMigrationKeys(ctx context.Context, now time.Time, limit int) ([]*PreMigrationKey, error)
	DeletePreMigrationKey(ctx context.Context, envID, partitionID string) error
	// MoveRunToPreMigration deletes the flow run r.FlowID/r.ID if it is
	// still at version and inserts r in its place (CodeConflict if the run
	// changed).
	MoveRunToPreMigration(ctx context.Context, r *PreMigrationRunRecord, version uint64) error
	// PreMigrationRuns lists a partition's runs by flow and id.
	PreMigrationRuns(ctx context.Context, envID, partitionID string) ([]*PreMigrationRunRecord, error)
	// DeleteShreddedPreMigrationRuns deletes at most limit runs whose
	// partition has no key any more and says how many.
	DeleteShreddedPreMigrationRuns(ctx context.Context, limit int) (int, error)
}

// PreMigrationRun is a pre-migration run as the admin request answers
// it: its record and its whole state (trigger outputs, actions' inputs
// and outputs), as the engine saved it.
type PreMigrationRun struct {
	FlowID      string          `json:"flowName"`
	ID          string          `json:"name"`
	Migration   string          `json:"migration"` // the link operation's id
	Status      string          `json:"status"`
	TriggerName string          `json:"triggerName"`
	StartTime   time.Time       `json:"startTime"`
	EndTime     time.Time       `json:"endTime,omitzero"`
	ExpiresAt   time.Time       `json:"expiresTime"`
	Content     json.RawMessage `json:"content"`
}

// PreMigrationService reads an environment's pre-migration run history:
// platform administrators of its tenant only, each read audited with who
// read which runs; after PreMigrationRetention it refuses with
// CodePreMigrationRunsExpired.
type PreMigrationService interface {
	PreMigrationRuns(ctx context.Context, envID string) ([]*PreMigrationRun, error)
}
