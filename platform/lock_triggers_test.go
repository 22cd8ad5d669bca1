package platform

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/policy"
)

// Lock triggers 3 (the key deleted) and 5 (the enterprise policy deleted
// with its resource group), and re-enabling after each: by recovering the
// key, and by redeploying the policy, which gets a new managed identity.

// TestLockKeyDeleted: deleting the policy's key (a soft delete) locks the
// environment; the key can't be purged (purge protection), so it stays
// recoverable; recovering it makes the policy Healthy but unlocks nothing
// until an administrator re-enables the environment, and then every row
// and file reads back.
func TestLockKeyDeleted(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "keydel")
		f.health(t, w.pol, keyhold.HealthHealthy)
		if _, err := f.kv.DeleteKey(f.ctx, w.v.Name, w.key); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		f.requireLocked(t, w, keyhold.CodeKeyNotFound)
		if got := f.auditActions(t, w.env.ID); got[len(got)-1] != auditEnvLock {
			t.Errorf("audit ends %v, want %s", got, auditEnvLock)
		}
		lockedAt := f.env(t, w.env.ID).LockedAt
		if !lockedAt.Equal(f.clock.Now()) {
			t.Errorf("LockedAt %v, want now (%v): the deletion countdown starts at the lock", lockedAt, f.clock.Now())
		}

		// Still deleted: the re-enable is refused and changes nothing.
		wks := f.wrapped(t, w.env.ID)
		audits := len(f.auditActions(t, w.env.ID))
		err := f.p.EnableEnvironment(f.ctx, w.env.ID)
		if keyhold.ErrorCode(err) != keyhold.CodeKeyNotFound || !strings.Contains(keyhold.ErrorMessage(err), "stays locked") {
			t.Fatalf("EnableEnvironment with the key deleted: %v, want KeyNotFound, stays locked", err)
		}
		f.requireLocked(t, w, keyhold.CodeKeyNotFound)
		f.requireSameKeys(t, w.env.ID, wks)
		if n := len(f.auditActions(t, w.env.ID)); n != audits {
			t.Errorf("the refused re-enable wrote %d audit entries", n-audits)
		}

		// Purge protection: the deleted key can't be purged, so it stays
		// recoverable.
		err = f.kv.PurgeDeletedKey(f.ctx, w.v.Name, w.key)
		if keyhold.ErrorCode(err) != keyhold.CodeForbidden || !strings.Contains(keyhold.ErrorMessage(err), "purge protection") {
			t.Fatalf("PurgeDeletedKey under purge protection: %v, want Forbidden naming purge protection", err)
		}
		if _, err := f.kv.GetDeletedKey(f.ctx, w.v.Name, w.key); err != nil {
			t.Fatalf("the deleted key after the refused purge: %v", err)
		}

		if _, err := f.kv.RecoverDeletedKey(f.ctx, w.v.Name, w.key); err != nil {
			t.Fatalf("RecoverDeletedKey: %v", err)
		}
		f.health(t, w.pol, keyhold.HealthHealthy)
		f.requireLocked(t, w, keyhold.CodeKeyNotFound) // recovery unlocks nothing by itself
		if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
			t.Fatalf("EnableEnvironment after the key's recovery: %v", err)
		}
		if e := f.env(t, w.env.ID); e.State != keyhold.StateEnabled || !e.LockedAt.IsZero() {
			t.Fatalf("after enable: state %s, LockedAt %v; want Enabled and no lock time", e.State, e.LockedAt)
		}
		f.requireSameKeys(t, w.env.ID, wks)
		f.check(t, w.env.ID, w.data)
	})
}

// requireSameKeys fails unless an environment's wrapped keys are exactly
// want (identity, kid and ciphertext).
func (f *cmkFixture) requireSameKeys(t testing.TB, envID string, want []*keyhold.WrappedKey) {
	t.Helper()
	got := f.wrapped(t, envID)
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = got[i].Epoch == want[i].Epoch && got[i].Root == want[i].Root && got[i].KeyID == want[i].KeyID &&
			got[i].PrincipalID == want[i].PrincipalID && bytes.Equal(got[i].Ciphertext, want[i].Ciphertext)
	}
	if !same {
		t.Fatalf("wrapped keys of environment %s changed:\nwas %v\nnow %v", envID, describeKeys(want), describeKeys(got))
	}
}

