package vault

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// The control plane: the Microsoft.KeyVault/vaults resource.

// Vaults is the control plane: the Microsoft.KeyVault/vaults resource
// (put, get, list, soft delete, recover, purge, access policies, network
// rules), authorized by ARM actions. Part of Service; safe for concurrent
// use.
type Vaults struct{ *core }

// Vault SKUs.
const (
	SKUStandard = "standard"
	SKUPremium  = "premium"
)

// MaxAccessPolicies is how many access policies a vault holds, as Azure
// allows.
const MaxAccessPolicies = 1024

// vaultID returns a vault's ARM resource id.
func vaultID(sub, rg, name string) string {
	v := keyhold.Vault{SubscriptionID: sub, ResourceGroup: rg, Name: name}
	return v.ID()
}

// deletedVaultID returns the id of a soft-deleted vault, a resource of the
// subscription's location rather than of a resource group.
func deletedVaultID(sub, location, name string) string {
	return "/subscriptions/" + sub + "/providers/Microsoft.KeyVault/locations/" + keyhold.NormalizeLocation(location) + "/deletedVaults/" + name
}

func resourceNotFound(rg, name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeResourceNotFound,
		"The Resource 'Microsoft.KeyVault/vaults/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
}

func checkARMNames(sub, rg, name string) error {
	if sub == "" || rg == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "the subscription id and resource group name are required")
	}
	return validVaultName(name)
}

// vaultIn loads the vault called name if it is in sub and rg (ids compare
// case-insensitively); any other vault, or none, is CodeResourceNotFound.
func (s *Vaults) vaultIn(ctx context.Context, tx keyhold.Tx, sub, rg, name string) (*keyhold.Vault, error) {
	v, err := s.vault(ctx, tx, name)
	if err == nil && (!strings.EqualFold(v.SubscriptionID, sub) || !strings.EqualFold(v.ResourceGroup, rg)) {
		err = keyhold.Errorf(keyhold.CodeNotFound, "elsewhere")
	}
	if codeIs(err, keyhold.CodeNotFound) {
		return nil, resourceNotFound(rg, name)
	}
	return v, err
}

// requireRegistration checks that sub registered Microsoft.KeyVault and
// that the resource group exists, as ARM does before a PUT.
func requireRegistration(ctx context.Context, tx keyhold.Tx, sub, rg string) error {
	r, err := tx.ProviderRegistration(ctx, sub, keyhold.NamespaceKeyVault)
	if codeIs(err, keyhold.CodeNotFound) || (err == nil && r.State != keyhold.ProviderRegistered) {
		return keyhold.Errorf(keyhold.CodeMissingSubscriptionRegistration,
			"The subscription is not registered to use namespace '%s'. See https://aka.ms/rps-not-found for how to register subscriptions: "+
				"register it with POST /subscriptions/%s/providers/%s/register.", keyhold.NamespaceKeyVault, sub, keyhold.NamespaceKeyVault)
	}
	if err != nil {
		return err
	}
	if _, err := tx.ResourceGroup(ctx, sub, rg); codeIs(err, keyhold.CodeNotFound) {
		return keyhold.Errorf(keyhold.CodeResourceGroupNotFound, "Resource group '%s' could not be found: create it first.", rg)
	} else if err != nil {
		return err
	}
	return nil
}

