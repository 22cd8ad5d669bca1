package keyhold

import (
	"context"
	"time"
)

// Backup, restore, copy and reset: the environment database operations
// that the spec ("Environment database operations") says respect the key.
//
//   - A backup is a point-in-time copy of an environment's rows, files,
//     flows and connections (not run history) exactly as stored: ciphertext under the environment's key epochs,
//     never decrypted. It belongs to its environment (deleting the
//     environment deletes it) and the wrapped keys of the epochs it holds
//     items under are kept while it lives, so a backup is protected by
//     whatever protects the environment's keys: linking to an enterprise
//     policy moves them to the customer's key, a revocation locks them, and
//     rotation rewraps them. It expires after BackupRetention (28 days for
//     Production, 7 for the rest), after which those epochs are destroyed.
//   - Restore overwrites an environment with a backup. The target must be
//     the backup's own environment, or another one encrypted with the same
//     customer-managed key (same vault and key name) when the backup is under
//     a customer-managed key.
//   - Copy overwrites another environment with a source's current data: if
//     the source is under a customer-managed key, the target must be under
//     the same one (a Support Investigation target too: change its key
//     first).
//   - Reset deletes a Sandbox's data, backups included, and returns it to
//     the platform's key.
//
// All four are refused on a Locked environment (source or target), and a
// running restore, copy or reset pauses when one locks.

// Operation kinds of the environment database operations.
const (
	OpRestore = "restore" // overwrite an environment with a backup
	OpCopy    = "copy"    // overwrite an environment with another's data
	OpReset   = "reset"   // delete a Sandbox's data; back to the platform's key
)

// Backup retention: how long a backup lives after it is taken.
const (
	BackupRetentionProduction = 28 * 24 * time.Hour
	BackupRetention           = 7 * 24 * time.Hour
)

// MaxBackupLabel bounds a backup's label, in bytes.
const MaxBackupLabel = 256

// RetentionFor is how long a backup of an environment of sku lives.
func RetentionFor(sku EnvironmentSKU) time.Duration {
	if sku == SKUProduction {
		return BackupRetentionProduction
	}
	return BackupRetention
}

// Backup is one backup of an environment.
type Backup struct {
	ID        string    `json:"id"`
	EnvID     string    `json:"environmentId"`
	TenantID  string    `json:"-"`
	Label     string    `json:"label"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"backupPointDateTime"`
	ExpiresAt time.Time `json:"expiresAt"`
	Rows      int64     `json:"rows"`
	Files     int64     `json:"files"`
	Bytes     int64     `json:"bytes"` // plaintext bytes of its files
}

