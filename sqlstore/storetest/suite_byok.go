package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// testBYOKGenerations: a BYOK key row and a tenant's BYOK state keep the
// generation they are written with (insert, update, upsert), and the
// one-time "sealing done" marker is absent until written, then kept: a
// second write is CodeConflict and changes nothing.
func testBYOKGenerations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	k := &keyhold.BYOKKey{TenantID: "t1", ID: "k1", State: keyhold.BYOKInstalling, Source: keyhold.BYOKSourceJWK, Size: 2048,
		Thumbprint: "thumb", CreatedBy: "admin", CreatedAt: at(0), Sealed: []byte("sealed"), MAC: []byte("mac1"), Generation: 3}
	st := &keyhold.BYOKTenant{TenantID: "t1", MAC: []byte("head"), Generation: 3}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, tenant("t1")); err != nil {
			return err
		}
		if err := tx.PutBYOKKey(ctx, k); err != nil {
			return err
		}
		return tx.PutBYOKTenant(ctx, st)
	})
	read := func() (*keyhold.BYOKKey, *keyhold.BYOKTenant) {
		t.Helper()
		var gk *keyhold.BYOKKey
		var gs *keyhold.BYOKTenant
		view(t, s, func(tx keyhold.Tx) (err error) {
			if gk, err = tx.BYOKKey(ctx, "t1", "k1"); err != nil {
				return err
			}
			gs, err = tx.BYOKTenant(ctx, "t1")
			return err
		})
		return gk, gs
	}
	if gk, gs := read(); gk.Generation != 3 || gs.Generation != 3 || !bytes.Equal(gk.MAC, k.MAC) || !bytes.Equal(gs.MAC, st.MAC) {
		t.Fatalf("after the insert: key generation %d (%q), state generation %d (%q); want 3 each", gk.Generation, gk.MAC, gs.Generation, gs.MAC)
	}
	k.State, k.ActivatedAt, k.MAC, k.Generation = keyhold.BYOKActive, at(1), []byte("mac4"), 4
	st.LockedAt, st.MAC, st.Generation = at(2), []byte("head4"), 4
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.UpdateBYOKKey(ctx, k); err != nil {
			return err
		}
		return tx.PutBYOKTenant(ctx, st)
	})
	if gk, gs := read(); gk.Generation != 4 || gs.Generation != 4 || gk.State != keyhold.BYOKActive || !gs.LockedAt.Equal(at(2)) {
		t.Fatalf("after the update: key %s generation %d, state locked %v generation %d; want Active, locked, 4 each", gk.State, gk.Generation, gs.LockedAt, gs.Generation)
	}

	marker := func() *keyhold.BYOKSealMarker {
		t.Helper()
		var m *keyhold.BYOKSealMarker
		view(t, s, func(tx keyhold.Tx) (err error) { m, err = tx.BYOKSealMarker(ctx); return err })
		return m
	}
	if m := marker(); m != nil {
		t.Fatalf("a marker before any was written: %+v", m)
	}
	update(t, s, func(tx keyhold.Tx) error {
		return tx.PutBYOKSealMarker(ctx, &keyhold.BYOKSealMarker{SealedAt: at(5), MAC: []byte("marker")})
	})
	err := s.Update(ctx, func(tx keyhold.Tx) error {
		return tx.PutBYOKSealMarker(ctx, &keyhold.BYOKSealMarker{SealedAt: at(6), MAC: []byte("other")})
	})
	if keyhold.ErrorCode(err) != keyhold.CodeConflict {
		t.Fatalf("a second marker: %v, want %s", err, keyhold.CodeConflict)
	}
	if m := marker(); m == nil || !m.SealedAt.Equal(at(5)) || string(m.MAC) != "marker" {
		t.Fatalf("marker = %+v, want the first one", m)
	}
}