// PutVault creates or updates a vault (ARM PUT). created reports which.
// Refuses: an unregistered Microsoft.KeyVault (MissingSubscriptionRegistration),
// a missing resource group, retention outside 7–90 or changed once set,
// purge protection turned off once on, a name held by a deleted vault, a
// tenant other than the subscription's (BadRequest).
//
// On success v holds the stored vault: defaults filled in (retention 90
// days, SKU standard, bypass AzureServices, default action Allow, public
// access Enabled, the subscription's tenant), names folded, URI, dates and
// Version set. A zero SoftDeleteRetentionDays on an update keeps the
// stored value; EnablePurgeProtection false on a vault that has it is
// refused, so the HTTP layer must fill in omitted properties from the
// stored vault. It needs Microsoft.KeyVault/vaults/write.
func (s *Vaults) PutVault(ctx context.Context, v *keyhold.Vault) (created bool, err error) {
	if v == nil {
		return false, keyhold.Errorf(keyhold.CodeBadRequest, "the request has no vault")
	}
	if err := checkARMNames(v.SubscriptionID, v.ResourceGroup, v.Name); err != nil {
		return false, err
	}
	scope := v.ID()
	var out *keyhold.Vault
	err = s.do(ctx, "vault.write", scope, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			created = false
			if err := armAuthorize(ctx, tx, c.id, scope, ActionVaultWrite); err != nil {
				return err
			}
			if err := requireRegistration(ctx, tx, v.SubscriptionID, v.ResourceGroup); err != nil {
				return err
			}
			nv := *v
			old, err := s.vault(ctx, tx, v.Name)
			switch {
			case codeIs(err, keyhold.CodeNotFound):
				old = nil
			case err != nil:
				return err
			case old.Deleted():
				return keyhold.Errorf(keyhold.CodeConflict,
					"A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault %q.", old.Name)
			case !strings.EqualFold(old.SubscriptionID, v.SubscriptionID) || !strings.EqualFold(old.ResourceGroup, v.ResourceGroup):
				return keyhold.Errorf(keyhold.CodeConflict, "The vault name %q is already in use. Vault names are globally unique: choose another.", v.Name)
			}
			if err := subscriptionTenant(ctx, tx, &nv); err != nil {
				return err
			}
			if err := s.normalizeVault(&nv, old); err != nil {
				return err
			}
			c.tenant = nv.TenantID
			now := s.now()
			nv.UpdatedAt = now
			if old == nil {
				nv.CreatedAt, nv.Version = now, 0
				nv.DeletedAt, nv.ScheduledPurgeAt = time.Time{}, time.Time{}
				if err := s.createVault(ctx, tx, &nv); err != nil {
					return err
				}
				created = true
				c.action = "vault.create"
			} else {
				nv.Name, nv.SubscriptionID, nv.ResourceGroup = old.Name, old.SubscriptionID, old.ResourceGroup
				nv.CreatedAt, nv.Version = old.CreatedAt, old.Version
				nv.DeletedAt, nv.ScheduledPurgeAt = time.Time{}, time.Time{}
				if err := s.updateVault(ctx, tx, &nv); err != nil {
					return err
				}
				c.action = "vault.update"
			}
			out = &nv
			return c.record(ctx, tx, now)
		})
	})
	if err != nil {
		return false, err
	}
	*v = *out
	return created, nil
}

// subscriptionTenant sets v's tenant to its subscription's, as Azure does:
// a vault's tenant is the tenant whose directory authenticates requests to
// it and whose audit log records its actions, so a caller may not name
// another tenant's (that would write its actions into that tenant's audit
// log). An omitted tenant is filled in; a different one is a BadRequest
// naming the expected tenant.
func subscriptionTenant(ctx context.Context, tx keyhold.Tx, v *keyhold.Vault) error {
	sub, err := tx.Subscription(ctx, v.SubscriptionID)
	if codeIs(err, keyhold.CodeNotFound) {
		return keyhold.Errorf(keyhold.CodeNotFound, "The subscription '%s' could not be found: create the vault in one of your subscriptions.", v.SubscriptionID)
	} else if err != nil {
		return err
	}
	if v.TenantID == "" {
		v.TenantID = sub.TenantID
		return nil
	}
	if !strings.EqualFold(v.TenantID, sub.TenantID) {
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"The tenant ID %q in the request is not the tenant of subscription '%s': a vault's properties.tenantId must be its subscription's tenant, %s; give that or omit it.",
			v.TenantID, v.SubscriptionID, sub.TenantID)
	}
	v.TenantID = sub.TenantID
	return nil
}

