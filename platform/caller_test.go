package platform

import (
	"testing"

	"github.com/keyhold/keyhold"
)

// TestEmptyPrincipalRefused: an identity that names no principal is not
// authenticated: the platform refuses it as Unauthorized, creates nothing
// and audits nothing.
func TestEmptyPrincipalRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		before := f.snapshot(t)
		anon := *keyhold.IdentityFrom(f.ctx)
		anon.PrincipalID = ""
		ctx := keyhold.NewContext(t.Context(), &anon)
		err := f.p.CreateEnvironment(ctx, &keyhold.Environment{DisplayName: "anon", Location: "europe", SKU: keyhold.SKUSandbox})
		wantCode(t, err, keyhold.CodeUnauthorized)
		if _, err := f.p.ListEnvironments(ctx); keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
			t.Fatalf("ListEnvironments as an empty principal: %v, want %s", err, keyhold.CodeUnauthorized)
		}
		if after := f.snapshot(t); after != before {
			t.Fatalf("the refusal changed state: %+v, was %+v", after, before)
		}
	})
}
