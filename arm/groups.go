package arm

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/keyhold/keyhold"
)

// Resource group actions, as Azure names them.
const (
	ActionGroupRead   = "Microsoft.Resources/subscriptions/resourceGroups/read"
	ActionGroupWrite  = "Microsoft.Resources/subscriptions/resourceGroups/write"
	ActionGroupDelete = "Microsoft.Resources/subscriptions/resourceGroups/delete"
)

// Tag limits, as ARM has them.
const (
	maxTags        = 50
	maxTagKeyLen   = 512
	maxTagValueLen = 256
)

// groupNameRE is ARM's rule for resource group names: 1 to 90 letters,
// digits, '_', '-', '.', '(' or ')', not ending in '.'.
var groupNameRE = regexp.MustCompile(`^[\p{L}\p{N}_\-.()]{1,90}$`)

// locationRE is a location as ARM normalises it: "West Europe" becomes
// "westeurope".
var locationRE = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// validateGroup checks a resource group's name, location and tags, and
// normalizes its location.
func validateGroup(g *keyhold.ResourceGroup) error {
	if !groupNameRE.MatchString(g.Name) || strings.HasSuffix(g.Name, ".") {
		return keyhold.Errorf(keyhold.CodeInvalidName, "Resource group name '%s' is invalid: use 1 to 90 letters, digits, underscores, hyphens, periods or parentheses, not ending in a period", keyhold.Clip(g.Name))
	}
	g.Location = keyhold.NormalizeLocation(g.Location)
	if g.Location == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "The location of resource group '%s' is missing: send {\"location\":\"westeurope\"}", g.Name)
	}
	if !locationRE.MatchString(g.Location) {
		return keyhold.Errorf(keyhold.CodeInvalidLocation, "The location '%s' is not valid: use a region name such as westeurope or eastus", keyhold.Clip(g.Location))
	}
	if len(g.Tags) > maxTags {
		return keyhold.Errorf(keyhold.CodeBadRequest, "resource group '%s' has %d tags: use at most %d", g.Name, len(g.Tags), maxTags)
	}
	for k, v := range g.Tags {
		if k == "" || utf8.RuneCountInString(k) > maxTagKeyLen || utf8.RuneCountInString(v) > maxTagValueLen {
			return keyhold.Errorf(keyhold.CodeBadRequest, "tag '%s' is not valid: a tag name has 1 to %d characters and its value at most %d", keyhold.Clip(k), maxTagKeyLen, maxTagValueLen)
		}
	}
	return nil
}

// PutResourceGroup creates the resource group g (created=true) or updates
// the tags of the existing one of that name, as ARM's PUT does; g is filled
// in with the group as stored. It needs the resource group write action at
// the group. An existing group's location can't change (CodeConflict).
func (s *Service) PutResourceGroup(ctx context.Context, g *keyhold.ResourceGroup) (created bool, err error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return false, err
	}
	if err := validateGroup(g); err != nil {
		return false, err
	}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		created = false
		if err := Authorize(ctx, tx, id, g.ID(), ActionGroupWrite); err != nil {
			return err
		}
		sub, err := SubscriptionFor(ctx, tx, id, g.SubscriptionID)
		if err != nil {
			return err
		}
		g.SubscriptionID = sub.ID
		old, err := tx.ResourceGroup(ctx, sub.ID, g.Name)
		switch {
		case keyhold.ErrorCode(err) == keyhold.CodeNotFound:
			created = true
			g.CreatedAt = s.clock.Now().UTC()
			if err := tx.CreateResourceGroup(ctx, g); err != nil {
				return err
			}
			return s.audit(ctx, tx, id, "resourceGroup.create", g.ID(), "", "created in "+g.Location)
		case err != nil:
			return err
		case old.Location != g.Location:
			return keyhold.Errorf(keyhold.CodeConflict, "Invalid resource group location '%s'. The Resource group already exists in location '%s'.", g.Location, old.Location)
		}
		g.Name, g.CreatedAt = old.Name, old.CreatedAt
		if err := tx.UpdateResourceGroup(ctx, g); err != nil {
			return err
		}
		return s.audit(ctx, tx, id, "resourceGroup.update", g.ID(), "", "tags: "+strings.Join(slices.Sorted(maps.Keys(g.Tags)), ", "))
	})
	return created, err
}