// normalizeVault checks v's properties, fills in defaults, and, when old is
// the stored vault, applies the rules of an update.
func (s *Vaults) normalizeVault(v, old *keyhold.Vault) error {
	bad := func(format string, args ...any) error { return keyhold.Errorf(keyhold.CodeBadRequest, format, args...) }
	v.Location = keyhold.NormalizeLocation(v.Location)
	if v.Location == "" {
		return bad("The location is required: give the vault a location such as westeurope.")
	}
	switch v.SKU = strings.ToLower(v.SKU); v.SKU {
	case "":
		v.SKU = SKUStandard
	case SKUStandard, SKUPremium:
	default:
		return bad("The sku %q is not valid: use standard or premium.", v.SKU)
	}
	if old != nil {
		if v.Location != old.Location {
			return bad("The location of vault %q is %s and can't be changed (to %s).", old.Name, old.Location, v.Location)
		}
		if v.SoftDeleteRetentionDays == 0 {
			v.SoftDeleteRetentionDays = old.SoftDeleteRetentionDays
		}
		if v.SoftDeleteRetentionDays != old.SoftDeleteRetentionDays {
			return bad("The property \"softDeleteRetentionInDays\" has been set already to %d and it can't be modified (to %d).",
				old.SoftDeleteRetentionDays, v.SoftDeleteRetentionDays)
		}
		if old.EnablePurgeProtection && !v.EnablePurgeProtection {
			return bad("The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.")
		}
	}
	if v.SoftDeleteRetentionDays == 0 {
		v.SoftDeleteRetentionDays = keyhold.DefaultSoftDeleteRetentionDays
	}
	if v.SoftDeleteRetentionDays < keyhold.MinSoftDeleteRetentionDays || v.SoftDeleteRetentionDays > keyhold.MaxSoftDeleteRetentionDays {
		return bad("The property \"softDeleteRetentionInDays\" is %d: it must be between %d and %d.",
			v.SoftDeleteRetentionDays, keyhold.MinSoftDeleteRetentionDays, keyhold.MaxSoftDeleteRetentionDays)
	}
	var err error
	if v.AccessPolicies, err = normalizePolicies(v.AccessPolicies, v.TenantID); err != nil {
		return err
	}
	if len(v.AccessPolicies) > MaxAccessPolicies {
		return bad("The vault has %d access policies: at most %d are allowed.", len(v.AccessPolicies), MaxAccessPolicies)
	}
	acl := &v.NetworkACLs
	if acl.Bypass, err = oneOf("networkAcls.bypass", acl.Bypass, keyhold.BypassAzureServices, keyhold.BypassAzureServices, keyhold.BypassNone); err != nil {
		return err
	}
	if acl.DefaultAction, err = oneOf("networkAcls.defaultAction", acl.DefaultAction, keyhold.NetworkAllow, keyhold.NetworkAllow, keyhold.NetworkDeny); err != nil {
		return err
	}
	rules := make([]string, 0, len(acl.IPRules))
	for _, r := range acl.IPRules {
		p, err := parseIPRule(strings.TrimSpace(r))
		if err != nil {
			return bad("The networkAcls.ipRules value %q is not an IP address or CIDR range (e.g. 203.0.113.7 or 203.0.113.0/24).", r)
		}
		if s := p.String(); !slices.Contains(rules, s) {
			rules = append(rules, s)
		}
	}
	acl.IPRules = rules
	if v.PublicNetworkAccess, err = oneOf("publicNetworkAccess", v.PublicNetworkAccess, keyhold.PublicAccessEnabled, keyhold.PublicAccessEnabled, keyhold.PublicAccessDisable); err != nil {
		return err
	}
	v.URI = s.VaultURI(v.Name)
	if old != nil {
		v.URI = s.VaultURI(old.Name)
	}
	return nil
}

// oneOf returns the allowed value that v names (case-insensitively), def
// for "", or a BadRequest.
func oneOf(field, v, def string, allowed ...string) (string, error) {
	if v == "" {
		return def, nil
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a, nil
		}
	}
	return "", keyhold.Errorf(keyhold.CodeBadRequest, "The %s value %q is not valid: use %s.", field, v, strings.Join(allowed, " or "))
}

// keyPermissions are the valid access-policy key permissions.
var keyPermissions = []string{keyhold.PermGet, keyhold.PermList, keyhold.PermUpdate, keyhold.PermCreate, keyhold.PermImport, keyhold.PermDelete,
	keyhold.PermRecover, keyhold.PermBackup, keyhold.PermRestore, keyhold.PermDecrypt, keyhold.PermEncrypt, keyhold.PermUnwrapKey,
	keyhold.PermWrapKey, keyhold.PermVerify, keyhold.PermSign, keyhold.PermPurge, keyhold.PermRotate, keyhold.PermGetRotationPolicy,
	keyhold.PermSetRotationPolicy, "all"}