// policyRG is the resource group of the policies that the trigger 5 tests
// deploy and delete; the key vault stays in cmkRG.
const policyRG = "rg-policy"

// policyWorld is the customer's side of trigger 5: the policy service, as
// the server wires it (locking through the platform), and a vault holding
// the environments' key and another.
type policyWorld struct {
	f  *cmkFixture
	ps *policy.Service
	v  *keyhold.Vault
}

func (f *cmkFixture) policyWorld(t *testing.T) *policyWorld {
	t.Helper()
	ps := policy.New(policy.Config{Store: f.store, Clock: f.clock, ARM: f.arm, Vaults: f.kv, LockLinked: f.p.LockLinkedTx})
	ps.RegisterDeleter()
	if _, err := f.arm.RegisterProvider(f.ctx, f.sub, keyhold.NamespacePowerPlatform); err != nil {
		t.Fatalf("register Microsoft.PowerPlatform: %v", err)
	}
	w := &policyWorld{f: f, ps: ps, v: f.newVault(t, "kv-rgdel", true)}
	f.newKey(t, w.v, "k")
	f.newKey(t, w.v, "other")
	return w
}

// deploy creates the resource group if needed and deploys the policy
// "pol-rgdel" in it naming key, as the admin.
func (w *policyWorld) deploy(t *testing.T, key string) *keyhold.EnterprisePolicy {
	t.Helper()
	f := w.f
	if _, err := f.arm.PutResourceGroup(f.ctx, &keyhold.ResourceGroup{SubscriptionID: f.sub, Name: policyRG, Location: cmkLocation}); err != nil {
		t.Fatalf("resource group: %v", err)
	}
	pol, created, err := w.ps.Put(f.ctx, f.sub, policyRG, "pol-rgdel", keyhold.PolicySpec{Location: cmkLocation, Kind: keyhold.PolicyKindEncryption,
		IdentityType: keyhold.PolicyIdentitySystemAssigned, KeyVaultID: w.v.ID(), KeyName: key})
	if err != nil || !created {
		t.Fatalf("deploying the policy: created=%v err=%v", created, err)
	}
	return pol
}

// deleteGroup deletes the policy's resource group as the admin.
func (w *policyWorld) deleteGroup(t *testing.T) {
	t.Helper()
	if err := w.f.arm.DeleteResourceGroup(w.f.ctx, w.f.sub, policyRG); err != nil {
		t.Fatalf("DeleteResourceGroup: %v", err)
	}
}

// lockEntry returns the newest environment.lock audit entry of an
// environment.
func (f *cmkFixture) lockEntry(t testing.TB, envID string) *keyhold.AuditEntry {
	t.Helper()
	es, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: envID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Action == auditEnvLock {
			return e
		}
	}
	t.Fatalf("environment %s has no %s audit entry", envID, auditEnvLock)
	return nil
}

