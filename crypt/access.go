package crypt

import (
	"fmt"

	"github.com/keyhold/keyhold"
)

// Access records: the records that say who a caller is (client secrets'
// hashes, users' password hashes) and what it may do (role assignments,
// directory roles). They are sealed like the custody records (see
// integrity.go), each kind under its own label; the store keeps the seal
// in a column of its own and treats a record whose seal fails as absent
// (keyhold.SealingStore), so that a secret hash or a grant inserted in the
// database without the master key neither authenticates nor authorizes.

// Labels of the access records.
const (
	labelCredential     = "keyhold record credential v1\x00"
	labelCertificate    = "keyhold record credential-certificate v1\x00"
	labelUserAccount    = "keyhold record user-account v1\x00"
	labelRoleAssignment = "keyhold record role-assignment v1\x00"
	labelDirectoryRole  = "keyhold record directory-role v1\x00"
	labelVaultAccess    = "keyhold record vault-access v1\x00"
	labelHSMAssignment  = "keyhold record hsm-role-assignment v1\x00"
)

var _ keyhold.RecordSealer = (*RecordKey)(nil)

func credentialEncoding(tenantID string, c *keyhold.Credential) []byte {
	var e recordEncoder
	e.str(c.PrincipalID)
	e.str(tenantID)
	e.bytes(c.SecretHash)
	e.time(c.ExpiresAt)
	return e.b
}

// certificateEncoding is a certificate credential's: a client secret's
// fields and the certificate, under a label of its own, so that the seals
// of secrets written before certificates existed still hold.
func certificateEncoding(tenantID string, c *keyhold.Credential) []byte {
	e := recordEncoder{b: credentialEncoding(tenantID, c)}
	e.bytes(c.Certificate)
	return e.b
}

// SealCredential returns the seal of a client secret's record: its
// principal, the principal's tenant, the secret's hash and its expiry; of
// a certificate credential's, the certificate too.
func (r *RecordKey) SealCredential(tenantID string, c *keyhold.Credential) []byte {
	if len(c.Certificate) > 0 {
		return r.mac(labelCertificate, certificateEncoding(tenantID, c))
	}
	return r.mac(labelCredential, credentialEncoding(tenantID, c))
}

// CheckCredential returns keyhold.CodeRecordIntegrity unless seal is
// SealCredential's seal of c in tenantID.
func (r *RecordKey) CheckCredential(tenantID string, c *keyhold.Credential, seal []byte) error {
	if len(c.Certificate) > 0 {
		return r.check(labelCertificate, certificateEncoding(tenantID, c), seal, "a client certificate of principal "+c.PrincipalID)
	}
	return r.check(labelCredential, credentialEncoding(tenantID, c), seal, "a client secret of principal "+c.PrincipalID)
}

func userAccountEncoding(u *keyhold.UserAccount) []byte {
	var e recordEncoder
	e.str(u.PrincipalID)
	e.str(u.TenantID)
	e.str(u.UserPrincipalName)
	e.bytes(u.PasswordHash)
	return e.b
}

// SealUserAccount returns the seal of a user's account: its principal,
// tenant, sign-in name and password hash.
func (r *RecordKey) SealUserAccount(u *keyhold.UserAccount) []byte {
	return r.mac(labelUserAccount, userAccountEncoding(u))
}

// CheckUserAccount returns keyhold.CodeRecordIntegrity unless seal is
// SealUserAccount's seal of u.
func (r *RecordKey) CheckUserAccount(u *keyhold.UserAccount, seal []byte) error {
	return r.check(labelUserAccount, userAccountEncoding(u), seal,
		fmt.Sprintf("the user account %q (principal %s)", u.UserPrincipalName, u.PrincipalID))
}

func roleAssignmentEncoding(a *keyhold.RoleAssignment) []byte {
	var e recordEncoder
	e.str(a.ID)
	e.str(a.Scope)
	e.str(a.RoleDefinitionID)
	e.str(a.PrincipalID)
	e.str(a.PrincipalType)
	e.str(a.TenantID)
	return e.b
}

// SealRoleAssignment returns the seal of a role assignment: its id, scope,
// role definition, principal (id and type) and tenant.
func (r *RecordKey) SealRoleAssignment(a *keyhold.RoleAssignment) []byte {
	return r.mac(labelRoleAssignment, roleAssignmentEncoding(a))
}

// CheckRoleAssignment returns keyhold.CodeRecordIntegrity unless seal is
// SealRoleAssignment's seal of a.
func (r *RecordKey) CheckRoleAssignment(a *keyhold.RoleAssignment, seal []byte) error {
	return r.check(labelRoleAssignment, roleAssignmentEncoding(a), seal,
		fmt.Sprintf("role assignment %s (role %s for principal %s at %s)", a.ID, a.RoleDefinitionID, a.PrincipalID, a.Scope))
}

