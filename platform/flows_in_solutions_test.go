package platform

import (
	"testing"

	"github.com/keyhold/keyhold"
)

// TestFlowsInSolutionsFollowsLink: unset, "create new flows in solutions"
// is off on the platform key, on once a real link finishes and off again
// after the unlink; an admin's explicit off is stored and holds through a
// link.
func TestFlowsInSolutionsFollowsLink(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-sol", true)
		f.newKey(t, v, "env-key")
		pol := f.newPolicy(t, "policy-sol", v, "env-key", nil)
		f.grantKey(t, pol, v, "env-key")
		admin, adminID := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
		f.grant(t, adminID, keyhold.RoleReader, pol.ID())

		env := f.managedEnv(t, "sol-default")
		if f.env(t, env.ID).FlowsInSolutions() {
			t.Fatal("on before the link")
		}
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, env.ID, pol.SystemID) })
		if e := f.env(t, env.ID); !e.FlowsInSolutions() || e.CreateFlowsInSolutions != nil {
			t.Fatalf("after the link: on %v, set %v", e.FlowsInSolutions(), e.CreateFlowsInSolutions)
		}
		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(admin, env.ID, pol.SystemID) })
		if f.env(t, env.ID).FlowsInSolutions() {
			t.Fatal("on after the unlink")
		}

		off := f.managedEnv(t, "sol-off")
		no := false
		if _, err := f.p.UpdateEnvironment(admin, off.ID, keyhold.EnvironmentUpdate{CreateFlowsInSolutions: &no}); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, off.ID, pol.SystemID) })
		if e := f.env(t, off.ID); e.FlowsInSolutions() || e.PolicyID == "" {
			t.Fatalf("explicit off not honoured after the link: %+v", e)
		}
	})
}
