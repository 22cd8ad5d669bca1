package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// PolicyWorld is what SeedPolicyWorld stores for the tests of enterprise
// policies and of the template deployments that create them.
type PolicyWorld struct {
	TenantID       string
	SubscriptionID string
	// KeyVersion is the one version of the key "cmk" in both vaults.
	KeyVersion string
}

// SeedPolicyWorld stores, straight in s and at now, a fresh tenant
// "Contoso" with one subscription, Microsoft.PowerPlatform registered in it
// if registered, resource groups "rg" and "keys", and in "keys" a vault
// "contoso-kv" with purge protection and a vault "plain-kv" without, each
// holding an RSA key "cmk" with one version (RBAC authorization, no
// private material). It holds no principal: SeedPrincipal adds them.
func SeedPolicyWorld(t testing.TB, s keyhold.Store, now time.Time, registered bool) PolicyWorld {
	t.Helper()
	w := PolicyWorld{TenantID: uuid.NewString(), SubscriptionID: uuid.NewString(), KeyVersion: strings.ReplaceAll(uuid.NewString(), "-", "")}
	ctx := context.Background()
	err := s.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: w.TenantID, DisplayName: "Contoso", CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.CreateSubscription(ctx, &keyhold.Subscription{ID: w.SubscriptionID, TenantID: w.TenantID, DisplayName: "Contoso", CreatedAt: now}); err != nil {
			return err
		}
		if registered {
			if err := tx.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: w.SubscriptionID, Namespace: keyhold.NamespacePowerPlatform,
				State: keyhold.ProviderRegistered, UpdatedAt: now}); err != nil {
				return err
			}
		}
		for _, rg := range []string{"rg", "keys"} {
			if err := tx.CreateResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: w.SubscriptionID, Name: rg, Location: "westeurope", CreatedAt: now}); err != nil {
				return err
			}
		}
		for _, v := range []struct {
			name  string
			purge bool
		}{{"contoso-kv", true}, {"plain-kv", false}} {
			if err := tx.CreateVault(ctx, &keyhold.Vault{SubscriptionID: w.SubscriptionID, ResourceGroup: "keys", Name: v.name, Location: "westeurope",
				TenantID: w.TenantID, SKU: "standard", SoftDeleteRetentionDays: 90, EnablePurgeProtection: v.purge, EnableRbacAuthorization: true,
				URI: "https://localhost/vaults/" + v.name, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			if err := tx.PutKey(ctx, &keyhold.Key{VaultName: v.name, Name: "cmk", Type: keyhold.KeyTypeRSA, Size: 2048,
				CurrentVersion: w.KeyVersion, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			if err := tx.PutKeyVersion(ctx, &keyhold.KeyVersion{VaultName: v.name, Name: "cmk", Version: w.KeyVersion, Type: keyhold.KeyTypeRSA,
				Size: 2048, N: []byte{1}, E: 65537, KeyOps: []string{"wrapKey", "unwrapKey"}, Enabled: true, Material: []byte{1},
				CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("SeedPolicyWorld: %v", err)
	}
	return w
}

// SeedPrincipal stores a service principal called name in tenantID and
// returns its identity as a management token carries it.
func SeedPrincipal(t testing.TB, s keyhold.Store, tenantID, name string, now time.Time) *keyhold.Identity {
	t.Helper()
	p := &keyhold.Principal{ID: uuid.NewString(), TenantID: tenantID, Type: keyhold.PrincipalServicePrincipal, DisplayName: name,
		AppID: uuid.NewString(), CreatedAt: now}
	ctx := context.Background()
	if err := s.Update(ctx, func(tx keyhold.Tx) error { return tx.CreatePrincipal(ctx, p) }); err != nil {
		t.Fatalf("SeedPrincipal(%s): %v", name, err)
	}
	return &keyhold.Identity{TenantID: tenantID, PrincipalID: p.ID, AppID: p.AppID, Type: p.Type, Audience: keyhold.AudienceManagement}
}

// SeedGrant stores an assignment of the built-in role to id at scope,
// straight in s, as a principal of id's tenant.
func SeedGrant(t testing.TB, s keyhold.Store, scope, role string, id *keyhold.Identity, now time.Time) {
	t.Helper()
	r, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		t.Fatalf("SeedGrant: no role %q", role)
	}
	ctx := context.Background()
	if err := s.Update(ctx, func(tx keyhold.Tx) error {
		return tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{ID: uuid.NewString(), Scope: scope, RoleDefinitionID: r.ID,
			PrincipalID: id.PrincipalID, PrincipalType: "ServicePrincipal", TenantID: id.TenantID, CreatedBy: "test", CreatedAt: now})
	}); err != nil {
		t.Fatalf("SeedGrant(%s at %s): %v", role, scope, err)
	}
}
