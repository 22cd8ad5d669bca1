package http

import (
	nethttp "net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
)

// The key vault page's rotation policies, who may wrap and unwrap, and
// networking (issue 17): each key's rotation policy, read and set as the
// person through the vault's data plane (so its refusal shows when they
// lack a role); the principals that may wrap and unwrap with the vault's
// keys, by role assignment (RBAC authorization) or access policy; and the
// vault's network rules, as the resource manager has them.

// Data actions that wrapping and unwrapping need.
const (
	dataWrap   = "Microsoft.KeyVault/vaults/keys/wrap/action"
	dataUnwrap = "Microsoft.KeyVault/vaults/keys/unwrap/action"
)

// wrapper is a principal that may wrap and unwrap with the vault's keys,
// and how.
type wrapper struct {
	PrincipalID string
	Type        string
	By          string // the role, or "access policy"
	Counts      bool   // the vault's authorization model honours it
}

// vaultMore is the vault page's rotation, wrap and network sections.
type vaultMore struct {
	Rotation      map[string]*keyhold.RotationPolicy // by key name; nil: none set
	RotationError string                             // the data plane's refusal
	Wrappers      []wrapper
}

// rotationDays is the Rotate action's period of p in days, 0 if it has
// none in days.
func rotationDays(p *keyhold.RotationPolicy) int {
	if p == nil {
		return 0
	}
	for _, a := range p.LifetimeActions {
		if strings.EqualFold(a.Action, "Rotate") && strings.HasPrefix(a.TimeAfterCreate, "P") && strings.HasSuffix(a.TimeAfterCreate, "D") {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(a.TimeAfterCreate, "P"), "D"))
			if err == nil {
				return n
			}
		}
	}
	return 0
}

// adminVaultMore fills d's rotation policies (as the person, through the
// data plane) and who may wrap and unwrap.
func (s *Server) adminVaultMore(r *nethttp.Request, sess *adminSession, d *vaultPageData) {
	m := &d.More
	if d.KeysError == "" && len(d.Keys) > 0 {
		ctx, err := s.adminAs(r, sess, keyhold.AudienceVault)
		if err == nil {
			ctx = keyhold.NewOriginContext(ctx, originOf(r))
			m.Rotation = map[string]*keyhold.RotationPolicy{}
			for _, k := range d.Keys {
				p, gerr := s.KeyVault.Vaults.GetRotationPolicy(ctx, d.Vault.Name, k.Name)
				if gerr != nil && !keyhold.IsNotFound(gerr) {
					err = gerr
					break
				}
				m.Rotation[k.Name] = p
			}
		}
		if err != nil {
			if msg, _, ferr := adminRefusal(err); ferr == nil {
				m.RotationError = msg
			} else {
				m.RotationError = "the rotation policies could not be read"
			}
		}
	}
	rbac := d.Vault.EnableRbacAuthorization
	if d.Access != nil {
		for _, a := range d.Access.Assignments {
			def, ok := keyhold.FindRoleDefinition(a.A.RoleDefinitionID)
			if ok && def.AllowsData(dataWrap) && def.AllowsData(dataUnwrap) {
				m.Wrappers = append(m.Wrappers, wrapper{PrincipalID: a.A.PrincipalID, Type: a.A.PrincipalType, By: def.Name, Counts: rbac})
			}
		}
	}
	for _, p := range d.Vault.AccessPolicies {
		if slices.Contains(p.Keys, keyhold.PermWrapKey) && slices.Contains(p.Keys, keyhold.PermUnwrapKey) {
			m.Wrappers = append(m.Wrappers, wrapper{PrincipalID: p.ObjectID, By: "access policy", Counts: !rbac})
		}
	}
}

// adminRotationPolicy sets key's rotation policy to rotate every days
// days (0 removes the Rotate action), keeping its other actions and
// expiry, as the person.
func (s *Server) adminRotationPolicy(r *nethttp.Request, sess *adminSession, vault, key, days string) error {
	n, err := strconv.Atoi(strings.TrimSpace(days))
	if err != nil || n < 0 {
		return keyhold.Errorf(keyhold.CodeBadRequest, "rotate every %q days is not a whole number of days: give one such as 90, or 0 for no automatic rotation", keyhold.Clip(days))
	}
	ctx, err := s.adminAs(r, sess, keyhold.AudienceVault)
	if err != nil {
		return err
	}
	ctx = keyhold.NewOriginContext(ctx, originOf(r))
	// The policy's other actions (Notify) and expiry stay as they are.
	p := &keyhold.RotationPolicy{LifetimeActions: []keyhold.LifetimeAction{}}
	cur, err := s.KeyVault.Vaults.GetRotationPolicy(ctx, vault, key)
	switch {
	case err == nil && cur != nil:
		p.ExpiryTime = cur.ExpiryTime
		for _, a := range cur.LifetimeActions {
			if !strings.EqualFold(a.Action, "Rotate") {
				p.LifetimeActions = append(p.LifetimeActions, a)
			}
		}
	case err != nil && !keyhold.IsNotFound(err):
		return err
	}
	if n > 0 {
		p.LifetimeActions = append(p.LifetimeActions, keyhold.LifetimeAction{Action: "Rotate", TimeAfterCreate: "P" + strconv.Itoa(n) + "D"})
	}
	_, err = s.KeyVault.Vaults.SetRotationPolicy(ctx, vault, key, p)
	return err
}
