package arm

import (
	"context"
	"slices"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestDisplayNameUnsafeCharacters: a user's or service principal's display
// name with a control character (NUL, a line break, C1) or a bidirectional
// formatting character (U+202E, an isolate, a mark) is refused, naming the
// field and the code point, and creates nothing; so is a scope whose
// segment holds one.
func TestDisplayNameUnsafeCharacters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := as(f.admin)
		audits := func() int {
			t.Helper()
			n := 0
			if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
				es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: f.tenant, Limit: 1000})
				n = len(es)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, c := range []struct{ name, display, hint string }{
			{"NUL", "Ada\x00Admin", "U+0000"},
			{"line feed", "Ada\nforged", "U+000A"},
			{"C1 control", "Ada\u0085x", "U+0085"},
			{"right-to-left override", "Ada\u202Enimda", "U+202E (RIGHT-TO-LEFT OVERRIDE)"},
			{"isolate", "Ada\u2067x\u2069", "U+2067"},
			{"right-to-left mark", "Ada\u200F", "U+200F"},
		} {
			t.Run(c.name, func(t *testing.T) {
				before, n := f.principals(t), audits()
				_, err := f.s.CreateUser(ctx, c.display, "ada@contoso.example", "")
				wantErr(t, err, keyhold.CodeBadRequest, "displayName", c.hint)
				_, err = f.s.CreateServicePrincipal(ctx, c.display)
				wantErr(t, err, keyhold.CodeBadRequest, "displayName", c.hint)
				if got := f.principals(t); !slices.Equal(got, before) || audits() != n {
					t.Fatalf("principals %q and %d audit entries after the refusals, want %q and %d", got, audits(), before, n)
				}
			})
		}
		if _, err := f.s.CreateUser(ctx, "Ada Lovelace \u05e2\u05d1\u05e8\u05d9\u05ea", "ada@contoso.example", ""); err != nil {
			t.Fatalf("a right-to-left script without formatting characters: %v", err)
		}
		_, err := keyhold.ParseScope(f.rgScope("rg\u202Eved"))
		wantErr(t, err, keyhold.CodeBadRequest, "scope segment", "U+202E")
	})
}
