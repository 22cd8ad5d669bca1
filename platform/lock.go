package platform

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// Locked environments. A policy found Unhealthy locks its environments
// (health.go), and so does its deletion with its resource group
// (lock_policy.go); dataAccess refuses a Locked environment to everyone, the
// platform's own administrators included, with CodeEnvironmentLocked; and
// only EnableEnvironment (enable.go), which proves access by unwrapping the
// environment's key with the customer's key, serves it again.

// lockReason says why an environment of policyID is locked; why is the
// key vault's answer ("Code (Inner): message"), if known.
func lockReason(policyID, why string) string {
	s := "the customer-managed key of enterprise policy " + policyID + " is not accessible"
	if why != "" {
		s += " (" + why + ")"
	}
	return s
}

// lockedError is the refusal of a Locked environment's data: it names the
// policy and the cause recorded when the environment was locked.
func lockedError(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	reason := lockReason(env.PolicyID, "")
	if entries, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: env.TenantID, EnvID: env.ID, Limit: 50}); err == nil {
		for _, e := range entries {
			if e.Action == auditEnvLock {
				if _, r, ok := strings.Cut(e.Detail, ": "); ok {
					reason = r
				}
				break
			}
		}
	}
	return keyhold.Errorf(keyhold.CodeEnvironmentLocked,
		"environment %s is locked: %s; a key vault admin must restore access, then an administrator re-enables the environment",
		env.ID, reason)
}
