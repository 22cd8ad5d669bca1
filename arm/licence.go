package arm

import (
	"context"

	"github.com/keyhold/keyhold"
)

// Tenant licences (keyhold.LicenceService): the licences of 002 that a
// tenant holds, which a link to an enterprise policy needs. Its Global
// Administrator adds and removes them, as a Microsoft 365 tenant's buys
// them; any platform administrator may list them (see licence.go in the
// root package for why).

var _ keyhold.LicenceService = (*Service)(nil)

// licenceTarget is the audit target of a tenant's licence.
func licenceTarget(name string) string { return "/subscribedSkus/" + keyhold.LicenceID(name) }

// ListLicences lists the caller's tenant's licences. It needs a platform
// administrator directory role (CodeForbidden).
func (s *Service) ListLicences(ctx context.Context) ([]*keyhold.Licence, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out []*keyhold.Licence
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requirePlatformAdmin(ctx, tx, id, "read the tenant's licences"); err != nil {
			return err
		}
		out, err = tx.ListLicences(ctx, id.TenantID)
		return err
	})
	return out, err
}

// AddLicence adds one of keyhold.Licences (by name or keyhold.LicenceID) to
// the caller's tenant, audited. It needs Global Administrator
// (CodeForbidden); another licence is CodeBadRequest listing the accepted
// ones, one held already CodeConflict. A refusal changes nothing.
func (s *Service) AddLicence(ctx context.Context, name string) (*keyhold.Licence, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	canon, err := keyhold.ParseLicence(name)
	if err != nil {
		return nil, err
	}
	l := &keyhold.Licence{TenantID: id.TenantID, Name: canon, AddedBy: id.PrincipalID, AddedAt: s.clock.Now().UTC()}
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireGlobalAdmin(ctx, tx, id, "add licences to the tenant"); err != nil {
			return err
		}
		if err := tx.AddLicence(ctx, l); err != nil {
			if keyhold.ErrorCode(err) == keyhold.CodeConflict {
				return keyhold.Errorf(keyhold.CodeConflict, "tenant %s already holds licence %q: list them with GET /v1.0/subscribedSkus", id.TenantID, canon)
			}
			return err
		}
		return s.audit(ctx, tx, id, "tenant.licence.add", licenceTarget(canon), "", "added licence "+canon)
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// RemoveLicence removes a licence (by name or keyhold.LicenceID) from the
// caller's tenant, audited. It needs Global Administrator (CodeForbidden);
// a licence the tenant doesn't hold is CodeNotFound. Environments linked
// already stay linked: the licence is checked when a link starts.
func (s *Service) RemoveLicence(ctx context.Context, name string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	canon, err := keyhold.ParseLicence(name)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := requireGlobalAdmin(ctx, tx, id, "remove licences from the tenant"); err != nil {
			return err
		}
		if err := tx.RemoveLicence(ctx, id.TenantID, canon); err != nil {
			if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
				return keyhold.Errorf(keyhold.CodeNotFound, "tenant %s holds no licence %q: list them with GET /v1.0/subscribedSkus", id.TenantID, canon)
			}
			return err
		}
		return s.audit(ctx, tx, id, "tenant.licence.remove", licenceTarget(canon), "", "removed licence "+canon)
	})
}
