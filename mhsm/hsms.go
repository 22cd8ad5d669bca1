package mhsm

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// HSMs is the Microsoft.KeyVault/managedHSMs resource.
type HSMs struct{ *core }

// The resource manager's actions on the resource.
const (
	ActionHSMWrite         = "Microsoft.KeyVault/managedHSMs/write"
	ActionHSMRead          = "Microsoft.KeyVault/managedHSMs/read"
	ActionHSMDelete        = "Microsoft.KeyVault/managedHSMs/delete"
	ActionDeletedHSMsList  = "Microsoft.KeyVault/deletedManagedHsms/read"
	ActionDeletedHSMRead   = "Microsoft.KeyVault/locations/deletedManagedHsms/read"
	ActionDeletedHSMPurge  = "Microsoft.KeyVault/locations/deletedManagedHsms/purge/action"
	DefaultSKU             = "Standard_B1"
	maxInitialAdminObjects = 10
)

var (
	hsmNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	guidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// armAuthorize checks the caller's ARM role assignments for action on
// scope.
func armAuthorize(ctx context.Context, tx keyhold.Tx, scope, action string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
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

// requireRegistration refuses a subscription that has not registered
// Microsoft.KeyVault, and a missing resource group.
func requireRegistration(ctx context.Context, tx keyhold.Tx, sub, rg string) error {
	r, err := tx.ProviderRegistration(ctx, sub, keyhold.NamespaceKeyVault)
	if codeIs(err, keyhold.CodeNotFound) || (err == nil && r.State != keyhold.ProviderRegistered) {
		return keyhold.Errorf(keyhold.CodeMissingSubscriptionRegistration,
			"The subscription is not registered to use namespace '%s': register it with POST /subscriptions/%s/providers/%s/register.",
			keyhold.NamespaceKeyVault, sub, keyhold.NamespaceKeyVault)
	}
	if err != nil {
		return err
	}
	if _, err := tx.ResourceGroup(ctx, sub, rg); codeIs(err, keyhold.CodeNotFound) {
		return keyhold.Errorf(keyhold.CodeResourceGroupNotFound, "Resource group '%s' could not be found: create it first.", keyhold.Clip(rg))
	} else if err != nil {
		return err
	}
	return nil
}

// normalize checks h's properties and fills in defaults.
func normalize(h *keyhold.ManagedHSM) error {
	bad := func(format string, args ...any) error { return keyhold.Errorf(keyhold.CodeBadRequest, format, args...) }
	if !hsmNameRE.MatchString(h.Name) || strings.Contains(h.Name, "--") {
		return keyhold.Errorf(keyhold.CodeInvalidName,
			"The Managed HSM name %q is invalid: use 3 to 24 letters, digits and hyphens, starting with a letter and ending with a letter or digit, without consecutive hyphens.", keyhold.Clip(h.Name))
	}
	h.Location = keyhold.NormalizeLocation(h.Location)
	if h.Location == "" {
		return bad("The Managed HSM has no location: give one, e.g. \"location\": \"westeurope\".")
	}
	if h.SKU == "" {
		h.SKU = DefaultSKU
	}
	if h.SKU != DefaultSKU && h.SKU != "Custom_B32" && h.SKU != "Custom_B6" {
		return bad("The SKU %q is not a Managed HSM SKU: use {\"family\": \"B\", \"name\": \"Standard_B1\"}.", keyhold.Clip(h.SKU))
	}
	if h.SoftDeleteRetentionDays == 0 {
		h.SoftDeleteRetentionDays = keyhold.DefaultSoftDeleteRetentionDays
	}
	if h.SoftDeleteRetentionDays < keyhold.MinSoftDeleteRetentionDays || h.SoftDeleteRetentionDays > keyhold.MaxSoftDeleteRetentionDays {
		return bad("softDeleteRetentionInDays %d is out of range: give %d to %d days.", h.SoftDeleteRetentionDays,
			keyhold.MinSoftDeleteRetentionDays, keyhold.MaxSoftDeleteRetentionDays)
	}
	if len(h.InitialAdminObjectIDs) == 0 {
		return bad("properties.initialAdminObjectIds is empty: name at least one object id of your directory, who will activate the HSM.")
	}
	if len(h.InitialAdminObjectIDs) > maxInitialAdminObjects {
		return bad("properties.initialAdminObjectIds has %d entries: give at most %d.", len(h.InitialAdminObjectIDs), maxInitialAdminObjects)
	}
	for i, id := range h.InitialAdminObjectIDs {
		if !guidRE.MatchString(id) {
			return bad("properties.initialAdminObjectIds[%d] %q is not an object id: give the GUID of a user, group or service principal.", i, keyhold.Clip(id))
		}
		h.InitialAdminObjectIDs[i] = strings.ToLower(id)
	}
	return nil
}

// PutManagedHSM creates an HSM (ARM PUT), updates its purge protection,
// or, with recover (properties.createMode "recover"), recovers a deleted
// one. A new HSM is inactive, and its initial administrators hold
// Managed HSM Administrator at "/". Refused: an unregistered namespace,
// a missing group, a bad name, location, SKU, retention or admin list, a
// name in use (a deleted HSM's included, unless recovering), retention
// changed or purge protection turned off once set.
func (s *HSMs) PutManagedHSM(ctx context.Context, h *keyhold.ManagedHSM, recover bool) (created bool, err error) {
	if h == nil {
		return false, keyhold.Errorf(keyhold.CodeBadRequest, "the request has no Managed HSM")
	}
	nh := *h
	nh.InitialAdminObjectIDs = slices.Clone(h.InitialAdminObjectIDs)
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		created = false
		if err := armAuthorize(ctx, tx, nh.ID(), ActionHSMWrite); err != nil {
			return err
		}
		if err := requireRegistration(ctx, tx, nh.SubscriptionID, nh.ResourceGroup); err != nil {
			return err
		}
		old, err := tx.ManagedHSM(ctx, nh.Name)
		if codeIs(err, keyhold.CodeNotFound) {
			old = nil
		} else if err != nil {
			return err
		}
		if old != nil && (!strings.EqualFold(old.SubscriptionID, nh.SubscriptionID) || !strings.EqualFold(old.ResourceGroup, nh.ResourceGroup)) {
			return keyhold.Errorf(keyhold.CodeConflict, "The Managed HSM name %q is already in use: names are globally unique, choose another.", nh.Name)
		}
		now := s.now()
		if recover {
			if old == nil || !old.Deleted() {
				return keyhold.Errorf(keyhold.CodeNotFound, "No deleted Managed HSM %q can be recovered: createMode \"recover\" needs a soft-deleted HSM of that name; omit it to create one.", keyhold.Clip(nh.Name))
			}
			old.DeletedAt, old.ScheduledPurgeAt, old.UpdatedAt = time.Time{}, time.Time{}, now
			if err := tx.UpdateManagedHSM(ctx, old); err != nil {
				return err
			}
			*h = *old
			return nil
		}
		if old != nil && old.Deleted() {
			return keyhold.Errorf(keyhold.CodeConflict,
				"A Managed HSM with the same name already exists in deleted state: recover it (properties.createMode \"recover\") or purge it first.")
		}
		sub, err := tx.Subscription(ctx, nh.SubscriptionID)
		if err != nil {
			return err
		}
		if nh.TenantID != "" && !strings.EqualFold(nh.TenantID, sub.TenantID) {
			return keyhold.Errorf(keyhold.CodeBadRequest, "The tenant ID %q is not the tenant of subscription '%s': give %s or omit it.",
				keyhold.Clip(nh.TenantID), nh.SubscriptionID, sub.TenantID)
		}
		nh.TenantID = sub.TenantID
		if old != nil {
			if len(nh.InitialAdminObjectIDs) == 0 {
				nh.InitialAdminObjectIDs = old.InitialAdminObjectIDs
			}
			if nh.SoftDeleteRetentionDays == 0 {
				nh.SoftDeleteRetentionDays = old.SoftDeleteRetentionDays
			}
		}
		if err := normalize(&nh); err != nil {
			return err
		}
		if old != nil {
			if nh.SoftDeleteRetentionDays != old.SoftDeleteRetentionDays {
				return keyhold.Errorf(keyhold.CodeBadRequest, "softDeleteRetentionInDays can't change once set: it is %d; give that or omit it.", old.SoftDeleteRetentionDays)
			}
			if old.EnablePurgeProtection && !nh.EnablePurgeProtection {
				return keyhold.Errorf(keyhold.CodeBadRequest, "Purge protection can't be turned off once on: give \"enablePurgeProtection\": true or omit it.")
			}
			old.EnablePurgeProtection, old.UpdatedAt = nh.EnablePurgeProtection, now
			if err := tx.UpdateManagedHSM(ctx, old); err != nil {
				return err
			}
			*h = *old
			return nil
		}
		nh.CreatedAt, nh.UpdatedAt = now, now
		nh.ActivatedAt, nh.DeletedAt, nh.ScheduledPurgeAt, nh.DomainHash = time.Time{}, time.Time{}, time.Time{}, nil
		if err := tx.CreateManagedHSM(ctx, &nh); err != nil {
			return err
		}
		for _, admin := range nh.InitialAdminObjectIDs {
			if err := tx.PutHSMRoleAssignment(ctx, &keyhold.HSMRoleAssignment{HSM: nh.Name, Name: newGUID(), Scope: "/",
				RoleDefinitionID: keyhold.HSMRoleDefinitionPrefix + keyhold.RoleHSMAdministrator, PrincipalID: admin, CreatedAt: now}); err != nil {
				return err
			}
		}
		created = true
		*h = nh
		return nil
	})
	tenant := h.TenantID
	return created, s.audit(ctx, tenant, "managedhsm.write", "/subscriptions/"+h.SubscriptionID+"/resourceGroups/"+h.ResourceGroup+"/providers/Microsoft.KeyVault/managedHSMs/"+h.Name, err)
}

