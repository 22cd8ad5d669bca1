package platform

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// wantRefusal checks err's code and that its message says each hint.
func wantRefusal(t *testing.T, err error, code string, hints ...string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
	for _, h := range hints {
		if !strings.Contains(keyhold.ErrorMessage(err), h) {
			t.Fatalf("message %q does not say %q", keyhold.ErrorMessage(err), h)
		}
	}
}

// envAuditCount counts the tenant's audit entries, straight from the store.
func (f *cmkFixture) envAuditCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: f.creds.TenantID, Limit: 10000})
		n = len(es)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEnvironmentNameUnsafeCharacters: an environment's display name with
// a control character or a bidirectional formatting character is refused,
// on create and on update, naming the field and the code point, and
// nothing changes.
func TestEnvironmentNameUnsafeCharacters(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		env := f.managedEnv(t, "Contoso Sales")
		before, audits := f.env(t, env.ID), f.envAuditCount(t)
		envs, err := f.p.ListEnvironments(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ name, display, hint string }{
			{"NUL", "Sales\x00Prod", "U+0000"},
			{"carriage return", "Sales\rProd", "U+000D"},
			{"right-to-left override", "Sales\u202Edorp", "U+202E (RIGHT-TO-LEFT OVERRIDE)"},
			{"left-to-right isolate", "Sales\u2066x\u2069", "U+2066"},
			{"left-to-right mark", "Sales\u200Ex", "U+200E"},
		} {
			t.Run(c.name, func(t *testing.T) {
				err := f.p.CreateEnvironment(f.ctx, &keyhold.Environment{DisplayName: c.display, Location: cmkLocation, SKU: keyhold.SKUProduction})
				wantRefusal(t, err, keyhold.CodeBadRequest, "properties.displayName", c.hint)
				name := c.display
				_, err = f.p.UpdateEnvironment(f.ctx, env.ID, keyhold.EnvironmentUpdate{DisplayName: &name})
				wantRefusal(t, err, keyhold.CodeBadRequest, "properties.displayName", c.hint)
				after, err := f.p.ListEnvironments(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := f.env(t, env.ID); len(after) != len(envs) || got.DisplayName != before.DisplayName || got.Version != before.Version || f.envAuditCount(t) != audits {
					t.Fatalf("after the refusals: %d environments (was %d), name %q version %d (was %q, %d), %d audit entries (was %d)",
						len(after), len(envs), got.DisplayName, got.Version, before.DisplayName, before.Version, f.envAuditCount(t), audits)
				}
			})
		}
	})
}

// TestLinkedEnvironmentStaysManaged: a customer-managed key requires a
// Managed Environment, so turning Managed Environment off (protectionLevel
// Basic) is refused while the environment is linked, with or without a
// display name change in the same update, changing nothing; once it is
// unlinked the same update goes through.
func TestLinkedEnvironmentStaysManaged(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "managed")
		before, audits := f.env(t, w.env.ID), f.envAuditCount(t)
		off, name := false, "Renamed"
		for _, upd := range []keyhold.EnvironmentUpdate{{Managed: &off}, {Managed: &off, DisplayName: &name}} {
			_, err := f.p.UpdateEnvironment(f.ctx, w.env.ID, upd)
			wantRefusal(t, err, keyhold.CodeConflict, w.pol.ID(), "requires a Managed Environment", "unlink it first")
			if got := f.env(t, w.env.ID); !got.Managed || got.DisplayName != before.DisplayName || got.Version != before.Version || f.envAuditCount(t) != audits {
				t.Fatalf("after the refused update: managed %v, name %q, version %d (was %d), %d audit entries (was %d)",
					got.Managed, got.DisplayName, got.Version, before.Version, f.envAuditCount(t), audits)
			}
		}
		f.check(t, w.env.ID, w.data)
		on := true
		if _, err := f.p.UpdateEnvironment(f.ctx, w.env.ID, keyhold.EnvironmentUpdate{Managed: &on}); err != nil {
			t.Fatalf("keeping Managed Environment on: %v", err)
		}

		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(f.ctx, w.env.ID, w.pol.SystemID) })
		got, err := f.p.UpdateEnvironment(f.ctx, w.env.ID, keyhold.EnvironmentUpdate{Managed: &off})
		if err != nil || got.Managed {
			t.Fatalf("turning Managed Environment off once unlinked = %+v, %v", got, err)
		}
	})
}

// TestManagedOffDuringLink: while a link runs (the runner is stopped, so
// it stays Running) turning Managed Environment off is refused, naming the
// operation, and changes nothing.
func TestManagedOffDuringLink(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-running", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-running", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "env-running")
		op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		if err != nil {
			t.Fatalf("LinkPolicy: %v", err)
		}
		before := f.env(t, env.ID)
		off := false
		_, err = f.p.UpdateEnvironment(f.ctx, env.ID, keyhold.EnvironmentUpdate{Managed: &off})
		wantRefusal(t, err, keyhold.CodeConflict, op.ID, "running")
		if got := f.env(t, env.ID); !got.Managed || got.Version != before.Version {
			t.Fatalf("after the refused update: managed %v, version %d (was %d)", got.Managed, got.Version, before.Version)
		}
	})
}