// TestLockPolicyDeleted: deleting the resource group that holds an
// enterprise policy deletes the policy and its managed identity, and locks
// every environment linked to it in the same transaction (audited, naming
// the policy and who deleted it; the countdown starts; cached keys
// dropped), while a Reader of the policy can't delete it. Redeploying
// the policy (a new systemId and identity) restores nothing until its
// identity is granted the ORIGINAL key: a policy naming another key is
// refused even where its identity could use the original key, and an
// identity without access is refused; each refusal changes nothing. Then
// an administrator with Reader on the new policy re-enables each
// environment, which moves its wrapped keys to the new identity in the same
// transaction, and every row and file reads back; the environment is then
// fully in the new policy's hands (health probes its key, unlink works).
func TestLockPolicyDeleted(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		pw := f.policyWorld(t)
		pol := pw.deploy(t, "k")
		f.grantKey(t, pol, pw.v, "k")
		admin, adminID := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
		f.grant(t, adminID, keyhold.RoleReader, pol.ID())

		env1, env2 := f.managedEnv(t, "env-rgdel-1"), f.managedEnv(t, "env-rgdel-2")
		for _, e := range []*keyhold.Environment{env1, env2} {
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e.ID, pol.SystemID) })
		}
		data1 := f.fill(t, env1.ID, 6, 2*ChunkSize+17, 5)
		data2 := f.fill(t, env2.ID, 3, 100)
		f.check(t, env1.ID, data1)
		f.check(t, env2.ID, data2)
		f.health(t, pol, keyhold.HealthHealthy)
		wks1, wks2 := f.wrapped(t, env1.ID), f.wrapped(t, env2.ID)
		env1 = f.env(t, env1.ID)
		// The lock time below is not the link's; then fill the key cache.
		f.clock.Advance(time.Hour)
		if _, err := f.p.GetRow(f.ctx, env1.ID, "accounts", "r0000"); err != nil {
			t.Fatal(err)
		}
		if !f.p.cache.Contains(cacheID(env1.ID, env1.Epoch)) {
			t.Fatal("the environment's key is not cached after a read")
		}

		// The platform admin, a Reader of the policy without its delete
		// right, can't delete it (TestLockPolicyDeletedDirectly has the
		// key vault admin's DELETE).
		err := pw.ps.Delete(admin, f.sub, policyRG, pol.Name)
		if keyhold.ErrorCode(err) != keyhold.CodeAuthorizationFailed {
			t.Fatalf("DELETE of the linked policy by a Reader: %v, want AuthorizationFailed", err)
		}
		if s := f.env(t, env1.ID).State; s != keyhold.StateEnabled {
			t.Fatalf("environment %s after the refused DELETE", s)
		}

		// Delete its resource group, as the vault and resource admin.
		lockedAt := f.clock.Now().UTC()
		pw.deleteGroup(t)
		for _, e := range []*keyhold.Environment{env1, env2} {
			got := f.env(t, e.ID)
			if got.State != keyhold.StateLocked || !got.LockedAt.Equal(lockedAt) || got.PolicyID != pol.ID() || got.PolicySystemID != pol.SystemID {
				t.Fatalf("environment after the group's deletion: state %s, LockedAt %v, policy %s (%s); want Locked at %v, still naming the policy",
					got.State, got.LockedAt, got.PolicyID, got.PolicySystemID, lockedAt)
			}
			if d := f.p.LockDeadline(got); !d.Equal(lockedAt.Add(DefaultLockGraceProduction)) {
				t.Errorf("deletion deadline %v, want %v", d, lockedAt.Add(DefaultLockGraceProduction))
			}
			entry := f.lockEntry(t, e.ID)
			for _, want := range []string{"Enabled -> Locked: ", pol.ID(), "deleted with its resource group " + policyRG, f.adminID()} {
				if !strings.Contains(entry.Detail, want) {
					t.Errorf("lock audit detail %q lacks %q", entry.Detail, want)
				}
			}
			if entry.ActorID != f.adminID() {
				t.Errorf("lock audited as %s, want the deleting admin %s", entry.ActorID, f.adminID())
			}
		}
		w1 := &lockWorld{pol: pol, env: env1}
		f.requireLocked(t, w1, "deleted with its resource group")
		if f.p.cache.Contains(cacheID(env1.ID, env1.Epoch)) {
			t.Error("the locked environment's key is still cached")
		}
		f.requireSameKeys(t, env1.ID, wks1)
		f.requireSameKeys(t, env2.ID, wks2)
		// The policy, its identity and the identity's role assignments are gone.
		if _, err := pw.ps.Get(f.ctx, f.sub, policyRG, pol.Name); keyhold.ErrorCode(err) != keyhold.CodeResourceGroupNotFound && keyhold.ErrorCode(err) != keyhold.CodeResourceNotFound {
			t.Fatalf("Get of the deleted policy: %v", err)
		}
		if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
			if _, err := tx.Principal(context.Background(), pol.PrincipalID); keyhold.ErrorCode(err) != keyhold.CodeNotFound {
				t.Errorf("the policy's identity: %v, want gone", err)
			}
			as, err := tx.ListRoleAssignments(context.Background(), keyhold.RoleAssignmentFilter{TenantID: pol.TenantID, PrincipalID: pol.PrincipalID})
			if len(as) != 0 {
				t.Errorf("the deleted identity kept role assignments: %+v", as)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		err = f.p.EnableEnvironment(f.ctx, env1.ID)
		if keyhold.ErrorCode(err) != keyhold.CodeNotFound || !strings.Contains(keyhold.ErrorMessage(err), "redeploy") {
			t.Fatalf("EnableEnvironment with the policy gone: %v, want NotFound saying to redeploy it", err)
		}

		// refused re-enables one after another, each changing nothing.
		refused := func(ctx context.Context, what, code string, hints ...string) {
			t.Helper()
			audits := len(f.auditActions(t, env1.ID))
			err := f.p.EnableEnvironment(ctx, env1.ID)
			if keyhold.ErrorCode(err) != code {
				t.Fatalf("EnableEnvironment %s: %v, want %s", what, err, code)
			}
			for _, h := range hints {
				if !strings.Contains(keyhold.ErrorMessage(err), h) {
					t.Errorf("EnableEnvironment %s: message %q lacks %q", what, keyhold.ErrorMessage(err), h)
				}
			}
			got := f.env(t, env1.ID)
			if got.State != keyhold.StateLocked || got.PolicySystemID != pol.SystemID || !got.LockedAt.Equal(lockedAt) {
				t.Fatalf("EnableEnvironment %s changed the environment: %+v", what, got)
			}
			f.requireSameKeys(t, env1.ID, wks1)
			if n := len(f.auditActions(t, env1.ID)); n != audits {
				t.Fatalf("EnableEnvironment %s wrote %d audit entries", what, n-audits)
			}
		}

		// Redeployed naming another key: refused, even with its identity
		// granted the original key too.
		other := pw.deploy(t, "other")
		if other.PrincipalID == pol.PrincipalID || other.SystemID == pol.SystemID {
			t.Fatalf("the redeployed policy kept identity %s / systemId %s", other.PrincipalID, other.SystemID)
		}
		f.grantKey(t, other, pw.v, "other")
		f.grantKey(t, other, pw.v, "k")
		refused(f.ctx, "with the policy naming another key", keyhold.CodeConflict, "stays locked", "'other'", "'k'", "only that key material")

		// The customer deletes it again and redeploys it right: the
		// environments, already Locked, keep their countdown.
		f.clock.Advance(time.Hour)
		pw.deleteGroup(t)
		if got := f.env(t, env1.ID); got.State != keyhold.StateLocked || !got.LockedAt.Equal(lockedAt) {
			t.Fatalf("a second deletion: state %s, LockedAt %v; want Locked since %v", got.State, got.LockedAt, lockedAt)
		}
		if e := f.lockEntry(t, env1.ID); !strings.HasPrefix(e.Detail, "still Locked: ") || !strings.Contains(e.Detail, other.PrincipalID) {
			t.Errorf("lock audit of the second deletion %q", e.Detail)
		}
		pol2 := pw.deploy(t, "k")
		if pol2.ID() != pol.ID() || pol2.PrincipalID == pol.PrincipalID || pol2.SystemID == pol.SystemID {
			t.Fatalf("redeployed policy %s, identity %s, systemId %s", pol2.ID(), pol2.PrincipalID, pol2.SystemID)
		}
		refused(f.ctx, "before the new identity is granted the key", keyhold.CodeForbidden, "stays locked", pol2.PrincipalID)
		f.grantKey(t, pol2, pw.v, "k")
		refused(admin, "by an administrator without Reader on the new policy", keyhold.CodeForbidden, "Reader")
		f.grant(t, adminID, keyhold.RoleReader, pol2.ID())
		f.health(t, pol2, keyhold.HealthHealthy)
		f.requireLocked(t, w1, "deleted with its resource group") // restored access unlocks nothing by itself

		op, err := f.p.EnableEnvironmentOp(admin, env1.ID)
		if err != nil || op.Kind != OpEnable || op.State != keyhold.OperationSucceeded {
			t.Fatalf("EnableEnvironmentOp: %+v, %v", op, err)
		}
		got := f.env(t, env1.ID)
		if got.State != keyhold.StateEnabled || !got.LockedAt.IsZero() || got.PolicyID != pol2.ID() || got.PolicySystemID != pol2.SystemID {
			t.Fatalf("after enable: %+v; want Enabled, no lock time, on the new policy's systemId %s", got, pol2.SystemID)
		}
		moved := f.wrapped(t, env1.ID)
		if len(moved) != len(wks1) {
			t.Fatalf("wrapped keys %v, were %v", describeKeys(moved), describeKeys(wks1))
		}
		for i, wk := range moved {
			if wk.PrincipalID != pol2.PrincipalID || wk.KeyID != wks1[i].KeyID || !bytes.Equal(wk.Ciphertext, wks1[i].Ciphertext) {
				t.Fatalf("wrapped key %v after enable, want %v with identity %s", describeKeys(moved), describeKeys(wks1), pol2.PrincipalID)
			}
		}
		actions := f.auditActions(t, env1.ID)
		if n := len(actions); n < 2 || !slices.Equal(actions[n-2:], []string{auditEnvPolicyRecreated, auditEnvEnable}) {
			t.Fatalf("audit ends %v, want %s, %s", actions, auditEnvPolicyRecreated, auditEnvEnable)
		}
		es, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: env1.ID, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es[:2] {
			if e.ActorID != adminID {
				t.Errorf("%s audited as %s, want the re-enabling admin %s", e.Action, e.ActorID, adminID)
			}
			if e.Action == auditEnvPolicyRecreated {
				for _, want := range []string{pol.SystemID, pol2.SystemID, pol.PrincipalID, pol2.PrincipalID} {
					if !strings.Contains(e.Detail, want) {
						t.Errorf("%s detail %q lacks %q", e.Action, e.Detail, want)
					}
				}
			}
		}
		f.check(t, env1.ID, data1)

		// The second environment is re-enabled on its own.
		f.requireLocked(t, &lockWorld{pol: pol, env: env2}, "deleted with its resource group")
		if err := f.p.EnableEnvironment(f.ctx, env2.ID); err != nil {
			t.Fatalf("EnableEnvironment of the second environment: %v", err)
		}
		f.check(t, env2.ID, data2)

		// Fully in the new policy's hands: its health probe covers the
		// environments' key version, and unlinking rewraps as its identity.
		f.health(t, pol2, keyhold.HealthHealthy)
		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(f.ctx, env1.ID, pol2.SystemID) })
		f.check(t, env1.ID, data1)
	})
}