// ResourceGroup returns a resource group; it needs the resource group read
// action at the group. A missing group is CodeResourceGroupNotFound.
func (s *Service) ResourceGroup(ctx context.Context, subID, name string) (*keyhold.ResourceGroup, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var g *keyhold.ResourceGroup
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		probe := keyhold.ResourceGroup{SubscriptionID: subID, Name: name}
		if err := Authorize(ctx, tx, id, probe.ID(), ActionGroupRead); err != nil {
			return err
		}
		sub, err := SubscriptionFor(ctx, tx, id, subID)
		if err != nil {
			return err
		}
		g, err = tx.ResourceGroup(ctx, sub.ID, name)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return groupNotFound(name)
		}
		return err
	})
	return g, err
}

// ListResourceGroups returns the resource groups of a subscription that the
// caller may read, by name.
func (s *Service) ListResourceGroups(ctx context.Context, subID string) ([]*keyhold.ResourceGroup, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.ResourceGroup
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		sub, err := SubscriptionFor(ctx, tx, id, subID)
		if err != nil {
			return err
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: id.TenantID, PrincipalID: id.PrincipalID})
		if err != nil {
			return err
		}
		gs, err := tx.ListResourceGroups(ctx, sub.ID)
		if err != nil {
			return err
		}
		out = make([]*keyhold.ResourceGroup, 0, len(gs))
		for _, g := range gs {
			if keyhold.Allowed(as, g.ID(), ActionGroupRead, false) {
				out = append(out, g)
			}
		}
		return nil
	})
	return out, err
}

// DeleteResourceGroup deletes a resource group with what it holds: the
// registered ResourceDeleters delete their resources in it first, then the
// group and the role assignments at or below it go in one transaction. It
// needs the resource group delete action at the group.
func (s *Service) DeleteResourceGroup(ctx context.Context, subID, name string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	var g *keyhold.ResourceGroup
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		probe := keyhold.ResourceGroup{SubscriptionID: subID, Name: name}
		if err := Authorize(ctx, tx, id, probe.ID(), ActionGroupDelete); err != nil {
			return err
		}
		sub, err := SubscriptionFor(ctx, tx, id, subID)
		if err != nil {
			return err
		}
		g, err = tx.ResourceGroup(ctx, sub.ID, name)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return groupNotFound(name)
		}
		return err
	})
	if err != nil {
		return err
	}
	s.mu.RLock()
	deleters := slices.Clone(s.deleters)
	s.mu.RUnlock()
	for _, d := range deleters {
		if err := d.DeleteResourcesIn(ctx, g.SubscriptionID, g.Name); err != nil {
			s.log.WarnContext(ctx, "deleting the resources of a resource group", "group", g.ID(), "err", err)
			return err
		}
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		// Checked again: the caller's rights may have changed meanwhile.
		if err := Authorize(ctx, tx, id, g.ID(), ActionGroupDelete); err != nil {
			return err
		}
		if err := tx.DeleteResourceGroup(ctx, g.SubscriptionID, g.Name); keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return groupNotFound(name)
		} else if err != nil {
			return err
		}
		// Role assignments are extension resources of their scope: they go
		// with it, so that a new group of the same name starts with none.
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: id.TenantID})
		if err != nil {
			return err
		}
		n := 0
		for _, a := range as {
			if keyhold.ScopeCovers(g.ID(), a.Scope) {
				if err := tx.DeleteRoleAssignment(ctx, a.ID); err != nil {
					return err
				}
				n++
			}
		}
		detail := "deleted"
		if n > 0 {
			detail += " with its role assignments"
		}
		return s.audit(ctx, tx, id, "resourceGroup.delete", g.ID(), "", detail)
	})
}

// Subscriptions returns the caller's tenant's subscriptions in which it
// holds a role assignment (at the subscription or below it).
func (s *Service) Subscriptions(ctx context.Context) ([]*keyhold.Subscription, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.Subscription
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		subs, err := tx.ListSubscriptions(ctx, id.TenantID)
		if err != nil {
			return err
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: id.TenantID, PrincipalID: id.PrincipalID})
		if err != nil {
			return err
		}
		out = make([]*keyhold.Subscription, 0, len(subs))
		for _, sub := range subs {
			if slices.ContainsFunc(as, func(a *keyhold.RoleAssignment) bool { return keyhold.ScopeCovers("/subscriptions/"+sub.ID, a.Scope) }) {
				out = append(out, sub)
			}
		}
		return nil
	})
	return out, err
}

// Subscription returns one of the caller's tenant's subscriptions in which
// it holds a role assignment; CodeNotFound otherwise.
func (s *Service) Subscription(ctx context.Context, subID string) (*keyhold.Subscription, error) {
	subs, err := s.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		if strings.EqualFold(sub.ID, subID) {
			return sub, nil
		}
	}
	return nil, keyhold.Errorf(keyhold.CodeNotFound, "The subscription '%s' could not be found.", subID)
}
