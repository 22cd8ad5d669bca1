package policy

import (
	"testing"

	"github.com/keyhold/keyhold"
)

// TestTagUnsafeCharacters: a policy tag whose name or value holds a
// control or bidirectional formatting character is refused, on create and
// on update, naming the tag and the code point, and nothing changes.
func TestTagUnsafeCharacters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		f.put(t, "p1", f.spec())
		for _, c := range []struct {
			name string
			tags map[string]string
			hint string
		}{
			{"value with an override", map[string]string{"owner": "keys\u202Eved"}, `the value of tag "owner"`},
			{"value with NUL", map[string]string{"owner": "a\x00b"}, "U+0000"},
			{"name with an isolate", map[string]string{"own\u2067er": "keys"}, "tag name"},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := f.snapshot(t)
				spec := f.spec()
				spec.Tags = c.tags
				_, _, err := f.s.Put(as(f.admin), f.sub, "rg", "p2", spec)
				wantErr(t, err, keyhold.CodeBadRequest, c.hint)
				_, err = f.s.Patch(as(f.admin), f.sub, "rg", "p1", keyhold.PolicyPatch{Tags: &c.tags})
				wantErr(t, err, keyhold.CodeBadRequest, c.hint)
				f.unchanged(t, "the refused tags", before)
			})
		}
	})
}
