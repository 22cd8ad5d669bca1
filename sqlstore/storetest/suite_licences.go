package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// licenceStoreTests are the conformance tests of keyhold.LicenceTx; Run
// runs them with the rest.
var licenceStoreTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"Licences", testLicences},
}

// testLicences: licences are a tenant's own, listed by name; a second add
// of one name (in any case) is a conflict, an unknown tenant not found,
// and a remove of a licence not held not found, each changing nothing.
func testLicences(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		for _, tn := range []string{"t1", "t2"} {
			if err := tx.CreateTenant(ctx, tenant(tn)); err != nil {
				return err
			}
		}
		for _, l := range []*keyhold.Licence{
			{TenantID: "t1", Name: "Office 365 E5", AddedBy: "p1", AddedAt: at(time.Minute)},
			{TenantID: "t1", Name: "Microsoft 365 E5", AddedBy: "p1", AddedAt: at(time.Hour)},
			{TenantID: "t2", Name: "Microsoft 365 G5", AddedBy: "p2", AddedAt: at(0)},
		} {
			if err := tx.AddLicence(ctx, l); err != nil {
				return err
			}
		}
		return nil
	})
	list := func(tenantID string) []*keyhold.Licence {
		var got []*keyhold.Licence
		view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.ListLicences(ctx, tenantID); return err })
		return got
	}
	t1 := []*keyhold.Licence{
		{TenantID: "t1", Name: "Microsoft 365 E5", AddedBy: "p1", AddedAt: at(time.Hour)},
		{TenantID: "t1", Name: "Office 365 E5", AddedBy: "p1", AddedAt: at(time.Minute)},
	}
	equal(t, "t1", list("t1"), t1)
	equal(t, "t2", len(list("t2")), 1)

	err := s.Update(ctx, func(tx keyhold.Tx) error {
		return tx.AddLicence(ctx, &keyhold.Licence{TenantID: "t1", Name: "MICROSOFT 365 E5", AddedBy: "p9", AddedAt: at(0)})
	})
	wantCode(t, "AddLicence(held already)", err, keyhold.CodeConflict, "t1")
	err = s.Update(ctx, func(tx keyhold.Tx) error {
		return tx.AddLicence(ctx, &keyhold.Licence{TenantID: "nope", Name: "Microsoft 365 E5", AddedBy: "p9", AddedAt: at(0)})
	})
	wantCode(t, "AddLicence(unknown tenant)", err, keyhold.CodeNotFound, "nope")
	err = s.Update(ctx, func(tx keyhold.Tx) error { return tx.RemoveLicence(ctx, "t2", "Microsoft 365 E5") })
	wantCode(t, "RemoveLicence(not held)", err, keyhold.CodeNotFound, "t2")
	equal(t, "t1 after the refusals", list("t1"), t1)

	update(t, s, func(tx keyhold.Tx) error { return tx.RemoveLicence(ctx, "t1", "office 365 e5") })
	equal(t, "t1 after a remove", list("t1"), t1[:1])
	equal(t, "t2 after t1's remove", len(list("t2")), 1)
}
