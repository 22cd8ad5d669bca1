package platform

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestExternalRotationPickup: the customer rotates the key in their own
// Keyhold; until the platform's rotation rewraps, the old version still
// unwraps the environment's key across the boundary; the pickup sees the
// new current version in the customer's vault and rewraps through the
// custody move, so the environment ends on the new version with its data
// readable (from a cold key cache). A policy pinned to a version is never
// moved.
func TestExternalRotationPickup(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		ctx := context.Background()
		w := newExtWorld(t, f)
		defer f.runRunner()()
		w.c.grant(t)
		v1, err := w.c.v.GetKey(w.c.admin, w.c.vaultName, "cmk", "")
		if err != nil {
			t.Fatal(err)
		}
		follow := w.policy(t, "follow", "", "cmk", "", "", "")
		pinned := w.policy(t, "pinned", "", "cmk", v1.Version.Version, "", "")
		e0, e1 := f.managedEnv(t, "e0"), f.managedEnv(t, "e1")
		c0, c1 := f.fill(t, e0.ID, 5, 500), f.fill(t, e1.ID, 5, 500)
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e0.ID, follow.SystemID) })
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e1.ID, pinned.SystemID) })
		if n, err := f.p.PickUpRotations(ctx); err != nil || n != 0 {
			t.Fatalf("PickUpRotations before any rotation = %d, %v; want 0", n, err)
		}

		v2, err := w.c.v.RotateKey(w.c.admin, w.c.vaultName, "cmk")
		if err != nil {
			t.Fatal(err)
		}
		// Before the rewrap: still on the old version, which still unwraps.
		old := f.wrapped(t, e0.ID)
		if len(old) != 1 || kidVersion(old[0].KeyID) != v1.Version.Version {
			t.Fatalf("before the pickup: wrapped keys %v, want one on the old version %s", describeKeys(old), v1.Version.Version)
		}
		pt, err := f.p.cmk(policyIdentity(follow.PrincipalID, follow.TenantID)).Unwrap(ctx, old[0].KeyID, old[0].Ciphertext)
		if err != nil {
			t.Fatalf("unwrap with the old version after the customer's rotation: %v", err)
		}
		clear(pt)
		f.p.cache.Drop(e0.ID + "/")
		f.check(t, e0.ID, c0)

		n, err := f.p.PickUpRotations(ctx)
		if err != nil || n != 1 {
			t.Fatalf("PickUpRotations after the customer's rotation = %d, %v; want 1 (the pinned policy left alone)", n, err)
		}
		ops := f.operations(t, follow.ID())
		if len(ops) != 1 || ops[0].Kind != keyhold.OpRotate {
			t.Fatalf("operations on the policy: %+v", ops)
		}
		if op := f.wait(t, ops[0]); op.State != keyhold.OperationSucceeded || op.Done != 1 {
			t.Fatalf("rotation %s %s %q, %d done; want Succeeded with 1", op.State, op.ErrorCode, op.ErrorMsg, op.Done)
		}
		wks := f.wrapped(t, e0.ID)
		if len(wks) != 1 || kidVersion(wks[0].KeyID) != v2.Version.Version || !inExternalVault(follow, wks[0].KeyID) {
			t.Fatalf("after the rotation: wrapped keys %v, want one on the new version %s in %s", describeKeys(wks), v2.Version.Version, w.c.vaultURI)
		}
		if wk := f.wrapped(t, e1.ID); len(wk) != 1 || kidVersion(wk[0].KeyID) != v1.Version.Version {
			t.Fatalf("pinned environment after the rotation: wrapped keys %v, want still on %s", describeKeys(wk), v1.Version.Version)
		}
		for _, e := range []*keyhold.Environment{e0, e1} {
			f.p.cache.Drop(e.ID + "/")
			if ee := f.env(t, e.ID); ee.State != keyhold.StateEnabled || ee.EncryptionStatus != keyhold.EncryptionSucceeded {
				t.Errorf("environment after the rotation: %+v", ee)
			}
		}
		f.check(t, e0.ID, c0)
		f.check(t, e1.ID, c1)
		if n, err := f.p.PickUpRotations(ctx); err != nil || n != 0 {
			t.Fatalf("PickUpRotations after the rotation = %d, %v; want 0", n, err)
		}
		if acts := strings.Join(f.auditActions(t, e0.ID), " "); !strings.Contains(acts, auditRotate) {
			t.Errorf("audit of the environment: %s; want a rotation", acts)
		}
	})
}
