package mhsm_test

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/mhsm"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// BenchmarkWrapUnwrapHSM compares, in one run and over one SoftHSM2
// token and one SQLite store, wrapKey and unwrapKey (RSA-OAEP-256, a
// 32-byte value, RSA-2048) through a Managed HSM and through a vault's
// RSA-HSM key. Each call is authorized and audited by its service.
func BenchmarkWrapUnwrapHSM(b *testing.B) {
	store := storetest.OpenSQLite(b)
	tok := hsmtest.Token(b)
	setup(b, store, keyhold.RoleKeyVaultAdministrator)

	// The Managed HSM: created, activated, user a crypto user.
	h, err := mhsm.New(mhsm.Config{Store: store, BaseURL: "https://keyhold.test:8443", HSM: tok})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if _, err := h.PutManagedHSM(as(owner), &keyhold.ManagedHSM{SubscriptionID: sub, ResourceGroup: rg, Name: "hsm1", Location: loc,
		InitialAdminObjectIDs: []string{admin.PrincipalID}}, false); err != nil {
		b.Fatal(err)
	}
	if _, err := h.DownloadSecurityDomain(as(admin), "hsm1", domainRequest(2, holders...)); err != nil {
		b.Fatal(err)
	}
	if _, err := h.PutHSMRoleAssignment(as(admin), "hsm1", &keyhold.HSMRoleAssignment{Name: "11111111-0000-4000-8000-000000000001", Scope: "/",
		RoleDefinitionID: keyhold.HSMRoleDefinitionPrefix + keyhold.RoleHSMCryptoUser, PrincipalID: user.PrincipalID}); err != nil {
		b.Fatal(err)
	}
	kb, err := h.CreateKey(as(user), "hsm1", "k1", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM})
	if err != nil {
		b.Fatal(err)
	}
	// The vault: an RBAC vault whose RSA-HSM key the owner (Key Vault
	// Administrator) uses.
	master, err := crypt.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	defer master.Destroy()
	v, err := vault.New(vault.Config{Store: store, MasterKey: master, BaseURL: "https://keyhold.test:8443",
		HSM: &vault.PKCS11Config{Module: tok.Module, TokenLabel: tok.TokenLabel, PIN: tok.PIN}})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	if _, err := v.PutVault(as(owner), &keyhold.Vault{SubscriptionID: sub, ResourceGroup: rg, Name: "kv1", Location: loc,
		EnableRbacAuthorization: true, EnablePurgeProtection: true}); err != nil {
		b.Fatal(err)
	}
	vb, err := v.CreateKey(as(owner), "kv1", "k1", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM})
	if err != nil {
		b.Fatal(err)
	}

	value := make([]byte, 32)
	type svc interface {
		WrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (string, []byte, error)
		UnwrapKey(ctx context.Context, vault, name, version, alg string, value []byte) (string, []byte, error)
	}
	for _, c := range []struct {
		name, vault, version string
		s                    svc
		id                   *keyhold.Identity
	}{
		{"managedhsm", "hsm1", kb.Version.Version, h, user},
		{"vault-rsa-hsm", "kv1", vb.Version.Version, v, owner},
	} {
		_, ct, err := c.s.WrapKey(as(c.id), c.vault, "k1", c.version, crypt.AlgRSAOAEP256, value)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/wrap", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := c.s.WrapKey(as(c.id), c.vault, "k1", c.version, crypt.AlgRSAOAEP256, value); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/unwrap", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := c.s.UnwrapKey(as(c.id), c.vault, "k1", c.version, crypt.AlgRSAOAEP256, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
