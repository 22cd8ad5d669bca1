package platform

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestExternalSwapAndUnlink: an environment moves through the custody move
// from a policy whose key is in the customer's Keyhold to one of the
// built-in vault and back, then is unlinked from the external one; after
// each step it has one wrapped key under the new root and its data reads
// back from a cold key cache.
func TestExternalSwapAndUnlink(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		w := newExtWorld(t, f)
		defer f.runRunner()()
		w.c.grant(t)
		ext := w.policy(t, "external", "", "cmk", "", "", "")
		v := f.newVault(t, "kv-builtin", true)
		f.newKey(t, v, "k")
		builtin := f.newPolicy(t, "builtin", v, "k", nil)
		f.grantKey(t, builtin, v, "k")
		env := f.managedEnv(t, "e")
		data := f.fill(t, env.ID, 10, 300)

		on := func(step string, pol *keyhold.EnterprisePolicy) {
			t.Helper()
			f.p.cache.Drop(env.ID + "/")
			e := f.env(t, env.ID)
			wks := f.wrapped(t, env.ID)
			if pol == nil {
				if e.PolicyID != "" || e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || len(wks) != 1 || wks[0].Root != keyhold.RootMMK {
					t.Fatalf("after %s: environment %+v, wrapped keys %v; want on the platform's key", step, e, describeKeys(wks))
				}
			} else {
				want := "/vaults/" + v.Name + "/keys/k/"
				if pol.External != nil {
					want = ""
				}
				if e.PolicyID != pol.ID() || e.State != keyhold.StateEnabled || len(wks) != 1 || wks[0].Root != keyhold.RootCMK || wks[0].PrincipalID != pol.PrincipalID ||
					(pol.External != nil && !inExternalVault(pol, wks[0].KeyID)) || (want != "" && !strings.Contains(strings.ToLower(wks[0].KeyID), want)) {
					t.Fatalf("after %s: environment %+v, wrapped keys %v; want one copy under %s's key", step, e, describeKeys(wks), pol.Name)
				}
			}
			f.check(t, env.ID, data)
		}
		f.succeed(t, "link to the external policy", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, ext.SystemID) })
		on("the link", ext)
		f.succeed(t, "swap to the built-in policy", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, builtin.SystemID) })
		on("the swap to the built-in vault", builtin)
		f.succeed(t, "swap back to the external policy", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, ext.SystemID) })
		on("the swap back", ext)
		more := f.fill(t, env.ID, 3)
		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(f.ctx, env.ID, ext.SystemID) })
		on("the unlink", nil)
		f.check(t, env.ID, more)
	})
}
