package vault

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/keyhold/keyhold"
)

// InnerKeyOperationForbidden is the inner error code of an operation the
// key version's key_ops do not list, as Key Vault answers it.
const InnerKeyOperationForbidden = "KeyOperationForbidden"

// operation is a data-plane key operation and what authorizes it.
type operation struct {
	// Name is Key Vault's name of the operation, as its messages use it.
	Name string
	// Audit is the audit log's action.
	Audit string
	// DataAction is the RBAC data action a vault with
	// enableRbacAuthorization requires, on the key (or, for listings, on
	// the vault).
	DataAction string
	// Permission is the access-policy key permission a vault without it
	// requires.
	Permission string
	// OnVault says the operation is authorized on the vault's id rather
	// than the key's: it lists keys.
	OnVault bool
	// Role names a built-in role that grants it, for refusal messages.
	Role string
}

const dataActionPrefix = "Microsoft.KeyVault/vaults/"

// The key operations. Their data actions are Azure's.
var (
	opGetKey            = &operation{"get", "key.get", dataActionPrefix + "keys/read", keyhold.PermGet, false, keyhold.RoleKeyVaultCryptoServiceEncryptUser}
	opListKeys          = &operation{"list", "key.list", dataActionPrefix + "keys/read", keyhold.PermList, true, keyhold.RoleKeyVaultReader}
	opListKeyVersions   = &operation{"list", "key.listVersions", dataActionPrefix + "keys/read", keyhold.PermList, false, keyhold.RoleKeyVaultReader}
	opCreateKey         = &operation{"create", "key.create", dataActionPrefix + "keys/create/action", keyhold.PermCreate, false, keyhold.RoleKeyVaultCryptoOfficer}
	opImportKey         = &operation{"import", "key.import", dataActionPrefix + "keys/import/action", keyhold.PermImport, false, keyhold.RoleKeyVaultCryptoOfficer}
	opUpdateKey         = &operation{"update", "key.update", dataActionPrefix + "keys/update/action", keyhold.PermUpdate, false, keyhold.RoleKeyVaultCryptoUser}
	opWrapKey           = &operation{"wrapKey", "key.wrap", dataActionPrefix + "keys/wrap/action", keyhold.PermWrapKey, false, keyhold.RoleKeyVaultCryptoServiceEncryptUser}
	opUnwrapKey         = &operation{"unwrapKey", "key.unwrap", dataActionPrefix + "keys/unwrap/action", keyhold.PermUnwrapKey, false, keyhold.RoleKeyVaultCryptoServiceEncryptUser}
	opRotateKey         = &operation{"rotate", "key.rotate", dataActionPrefix + "keys/rotate/action", keyhold.PermRotate, false, keyhold.RoleKeyVaultCryptoOfficer}
	opGetRotationPolicy = &operation{"getRotationPolicy", "key.rotationPolicy.get", dataActionPrefix + "keyrotationpolicies/read", keyhold.PermGetRotationPolicy, false, keyhold.RoleKeyVaultCryptoOfficer}
	opSetRotationPolicy = &operation{"setRotationPolicy", "key.rotationPolicy.set", dataActionPrefix + "keyrotationpolicies/write", keyhold.PermSetRotationPolicy, false, keyhold.RoleKeyVaultCryptoOfficer}
	opDeleteKey         = &operation{"delete", "key.delete", dataActionPrefix + "keys/delete", keyhold.PermDelete, false, keyhold.RoleKeyVaultCryptoOfficer}
	opGetDeletedKey     = &operation{"get", "key.getDeleted", dataActionPrefix + "keys/read", keyhold.PermGet, false, keyhold.RoleKeyVaultCryptoOfficer}
	opListDeletedKeys   = &operation{"list", "key.listDeleted", dataActionPrefix + "keys/read", keyhold.PermList, true, keyhold.RoleKeyVaultCryptoOfficer}
	opRecoverKey        = &operation{"recover", "key.recover", dataActionPrefix + "keys/recover/action", keyhold.PermRecover, false, keyhold.RoleKeyVaultCryptoOfficer}
	opPurgeKey          = &operation{"purge", "key.purge", dataActionPrefix + "keys/purge/action", keyhold.PermPurge, false, keyhold.RoleKeyVaultCryptoOfficer}
)

