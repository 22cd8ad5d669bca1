package platform

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestTenantEgressSetting: a platform administrator sets the tenant's Http
// allowlist (trimmed, deduplicated, audited) and reads it back; a bad
// entry and a caller who is not an administrator are refused, and the
// stored list stays as it was.
func TestTenantEgressSetting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e, err := f.p.TenantEgress(f.ctx)
		if err != nil || len(e.Allow) != 0 || !e.UpdatedAt.IsZero() {
			t.Fatalf("default: %+v, %v", e, err)
		}
		if e, err = f.p.SetTenantEgress(f.ctx, []string{" api.partner.example ", "203.0.113.0/24", "api.partner.example", ""}); err != nil {
			t.Fatal(err)
		}
		want := "api.partner.example,203.0.113.0/24"
		if strings.Join(e.Allow, ",") != want {
			t.Fatalf("set: %+v", e)
		}
		_, err = f.p.SetTenantEgress(f.ctx, []string{"api.partner.example", "http://x/"})
		wantCode(t, err, keyhold.CodeInvalidRequestContent)
		if !strings.Contains(err.Error(), `"http://x/"`) || !strings.Contains(err.Error(), "keyhold tenant egress set") {
			t.Errorf("refusal %v: want it to quote the entry and name the setting", err)
		}
		stranger := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "khs_stranger-secret", "")
		sctx := f.login(t, f.creds.TenantID, stranger.AppID, "khs_stranger-secret")
		_, err = f.p.SetTenantEgress(sctx, []string{"evil.example"})
		wantCode(t, err, keyhold.CodeForbidden)
		_, err = f.p.TenantEgress(sctx)
		wantCode(t, err, keyhold.CodeForbidden)
		if e, err = f.p.TenantEgress(f.ctx); err != nil || strings.Join(e.Allow, ",") != want {
			t.Fatalf("after the refusals: %+v, %v", e, err)
		}
		entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range entries {
			if a.Action == auditTenantEgress {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d %s audit entries, want the one accepted change", n, auditTenantEgress)
		}
	})
}
