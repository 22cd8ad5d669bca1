package platform

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Key-version usage: which versions of a policy's key still wrap
// environment keys, and from when an unused one may be disabled. The spec
// asks that a version stay enabled at least 28 days after its last use, so
// that a database restored from before a rotation still opens.
//
// LastUsedAt comes from a small table (keyhold.CMKTx.TouchKeyVersion) that
// every custody change writes in the transaction that moves an EK off a
// version (rotation, swap, unlink, and the destroy step of a re-key). It is
// exact and costs one upsert per moved key; deriving it from the audit log
// instead would mean scanning a tenant's whole log, whose entries are
// free text, on every request.

// versionRetention says, in tx, how long the key version that wrapped wk
// must stay enabled now that wk moves off it: KeyRetentionAfterRemoval
// (30 days) if its environment is leaving the policy whose identity
// wrapped it, KeyVersionRetention (28 days) otherwise.
//
// The environment is leaving when the operation running on it is an
// unlink or a reset, or a link (a swap) to a policy whose identity is not
// the one that wrapped wk. A rotation (its operation's target is the
// policy), the destroy step of a re-key (wk is the new policy's own) and a
// backup's expiry (no operation) keep the environment on the policy.
func versionRetention(ctx context.Context, tx keyhold.Tx, wk *keyhold.WrappedKey) (time.Duration, error) {
	ops, err := tx.ListOperations(ctx, keyhold.OperationFilter{Target: wk.EnvID, State: keyhold.OperationRunning, Limit: 1})
	if err != nil || len(ops) == 0 {
		return keyhold.KeyVersionRetention, err
	}
	switch op := ops[0]; op.Kind {
	case keyhold.OpUnlink, keyhold.OpReset:
		return keyhold.KeyRetentionAfterRemoval, nil
	case keyhold.OpLink:
		in, err := opInput(op)
		if err != nil {
			return 0, err
		}
		pol, err := tx.PolicyBySystemID(ctx, in.SystemID)
		if keyhold.IsNotFound(err) {
			return keyhold.KeyRetentionAfterRemoval, nil // the safe side
		} else if err != nil {
			return 0, err
		}
		if pol.PrincipalID != wk.PrincipalID {
			return keyhold.KeyRetentionAfterRemoval, nil
		}
	}
	return keyhold.KeyVersionRetention, nil
}

// parsePolicyID splits an enterprise policy's ARM resource id.
func parsePolicyID(id string) (sub, rg, name string, ok bool) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	if len(parts) != 8 || !strings.EqualFold(parts[0], "subscriptions") || !strings.EqualFold(parts[2], "resourceGroups") ||
		!strings.EqualFold(parts[4], "providers") || !strings.EqualFold(parts[5], keyhold.NamespacePowerPlatform) ||
		!strings.EqualFold(parts[6], "enterprisePolicies") || parts[1] == "" || parts[3] == "" || parts[7] == "" {
		return "", "", "", false
	}
	return parts[1], parts[3], parts[7], true
}