// liveHSM returns the live HSM sub/rg/name, or CodeResourceNotFound.
func liveHSM(ctx context.Context, tx keyhold.Tx, sub, rg, name string) (*keyhold.ManagedHSM, error) {
	h, err := tx.ManagedHSM(ctx, name)
	if codeIs(err, keyhold.CodeNotFound) || err == nil && (h.Deleted() || !strings.EqualFold(h.SubscriptionID, sub) || !strings.EqualFold(h.ResourceGroup, rg)) {
		return nil, keyhold.Errorf(keyhold.CodeResourceNotFound,
			"The Resource 'Microsoft.KeyVault/managedHSMs/%s' under resource group '%s' was not found.", keyhold.Clip(name), keyhold.Clip(rg))
	}
	return h, err
}

// GetManagedHSM returns a live HSM.
func (s *HSMs) GetManagedHSM(ctx context.Context, sub, rg, name string) (*keyhold.ManagedHSM, error) {
	var out *keyhold.ManagedHSM
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		h, err := liveHSM(ctx, tx, sub, rg, name)
		if err != nil {
			return err
		}
		if err := armAuthorize(ctx, tx, h.ID(), ActionHSMRead); err != nil {
			return err
		}
		out = h
		return nil
	})
	return out, err
}

// ListManagedHSMs lists the live HSMs of a subscription (rg ""), or of a
// group, that the caller may read.
func (s *HSMs) ListManagedHSMs(ctx context.Context, sub, rg string) ([]*keyhold.ManagedHSM, error) {
	out := []*keyhold.ManagedHSM{}
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		hs, err := tx.ListManagedHSMs(ctx, keyhold.VaultFilter{SubscriptionID: sub, ResourceGroup: rg})
		if err != nil {
			return err
		}
		for _, h := range hs {
			if armAuthorize(ctx, tx, h.ID(), ActionHSMRead) == nil {
				out = append(out, h)
			}
		}
		return nil
	})
	return out, err
}

