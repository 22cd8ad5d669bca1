package mhsm

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
)

// Access is the HSM's security domain (security.go) and its local role
// assignments (here).
type Access struct{ *core }

// Local data actions, as Azure names them under
// Microsoft.KeyVault/managedHsm/.
const (
	actKeyRead       = "keys/read/action"
	actKeyWrite      = "keys/write/action"
	actKeyDelete     = "keys/delete"
	actKeyWrap       = "keys/wrap/action"
	actKeyUnwrap     = "keys/unwrap/action"
	actKeyRotate     = "keys/rotate/action"
	actDeletedRead   = "keys/deletedKeys/read/action"
	actKeyRecover    = "keys/deletedKeys/recover/action"
	actKeyPurge      = "keys/deletedKeys/delete"
	actRoleRead      = "roleAssignments/read/action"
	actRoleWrite     = "roleAssignments/write/action"
	actRoleDelete    = "roleAssignments/delete/action"
	actSDDownload    = "securitydomain/download/action"
	actSDUpload      = "securitydomain/upload/action"
	dataActionPrefix = "Microsoft.KeyVault/managedHsm/"
)

// roleActions are the built-in roles' data actions: the crypto user uses
// and manages keys but can't recover or purge deleted ones; the crypto
// officer recovers and purges them and manages role assignments; the
// administrator manages role assignments and the security domain and
// touches no key.
var roleActions = map[string][]string{
	keyhold.RoleHSMCryptoUser:    {actKeyRead, actKeyWrite, actKeyDelete, actKeyWrap, actKeyUnwrap, actKeyRotate, actDeletedRead},
	keyhold.RoleHSMCryptoOfficer: {actKeyRead, actDeletedRead, actKeyRecover, actKeyPurge, actRoleRead, actRoleWrite, actRoleDelete},
	keyhold.RoleHSMAdministrator: {actRoleRead, actRoleWrite, actRoleDelete, actSDDownload, actSDUpload},
}

// roleID returns the role id of a role definition id, its last segment.
func roleID(def string) string { return strings.ToLower(def[strings.LastIndex(def, "/")+1:]) }

// covers reports whether an assignment at scope a applies to a request
// at scope req: "/" covers everything, "/keys" every key, "/keys/{name}"
// that key.
func covers(a, req string) bool {
	a, req = strings.ToLower(strings.TrimSuffix(a, "/")), strings.ToLower(strings.TrimSuffix(req, "/"))
	switch {
	case a == "":
		return true
	case a == "/keys":
		return req == "/keys" || strings.HasPrefix(req, "/keys/")
	default:
		return a == req
	}
}

// activeHSM returns the live HSM name, refusing an unknown or deleted one
// (VaultNotFound, as the data plane does) and, unless inactiveOK, one not
// activated yet.
func activeHSM(ctx context.Context, tx keyhold.Tx, name string, inactiveOK bool) (*keyhold.ManagedHSM, error) {
	h, err := tx.ManagedHSM(ctx, name)
	if codeIs(err, keyhold.CodeNotFound) || err == nil && h.Deleted() {
		return nil, keyhold.Errorf(keyhold.CodeVaultNotFound, "Managed HSM %q was not found: check its name; a deleted HSM must be recovered first.", keyhold.Clip(name))
	}
	if err != nil {
		return nil, err
	}
	if !inactiveOK && !h.Activated() {
		return nil, &keyhold.Error{Code: keyhold.CodeForbidden, Inner: InnerHSMNotActivated, Message: fmt.Sprintf(
			"Managed HSM %q is not activated: an administrator must download its security domain first (POST %s/securitydomain/download)", h.Name, "https://"+h.Name+".{managedhsm-domain}")}
	}
	return h, nil
}

// InnerHSMNotActivated is the inner error code of a call to an HSM that is
// not activated.
const InnerHSMNotActivated = "HSMNotActivated"

// authorize checks that the caller holds, by a local role assignment of
// h at a scope covering scope, a role granting action.
func authorize(ctx context.Context, tx keyhold.Tx, h *keyhold.ManagedHSM, scope, action string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	as, err := tx.ListHSMRoleAssignments(ctx, h.Name)
	if err != nil {
		return err
	}
	for _, a := range as {
		if strings.EqualFold(a.PrincipalID, id.PrincipalID) && covers(a.Scope, scope) && slices.Contains(roleActions[roleID(a.RoleDefinitionID)], action) {
			return nil
		}
	}
	return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerForbiddenByRbac, Message: fmt.Sprintf(
		"Caller is not authorized to perform action on resource. If role assignments were recently changed, please wait several minutes for role assignments to become effective. "+
			"Caller: ObjectId=%s; Action: %s%s; Resource: %s (Managed HSM %s). Ask an administrator of the HSM for a local role assignment that grants it.",
		id.PrincipalID, dataActionPrefix, action, scope, h.Name)}
}

// newGUID returns a random GUID, the name of a role assignment.
func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// checkScope normalises a role assignment scope: "/", "/keys" or
// "/keys/{name}".
func checkScope(scope string) (string, error) {
	s := "/" + strings.Trim(scope, "/")
	if s == "/" || strings.EqualFold(s, "/keys") {
		return strings.ToLower(s), nil
	}
	if name, ok := strings.CutPrefix(s, "/keys/"); ok && keyNameRE.MatchString(name) {
		return "/keys/" + name, nil
	}
	return "", keyhold.Errorf(keyhold.CodeBadParameter, "role assignment scope %q is not a Managed HSM scope: use \"/\", \"/keys\" or \"/keys/{key name}\"", keyhold.Clip(scope))
}