// KeyVersionUsage reports, for each version of the key that the policy
// (its ARM resource id) names, oldest first: how many environment keys it
// wraps now, across every policy that names the key; when the last one
// moved off it; and from when it is safe to disable (LastUsedAt + 28 days,
// or + 30 days if an environment was removed from its policy while on it:
// versionRetention; for a version that never wrapped an environment key
// and is not current, its creation time: safe now); then, while they are
// kept, the legacy BYOK keys that environments now under the policy
// migrated from (RetainedBYOK set). The caller must be a platform
// administrator with Reader on the policy (CodeForbidden). An unknown
// policy is CodeNotFound, a malformed id CodeBadRequest, and a policy
// whose key is gone CodeKeyNotFound.
func (p *CMK) KeyVersionUsage(ctx context.Context, policyID string) ([]*keyhold.KeyVersionUsage, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if p.ops == nil {
		return nil, errCMKOff
	}
	sub, rg, name, ok := parsePolicyID(policyID)
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeBadRequest,
			"%q is not an enterprise policy id: use /subscriptions/{subscriptionId}/resourceGroups/{group}/providers/Microsoft.PowerPlatform/enterprisePolicies/{name}", policyID)
	}
	var out []*keyhold.KeyVersionUsage
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if err := requireAdmin(ctx, tx, id); err != nil {
			return err
		}
		pol, err := tx.Policy(ctx, sub, rg, name)
		if keyhold.IsNotFound(err) || (err == nil && !strings.EqualFold(pol.TenantID, id.TenantID)) {
			return keyhold.Errorf(keyhold.CodeNotFound, "enterprise policy %s was not found in tenant %s", policyID, id.TenantID)
		} else if err != nil {
			return err
		}
		if err := requireReader(ctx, tx, id, pol); err != nil {
			return err
		}
		vaultName := vaultNameOf(pol)
		k, err := policyKeyRecord(ctx, tx, pol)
		if keyhold.IsNotFound(err) {
			return keyhold.Errorf(keyhold.CodeKeyNotFound, "key %s of vault %s, which enterprise policy %s names, was not found", pol.KeyName, vaultName, pol.ID())
		} else if err != nil {
			return err
		}
		versions, err := policyKeyVersions(ctx, tx, pol, k)
		if err != nil {
			return err
		}
		uses, err := tx.KeyVersionUses(ctx, k.VaultName, k.Name)
		if err != nil {
			return err
		}
		lastUse := map[string]*keyhold.KeyVersionUse{}
		for _, u := range uses {
			lastUse[strings.ToLower(u.Version)] = u
		}
		live, err := liveKeysByVersion(ctx, tx, pol)
		if err != nil {
			return err
		}
		for _, kv := range versions {
			v := strings.ToLower(kv.Version)
			u := &keyhold.KeyVersionUsage{KeyID: keyIDOf(p.kv, p.hsm, pol, k.VaultName, k.Name, kv.Version), Version: kv.Version,
				Current: strings.EqualFold(kv.Version, k.CurrentVersion), LiveKeys: live[v]}
			if u.LiveKeys == 0 {
				if lu := lastUse[v]; lu != nil {
					u.LastUsedAt = lu.LastUsedAt
				}
			}
			if !u.Current && u.LiveKeys == 0 && u.Backups == 0 {
				u.SafeToDisableAt = kv.CreatedAt
				if !u.LastUsedAt.IsZero() {
					u.SafeToDisableAt = u.LastUsedAt.Add(keyhold.KeyVersionRetention)
					if lu := lastUse[v]; lu.RetainUntil.After(u.SafeToDisableAt) {
						u.SafeToDisableAt = lu.RetainUntil
					}
				}
			}
			out = append(out, u)
		}
		// The legacy BYOK keys its environments migrated from, while kept
		// (byok_retained.go).
		byok, err := retainedBYOKUsage(ctx, tx, p.rec, pol)
		out = append(out, byok...)
		return err
	})
	return out, err
}

// liveKeysByVersion counts the environment keys wrapped under each version
// (lower case) of pol's key, by every policy that names that key.
func liveKeysByVersion(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy) (map[string]int, error) {
	pols, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{KeyVaultID: pol.KeyVaultID, KeyName: pol.KeyName})
	if err != nil {
		return nil, err
	}
	vaultName := vaultNameOf(pol)
	live := map[string]int{}
	seen := map[string]bool{}
	for _, o := range pols {
		if o.PrincipalID == "" || seen[o.PrincipalID] {
			continue
		}
		seen[o.PrincipalID] = true
		f := keyhold.WrappedKeyFilter{PrincipalID: o.PrincipalID, Root: keyhold.RootCMK, Limit: 10000}
		for {
			page, err := tx.ListWrappedKeys(ctx, f)
			if err != nil {
				return nil, err
			}
			for _, wk := range page {
				if k, err := keyhold.ParseKeyID(wk.KeyID); err == nil && strings.EqualFold(k.Vault, vaultName) && strings.EqualFold(k.Name, pol.KeyName) {
					live[strings.ToLower(k.Version)]++
				}
			}
			if len(page) < f.Limit {
				break
			}
			last := page[len(page)-1]
			f.AfterEnvID, f.AfterEpoch = last.EnvID, last.Epoch
		}
	}
	return live, nil
}
