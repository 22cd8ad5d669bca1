package keyhold

import "context"

// RecordSealer seals and checks the records that say who a caller is and
// what it may do: client secrets' hashes, users' password hashes, role
// assignments and directory roles. Someone who can write the database but
// doesn't hold the master key could otherwise insert a secret hash they
// know, or a grant of wrap and unwrap on a customer's key, and use it
// through the running server. crypt.RecordKey implements it under a key
// derived from the master key. A seal is returned, and checked, apart from
// the record, so that the records' types stay as they are.
type RecordSealer interface {
	// SealCredential and CheckCredential cover the principal, its
	// tenant, the secret's hash and its expiry.
	SealCredential(tenantID string, c *Credential) []byte
	CheckCredential(tenantID string, c *Credential, seal []byte) error
	// SealUserAccount and CheckUserAccount cover the principal, tenant,
	// sign-in name and password hash.
	SealUserAccount(u *UserAccount) []byte
	CheckUserAccount(u *UserAccount, seal []byte) error
	// SealRoleAssignment and CheckRoleAssignment cover the assignment's
	// id, scope, role, principal (id and type) and tenant.
	SealRoleAssignment(a *RoleAssignment) []byte
	CheckRoleAssignment(a *RoleAssignment, seal []byte) error
	// SealDirectoryRole and CheckDirectoryRole cover who holds which
	// directory role in which tenant.
	SealDirectoryRole(tenantID, principalID string, role DirectoryRole) []byte
	CheckDirectoryRole(tenantID, principalID string, role DirectoryRole, seal []byte) error
	// SealFederatedCredential and CheckFederatedCredential cover the
	// credential's id, principal, tenant, name, issuer, subject and
	// audiences: what decides whose assertions sign the principal in.
	SealFederatedCredential(tenantID string, c *FederatedCredential) []byte
	CheckFederatedCredential(tenantID string, c *FederatedCredential, seal []byte) error
	// SealHSMRoleAssignment and CheckHSMRoleAssignment cover a Managed
	// HSM's local role assignment: the HSM, its name, scope, role and
	// principal. Unsealed, a database writer could grant a principal it
	// signs in as Crypto User on the key that wraps an environment's key.
	SealHSMRoleAssignment(a *HSMRoleAssignment) []byte
	CheckHSMRoleAssignment(a *HSMRoleAssignment, seal []byte) error
}

// RefusedRecord is a record a read passed over because its seal failed:
// the tenant it names, what it is, and the check's error
// (CodeRecordIntegrity).
type RefusedRecord struct {
	TenantID string
	Target   string
	Err      error
}

// SealingStore is a Store that seals the access records it writes with a
// RecordSealer and checks them as it reads them: a read treats a record
// whose seal fails as absent, and reports it, once the transaction has
// ended, to refused (which logs and audits it; it may use the store).
// The sqlstore implementation is one. The platform installs its sealer
// before it reads or writes anything.
type SealingStore interface {
	SetRecordSealer(s RecordSealer, refused func(ctx context.Context, rs []RefusedRecord))
	// SealAccessRecords seals the access records that have no seal (the
	// records written before Keyhold sealed them), only while none of
	// them has one, calling audit in the same transaction for each. It
	// returns how many it sealed, and how many unsealed records it left
	// because others were sealed already (written outside Keyhold).
	SealAccessRecords(ctx context.Context, audit func(tx Tx, tenantID, target string) error) (sealed, left int, err error)
}
