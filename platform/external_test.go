package platform

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// TestExternalPolicyLeavesRotationPickup: a policy naming an external
// vault, listed before a built-in policy whose key rotated, is skipped by
// the rotation pickup, which still picks up the built-in policy's
// rotation (the external policy's key is not in the built-in vault: taken
// for one, its missing key ended the pickup's pass).
func TestExternalPolicyLeavesRotationPickup(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-rot", true)
		f.newKey(t, v, "k")
		f.newPolicy(t, "a-external", v, "k", func(p *keyhold.EnterprisePolicy) {
			p.KeyVaultID = ""
			p.External = &keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: uuid.NewString(), ClientID: uuid.NewString()}
		})
		pol := f.newPolicy(t, "b-builtin", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "e")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		if _, err := f.kv.RotateKey(f.ctx, v.Name, "k"); err != nil {
			t.Fatal(err)
		}
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
			t.Fatalf("PickUpRotations = %d, %v; want the built-in policy's rotation picked up", n, err)
		}
	})
}

// TestDeletedKeyLeavesRotationPickup: a policy whose key was deleted has
// no current version to follow; the pickup passes over it and still
// picks up the rotation of the policies listed after it (it used to end
// the whole pass there, silently).
func TestDeletedKeyLeavesRotationPickup(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-del", true)
		f.newKey(t, v, "gone")
		f.newKey(t, v, "k")
		f.newPolicy(t, "a-deleted-key", v, "gone", nil)
		if _, err := f.kv.DeleteKey(f.ctx, v.Name, "gone"); err != nil {
			t.Fatal(err)
		}
		pol := f.newPolicy(t, "b-builtin", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "e")
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		if _, err := f.kv.RotateKey(f.ctx, v.Name, "k"); err != nil {
			t.Fatal(err)
		}
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
			t.Fatalf("PickUpRotations = %d, %v; want the rotation of the policy after the one whose key was deleted", n, err)
		}
	})
}
