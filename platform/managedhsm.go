package platform

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// Issue 18: a policy's keyVault.id may name a Managed HSM of this server
// (…/providers/Microsoft.KeyVault/managedHSMs/{name}); its key is reached
// in process as the policy's identity (the server's Config.CMK routes HSM
// key ids to the HSM's provider), so the link, the data plane, the health
// probe and the lock triggers take the built-in path. What reads the key's
// records directly (the link's checks, rotation pickup, the key-version
// report) reads the HSM's through the helpers here; the HSM's records carry
// no integrity seal yet, so no seal is checked for them.

// hsmIDMarker is how a Managed HSM's resource id names its type.
const hsmIDMarker = "/providers/microsoft.keyvault/managedhsms/"

// hsmNameOf returns the name of the Managed HSM a policy's keyVaultId
// names, or "".
func hsmNameOf(pol *keyhold.EnterprisePolicy) string {
	id := strings.TrimSuffix(pol.KeyVaultID, "/")
	i := strings.LastIndex(strings.ToLower(id), hsmIDMarker)
	if i < 0 {
		return ""
	}
	return id[i+len(hsmIDMarker):]
}

// hsmKID reports whether kid names a key of this server's Managed HSMs.
func hsmKID(hsm KeyVault, kid string) bool {
	if hsm == nil {
		return false
	}
	_, _, _, err := hsm.ParseKeyID(kid)
	return err == nil
}

// keyIDOf renders key name, version of pol's vault or HSM.
func keyIDOf(kv, hsm KeyVault, pol *keyhold.EnterprisePolicy, vault, name, version string) string {
	if hsmNameOf(pol) != "" && hsm != nil {
		return hsm.KeyID(vault, name, version)
	}
	return kv.KeyID(vault, name, version)
}

// policyKeyRecord loads pol's key from its Managed HSM or its vault.
func policyKeyRecord(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy) (*keyhold.Key, error) {
	if n := hsmNameOf(pol); n != "" {
		return tx.HSMKey(ctx, n, pol.KeyName)
	}
	return tx.Key(ctx, vaultNameOf(pol), pol.KeyName)
}

// policyKeyVersions lists the versions of pol's key k, oldest first.
func policyKeyVersions(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, k *keyhold.Key) ([]*keyhold.KeyVersion, error) {
	if hsmNameOf(pol) != "" {
		return tx.ListHSMKeyVersions(ctx, k.VaultName, k.Name)
	}
	return tx.ListKeyVersions(ctx, k.VaultName, k.Name)
}

// planHSM is the link's check of a policy naming a Managed HSM key: the
// HSM is live, active and purge-protected. What the key allows (the
// identity's role, enabled, wrap and unwrap) the probe checks as the
// policy's identity before anything changes.
func planHSM(ctx context.Context, tx keyhold.Tx, hsm KeyVault, plan *linkPlan) (*linkPlan, error) {
	pol := plan.pol
	if hsm == nil {
		return nil, keyhold.Errorf(keyhold.CodeNotSupported,
			"enterprise policy %s names a key of Managed HSM %s, and this server runs no Managed HSM (it has no PKCS#11 token): name a key of a key vault", pol.ID(), hsmNameOf(pol))
	}
	h, err := tx.ManagedHSM(ctx, hsmNameOf(pol))
	if keyhold.IsNotFound(err) || err == nil && h.Deleted() {
		return nil, keyhold.Errorf(keyhold.CodeVaultNotFound,
			"Managed HSM %s, which enterprise policy %s names, was not found: create it (or recover it if it was deleted), or use a policy that names an existing one", hsmNameOf(pol), pol.ID())
	} else if err != nil {
		return nil, err
	}
	if !h.EnablePurgeProtection {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"Managed HSM %s does not have purge protection enabled: enable it (properties.enablePurgeProtection = true), so that the key can't be purged while it protects environments", h.Name)
	}
	plan.vault = h.AsVault()
	plan.keyID = hsm.KeyID(h.Name, pol.KeyName, pol.KeyVersion)
	return plan, nil
}
