package keyhold

import (
	"context"
	"time"
)

// Store persists Keyhold's state. It is dumb on purpose: it stores the
// ciphertext and wrapped keys it is given as opaque bytes and never sees a
// plaintext key or customer data. The sqlite and postgres packages implement
// it, and one conformance suite (sqlstore/storetest) runs against both.
//
// Every read and write happens inside View or Update, so that a service can
// make several changes atomically (for example: store an EK's new wrapped
// copy and delete the old one in the same transaction).
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed when fn returns
	// nil and rolled back otherwise. fn may be called more than once if the
	// database asks for a retry, so it must not have side effects outside tx.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the database.
	Close() error
}

// Tx is one transaction. Lookups of a missing item return an *Error with
// CodeNotFound (or the more specific code named); writes that lose an
// optimistic-concurrency race return an *Error with CodeConflict.
type Tx interface {
	ARMTx
	VaultTx
	IdentityTx
	OperationTx
	PolicyTx
	DeploymentTx
	CMKTx
	EventTx
	BackupTx
	LicenceTx
	BYOKTx
	SignInTx
	DataAccessTx
	FederatedTx
	ManagedHSMTx
	FlowTx
	PreMigrationTx
	FlowReportTx
	UnwrapTx
	TenantEgressTx

	// Tenants and subscriptions.
	CreateTenant(ctx context.Context, t *Tenant) error
	Tenant(ctx context.Context, id string) (*Tenant, error)
	ListTenants(ctx context.Context) ([]*Tenant, error)
	CreateSubscription(ctx context.Context, s *Subscription) error
	Subscription(ctx context.Context, id string) (*Subscription, error)
	ListSubscriptions(ctx context.Context, tenantID string) ([]*Subscription, error)

	// Principals, their credentials and directory roles.
	CreatePrincipal(ctx context.Context, p *Principal) error
	Principal(ctx context.Context, id string) (*Principal, error)
	PrincipalByAppID(ctx context.Context, tenantID, appID string) (*Principal, error)
	ListPrincipals(ctx context.Context, tenantID string) ([]*Principal, error)
	AddCredential(ctx context.Context, c *Credential) error
	Credentials(ctx context.Context, principalID string) ([]*Credential, error)
	// RemoveCredentials deletes every credential of a principal and says
	// how many there were (0 for an unknown principal).
	RemoveCredentials(ctx context.Context, principalID string) (int, error)
	AssignDirectoryRole(ctx context.Context, tenantID, principalID string, role DirectoryRole) error
	RemoveDirectoryRole(ctx context.Context, tenantID, principalID string, role DirectoryRole) error
	DirectoryRoles(ctx context.Context, tenantID, principalID string) ([]DirectoryRole, error)

	// Sealed keys. PutSealedKey refuses (CodeConflict) to replace one.
	PutSealedKey(ctx context.Context, k *SealedKey) error
	SealedKey(ctx context.Context, id string) (*SealedKey, error)

	// Environments. Environment returns CodeEnvironmentNotFound.
	// UpdateEnvironment writes e only if the stored Version equals e.Version,
	// and then increments e.Version. DeleteEnvironment removes its rows,
	// files, chunks, uploads and wrapped keys too.
	CreateEnvironment(ctx context.Context, e *Environment) error
	Environment(ctx context.Context, id string) (*Environment, error)
	// EnvironmentForWrite is Environment, and holds the environment's
	// row until the transaction ends: an UpdateEnvironment of another
	// transaction waits for this one, and if one committed after this
	// transaction's snapshot, this call fails with a retryable conflict
	// (Update runs the transaction again). A write of an environment's
	// data starts with it, so that it is ordered with any change of the
	// environment (a restore's start) instead of racing it.
	EnvironmentForWrite(ctx context.Context, id string) (*Environment, error)
	// EnvironmentGate returns only what decides whether an environment
	// serves (EnvironmentGate), or CodeEnvironmentNotFound: the check a
	// flow run makes at each save, where the whole row is not needed.
	EnvironmentGate(ctx context.Context, id string) (EnvironmentGate, error)
	ListEnvironments(ctx context.Context, f EnvironmentFilter) ([]*Environment, error)
	UpdateEnvironment(ctx context.Context, e *Environment) error
	DeleteEnvironment(ctx context.Context, id string) error

	// Wrapped environment keys, one per (environment, epoch, root kind).
	// PutWrappedKey inserts or replaces.
	PutWrappedKey(ctx context.Context, k *WrappedKey) error
	WrappedKeys(ctx context.Context, envID string) ([]*WrappedKey, error)
	DeleteWrappedKey(ctx context.Context, envID string, epoch uint32, root RootKind) error

	// Rows. PutRow writes r only if the stored version is r.Version-1 (0:
	// no row yet), so concurrent writers can't both win; Row returns
	// CodeRowNotFound.
	PutRow(ctx context.Context, r *RowRecord) error
	Row(ctx context.Context, envID, table, id string) (*RowRecord, error)
	DeleteRow(ctx context.Context, envID, table, id string) error
	ListRows(ctx context.Context, f RowFilter) ([]*RowRecord, error)

	// Files. A file's ciphertext is written as chunks under a fresh
	// generation (BeginFileUpload, PutFileChunk), then PutFile points the
	// file at it, deletes the upload mark and returns the replaced record
	// (nil if none) so its chunks can be deleted. File returns
	// CodeFileNotFound.
	BeginFileUpload(ctx context.Context, u *FileUpload) error
	PutFileChunk(ctx context.Context, envID, generation string, seq int, data []byte) error
	FileChunk(ctx context.Context, envID, generation string, seq int) ([]byte, error)
	DeleteFileChunks(ctx context.Context, envID, generation string) error
	PutFile(ctx context.Context, f *FileRecord) (replaced *FileRecord, err error)
	File(ctx context.Context, envID, name string) (*FileRecord, error)
	DeleteFile(ctx context.Context, envID, name string) (*FileRecord, error)
	ListFiles(ctx context.Context, envID string) ([]*FileRecord, error)
	StaleUploads(ctx context.Context, before time.Time) ([]*FileUpload, error)
	DeleteFileUpload(ctx context.Context, envID, generation string) error

	// Audit log, append-only. AppendAudit sets e.ID.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
	// SealAudit replaces entry e.ID's Target and Detail with e.Sealed
	// under e.Epoch at e.Version, only while the entry is still under
	// epoch from (0: in clear): it reports whether it did, so that a walk
	// run again, or racing another, moves each entry once.
	SealAudit(ctx context.Context, e *AuditEntry, from uint32) (bool, error)
	// ShredAudit drops the seals of envID's entries sealed under any
	// epoch but keep, whose keys a reset destroys: their target and detail
	// are gone for good (time, actor and action stay). It returns how
	// many it shredded.
	ShredAudit(ctx context.Context, envID string, keep uint32) (int64, error)
}
