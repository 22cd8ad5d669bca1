package platform

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// Locked environments. A policy found Unhealthy locks its environments
// (health.go), and so does its deletion with its resource group
// (lock_policy.go); the data plane's access check (Environments.access, readData) refuses a Locked environment to everyone, the
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

// lockedError is the refusal of a Locked environment's data. It is one
// short line: it names the environment, the policy and the cause's code as
// recorded when the environment was locked, says what to do next as of now
// (restore access, or, once the policy is Healthy again, re-enable), and
// points at the audit log for the key vault's full answer. The vault's own
// message, which can run to hundreds of characters, stays in the audit
// entry.
func lockedError(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	reason := lockReason(env.PolicyID, "")
	if entries, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: env.TenantID, EnvID: env.ID, Limit: 50}); err == nil {
		for _, e := range entries {
			if e.Action == auditEnvLock {
				if _, r, ok := strings.Cut(e.Detail, ": "); ok {
					reason = shortLockReason(r)
				}
				break
			}
		}
	}
	next := "a key vault admin must restore access, then an administrator re-enables it"
	if pol, err := policyByID(ctx, tx, env.PolicyID); err == nil && pol.HealthStatus == keyhold.HealthHealthy {
		next = "access has been restored since: an administrator re-enables it now"
	}
	return keyhold.Errorf(keyhold.CodeEnvironmentLocked,
		"environment %s is locked: %s; %s (keyhold env enable). Details: keyhold audit list --env %s",
		env.ID, reason, next, env.ID)
}

// shortLockReason keeps the code of the key vault's answer in a recorded
// lock reason ("… is not accessible (Code (Inner): message)") and drops its
// message.
func shortLockReason(r string) string {
	const mark = " is not accessible ("
	head, why, ok := strings.Cut(r, mark)
	if !ok {
		return r
	}
	code, _, _ := strings.Cut(strings.TrimSuffix(why, ")"), ": ")
	head = strings.Replace(head, "the customer-managed key of enterprise policy ", "the key of enterprise policy ", 1)
	return head + mark + code + ")"
}
