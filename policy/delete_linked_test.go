package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
)

// envState reads an environment's state straight from the store.
func (f *fixture) envState(t testing.TB, id string) keyhold.RuntimeState {
	t.Helper()
	var s keyhold.RuntimeState
	f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, id)
		if err == nil {
			s = e.State
		}
		return err
	})
	return s
}

// groupExists says whether the resource group rg is still there.
func (f *fixture) groupExists(t testing.TB, rg string) bool {
	t.Helper()
	var ok bool
	f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
		_, err := tx.ResourceGroup(ctx, f.sub, rg)
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			return nil
		}
		ok = err == nil
		return err
	})
	return ok
}

// withHook returns a resource manager whose group deletion goes through a
// policy Service over f's store with lock as its Config.LockLinked (f's
// own Service, registered without one, is left out).
func (f *fixture) withHook(lock func(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, actor *keyhold.Identity, why string) (func(), error)) (*arm.Service, *Service) {
	a := arm.New(arm.Config{Store: f.store, Clock: f.clock})
	s := New(Config{Store: f.store, Clock: f.clock, ARM: a, LockLinked: lock})
	s.RegisterDeleter()
	return a, s
}

// TestDeleteLinkedPolicyGroup: deleting the resource group of a policy
// that an environment is linked to is refused, changing nothing, without
// Config.LockLinked, and when the hook fails; with it, the hook runs in
// the deleting transaction (it sees the policy, and its writes commit or
// roll back with the deletion), its after function runs once the deletion
// has committed, and the policy and its identity are gone.
func TestDeleteLinkedPolicyGroup(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		p := f.put(t, "p1", f.spec())
		f.linkEnv(t, "env-1", "Contoso Sales", p)
		mi := &keyhold.Identity{TenantID: f.tenant, PrincipalID: p.PrincipalID, Type: keyhold.PrincipalManagedIdentity}
		f.grant(t, f.vaultID("contoso-kv"), keyhold.RoleKeyVaultCryptoServiceEncryptUser, mi)
		// lockEnv is what a hook does: lock the linked environment in tx.
		lockEnv := func(ctx context.Context, tx keyhold.Tx) error {
			e, err := tx.Environment(ctx, "env-1")
			if err != nil {
				return err
			}
			e.State = keyhold.StateLocked
			return tx.UpdateEnvironment(ctx, e)
		}

		t.Run("without the hook", func(t *testing.T) {
			before := f.snapshot(t)
			wantErr(t, f.arm.DeleteResourceGroup(as(f.admin), f.sub, "rg"), keyhold.CodeConflict,
				"deleted with its resource group", "env-1 (Contoso Sales)", "unlink")
			f.unchanged(t, "the refused group deletion", before)
			if s := f.envState(t, "env-1"); s != keyhold.StateEnabled {
				t.Fatalf("environment %s after the refusal, want Enabled", s)
			}
			if !f.groupExists(t, "rg") {
				t.Fatal("the resource group is gone after the refusal")
			}
		})

		t.Run("hook fails", func(t *testing.T) {
			before := f.snapshot(t)
			boom := keyhold.Errorf(keyhold.CodeConflict, "injected: the environments can't be locked")
			a, _ := f.withHook(func(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, actor *keyhold.Identity, why string) (func(), error) {
				if err := lockEnv(ctx, tx); err != nil {
					return nil, err
				}
				return func() { t.Error("after ran for a failed deletion") }, boom
			})
			if err := a.DeleteResourceGroup(as(f.admin), f.sub, "rg"); !errors.Is(err, boom) {
				t.Fatalf("DeleteResourceGroup with a failing hook: %v, want the hook's error", err)
			}
			f.unchanged(t, "the group deletion whose hook failed", before)
			if s := f.envState(t, "env-1"); s != keyhold.StateEnabled {
				t.Fatalf("environment %s after the failed deletion, want Enabled: the hook's write must roll back", s)
			}
			if !f.groupExists(t, "rg") {
				t.Fatal("the resource group is gone after the failed deletion")
			}
		})

		t.Run("with the hook", func(t *testing.T) {
			var calls, afters int
			a, _ := f.withHook(func(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, actor *keyhold.Identity, why string) (func(), error) {
				calls++
				if pol.ID() != p.ID() || pol.PrincipalID != p.PrincipalID || actor.PrincipalID != f.admin.PrincipalID || why != "deleted with its resource group rg" {
					t.Errorf("hook called with policy %s (identity %s), actor %s, why %q", pol.ID(), pol.PrincipalID, actor.PrincipalID, why)
				}
				if _, err := tx.Policy(ctx, f.sub, "rg", "p1"); err != nil {
					t.Errorf("the hook does not see the policy in its transaction: %v", err)
				}
				if err := lockEnv(ctx, tx); err != nil {
					return nil, err
				}
				return func() {
					afters++
					f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
						if _, err := tx.Policy(ctx, f.sub, "rg", "p1"); keyhold.ErrorCode(err) != keyhold.CodeResourceNotFound {
							t.Errorf("after ran before the deletion committed: the policy reads %v", err)
						}
						return nil
					})
				}, nil
			})
			if err := a.DeleteResourceGroup(as(f.admin), f.sub, "rg"); err != nil {
				t.Fatalf("DeleteResourceGroup with the hook: %v", err)
			}
			if calls != 1 || afters != 1 {
				t.Fatalf("hook called %d times and after %d times, want once each", calls, afters)
			}
			if st := f.envState(t, "env-1"); st != keyhold.StateLocked {
				t.Fatalf("environment %s, want Locked by the hook", st)
			}
			if snap := f.snapshot(t); len(snap.policies) != 0 || slices.Contains(snap.identities, p.PrincipalID) {
				t.Fatalf("after the group's deletion: %+v", snap)
			}
			var detail string
			f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
				as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: f.tenant, PrincipalID: p.PrincipalID})
				if len(as) != 0 {
					t.Errorf("the deleted identity kept its role assignments: %+v", as)
				}
				es, err2 := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: f.tenant, Limit: 1000})
				for _, e := range es {
					if e.Action == "enterprisePolicy.delete" && e.Target == p.ID() {
						detail = e.Detail
					}
				}
				return errors.Join(err, err2)
			})
			if !strings.Contains(detail, "env-1") || !strings.Contains(detail, "locked") {
				t.Fatalf("enterprisePolicy.delete detail %q does not name the locked environment", detail)
			}
			if f.groupExists(t, "rg") {
				t.Fatal("the resource group is still there")
			}
		})
	})
}

