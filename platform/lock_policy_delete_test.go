package platform

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestLockPolicyDeletedDirectly: "Delete the enterprise policy" is one of
// the spec's ways to revoke key access (001). A DELETE of a linked policy
// by a principal without its delete right (the platform admin, Reader of
// the policy) is refused and changes nothing; by the key vault admin, who
// holds the delete right, it deletes the policy and its identity and locks
// every linked environment in the same transaction, as a deletion of its
// resource group does: audited as the deleter, the countdown started, the
// cached key dropped, the wrapped keys kept, and data refused to everyone.
func TestLockPolicyDeletedDirectly(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		pw := f.policyWorld(t)
		pol := pw.deploy(t, "k")
		f.grantKey(t, pol, pw.v, "k")
		admin, adminID := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
		f.grant(t, adminID, keyhold.RoleReader, pol.ID())
		env1, env2 := f.managedEnv(t, "env-poldel-1"), f.managedEnv(t, "env-poldel-2")
		for _, e := range []*keyhold.Environment{env1, env2} {
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e.ID, pol.SystemID) })
		}
		data1 := f.fill(t, env1.ID, 4, 100)
		f.check(t, env1.ID, data1)
		wks1, wks2 := f.wrapped(t, env1.ID), f.wrapped(t, env2.ID)
		env1 = f.env(t, env1.ID)
		f.clock.Advance(time.Hour)
		if _, err := f.p.GetRow(f.ctx, env1.ID, "accounts", "r0000"); err != nil {
			t.Fatal(err)
		}

		// policyAudits counts the policy's delete entries.
		policyAudits := func() int {
			t.Helper()
			es, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			return len(slices.DeleteFunc(es, func(e *keyhold.AuditEntry) bool {
				return e.Action != "enterprisePolicy.delete" || e.Target != pol.ID()
			}))
		}
		audits1 := len(f.auditActions(t, env1.ID))
		err := pw.ps.Delete(admin, f.sub, policyRG, pol.Name)
		if keyhold.ErrorCode(err) != keyhold.CodeAuthorizationFailed || !strings.Contains(keyhold.ErrorMessage(err), "enterprisePolicies/delete") {
			t.Fatalf("DELETE of the linked policy by a Reader: %v, want AuthorizationFailed naming the delete action", err)
		}
		for _, e := range []*keyhold.Environment{env1, env2} {
			if got := f.env(t, e.ID); got.State != keyhold.StateEnabled || !got.LockedAt.IsZero() {
				t.Fatalf("environment after the refused DELETE: %s, LockedAt %v; want Enabled", got.State, got.LockedAt)
			}
		}
		if n := len(f.auditActions(t, env1.ID)); n != audits1 || policyAudits() != 0 {
			t.Fatalf("the refused DELETE audited: %d environment entries (was %d), %d policy deletions", n, audits1, policyAudits())
		}
		if _, err := pw.ps.Get(f.ctx, f.sub, policyRG, pol.Name); err != nil {
			t.Fatalf("the policy after the refused DELETE: %v", err)
		}
		f.check(t, env1.ID, data1)

		if n, err := pw.ps.LinkedEnvironments(f.ctx, f.sub, policyRG, pol.Name); err != nil || n != 2 {
			t.Fatalf("LinkedEnvironments = %d, %v; want 2", n, err)
		}
		lockedAt := f.clock.Now().UTC()
		if err := pw.ps.Delete(f.ctx, f.sub, policyRG, pol.Name); err != nil {
			t.Fatalf("DELETE of the linked policy by the key vault admin: %v", err)
		}
		for _, e := range []*keyhold.Environment{env1, env2} {
			got := f.env(t, e.ID)
			if got.State != keyhold.StateLocked || !got.LockedAt.Equal(lockedAt) || got.PolicyID != pol.ID() {
				t.Fatalf("environment after the policy's deletion: %s, LockedAt %v, policy %s; want Locked at %v, still naming it",
					got.State, got.LockedAt, got.PolicyID, lockedAt)
			}
			entry := f.lockEntry(t, e.ID)
			for _, want := range []string{"Enabled -> Locked: ", pol.ID() + " was deleted by", f.adminID()} {
				if !strings.Contains(entry.Detail, want) {
					t.Errorf("lock audit detail %q lacks %q", entry.Detail, want)
				}
			}
			if entry.ActorID != f.adminID() {
				t.Errorf("lock audited as %s, want the deleting admin %s", entry.ActorID, f.adminID())
			}
		}
		f.requireLocked(t, &lockWorld{pol: pol, env: env1}, "was deleted by")
		if f.p.cache.Contains(cacheID(env1.ID, env1.Epoch)) {
			t.Error("the locked environment's key is still cached")
		}
		f.requireSameKeys(t, env1.ID, wks1)
		f.requireSameKeys(t, env2.ID, wks2)
		if policyAudits() != 1 {
			t.Errorf("%d audited deletions of the policy, want 1", policyAudits())
		}
		if _, err := pw.ps.Get(f.ctx, f.sub, policyRG, pol.Name); keyhold.ErrorCode(err) != keyhold.CodeResourceNotFound {
			t.Fatalf("Get of the deleted policy: %v, want ResourceNotFound", err)
		}
		if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
			if _, err := tx.Principal(context.Background(), pol.PrincipalID); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
				t.Errorf("the policy's identity: %v, want gone", err)
			}
			as, err := tx.ListRoleAssignments(context.Background(), keyhold.RoleAssignmentFilter{TenantID: pol.TenantID, PrincipalID: pol.PrincipalID})
			if len(as) != 0 {
				t.Errorf("the deleted identity kept its role assignments: %+v", as)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	})
}