// TestCountdownRecreatedPolicy: after its policy was deleted with its
// resource group, a locked environment's countdown holds only while the
// policy at its resource id could unlock it: one redeployed naming another
// key is Healthy on that key, which says nothing of this environment's, so
// the countdown runs on and deletes it on time; one redeployed naming the
// original key, granted, holds it.
func TestCountdownRecreatedPolicy(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		pw := f.policyWorld(t)
		pol := pw.deploy(t, "k")
		f.grantKey(t, pol, pw.v, "k")
		env := f.managedEnv(t, "env-rgcd") // Production: 28 days
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		f.fill(t, env.ID, 2, 10)
		pw.deleteGroup(t)
		if s := f.env(t, env.ID).State; s != keyhold.StateLocked {
			t.Fatalf("after the group's deletion the environment is %s, want Locked", s)
		}
		other := pw.deploy(t, "other")
		f.grantKey(t, other, pw.v, "other")
		f.health(t, other, keyhold.HealthHealthy)
		f.clock.Advance(DefaultLockGraceProduction + time.Minute)
		if n, err := f.p.RunLockCountdown(context.Background()); err != nil || n != 1 {
			t.Fatalf("RunLockCountdown with a recreated policy on another key = %d, %v; want the environment deleted", n, err)
		}

		env2 := f.managedEnv(t, "env-rgcd-2")
		pw.deleteGroup(t)
		pol = pw.deploy(t, "k")
		f.grantKey(t, pol, pw.v, "k")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env2.ID, pol.SystemID) })
		pw.deleteGroup(t)
		same := pw.deploy(t, "k")
		f.grantKey(t, same, pw.v, "k")
		f.health(t, same, keyhold.HealthHealthy)
		f.clock.Advance(DefaultLockGraceProduction + time.Minute)
		if n, err := f.p.RunLockCountdown(context.Background()); err != nil || n != 0 {
			t.Fatalf("RunLockCountdown with the policy redeployed on the original key = %d, %v; want the countdown held", n, err)
		}
		if s := f.env(t, env2.ID).State; s != keyhold.StateLocked {
			t.Errorf("held environment is %s, want Locked until re-enabled", s)
		}
	})
}