// BackupTx is the part of a store transaction that holds backups.
type BackupTx interface {
	// CreateBackup stores b (ID, EnvID, TenantID, Label, CreatedBy,
	// CreatedAt, ExpiresAt set by the caller) together with a copy, as
	// stored, of every row and file of environment b.EnvID, and fills in
	// b.Rows, b.Files and b.Bytes. File contents are copied into chunk
	// generations of the environment that only the backup references.
	// An unknown environment is CodeEnvironmentNotFound.
	CreateBackup(ctx context.Context, b *Backup) error
	// Backup returns one backup, or CodeBackupNotFound.
	Backup(ctx context.Context, id string) (*Backup, error)
	// ListBackups lists an environment's backups, newest first.
	ListBackups(ctx context.Context, envID string) ([]*Backup, error)
	// DeleteBackup deletes a backup with its rows, files and chunks, or
	// returns CodeBackupNotFound.
	DeleteBackup(ctx context.Context, id string) error
	// ExpiredBackups lists up to limit backups whose ExpiresAt is not after
	// before, oldest first.
	ExpiredBackups(ctx context.Context, before time.Time, limit int) ([]*Backup, error)
	// BackupRows lists a backup's rows in (table, id) order after
	// (afterTable, afterID), up to limit; each has the backup's EnvID.
	BackupRows(ctx context.Context, backupID, afterTable, afterID string, limit int) ([]*RowRecord, error)
	// BackupFiles lists a backup's files in name order; each has the
	// backup's EnvID and the Generation its chunks are stored under
	// (read them with FileChunk).
	BackupFiles(ctx context.Context, backupID string) ([]*FileRecord, error)
	// BackupEpochs lists, in ascending order, the epochs that the backups
	// of an environment hold items under.
	BackupEpochs(ctx context.Context, envID string) ([]uint32, error)
	// BackupEpochCounts counts, per epoch in ascending order, the rows and
	// files an environment's backups hold, with the latest expiry of the
	// backups that hold them.
	BackupEpochCounts(ctx context.Context, envID string) ([]BackupEpochCount, error)
	// StageBackup stores b (as CreateBackup does) with no items: the
	// staging area a restore writes re-sealed rows into page by page
	// (InsertBackupRows) and moves into its environment at once
	// (MoveBackupRows). An id in use is CodeConflict.
	StageBackup(ctx context.Context, b *Backup) error
	// InsertBackupRows adds a page of rows (their EnvID is ignored) to
	// backup backupID with one statement, and adds their number to its
	// Rows; a row it holds already is CodeConflict, an unknown backup
	// CodeBackupNotFound.
	InsertBackupRows(ctx context.Context, backupID string, rows []*RowRecord) error
	// MoveBackupRows copies every row of backup backupID, as stored, into
	// environment envID (which must hold none of them: CodeConflict) with
	// one statement, and returns how many it copied. The backup keeps them
	// until it is deleted.
	MoveBackupRows(ctx context.Context, backupID, envID string) (int64, error)
	// CopyBackupRows copies, as stored and with one statement, the next
	// page of the live rows of backup backupID's environment, up to limit
	// after (afterTable, afterID) in (table, id) order, into the backup,
	// adds them to its Rows, and returns how many it copied and the last
	// one's key ("", "" once the rows are exhausted). CodeBackupNotFound
	// for an unknown backup.
	CopyBackupRows(ctx context.Context, backupID, afterTable, afterID string, limit int) (n int64, lastTable, lastID string, err error)
	// FinishBackup makes backup b.ID, filled by CopyBackupRows, an exact
	// image of its environment as of the caller's transaction (rows
	// changed or deleted since their page was copied are replaced or
	// dropped, files are copied), stores b's Label, CreatedAt and
	// ExpiresAt, and fills in b.Rows, b.Files and b.Bytes.
	FinishBackup(ctx context.Context, b *Backup) error
	// ClearEnvData deletes every row and file (and the files' chunks) of an
	// environment. Its backups, and uploads in progress, stay.
	ClearEnvData(ctx context.Context, envID string) error
	// ClearEnvFlows deletes every flow of an environment with its runs,
	// recurrence schedule and callback key, its connections, and its
	// pre-migration partitions (their keys and runs): what a reset
	// deletes besides rows and files. Its backups stay.
	ClearEnvFlows(ctx context.Context, envID string) error
	// InsertRow stores a new row at any version (a restore keeps each
	// row's version from the backup): CodeConflict if the row exists,
	// CodeEnvironmentNotFound for an unknown environment.
	InsertRow(ctx context.Context, r *RowRecord) error
	// PutBackupFlowItems adds flow items to backup backupID (CodeConflict
	// for one it holds already); BackupFlowItems lists them by kind and
	// item. BackupEpochs and BackupEpochCounts count their epochs other
	// than PlatformEpoch.
	PutBackupFlowItems(ctx context.Context, backupID string, items []*BackupFlowItem) error
	BackupFlowItems(ctx context.Context, backupID string) ([]*BackupFlowItem, error)
	// InsertRows is InsertRow for a page of rows, in one statement rather
	// than one per row (a restore's page). If any row exists already it
	// is CodeConflict, and the transaction must not commit (part of the
	// page may be stored in it).
	InsertRows(ctx context.Context, rs []*RowRecord) error
}

// BackupService runs backup, restore, copy and reset. Every method checks
// the caller: a Power Platform, Dynamics 365 or Global Administrator of the
// environment's tenant; resetting an environment linked to an enterprise
// policy (which returns it to the platform's key) also needs Reader on the
// policy, as unlinking does.
type BackupService interface {
	// CreateBackup takes a backup of an Enabled environment now.
	CreateBackup(ctx context.Context, envID, label string) (*Backup, error)
	// ListBackups lists an environment's backups, newest first.
	ListBackups(ctx context.Context, envID string) ([]*Backup, error)
	// DeleteBackup deletes one backup of an environment.
	DeleteBackup(ctx context.Context, envID, backupID string) error
	// RestoreBackup starts overwriting environment targetID with a backup.
	RestoreBackup(ctx context.Context, targetID, backupID string) (*Operation, error)
	// CopyEnvironment starts overwriting environment targetID with the
	// current data of sourceID.
	CopyEnvironment(ctx context.Context, targetID, sourceID string) (*Operation, error)
	// ResetEnvironment starts deleting a Sandbox's data and backups and
	// returning it to the platform's key.
	ResetEnvironment(ctx context.Context, envID string) (*Operation, error)
}

// Kinds of BackupFlowItem.
const (
	BackupFlowManifest   = "manifest"   // present in every backup that holds flows (zero or more)
	BackupFlowRecord     = "flow"       // a FlowRecord
	BackupFlowKey        = "key"        // a FlowKeyRecord
	BackupFlowSchedule   = "schedule"   // a FlowSchedule
	BackupFlowConnection = "connection" // a ConnectionRecord
)

// BackupFlowItem is one of the flow items a backup holds (issue 15): a
// flow, its callback key or schedule, or a connection, as stored: Record
// is the record as JSON, its ciphertext included, never opened. Epoch is
// the item's (PlatformEpoch for what the platform key's partition seals,
// and for what is not sealed). Run history is not backed up.
type BackupFlowItem struct {
	Kind   string
	Item   string // the flow id, or api/name for a connection
	Epoch  uint32
	Record []byte
}