// DeleteManagedHSM soft-deletes an HSM: its data plane answers no more,
// its keys are kept until it is purged. A missing HSM is CodeResourceNotFound.
func (s *HSMs) DeleteManagedHSM(ctx context.Context, sub, rg, name string) error {
	var tenant string
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		h, err := liveHSM(ctx, tx, sub, rg, name)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if err := armAuthorize(ctx, tx, h.ID(), ActionHSMDelete); err != nil {
			return err
		}
		now := s.now()
		h.DeletedAt, h.ScheduledPurgeAt, h.UpdatedAt = now, now.AddDate(0, 0, h.SoftDeleteRetentionDays), now
		return tx.UpdateManagedHSM(ctx, h)
	})
	return s.audit(ctx, tenant, "managedhsm.delete", "/subscriptions/"+sub+"/resourceGroups/"+rg+"/providers/Microsoft.KeyVault/managedHSMs/"+name, err)
}

// ListDeletedManagedHSMs lists a subscription's soft-deleted HSMs.
func (s *HSMs) ListDeletedManagedHSMs(ctx context.Context, sub string) ([]*keyhold.ManagedHSM, error) {
	var out []*keyhold.ManagedHSM
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if err := armAuthorize(ctx, tx, "/subscriptions/"+sub, ActionDeletedHSMsList); err != nil {
			return err
		}
		out, err = tx.ListManagedHSMs(ctx, keyhold.VaultFilter{SubscriptionID: sub, Deleted: true})
		return err
	})
	return out, err
}

