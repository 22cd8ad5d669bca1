package platform

import (
	"context"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
)

// Issue 13: what the platform reads of an external vault's key, over the
// network and as the policy's identity (keyhold.KeyReader, a vault's get
// key): the link checks the key before anything changes
// (checkExternalKey), and the rotation pickup follows its current version
// (externalCurrentKID). Functions rather than methods: core and CMK keep
// their method budgets.

// minExternalRSABits is the smallest RSA key a link accepts, as Key
// Vault's RSA keys for customer-managed keys.
const minExternalRSABits = 2048

// externalReader returns the reader of pol's external vault as pol's
// identity; CodeNotSupported if this server reaches no external vault or
// its wrapper can't read keys.
func externalReader(ctx context.Context, p *core, pol *keyhold.EnterprisePolicy) (keyhold.KeyReader, error) {
	r, ok := p.cmk(policyIdentity(pol.PrincipalID, pol.TenantID)).(*routedCMK)
	if !ok || pol.External == nil {
		return nil, keyhold.Errorf(keyhold.CodeNotSupported, "enterprise policy %s names key '%s' of an external key vault, and this server reaches no external vault", pol.ID(), pol.KeyName)
	}
	w, err := r.wrapperFor(ctx, externalKeyID(pol))
	if err != nil {
		return nil, err
	}
	rd, ok := w.(keyhold.KeyReader)
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeNotSupported, "the client of external key vault %s can't read key attributes", pol.External.URI)
	}
	return rd, nil
}

// externalCurrentKID returns the versioned kid of the current version of
// pol's key in its external vault, as the customer's vault answers it
// now. A disabled current version is a revocation (CodeForbidden,
// InnerKeyDisabled): nothing is rotated to it.
func externalCurrentKID(ctx context.Context, p *core, pol *keyhold.EnterprisePolicy) (string, error) {
	rd, err := externalReader(ctx, p, pol)
	if err != nil {
		return "", err
	}
	k, err := rd.ReadKey(ctx, externalKeyID(pol))
	if err != nil {
		return "", err
	}
	if !k.Enabled {
		return "", &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerKeyDisabled,
			Message: "the current version of key " + k.KID + " is disabled: enable it in the customer's vault"}
	}
	return k.KID, nil
}

// checkExternalKey checks, before a link changes anything, what the
// customer's vault answers about pol's key: an RSA key (RSA or RSA-HSM) of
// at least 2048 bits, enabled, allowing wrapKey and unwrapKey, in a vault
// with purge protection (its recovery level names no "Purgeable"). Each
// refusal is CodeBadRequest (CodeForbidden for a disabled key) naming the
// value read and the fix; the vault's own refusals (no grant, no key, no
// answer) come back as the probe's.
func checkExternalKey(ctx context.Context, p *core, pol *keyhold.EnterprisePolicy, keyID string) error {
	rd, err := externalReader(ctx, p, pol)
	if err != nil {
		return err
	}
	k, err := rd.ReadKey(ctx, keyID)
	if err != nil {
		return err
	}
	switch {
	case k.Type != "RSA" && k.Type != "RSA-HSM":
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"key %s in the external key vault is of type '%s': a customer-managed key must be an RSA key (RSA or RSA-HSM) of at least %d bits; create one and name it in the policy",
			keyhold.Clip(k.KID), keyhold.Clip(k.Type), minExternalRSABits)
	case k.Size < minExternalRSABits:
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"key %s in the external key vault is an RSA key of %d bits: a customer-managed key must have at least %d; create a larger one and name it in the policy",
			keyhold.Clip(k.KID), k.Size, minExternalRSABits)
	case !k.Enabled:
		return &keyhold.Error{Code: keyhold.CodeForbidden, Inner: keyhold.InnerKeyDisabled, Message: "key " + keyhold.Clip(k.KID) +
			" in the external key vault is disabled: enable it (or the version the policy names) in the customer's vault, then link again"}
	case len(k.Ops) > 0 && (!slices.Contains(k.Ops, "wrapKey") || !slices.Contains(k.Ops, "unwrapKey")):
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"key %s in the external key vault allows only the operations [%s]: it must allow wrapKey and unwrapKey; update its key_ops in the customer's vault, then link again",
			keyhold.Clip(k.KID), keyhold.Clip(strings.Join(k.Ops, ", ")))
	case k.RecoveryLevel == "" || strings.Contains(k.RecoveryLevel, "Purgeable"):
		level := k.RecoveryLevel
		if level == "" {
			level = "(none given)"
		}
		return keyhold.Errorf(keyhold.CodeBadRequest,
			"the external key vault %s answers recovery level %s for key %s: it must have soft delete and purge protection enabled, so that the key can't be purged while it protects environments; enable purge protection on the vault, then link again",
			keyhold.Clip(pol.External.URI), keyhold.Clip(level), keyhold.Clip(k.KID))
	}
	return nil
}