// operations lists every key operation.
var operations = []*operation{opGetKey, opListKeys, opListKeyVersions, opCreateKey, opImportKey, opUpdateKey, opWrapKey, opUnwrapKey,
	opRotateKey, opGetRotationPolicy, opSetRotationPolicy, opDeleteKey, opGetDeletedKey, opListDeletedKeys, opRecoverKey, opPurgeKey}

// ARM actions of the vault resource.
const (
	ActionVaultWrite          = "Microsoft.KeyVault/vaults/write"
	ActionVaultRead           = "Microsoft.KeyVault/vaults/read"
	ActionVaultDelete         = "Microsoft.KeyVault/vaults/delete"
	ActionAccessPoliciesWrite = "Microsoft.KeyVault/vaults/accessPolicies/write"
	ActionDeletedVaultsList   = "Microsoft.KeyVault/deletedVaults/read"
	ActionDeletedVaultRead    = "Microsoft.KeyVault/locations/deletedVaults/read"
	ActionDeletedVaultPurge   = "Microsoft.KeyVault/locations/deletedVaults/purge/action"
)

// callerName is how messages name a caller, as Key Vault does.
func callerName(id *keyhold.Identity) string {
	s := "oid=" + id.PrincipalID
	if id.AppID != "" {
		s = "appid=" + id.AppID + ";" + s
	}
	return s
}

func vaultLabel(v *keyhold.Vault) string { return v.Name + ";location=" + v.Location }

// liveVault loads a vault for the data plane: a missing or soft-deleted
// vault is CodeVaultNotFound.
func (s *core) liveVault(ctx context.Context, tx keyhold.Tx, name string) (*keyhold.Vault, error) {
	v, err := s.vault(ctx, tx, name)
	if err == nil && v.Deleted() {
		err = keyhold.Errorf(keyhold.CodeNotFound, "deleted")
	}
	if codeIs(err, keyhold.CodeNotFound) {
		return nil, keyhold.Errorf(keyhold.CodeVaultNotFound,
			"vault %q was not found: check the vault name in the key id (a deleted vault must be recovered first)", name)
	}
	return v, err
}

// authorize loads a live vault and checks that the caller may run op on
// the key named key there: first the network rules, then RBAC or the
// access policies. It sets c's tenant to the vault's.
func (s *core) authorize(ctx context.Context, tx keyhold.Tx, c *call, op *operation, vaultName, key string) (*keyhold.Vault, error) {
	v, err := s.liveVault(ctx, tx, vaultName)
	if err != nil {
		return nil, err
	}
	c.tenant = v.TenantID
	if err := checkNetwork(v, c.id, keyhold.OriginFrom(ctx)); err != nil {
		return nil, err
	}
	if v.EnableRbacAuthorization {
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: c.id.PrincipalID})
		if err != nil {
			return nil, err
		}
		resource := v.ID()
		if !op.OnVault {
			resource += "/keys/" + key
		}
		if !keyhold.Allowed(as, resource, op.DataAction, true) {
			return nil, &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerForbiddenByRbac, Message: fmt.Sprintf(
				"Caller is not authorized to perform action on resource. Caller: %s. Action: '%s' (operation %s). Resource: '%s'. Assignment: (not found). Vault: %s. "+
					"To fix it, assign the caller a role that grants this data action on the key or the vault, such as %s.",
				callerName(c.id), op.DataAction, op.Name, resource, vaultLabel(v), op.Role)}
		}
		return v, nil
	}
	// An access policy counts only if the vault's access is as Keyhold
	// sealed it: one added in the database grants nothing (and is
	// audited as refused).
	if err := s.rec.CheckVaultAccess(v); err != nil {
		c.tamper = err
	}
	if c.tamper != nil || !accessPolicyAllows(v, c.id, op.Permission) {
		return nil, &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerAccessDenied, Message: fmt.Sprintf(
			"The user, group or application '%s' does not have keys %s permission on key vault '%s' (operation %s). "+
				"To fix it, add the '%s' key permission to an access policy for object id %s.",
			callerName(c.id), op.Permission, vaultLabel(v), op.Name, op.Permission, c.id.PrincipalID)}
	}
	return v, nil
}