// deletedHSM returns the soft-deleted HSM name of sub in location.
func deletedHSM(ctx context.Context, tx keyhold.Tx, sub, location, name string) (*keyhold.ManagedHSM, error) {
	h, err := tx.ManagedHSM(ctx, name)
	if codeIs(err, keyhold.CodeNotFound) || err == nil && (!h.Deleted() || !strings.EqualFold(h.SubscriptionID, sub) ||
		h.Location != keyhold.NormalizeLocation(location)) {
		return nil, keyhold.Errorf(keyhold.CodeResourceNotFound,
			"No deleted Managed HSM %q was found in location %q of subscription %s: list them with GET /subscriptions/%s/providers/Microsoft.KeyVault/deletedManagedHSMs.",
			keyhold.Clip(name), keyhold.Clip(location), sub, sub)
	}
	return h, err
}

// GetDeletedManagedHSM returns a soft-deleted HSM.
func (s *HSMs) GetDeletedManagedHSM(ctx context.Context, sub, location, name string) (*keyhold.ManagedHSM, error) {
	var out *keyhold.ManagedHSM
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if err := armAuthorize(ctx, tx, "/subscriptions/"+sub, ActionDeletedHSMRead); err != nil {
			return err
		}
		out, err = deletedHSM(ctx, tx, sub, location, name)
		return err
	})
	return out, err
}

// PurgeDeletedManagedHSM removes a soft-deleted HSM for good, with its
// keys (their token objects destroyed) and role assignments. Under purge
// protection it is refused (Conflict) until its scheduled purge date.
func (s *HSMs) PurgeDeletedManagedHSM(ctx context.Context, sub, location, name string) error {
	var tenant string
	var objs [][]byte
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		objs = nil
		if err := armAuthorize(ctx, tx, "/subscriptions/"+sub, ActionDeletedHSMPurge); err != nil {
			return err
		}
		h, err := deletedHSM(ctx, tx, sub, location, name)
		if err != nil {
			return err
		}
		tenant = h.TenantID
		if h.EnablePurgeProtection && s.now().Before(h.ScheduledPurgeAt) {
			return keyhold.Errorf(keyhold.CodeConflict,
				"Managed HSM %q has purge protection enabled and can't be purged before its scheduled purge date %s.", h.Name, h.ScheduledPurgeAt.Format(time.RFC3339))
		}
		for _, deleted := range []bool{false, true} {
			ks, err := tx.ListHSMKeys(ctx, h.Name, deleted)
			if err != nil {
				return err
			}
			for _, k := range ks {
				vs, err := tx.ListHSMKeyVersions(ctx, h.Name, k.Name)
				if err != nil {
					return err
				}
				for _, v := range vs {
					objs = append(objs, v.Material)
				}
			}
		}
		return tx.PurgeManagedHSM(ctx, h.Name)
	})
	if err == nil {
		s.destroy(objs)
	}
	return s.audit(ctx, tenant, "managedhsm.purge", "/subscriptions/"+sub+"/providers/Microsoft.KeyVault/locations/"+location+"/deletedManagedHSMs/"+name, err)
}

// destroy removes token objects whose records are gone; a failure is
// logged (an orphan object opens nothing: no record names it).
func (s *core) destroy(objs [][]byte) {
	for _, m := range objs {
		if err := s.tok.Destroy(m); err != nil {
			s.log.Warn("mhsm: destroying a purged key's token object failed", "err", err)
		}
	}
}

// LookupManagedHSM returns a live HSM by name, without checking the
// caller; CodeNotFound for none.
func (s *HSMs) LookupManagedHSM(ctx context.Context, name string) (*keyhold.ManagedHSM, error) {
	var out *keyhold.ManagedHSM
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		out, err = tx.ManagedHSM(ctx, name)
		return err
	})
	if err == nil && out.Deleted() {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "Managed HSM %q is deleted", keyhold.Clip(name))
	}
	return out, err
}