// normalizePolicies checks access policies, lower-cases and de-duplicates
// their permissions, gives them the vault's tenant if they name none, and
// merges entries for the same object id.
func normalizePolicies(ps []keyhold.AccessPolicy, tenant string) ([]keyhold.AccessPolicy, error) {
	out := []keyhold.AccessPolicy{}
	for _, p := range ps {
		if p.ObjectID == "" {
			return nil, keyhold.Errorf(keyhold.CodeBadRequest, "An access policy has no objectId: name the principal it grants permissions to.")
		}
		if p.TenantID == "" {
			p.TenantID = tenant
		}
		perms := []string{}
		for _, k := range p.Keys {
			k = strings.ToLower(k)
			if !slices.Contains(keyPermissions, k) {
				return nil, keyhold.Errorf(keyhold.CodeBadRequest, "The access policy key permission %q is not valid: use any of %s.", k, strings.Join(keyPermissions, ", "))
			}
			if !slices.Contains(perms, k) {
				perms = append(perms, k)
			}
		}
		p.Keys = perms
		if i := findPolicy(out, p); i >= 0 {
			out[i].Keys = union(out[i].Keys, p.Keys)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func findPolicy(ps []keyhold.AccessPolicy, p keyhold.AccessPolicy) int {
	return slices.IndexFunc(ps, func(q keyhold.AccessPolicy) bool {
		return strings.EqualFold(q.ObjectID, p.ObjectID) && strings.EqualFold(q.TenantID, p.TenantID)
	})
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// GetVault returns a live vault. It needs Microsoft.KeyVault/vaults/read;
// a vault that doesn't exist in the group, or is deleted, is
// CodeResourceNotFound.
func (s *Vaults) GetVault(ctx context.Context, sub, rg, name string) (*keyhold.Vault, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var v *keyhold.Vault
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := armAuthorize(ctx, tx, id, vaultID(sub, rg, name), ActionVaultRead); err != nil {
			return err
		}
		v, err = s.vaultIn(ctx, tx, sub, rg, name)
		if err == nil && v.Deleted() {
			v, err = nil, resourceNotFound(rg, name)
		}
		return err
	})
	return v, err
}

// ListVaults lists the live vaults of a subscription, or of one group,
// that the caller may read (Microsoft.KeyVault/vaults/read), by name. A
// missing group is CodeResourceGroupNotFound.
func (s *Vaults) ListVaults(ctx context.Context, sub, rg string) ([]*keyhold.Vault, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	out := []*keyhold.Vault{}
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if rg != "" {
			if _, err := tx.ResourceGroup(ctx, sub, rg); codeIs(err, keyhold.CodeNotFound) {
				return keyhold.Errorf(keyhold.CodeResourceGroupNotFound, "Resource group '%s' could not be found.", rg)
			} else if err != nil {
				return err
			}
		}
		vs, err := tx.ListVaults(ctx, keyhold.VaultFilter{SubscriptionID: sub, ResourceGroup: rg})
		if err != nil {
			return err
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: id.PrincipalID})
		if err != nil {
			return err
		}
		for _, v := range vs {
			if keyhold.Allowed(as, v.ID(), ActionVaultRead, false) {
				v.URI = s.VaultURI(v.Name)
				out = append(out, v)
			}
		}
		return nil
	})
	return out, err
}

// DeleteVault soft-deletes a vault and, with it, access to all its keys:
// the vault and its keys stay recoverable until ScheduledPurgeAt, the
// deletion date plus the vault's retention. It needs
// Microsoft.KeyVault/vaults/delete. A vault that doesn't exist (or is
// already deleted) is CodeResourceNotFound, which ARM answers with 204.
func (s *Vaults) DeleteVault(ctx context.Context, sub, rg, name string) error {
	scope := vaultID(sub, rg, name)
	return s.do(ctx, "vault.delete", scope, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			if err := armAuthorize(ctx, tx, c.id, scope, ActionVaultDelete); err != nil {
				return err
			}
			v, err := s.vaultIn(ctx, tx, sub, rg, name)
			if err != nil {
				return err
			}
			if v.Deleted() {
				return resourceNotFound(rg, name)
			}
			c.tenant = v.TenantID
			now := s.now()
			v.DeletedAt, v.ScheduledPurgeAt, v.UpdatedAt = now, now.AddDate(0, 0, v.SoftDeleteRetentionDays), now
			if err := s.updateVault(ctx, tx, v); err != nil {
				return err
			}
			c.detail = "scheduled purge " + v.ScheduledPurgeAt.Format("2006-01-02T15:04:05Z")
			return c.record(ctx, tx, now)
		})
	})
}