// accessPolicyAllows reports whether an access policy of v grants the
// caller perm ("all" grants every permission).
func accessPolicyAllows(v *keyhold.Vault, id *keyhold.Identity, perm string) bool {
	for _, p := range v.AccessPolicies {
		if !strings.EqualFold(p.ObjectID, id.PrincipalID) || (p.TenantID != "" && !strings.EqualFold(p.TenantID, id.TenantID)) {
			continue
		}
		for _, k := range p.Keys {
			if strings.EqualFold(k, perm) || strings.EqualFold(k, "all") {
				return true
			}
		}
	}
	return false
}

// checkNetwork applies v's network rules to a caller from origin. A vault
// that is public and allows by default admits everyone. Otherwise a client
// address in an IP rule passes (unless public access is disabled, which
// overrides the rules), and a trusted platform identity (a managed
// identity, or a call the platform makes in-process) passes where the
// vault lets trusted services bypass the firewall.
func checkNetwork(v *keyhold.Vault, id *keyhold.Identity, o keyhold.Origin) error {
	public := !strings.EqualFold(v.PublicNetworkAccess, keyhold.PublicAccessDisable)
	if public && !strings.EqualFold(v.NetworkACLs.DefaultAction, keyhold.NetworkDeny) {
		return nil
	}
	ip := o.IP.Unmap()
	if public && ip.IsValid() && ipAllowed(v.NetworkACLs.IPRules, ip) {
		return nil
	}
	trusted := id.Type == keyhold.PrincipalManagedIdentity || o.Internal
	bypass := !strings.EqualFold(v.NetworkACLs.Bypass, keyhold.BypassNone)
	if trusted && bypass {
		return nil
	}
	addr := "unknown"
	if o.Internal {
		addr = "internal"
	} else if ip.IsValid() {
		addr = ip.String()
	}
	var fix string
	switch {
	case trusted:
		fix = "set the vault's networkAcls.bypass to AzureServices to let trusted platform services through"
	case !public:
		fix = "the vault's public network access is disabled: enable it and add the client address to networkAcls.ipRules, or call from a trusted platform identity"
	default:
		fix = "add the client address (or its range) to the vault's networkAcls.ipRules, or set networkAcls.defaultAction to Allow"
	}
	return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerForbiddenByFirewall, Message: fmt.Sprintf(
		"Client address is not authorized and caller is not a trusted service. Client address: %s. Caller: %s. Vault: %s. To fix it, %s.",
		addr, callerName(id), vaultLabel(v), fix)}
}

// ipAllowed reports whether ip is one of rules: addresses or CIDR ranges.
func ipAllowed(rules []string, ip netip.Addr) bool {
	for _, r := range rules {
		if p, err := parseIPRule(r); err == nil && p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseIPRule parses an address or a CIDR range as a prefix.
func parseIPRule(r string) (netip.Prefix, error) {
	if strings.Contains(r, "/") {
		p, err := netip.ParsePrefix(r)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(r)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// armAuthorize checks that the caller's role assignments grant an ARM
// action at scope.
func armAuthorize(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, scope, action string) error {
	as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: id.PrincipalID})
	if err != nil {
		return err
	}
	if keyhold.Allowed(as, scope, action, false) {
		return nil
	}
	name := id.PrincipalID
	if id.AppID != "" {
		name = id.AppID
	}
	return keyhold.Errorf(keyhold.CodeAuthorizationFailed,
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. "+
			"If access was recently granted, please refresh your credentials.", name, id.PrincipalID, action, scope)
}

var (
	vaultNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	keyNameRE   = regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`)
)

// validVaultName checks a vault name as Azure does: 3 to 24 letters,
// digits and hyphens, starting with a letter, ending with a letter or
// digit, without consecutive hyphens.
func validVaultName(name string) error {
	if !vaultNameRE.MatchString(name) || strings.Contains(name, "--") {
		return keyhold.Errorf(keyhold.CodeInvalidName,
			"vault name %q is not valid: use 3 to 24 letters, digits and hyphens, starting with a letter, ending with a letter or digit, without consecutive hyphens", name)
	}
	return nil
}

// validKeyName checks a key name: 1 to 127 letters, digits and hyphens.
func validKeyName(name string) error {
	if !keyNameRE.MatchString(name) {
		return keyhold.Errorf(keyhold.CodeBadParameter, "key name %q is not valid: use 1 to 127 letters, digits and hyphens", name)
	}
	return nil
}
