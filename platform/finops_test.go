package platform

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestFinanceAndOperationsLink: 002 keeps a finance and operations
// environment without Power Platform integration under the
// Microsoft-managed key. Its link is refused with a message naming how to
// turn integration on, and changes nothing; bad settings of the flags are
// refused at creation (nothing created) and update (nothing changed); once
// integration is on, the same environment links.
func TestFinanceAndOperationsLink(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-finops", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-finops", v, "k", nil)
		f.grantKey(t, pol, v, "k")

		// Integration without finance and operations apps: refused, and
		// no environment is created.
		before, err := f.p.ListEnvironments(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		bad := &keyhold.Environment{DisplayName: "bad", Location: cmkLocation, SKU: keyhold.SKUProduction, PowerPlatformIntegration: true}
		err = f.p.CreateEnvironment(f.ctx, bad)
		wantCode(t, err, keyhold.CodeBadRequest)
		if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, "finance and operations") || !strings.Contains(msg, "properties.financeAndOperations") {
			t.Errorf("refusal %q does not say what to fix", msg)
		}
		if after, _ := f.p.ListEnvironments(f.ctx); len(after) != len(before) {
			t.Errorf("the refused create left %d environments, want %d", len(after), len(before))
		}

		// A finance and operations environment without integration.
		fo := &keyhold.Environment{DisplayName: "finance", Location: cmkLocation, SKU: keyhold.SKUProduction, FinOps: true}
		if err := f.p.CreateEnvironment(f.ctx, fo); err != nil {
			t.Fatal(err)
		}
		on := true
		if _, err := f.p.UpdateEnvironment(f.ctx, fo.ID, keyhold.EnvironmentUpdate{Managed: &on}); err != nil {
			t.Fatal(err)
		}
		if e := f.env(t, fo.ID); !e.FinOps || e.PowerPlatformIntegration {
			t.Fatalf("stored %+v, want finance and operations without integration", e)
		}
		plain := f.managedEnv(t, "plain")
		off := false
		f.runRefusals(t, []refusal{
			{"link without Power Platform integration", func() string { return fo.ID }, func(envID string) error {
				_, err := f.p.LinkPolicy(f.ctx, envID, pol.SystemID)
				return err
			}, keyhold.CodeBadRequest, "", []string{"finance and operations", "Power Platform integration", "properties.financeAndOperations.powerPlatformIntegration = true", "keyhold env enable-power-platform-integration " + fo.ID}},
			{"integration on an environment without finance and operations apps", func() string { return plain.ID }, func(envID string) error {
				_, err := f.p.UpdateEnvironment(f.ctx, envID, keyhold.EnvironmentUpdate{PowerPlatformIntegration: &on})
				return err
			}, keyhold.CodeBadRequest, "", []string{"no finance and operations apps"}},
		})

		// Integration on: the same environment links; then it can't be
		// turned off.
		e, err := f.p.UpdateEnvironment(f.ctx, fo.ID, keyhold.EnvironmentUpdate{PowerPlatformIntegration: &on})
		if err != nil || !e.PowerPlatformIntegration || !e.FinOps {
			t.Fatalf("turning integration on: %+v, %v", e, err)
		}
		data := f.fill(t, fo.ID, 3)
		f.succeed(t, "link with integration", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, fo.ID, pol.SystemID) })
		f.check(t, fo.ID, data)
		f.runRefusals(t, []refusal{
			{"turning integration off", func() string { return fo.ID }, func(envID string) error {
				_, err := f.p.UpdateEnvironment(f.ctx, envID, keyhold.EnvironmentUpdate{PowerPlatformIntegration: &off})
				return err
			}, keyhold.CodeBadRequest, "", []string{"can't be turned off"}},
		})
		if e := f.env(t, fo.ID); !e.PowerPlatformIntegration || e.KeyManagedBy != keyhold.KeyManagedByCustomer {
			t.Errorf("after the refusal: %+v", e)
		}
	})
}