// ListDeletedVaults lists the soft-deleted vaults of a subscription that
// the caller may see (Microsoft.KeyVault/deletedVaults/read at the
// subscription).
func (s *Vaults) ListDeletedVaults(ctx context.Context, sub string) ([]*keyhold.Vault, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	out := []*keyhold.Vault{}
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		vs, err := tx.ListVaults(ctx, keyhold.VaultFilter{SubscriptionID: sub, Deleted: true})
		if err != nil {
			return err
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: id.PrincipalID})
		if err != nil {
			return err
		}
		for _, v := range vs {
			if keyhold.Allowed(as, deletedVaultID(v.SubscriptionID, v.Location, v.Name), ActionDeletedVaultsList, false) {
				v.URI = s.VaultURI(v.Name)
				out = append(out, v)
			}
		}
		return nil
	})
	return out, err
}

// deletedVault loads a soft-deleted vault of sub at location, or returns
// CodeResourceNotFound.
func (s *Vaults) deletedVault(ctx context.Context, tx keyhold.Tx, sub, location, name string) (*keyhold.Vault, error) {
	v, err := s.vault(ctx, tx, name)
	if err == nil && (!v.Deleted() || !strings.EqualFold(v.SubscriptionID, sub) || v.Location != keyhold.NormalizeLocation(location)) {
		err = keyhold.Errorf(keyhold.CodeNotFound, "not deleted here")
	}
	if codeIs(err, keyhold.CodeNotFound) {
		return nil, keyhold.Errorf(keyhold.CodeResourceNotFound,
			"The deleted vault %q was not found in location %q of subscription %s: list the deleted vaults to find it.", name, location, sub)
	}
	return v, err
}

// GetDeletedVault returns a soft-deleted vault. It needs
// Microsoft.KeyVault/locations/deletedVaults/read.
func (s *Vaults) GetDeletedVault(ctx context.Context, sub, location, name string) (*keyhold.Vault, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var v *keyhold.Vault
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := armAuthorize(ctx, tx, id, deletedVaultID(sub, location, name), ActionDeletedVaultRead); err != nil {
			return err
		}
		v, err = s.deletedVault(ctx, tx, sub, location, name)
		return err
	})
	return v, err
}

// RecoverVault undeletes a soft-deleted vault into its resource group,
// which must still exist, with its keys. It needs
// Microsoft.KeyVault/vaults/write, as ARM's PUT with createMode recover
// does. A live vault is CodeConflict.
func (s *Vaults) RecoverVault(ctx context.Context, sub, rg, name string) (*keyhold.Vault, error) {
	if err := checkARMNames(sub, rg, name); err != nil {
		return nil, err
	}
	scope := vaultID(sub, rg, name)
	var out *keyhold.Vault
	err := s.do(ctx, "vault.recover", scope, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			if err := armAuthorize(ctx, tx, c.id, scope, ActionVaultWrite); err != nil {
				return err
			}
			if err := requireRegistration(ctx, tx, sub, rg); err != nil {
				return err
			}
			v, err := s.vaultIn(ctx, tx, sub, rg, name)
			if err != nil {
				return err
			}
			if !v.Deleted() {
				return keyhold.Errorf(keyhold.CodeConflict, "Vault %q is not deleted: there is nothing to recover.", v.Name)
			}
			c.tenant = v.TenantID
			now := s.now()
			v.DeletedAt, v.ScheduledPurgeAt, v.UpdatedAt = time.Time{}, time.Time{}, now
			if err := s.updateVault(ctx, tx, v); err != nil {
				return err
			}
			out = v
			return c.record(ctx, tx, now)
		})
	})
	return out, err
}

