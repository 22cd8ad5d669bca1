package platform

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestLinkNeedsLicence: 002 requires the tenant to hold one of the
// licences it lists. The bootstrap tenant starts with one; without any,
// a link is refused with a message naming the licences and who adds one,
// and nothing changes; a Power Platform Administrator (who links) can list
// licences but not grant itself one; with a licence back, the same link
// goes through. A re-key of an environment linked already is no new link
// and needs none.
func TestLinkNeedsLicence(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-licence", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-licence", v, "k", nil)
		f.grantKey(t, pol, v, "k")

		ls, err := f.arm.ListLicences(f.ctx)
		if err != nil || len(ls) != 1 || ls[0].Name != keyhold.BootstrapLicence || ls[0].TenantID != f.creds.TenantID {
			t.Fatalf("the bootstrap tenant's licences: %+v, %v; want %s", ls, err, keyhold.BootstrapLicence)
		}
		if err := f.arm.RemoveLicence(f.ctx, keyhold.LicenceID(keyhold.BootstrapLicence)); err != nil {
			t.Fatal(err)
		}

		ppAdmin, ppAdminID := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
		f.grant(t, ppAdminID, keyhold.RoleReader, pol.ID())
		env := f.managedEnv(t, "unlicensed")
		mention := []string{"holds none of the licences", "Global Administrator", "keyhold tenant licence add"}
		mention = append(mention, keyhold.Licences...)
		f.runRefusals(t, []refusal{
			{"link without a licence", func() string { return env.ID }, func(envID string) error {
				_, err := f.p.LinkPolicy(ppAdmin, envID, pol.SystemID)
				return err
			}, keyhold.CodeForbidden, "", mention},
			{"a Power Platform Administrator grants itself a licence", func() string { return env.ID }, func(string) error {
				_, err := f.arm.AddLicence(ppAdmin, "Microsoft 365 E5")
				return err
			}, keyhold.CodeForbidden, "", []string{string(keyhold.RoleGlobalAdministrator)}},
			{"a licence 002 does not list", func() string { return env.ID }, func(string) error {
				_, err := f.arm.AddLicence(f.ctx, "Power Apps Premium")
				return err
			}, keyhold.CodeBadRequest, "", []string{`"Power Apps Premium"`, "Microsoft 365 E5 Compliance"}},
		})
		if ls, err := f.arm.ListLicences(ppAdmin); err != nil || len(ls) != 0 {
			t.Errorf("licences after the refusals: %+v, %v; want none", ls, err)
		}

		l, err := f.arm.AddLicence(f.ctx, "office 365 g5")
		if err != nil || l.Name != "Office 365 G5" {
			t.Fatalf("AddLicence = %+v, %v", l, err)
		}
		data := f.fill(t, env.ID, 3)
		f.succeed(t, "link with a licence", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(ppAdmin, env.ID, pol.SystemID) })
		f.check(t, env.ID, data)

		// A failed link's re-key goes on without one.
		if err := f.arm.RemoveLicence(f.ctx, "Office 365 G5"); err != nil {
			t.Fatal(err)
		}
		f.setEnv(t, env.ID, func(e *keyhold.Environment) { e.EncryptionStatus = keyhold.EncryptionFailed })
		op := f.succeed(t, "re-key without a licence", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(ppAdmin, env.ID, pol.SystemID) })
		if op.Kind != keyhold.OpRekey {
			t.Errorf("the link of a failed environment started a %s, want a re-key", op.Kind)
		}
		var audited []string
		for _, a := range f.auditActionsAll(t) {
			if strings.HasPrefix(a, "tenant.licence.") {
				audited = append(audited, a)
			}
		}
		if strings.Join(audited, " ") != "tenant.licence.remove tenant.licence.add tenant.licence.remove" {
			t.Errorf("licence audit %v", audited)
		}
	})
}

// auditActionsAll lists the tenant's audited actions, oldest first.
func (f *cmkFixture) auditActionsAll(t *testing.T) []string {
	t.Helper()
	entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Action)
	}
	return out
}
