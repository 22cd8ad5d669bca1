package platform

import (
	"bytes"
	"context"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestSealerRoundTripAndBinding: flows' items seal under the environment's
// current epoch, open only as the item, version and environment they were
// sealed for, and the sealer serves the flows' stores only.
func TestSealerRoundTripAndBinding(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		e1, e2 := f.createEnv(t, "one"), f.createEnv(t, "two")
		s := f.p.Sealer
		secret := []byte(`{"definition":"marker-7c1f"}`)
		ct, epoch, err := s.Seal(ctx, e1.ID, keyhold.StoreFlows, "flow-1", 1, secret)
		if err != nil {
			t.Fatal(err)
		}
		if epoch != e1.Epoch || bytes.Contains(ct, []byte("marker-7c1f")) {
			t.Fatalf("epoch %d (want %d), or plaintext in the ciphertext", epoch, e1.Epoch)
		}
		pt, err := s.Open(ctx, e1.ID, keyhold.StoreFlows, "flow-1", 1, epoch, ct)
		if err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("Open = %q, %v", pt, err)
		}
		for name, open := range map[string]func() error{
			"another item":        func() error { _, err := s.Open(ctx, e1.ID, keyhold.StoreFlows, "flow-2", 1, epoch, ct); return err },
			"another version":     func() error { _, err := s.Open(ctx, e1.ID, keyhold.StoreFlows, "flow-1", 2, epoch, ct); return err },
			"another store":       func() error { _, err := s.Open(ctx, e1.ID, keyhold.StoreRuns, "flow-1", 1, epoch, ct); return err },
			"another environment": func() error { _, err := s.Open(ctx, e2.ID, keyhold.StoreFlows, "flow-1", 1, e2.Epoch, ct); return err },
			"the platform key":    func() error { _, err := s.OpenPlatform(ctx, e1.ID, keyhold.StoreFlows, "flow-1", 1, ct); return err },
		} {
			if err := open(); err == nil {
				t.Errorf("opening as %s succeeded", name)
			}
		}
		if _, _, err := s.Seal(ctx, e1.ID, keyhold.StoreRows, "accounts/r1", 1, secret); err == nil {
			t.Error("the sealer sealed a row")
		}
	})
}

// TestSealerRefusesLocked: a Locked environment's items neither seal nor
// open (EnvironmentLocked), a Disabled one's are EnvironmentDisabled, while
// the platform key's partition still opens (an administrator may list and
// delete non-OAuth connections); enabling again opens the same items.
func TestSealerRefusesLocked(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		env := f.createEnv(t, "locked")
		s := f.p.Sealer
		ct, epoch, err := s.Seal(ctx, env.ID, keyhold.StoreRuns, "flow-1/run-1", 3, []byte("state"))
		if err != nil {
			t.Fatal(err)
		}
		pct, err := s.SealPlatform(ctx, env.ID, keyhold.StoreConnections, "shared_http/c1", 1, []byte("api-key"))
		if err != nil {
			t.Fatal(err)
		}
		setState := func(st keyhold.RuntimeState) {
			t.Helper()
			if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
				e, err := tx.Environment(ctx, env.ID)
				if err != nil {
					return err
				}
				e.State = st
				return tx.UpdateEnvironment(ctx, e)
			}); err != nil {
				t.Fatal(err)
			}
			f.p.DropKeys(env.ID)
		}
		for st, code := range map[keyhold.RuntimeState]string{keyhold.StateLocked: keyhold.CodeEnvironmentLocked, keyhold.StateDisabled: keyhold.CodeEnvironmentDisabled} {
			setState(st)
			_, _, err = s.Seal(ctx, env.ID, keyhold.StoreRuns, "flow-1/run-1", 4, []byte("state"))
			wantCode(t, err, code)
			_, err = s.Open(ctx, env.ID, keyhold.StoreRuns, "flow-1/run-1", 3, epoch, ct)
			wantCode(t, err, code)
			wantCode(t, checkServingIn(t, f, env.ID), code)
			if pt, err := s.OpenPlatform(ctx, env.ID, keyhold.StoreConnections, "shared_http/c1", 1, pct); err != nil || string(pt) != "api-key" {
				t.Fatalf("OpenPlatform while %s = %q, %v", st, pt, err)
			}
		}
		setState(keyhold.StateEnabled)
		if err := checkServingIn(t, f, env.ID); err != nil {
			t.Fatalf("ServingIn after enabling: %v", err)
		}
		if pt, err := s.Open(ctx, env.ID, keyhold.StoreRuns, "flow-1/run-1", 3, epoch, ct); err != nil || string(pt) != "state" {
			t.Fatalf("Open after enabling = %q, %v", pt, err)
		}
	})
}

// checkServingIn runs the flows' save check (Sealer.ServingIn) in a read
// transaction of its own and checks the epoch it answers.
func checkServingIn(t *testing.T, f *fixture, envID string) error {
	t.Helper()
	return f.store.View(f.ctx, func(tx keyhold.Tx) error {
		epoch, err := f.p.Sealer.ServingIn(f.ctx, tx, envID)
		if err == nil && epoch != f.env(t, envID).Epoch {
			t.Errorf("ServingIn answered epoch %d, the environment is at %d", epoch, f.env(t, envID).Epoch)
		}
		return err
	})
}

// TestSealerOpenUnderBinding: OpenUnder (the open that reads no state,
// for callers that checked ServingIn in their own transaction) opens an
// item only as the item, version, store, environment and epoch it was
// sealed for, the platform partition's only under keyhold.PlatformEpoch,
// and serves the flows' stores only.
func TestSealerOpenUnderBinding(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		e1, e2 := f.createEnv(t, "one"), f.createEnv(t, "two")
		s := f.p.Sealer
		secret := []byte(`{"state":"marker-51d0"}`)
		ct, epoch, err := s.Seal(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-1", 3, secret)
		if err != nil {
			t.Fatal(err)
		}
		pct, err := s.SealPlatform(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-1", 3, secret)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-1", 3, epoch, ct); err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("OpenUnder = %q, %v", pt, err)
		}
		if pt, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-1", 3, keyhold.PlatformEpoch, pct); err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("OpenUnder of the platform partition = %q, %v", pt, err)
		}
		for name, open := range map[string]func() error{
			"another item": func() error {
				_, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-2", 3, epoch, ct)
				return err
			},
			"another version": func() error {
				_, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-1", 4, epoch, ct)
				return err
			},
			"another store": func() error {
				_, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreFlows, "flow-1/run-1", 3, epoch, ct)
				return err
			},
			"another environment": func() error {
				_, err := s.OpenUnder(ctx, e2.ID, keyhold.StoreRuns, "flow-1/run-1", 3, e2.Epoch, ct)
				return err
			},
			"the platform key": func() error {
				_, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-1", 3, keyhold.PlatformEpoch, ct)
				return err
			},
			"the epoch's key": func() error {
				_, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreRuns, "flow-1/run-1", 3, epoch, pct)
				return err
			},
			"a row": func() error {
				_, err := s.OpenUnder(ctx, e1.ID, keyhold.StoreRows, "flow-1/run-1", 3, epoch, ct)
				return err
			},
		} {
			if err := open(); err == nil {
				t.Errorf("opening as %s succeeded", name)
			}
		}
	})
}