// PurgeDeletedVault destroys a soft-deleted vault and its keys for good,
// RSA-HSM keys' token objects included. It needs
// Microsoft.KeyVault/locations/deletedVaults/purge/action. Under purge
// protection it is refused (CodeConflict) until ScheduledPurgeAt.
func (s *Vaults) PurgeDeletedVault(ctx context.Context, sub, location, name string) error {
	scope := deletedVaultID(sub, location, name)
	var tokenObjects [][]byte
	err := s.do(ctx, "vault.purge", scope, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			if err := armAuthorize(ctx, tx, c.id, scope, ActionDeletedVaultPurge); err != nil {
				return err
			}
			v, err := s.deletedVault(ctx, tx, sub, location, name)
			if err != nil {
				return err
			}
			c.tenant = v.TenantID
			now := s.now()
			if v.EnablePurgeProtection && now.Before(v.ScheduledPurgeAt) {
				return keyhold.Errorf(keyhold.CodeConflict,
					"Vault %q has purge protection enabled and can't be purged before its scheduled purge date %s; Keyhold purges it then.",
					v.Name, v.ScheduledPurgeAt.Format("2006-01-02T15:04:05Z"))
			}
			if tokenObjects, err = s.purgeVault(ctx, tx, v.Name); err != nil {
				return err
			}
			return c.record(ctx, tx, now)
		})
	})
	if err == nil {
		s.destroyTokenObjects(tokenObjects)
	}
	return err
}

// purgeVault deletes a vault with its keys and returns the token objects
// of its RSA-HSM versions, to destroy once the deletion has committed.
func (s *core) purgeVault(ctx context.Context, tx keyhold.Tx, name string) ([][]byte, error) {
	var objs [][]byte
	for _, deleted := range []bool{false, true} {
		ks, err := tx.ListKeys(ctx, name, deleted)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			o, err := s.keyTokenObjects(ctx, tx, k)
			if err != nil {
				return nil, err
			}
			objs = append(objs, o...)
		}
	}
	return objs, tx.PurgeVault(ctx, name)
}

// UpdateAccessPolicies adds, replaces or removes access policies (kind is
// "add", "replace" or "remove"), as ARM's accessPolicies/{kind} does: add
// merges the permissions into the principal's policy (creating it),
// replace sets the principal's permissions to those given, and remove
// takes the given permissions away (the whole policy if none are given, or
// none remain). It needs Microsoft.KeyVault/vaults/accessPolicies/write.
func (s *Vaults) UpdateAccessPolicies(ctx context.Context, sub, rg, name, kind string, policies []keyhold.AccessPolicy) (*keyhold.Vault, error) {
	kind = strings.ToLower(kind)
	if kind != "add" && kind != "replace" && kind != "remove" {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest, "The access policy operation %q is not valid: use add, replace or remove.", kind)
	}
	scope := vaultID(sub, rg, name)
	var out *keyhold.Vault
	err := s.do(ctx, "vault.accessPolicies."+kind, scope, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			if err := armAuthorize(ctx, tx, c.id, scope, ActionAccessPoliciesWrite); err != nil {
				return err
			}
			v, err := s.vaultIn(ctx, tx, sub, rg, name)
			if err != nil {
				return err
			}
			if v.Deleted() {
				return resourceNotFound(rg, name)
			}
			c.tenant = v.TenantID
			given, err := normalizePolicies(policies, v.TenantID)
			if err != nil {
				return err
			}
			ps := slices.Clone(v.AccessPolicies)
			for _, p := range given {
				i := findPolicy(ps, p)
				switch kind {
				case "add":
					if i < 0 {
						ps = append(ps, p)
					} else {
						ps[i].Keys = union(ps[i].Keys, p.Keys)
					}
				case "replace":
					if i < 0 {
						ps = append(ps, p)
					} else {
						ps[i] = p
					}
				case "remove":
					if i < 0 {
						continue
					}
					ps[i].Keys = slices.DeleteFunc(slices.Clone(ps[i].Keys), func(k string) bool { return slices.Contains(p.Keys, k) })
					if len(p.Keys) == 0 || len(ps[i].Keys) == 0 {
						ps = slices.Delete(ps, i, i+1)
					}
				}
			}
			if len(ps) > MaxAccessPolicies {
				return keyhold.Errorf(keyhold.CodeBadRequest, "The vault would have %d access policies: at most %d are allowed.", len(ps), MaxAccessPolicies)
			}
			now := s.now()
			v.AccessPolicies, v.UpdatedAt = ps, now
			if err := s.updateVault(ctx, tx, v); err != nil {
				return err
			}
			out = v
			return c.record(ctx, tx, now)
		})
	})
	return out, err
}
