package storetest

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// SeedVaultTenants stores, as a Keyhold before migration 0020 could, a
// vault that names a tenant other than its subscription's, one that names
// its subscription's, and one whose subscription is unknown. The returned
// check requires, after the migration ran again, the first moved to its
// subscription's tenant and the others unchanged.
func SeedVaultTenants(t *testing.T, s keyhold.Store) (check func(t *testing.T, s keyhold.Store)) {
	t.Helper()
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		for _, id := range []string{"t-victim", "t-owner"} {
			if err := tx.CreateTenant(ctx, tenant(id)); err != nil {
				return err
			}
		}
		if err := tx.CreateSubscription(ctx, &keyhold.Subscription{ID: "Sub-Owner", TenantID: "t-owner", DisplayName: "owner's", CreatedAt: at(0)}); err != nil {
			return err
		}
		for name, tn := range map[string]string{"kv-injected": "t-victim", "kv-own": "t-owner"} {
			v := vault(name, "sub-owner", "rg")
			v.TenantID = tn
			if err := tx.CreateVault(ctx, v); err != nil {
				return err
			}
		}
		v := vault("kv-orphan", "sub-unknown", "rg")
		v.TenantID = "t-victim"
		return tx.CreateVault(ctx, v)
	})
	return func(t *testing.T, s keyhold.Store) {
		t.Helper()
		view(t, s, func(tx keyhold.Tx) error {
			for name, want := range map[string]string{"kv-injected": "t-owner", "kv-own": "t-owner", "kv-orphan": "t-victim"} {
				v, err := tx.Vault(ctx, name)
				if err != nil {
					return err
				}
				if v.TenantID != want {
					t.Errorf("vault %s: tenant %s, want %s", name, v.TenantID, want)
				}
			}
			return nil
		})
	}
}
