package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// seedHSM stores a Managed HSM (purge protection as asked) in group
// "keys" with an RSA-HSM key "cmk" of one version, straight in the store:
// the policy reads records only.
func (f *fixture) seedHSM(t *testing.T, name string, purgeProtection bool) (id, version string) {
	t.Helper()
	version = strings.Repeat("cd", 16)
	now := f.clock.Now()
	f.update(t, func(ctx context.Context, tx keyhold.Tx) error {
		h := &keyhold.ManagedHSM{SubscriptionID: f.sub, ResourceGroup: "keys", Name: name, Location: "europe", TenantID: f.tenant,
			SKU: "Standard_B1", InitialAdminObjectIDs: []string{f.admin.PrincipalID}, SoftDeleteRetentionDays: 7,
			EnablePurgeProtection: purgeProtection, ActivatedAt: now, CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateManagedHSM(ctx, h); err != nil {
			return err
		}
		id = h.ID()
		if err := tx.PutHSMKey(ctx, &keyhold.Key{VaultName: name, Name: "cmk", Type: keyhold.KeyTypeRSAHSM, Size: 2048,
			CurrentVersion: version, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		return tx.PutHSMKeyVersion(ctx, &keyhold.KeyVersion{VaultName: name, Name: "cmk", Version: version, Type: keyhold.KeyTypeRSAHSM,
			Size: 2048, N: []byte{1}, E: 65537, Enabled: true, Material: []byte("pkcs11:id=00"), CreatedAt: now, UpdatedAt: now})
	})
	return id, version
}

// TestManagedHSMPolicy: a policy's keyVault.id may name a Managed HSM
// (issue 18); one without purge protection, a missing key or version, or
// a deleted HSM is refused, quoting what to fix, and nothing changes.
func TestManagedHSMPolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		id, version := f.seedHSM(t, "contoso-hsm", true)
		plainID, _ := f.seedHSM(t, "plain-hsm", false)
		spec := f.spec()
		spec.KeyVaultID, spec.KeyVersion = id, version
		p := f.put(t, "hsm-pol", spec)
		if p.KeyVaultID != id || p.KeyName != "cmk" || p.KeyVersion != version || p.External != nil {
			t.Fatalf("Put stored %+v", p)
		}
		before := f.snapshot(t)
		for _, c := range []struct {
			name  string
			edit  func(s *keyhold.PolicySpec)
			hints []string
		}{
			{"no purge protection", func(s *keyhold.PolicySpec) { s.KeyVaultID = plainID }, []string{"purge protection", "plain-hsm"}},
			{"no such key", func(s *keyhold.PolicySpec) { s.KeyName = "other" }, []string{"'other'", "contoso-hsm", "RSA-HSM"}},
			{"no such version", func(s *keyhold.PolicySpec) { s.KeyVersion = strings.Repeat("ef", 16) }, []string{strings.Repeat("ef", 16)}},
			{"no such HSM", func(s *keyhold.PolicySpec) { s.KeyVaultID = strings.Replace(id, "contoso-hsm", "nope-hsm", 1) }, []string{"nope-hsm", "managedHSMs"}},
		} {
			s := f.spec()
			s.KeyVaultID, s.KeyVersion = id, version
			c.edit(&s)
			_, _, err := f.s.Put(as(f.admin), f.sub, "rg", "refused", s)
			wantErr(t, err, keyhold.CodeBadRequest, c.hints...)
			f.unchanged(t, c.name, before)
		}
		// A deleted HSM can no longer be named.
		f.update(t, func(ctx context.Context, tx keyhold.Tx) error {
			h, err := tx.ManagedHSM(ctx, "contoso-hsm")
			if err != nil {
				return err
			}
			h.DeletedAt = f.clock.Now()
			return tx.UpdateManagedHSM(ctx, h)
		})
		before = f.snapshot(t)
		_, _, err := f.s.Put(as(f.admin), f.sub, "rg", "refused", spec)
		wantErr(t, err, keyhold.CodeBadRequest, "Managed HSM")
		f.unchanged(t, "a deleted HSM", before)
	})
}
