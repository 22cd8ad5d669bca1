package arm

import (
	"context"

	"github.com/keyhold/keyhold"
)

// Environment membership: who may use an environment's data besides the
// tenant's platform administrators (see platform's data-plane checks).

// memberTarget is the audit target of a membership.
func memberTarget(envID, principalID string) string {
	return "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + envID + "/members/" + principalID
}

// environmentIn loads an environment of the caller's tenant; another
// tenant's is reported as not found.
func environmentIn(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity, envID string) (*keyhold.Environment, error) {
	e, err := tx.Environment(ctx, envID)
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound || (err == nil && e.TenantID != id.TenantID) {
		return nil, keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found in tenant %s: list environments to find its id", keyhold.Clip(envID), id.TenantID)
	}
	return e, err
}

// AddEnvironmentMember lets a principal of the caller's tenant use an
// environment's data. It needs a platform administrator directory role.
// Adding a member again changes nothing: created is false and m is the
// existing membership.
func (s *Service) AddEnvironmentMember(ctx context.Context, envID, principalID string) (m *keyhold.EnvironmentMember, created bool, err error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, false, err
	}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		created = false
		if err := requirePlatformAdmin(ctx, tx, id, "manage environment members"); err != nil {
			return err
		}
		e, err := environmentIn(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		p, err := principalIn(ctx, tx, id, principalID)
		if err != nil {
			return err
		}
		members, err := tx.EnvironmentMembers(ctx, e.ID)
		if err != nil {
			return err
		}
		for _, old := range members {
			if old.PrincipalID == p.ID {
				m = old
				return nil
			}
		}
		m = &keyhold.EnvironmentMember{EnvID: e.ID, PrincipalID: p.ID, AddedBy: id.PrincipalID, AddedAt: s.clock.Now().UTC()}
		if err := tx.AddEnvironmentMember(ctx, m); err != nil {
			return err
		}
		created = true
		return s.audit(ctx, tx, id, "environment.member.add", memberTarget(e.ID, p.ID), e.ID, "made "+string(p.Type)+" "+p.ID+" a member")
	})
	if err != nil {
		return nil, false, err
	}
	return m, created, nil
}

// RemoveEnvironmentMember ends a principal's membership of an environment.
// It needs a platform administrator directory role. A principal that is
// not a member is CodeNotFound.
func (s *Service) RemoveEnvironmentMember(ctx context.Context, envID, principalID string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requirePlatformAdmin(ctx, tx, id, "manage environment members"); err != nil {
			return err
		}
		e, err := environmentIn(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		if err := tx.RemoveEnvironmentMember(ctx, e.ID, principalID); err != nil {
			return err
		}
		return s.audit(ctx, tx, id, "environment.member.remove", memberTarget(e.ID, principalID), e.ID, "removed "+principalID)
	})
}

// EnvironmentMembers lists an environment's members, oldest first. It needs
// a platform administrator directory role.
func (s *Service) EnvironmentMembers(ctx context.Context, envID string) ([]*keyhold.EnvironmentMember, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.EnvironmentMember
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requirePlatformAdmin(ctx, tx, id, "read environment members"); err != nil {
			return err
		}
		e, err := environmentIn(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		out, err = tx.EnvironmentMembers(ctx, e.ID)
		return err
	})
	return out, err
}