// TestDeleteLinkedPolicy: a DELETE of a policy that an environment is
// linked to, with Config.LockLinked, is one of the spec's revocations. A
// principal without the policy's delete right (a Reader) is refused before
// the hook runs, changing nothing, and can still count the linked
// environments; a failing hook aborts the deletion, changing nothing; the
// key vault admin's DELETE calls the hook once in the deleting transaction
// with why "deleted", runs its after function once committed, and the
// policy, its identity and their role assignments are gone, audited as
// having locked the environment.
func TestDeleteLinkedPolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		p := f.put(t, "p1", f.spec())
		f.linkEnv(t, "env-1", "Contoso Sales", p)
		reader := f.principal(t, "platform admin")
		f.grant(t, p.ID(), keyhold.RoleReader, reader)
		var calls, afters int
		var fail error
		_, s := f.withHook(func(ctx context.Context, tx keyhold.Tx, pol *keyhold.EnterprisePolicy, actor *keyhold.Identity, why string) (func(), error) {
			calls++
			if pol.ID() != p.ID() || actor.PrincipalID != f.admin.PrincipalID || why != "deleted" {
				t.Errorf("hook called with policy %s, actor %s, why %q", pol.ID(), actor.PrincipalID, why)
			}
			e, err := tx.Environment(ctx, "env-1")
			if err != nil {
				return nil, err
			}
			e.State = keyhold.StateLocked
			if err := tx.UpdateEnvironment(ctx, e); err != nil {
				return nil, err
			}
			return func() { afters++ }, fail
		})

		if n, err := s.LinkedEnvironments(as(reader), f.sub, "rg", "p1"); err != nil || n != 1 {
			t.Fatalf("LinkedEnvironments as a Reader = %d, %v; want 1", n, err)
		}
		stranger := f.principal(t, "stranger")
		if _, err := s.LinkedEnvironments(as(stranger), f.sub, "rg", "p1"); keyhold.ErrorCode(err) != keyhold.CodeAuthorizationFailed {
			t.Fatalf("LinkedEnvironments without a role: %v, want AuthorizationFailed", err)
		}
		before := f.snapshot(t)
		wantErr(t, s.Delete(as(reader), f.sub, "rg", "p1"), keyhold.CodeAuthorizationFailed, ActionDelete)
		f.unchanged(t, "a Reader's DELETE", before)
		fail = keyhold.Errorf(keyhold.CodeConflict, "injected: the environments can't be locked")
		if err := s.Delete(as(f.admin), f.sub, "rg", "p1"); !errors.Is(err, fail) {
			t.Fatalf("DELETE with a failing hook: %v, want the hook's error", err)
		}
		f.unchanged(t, "a DELETE whose hook failed", before)
		if st := f.envState(t, "env-1"); st != keyhold.StateEnabled || calls != 1 || afters != 0 {
			t.Fatalf("after the refusals: environment %s, hook called %d times, after %d; want Enabled, 1, 0", st, calls, afters)
		}

		fail = nil
		if err := s.Delete(as(f.admin), f.sub, "rg", "p1"); err != nil {
			t.Fatalf("the key vault admin's DELETE of the linked policy: %v", err)
		}
		if st := f.envState(t, "env-1"); st != keyhold.StateLocked || calls != 2 || afters != 1 {
			t.Fatalf("after the DELETE: environment %s, hook called %d times, after %d; want Locked, 2, 1", st, calls, afters)
		}
		if snap := f.snapshot(t); len(snap.policies) != 0 || slices.Contains(snap.identities, p.PrincipalID) {
			t.Fatalf("after the DELETE: %+v", snap)
		}
		if !f.groupExists(t, "rg") {
			t.Fatal("the DELETE of a policy took its resource group")
		}
		var detail string
		f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
			es, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: f.tenant, Limit: 1000})
			for _, e := range es {
				if e.Action == "enterprisePolicy.delete" && e.Target == p.ID() {
					detail = e.Detail
				}
			}
			return err
		})
		if !strings.Contains(detail, "deleted, which locked the environments linked to it: env-1") {
			t.Fatalf("enterprisePolicy.delete detail %q does not name the locked environment", detail)
		}
	})
}
