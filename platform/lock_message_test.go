package platform

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestLockedMessage: the refusal of a Locked environment is one short line
// that keeps the cause's code but not the key vault's long message, points
// at the audit log for the details, and tells the current next step: restore
// access while the key is inaccessible, re-enable once it is back.
func TestLockedMessage(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "message")
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		message := func() string {
			t.Helper()
			_, err := f.p.GetRow(f.ctx, w.env.ID, "accounts", "r0000")
			if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
				t.Fatalf("GetRow: %v, want EnvironmentLocked", err)
			}
			return keyhold.ErrorMessage(err)
		}
		// The vault's full answer, as recorded when the environment was locked.
		var full string
		entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: w.env.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Action == auditEnvLock {
				full = e.Detail
			}
		}
		_, why, _ := strings.Cut(full, "("+keyhold.CodeForbidden+" ("+keyhold.InnerForbiddenByRbac+"): ")
		if why == "" {
			t.Fatalf("lock audit detail %q holds no vault message to leave out", full)
		}
		msg := message()
		for _, want := range []string{"environment " + w.env.ID + " is locked", w.pol.ID(), keyhold.InnerForbiddenByRbac,
			"a key vault admin must restore access", "(keyhold env enable)", "Details: keyhold audit list --env " + w.env.ID} {
			if !strings.Contains(msg, want) {
				t.Errorf("lock message %q lacks %q", msg, want)
			}
		}
		if strings.Contains(msg, strings.TrimSuffix(why, ")")) || strings.Contains(msg, "\n") || len(msg) > 450 {
			t.Errorf("lock message is %d characters, or holds the vault's message %q: %q", len(msg), why, msg)
		}

		w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
		f.health(t, w.pol, keyhold.HealthHealthy)
		msg = message()
		if strings.Contains(msg, "must restore access") || !strings.Contains(msg, "access has been restored since") ||
			!strings.Contains(msg, "re-enables it now (keyhold env enable)") {
			t.Errorf("lock message once access is back: %q; want it to say so and how to re-enable", msg)
		}
	})
}
