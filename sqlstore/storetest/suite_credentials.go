package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// testRemoveCredentials: RemoveCredentials deletes every credential of one
// principal, and only of that one, and says how many; an unknown principal
// has none.
func testRemoveCredentials(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, tenant("t1")); err != nil {
			return err
		}
		for i, id := range []string{"p1", "p2"} {
			if err := tx.CreatePrincipal(ctx, &keyhold.Principal{ID: id, TenantID: "t1", Type: keyhold.PrincipalServicePrincipal, AppID: "a" + id, CreatedAt: at(0)}); err != nil {
				return err
			}
			for j := range 2 {
				c := &keyhold.Credential{PrincipalID: id, SecretHash: bytes.Repeat([]byte{byte(10*i + j)}, 32), CreatedAt: at(0)}
				if err := tx.AddCredential(ctx, c); err != nil {
					return err
				}
			}
		}
		return nil
	})
	var n int
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.RemoveCredentials(ctx, "p1"); return err })
	if n != 2 {
		t.Fatalf("RemoveCredentials(p1) = %d, want 2", n)
	}
	update(t, s, func(tx keyhold.Tx) (err error) { n, err = tx.RemoveCredentials(ctx, "p9"); return err })
	if n != 0 {
		t.Fatalf("RemoveCredentials(unknown) = %d, want 0", n)
	}
	view(t, s, func(tx keyhold.Tx) error {
		for id, want := range map[string]int{"p1": 0, "p2": 2} {
			l, err := tx.Credentials(ctx, id)
			if err != nil {
				return err
			}
			if len(l) != want {
				t.Errorf("Credentials(%s) = %d after removing p1's, want %d", id, len(l), want)
			}
		}
		return nil
	})
}
