package vault

import (
	"context"
	"reflect"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestKeyTagUnsafeCharacters: a key tag whose name or value holds a
// control or bidirectional formatting character is refused with
// BadParameter naming the tag and the code point, on create and on update,
// and the key is left as it was (no new key, its tags unchanged).
func TestKeyTagUnsafeCharacters(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-tags", nil)
		if _, err := f.svc.CreateKey(as(officer), v.Name, "cmk", keyhold.CreateKeyParams{Tags: map[string]string{"env": "prod"}}); err != nil {
			t.Fatal(err)
		}
		storedTags := func() map[string]string {
			t.Helper()
			var tags map[string]string
			if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
				k, err := tx.Key(context.Background(), v.Name, "cmk")
				if err == nil {
					tags = k.Tags
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return tags
		}
		for _, c := range []struct {
			name string
			tags map[string]string
			hint string
		}{
			{"value with an override", map[string]string{"env": "prod\u202Eved"}, `the value of tag "env" "prod\u202eved" holds U+202E`},
			{"value with a line feed", map[string]string{"env": "prod\nforged"}, "U+000A"},
			{"name with a mark", map[string]string{"e\u200Fnv": "prod"}, "tag name"},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, err := f.svc.CreateKey(as(officer), v.Name, "other", keyhold.CreateKeyParams{Tags: c.tags})
				wantCode(t, err, keyhold.CodeBadParameter, "", c.hint)
				if _, err := f.svc.GetKey(as(officer), v.Name, "other", ""); keyhold.ErrorCode(err) != keyhold.CodeKeyNotFound {
					t.Fatalf("the refused create made key other: %v", err)
				}
				_, err = f.svc.UpdateKey(as(officer), v.Name, "cmk", "", keyhold.KeyAttributes{}, nil, c.tags)
				wantCode(t, err, keyhold.CodeBadParameter, "", c.hint)
				if got := storedTags(); !reflect.DeepEqual(got, map[string]string{"env": "prod"}) {
					t.Fatalf("tags after the refused update: %v", got)
				}
			})
		}
	})
}