func directoryRoleEncoding(tenantID, principalID string, role keyhold.DirectoryRole) []byte {
	var e recordEncoder
	e.str(tenantID)
	e.str(principalID)
	e.str(string(role))
	return e.b
}

// SealDirectoryRole returns the seal of principalID's holding role in
// tenantID.
func (r *RecordKey) SealDirectoryRole(tenantID, principalID string, role keyhold.DirectoryRole) []byte {
	return r.mac(labelDirectoryRole, directoryRoleEncoding(tenantID, principalID, role))
}

// CheckDirectoryRole returns keyhold.CodeRecordIntegrity unless seal is
// SealDirectoryRole's seal of the same holding.
func (r *RecordKey) CheckDirectoryRole(tenantID, principalID string, role keyhold.DirectoryRole, seal []byte) error {
	return r.check(labelDirectoryRole, directoryRoleEncoding(tenantID, principalID, role), seal,
		fmt.Sprintf("the directory role %s of principal %s in tenant %s", role, principalID, tenantID))
}

func vaultAccessEncoding(v *keyhold.Vault) []byte {
	var e recordEncoder
	e.str(v.Name)
	e.str(v.TenantID)
	e.bool(v.EnableRbacAuthorization)
	e.int(int64(len(v.AccessPolicies)))
	for _, p := range v.AccessPolicies {
		e.str(p.TenantID)
		e.str(p.ObjectID)
		e.strs(p.Keys)
	}
	return e.b
}

// CheckVaultAccess returns keyhold.CodeRecordIntegrity unless who may use
// v's keys (its authorization model, RBAC or access policies, and its
// access policies) is as SealVault sealed it: an access policy added in
// the database grants nothing.
func (r *RecordKey) CheckVaultAccess(v *keyhold.Vault) error {
	_, access := twoSeals(v.MAC)
	return r.check(labelVaultAccess, vaultAccessEncoding(v), access, "the access policies of vault "+v.Name)
}

// HasVaultAccessSeal reports whether v's MAC carries the seal of its
// access (vaults sealed before it was added don't, until the upgrade's
// sealing adds it).
func HasVaultAccessSeal(v *keyhold.Vault) bool {
	_, access := twoSeals(v.MAC)
	return access != nil
}

// labelFederated is the label of federated identity credentials.
const labelFederated = "keyhold record federated-credential v1\x00"

func federatedEncoding(tenantID string, c *keyhold.FederatedCredential) []byte {
	var e recordEncoder
	e.str(c.ID)
	e.str(c.PrincipalID)
	e.str(tenantID)
	e.str(c.Name)
	e.str(c.Issuer)
	e.str(c.Subject)
	e.strs(c.Audiences)
	return e.b
}

// SealFederatedCredential returns the seal of a federated credential: its
// id, principal, the principal's tenant, name, issuer, subject and
// audiences (not its description, which trusts no one).
func (r *RecordKey) SealFederatedCredential(tenantID string, c *keyhold.FederatedCredential) []byte {
	return r.mac(labelFederated, federatedEncoding(tenantID, c))
}

// CheckFederatedCredential returns keyhold.CodeRecordIntegrity unless seal
// is SealFederatedCredential's seal of c in tenantID.
func (r *RecordKey) CheckFederatedCredential(tenantID string, c *keyhold.FederatedCredential, seal []byte) error {
	return r.check(labelFederated, federatedEncoding(tenantID, c), seal,
		fmt.Sprintf("the federated credential %q of principal %s (issuer %s, subject %s)", c.Name, c.PrincipalID, c.Issuer, c.Subject))
}

func hsmAssignmentEncoding(a *keyhold.HSMRoleAssignment) []byte {
	var e recordEncoder
	e.str(a.HSM)
	e.str(a.Name)
	e.str(a.Scope)
	e.str(a.RoleDefinitionID)
	e.str(a.PrincipalID)
	return e.b
}

// SealHSMRoleAssignment returns the seal of a Managed HSM's local role
// assignment: the HSM, the assignment's name, scope, role and principal.
func (r *RecordKey) SealHSMRoleAssignment(a *keyhold.HSMRoleAssignment) []byte {
	return r.mac(labelHSMAssignment, hsmAssignmentEncoding(a))
}

// CheckHSMRoleAssignment returns keyhold.CodeRecordIntegrity unless seal
// is SealHSMRoleAssignment's seal of a.
func (r *RecordKey) CheckHSMRoleAssignment(a *keyhold.HSMRoleAssignment, seal []byte) error {
	return r.check(labelHSMAssignment, hsmAssignmentEncoding(a), seal,
		fmt.Sprintf("Managed HSM role assignment %s (role %s for principal %s at %s in %s)", a.Name, a.RoleDefinitionID, a.PrincipalID, a.Scope, a.HSM))
}