// PutHSMRoleAssignment creates a local role assignment (a Crypto
// Officer's or an Administrator's call, at "/"). Refused: an inactive
// HSM, a role that is not one of the three, a principal id that is not a
// GUID, a bad scope, a name in use.
func (s *Access) PutHSMRoleAssignment(ctx context.Context, hsm string, a *keyhold.HSMRoleAssignment) (*keyhold.HSMRoleAssignment, error) {
	if a == nil {
		return nil, keyhold.Errorf(keyhold.CodeBadParameter, "the request has no role assignment")
	}
	na := *a
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		h, err := activeHSM(ctx, tx, hsm, false)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if err := authorize(ctx, tx, h, "/", actRoleWrite); err != nil {
			return err
		}
		if !guidRE.MatchString(na.Name) {
			return keyhold.Errorf(keyhold.CodeBadParameter, "role assignment name %q is not a GUID: name it with a new GUID", keyhold.Clip(na.Name))
		}
		if na.Scope, err = checkScope(na.Scope); err != nil {
			return err
		}
		if _, ok := roleActions[roleID(na.RoleDefinitionID)]; !ok || !strings.HasPrefix(strings.ToLower(na.RoleDefinitionID), strings.ToLower(keyhold.HSMRoleDefinitionPrefix)) {
			return keyhold.Errorf(keyhold.CodeBadParameter,
				"roleDefinitionId %q is not a Managed HSM role: use %s{id} with Managed HSM Crypto User (%s), Crypto Officer (%s) or Administrator (%s)",
				keyhold.Clip(na.RoleDefinitionID), keyhold.HSMRoleDefinitionPrefix, keyhold.RoleHSMCryptoUser, keyhold.RoleHSMCryptoOfficer, keyhold.RoleHSMAdministrator)
		}
		na.RoleDefinitionID = keyhold.HSMRoleDefinitionPrefix + roleID(na.RoleDefinitionID)
		if !guidRE.MatchString(na.PrincipalID) {
			return keyhold.Errorf(keyhold.CodeBadParameter, "principalId %q is not an object id: give the GUID of a user, group or service principal", keyhold.Clip(na.PrincipalID))
		}
		na.PrincipalID, na.Name, na.HSM, na.CreatedAt = strings.ToLower(na.PrincipalID), strings.ToLower(na.Name), h.Name, s.now()
		return tx.PutHSMRoleAssignment(ctx, &na)
	})
	if err := s.audit(ctx, tenant, "managedhsm.roleassignment.write", hsm+"/"+a.Name, err); err != nil {
		return nil, err
	}
	return &na, nil
}

// GetHSMRoleAssignment returns a local role assignment.
func (s *Access) GetHSMRoleAssignment(ctx context.Context, hsm, name string) (*keyhold.HSMRoleAssignment, error) {
	var out *keyhold.HSMRoleAssignment
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		h, err := activeHSM(ctx, tx, hsm, false)
		if err != nil {
			return err
		}
		if err := authorize(ctx, tx, h, "/", actRoleRead); err != nil {
			return err
		}
		as, err := tx.ListHSMRoleAssignments(ctx, h.Name)
		if err != nil {
			return err
		}
		for _, a := range as {
			if strings.EqualFold(a.Name, name) {
				out = a
				return nil
			}
		}
		return keyhold.Errorf(keyhold.CodeNotFound, "role assignment %q was not found in Managed HSM %q", keyhold.Clip(name), h.Name)
	})
	return out, err
}

// ListHSMRoleAssignments lists the local role assignments at scope ("" or
// "/": all).
func (s *Access) ListHSMRoleAssignments(ctx context.Context, hsm, scope string) ([]*keyhold.HSMRoleAssignment, error) {
	out := []*keyhold.HSMRoleAssignment{}
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		h, err := activeHSM(ctx, tx, hsm, false)
		if err != nil {
			return err
		}
		if err := authorize(ctx, tx, h, "/", actRoleRead); err != nil {
			return err
		}
		sc := "/"
		if scope != "" {
			if sc, err = checkScope(scope); err != nil {
				return err
			}
		}
		as, err := tx.ListHSMRoleAssignments(ctx, h.Name)
		if err != nil {
			return err
		}
		for _, a := range as {
			if sc == "/" || strings.EqualFold(a.Scope, sc) {
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

// DeleteHSMRoleAssignment removes a local role assignment and returns it.
func (s *Access) DeleteHSMRoleAssignment(ctx context.Context, hsm, name string) (*keyhold.HSMRoleAssignment, error) {
	var out *keyhold.HSMRoleAssignment
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		h, err := activeHSM(ctx, tx, hsm, false)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if err := authorize(ctx, tx, h, "/", actRoleDelete); err != nil {
			return err
		}
		as, err := tx.ListHSMRoleAssignments(ctx, h.Name)
		if err != nil {
			return err
		}
		for _, a := range as {
			if strings.EqualFold(a.Name, name) {
				out = a
				return tx.DeleteHSMRoleAssignment(ctx, h.Name, a.Name)
			}
		}
		return keyhold.Errorf(keyhold.CodeNotFound, "role assignment %q was not found in Managed HSM %q", keyhold.Clip(name), h.Name)
	})
	return out, s.audit(ctx, tenant, "managedhsm.roleassignment.delete", hsm+"/"+name, err)
}
