package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// TestBYOKRewrapOnActivation: activating a newer BYOK key starts an
// operation the administrator follows by the id the activation answers;
// it moves every environment key of the tenant's BYOK environments from
// the older key to the new one by the custody move, one copy per run,
// while a reader and writer go on without an error. Afterwards every copy
// is under the new key (the new private key opens each to the
// environment's key, the old one opens none), the data reads back from
// the store, each environment's move is audited, the older key is still
// Available, and a platform-key environment is untouched.
func TestBYOKRewrapOnActivation(t *testing.T) {
	old := byokRewrapBatch
	byokRewrapBatch = 1
	t.Cleanup(func() { byokRewrapBatch = old })
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		plain := f.managedEnv(t, "plain")
		plainKeys := describeKeys(f.wrapped(t, plain.ID))
		priv1, priv2 := newRSA(t, 2048), newRSA(t, 2048)
		k1, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(priv1)})
		if err != nil {
			t.Fatal(err)
		}
		if k1, err = f.p.ActivateBYOKKey(f.ctx, k1.ID); err != nil || k1.RewrapOperationID != "" {
			t.Fatalf("first activation: %+v, %v; want no rewrap (no environment under a key yet)", k1, err)
		}
		envs := []*keyhold.Environment{f.managedEnv(t, "byok-a"), f.managedEnv(t, "byok-b")}
		var data []*content
		for _, e := range envs {
			data = append(data, f.fill(t, e.ID, 6, 2000))
			for _, wk := range f.wrapped(t, e.ID) {
				if wk.KeyID != byokKIDPrefix+k1.ID {
					t.Fatalf("environment %s starts under %s, want key %s", e.ID, wk.KeyID, k1.ID)
				}
			}
		}

		var stop atomic.Bool
		var reads, writes atomic.Int64
		var mu sync.Mutex
		var failures []string
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprint("w", i)
				if _, err := f.p.PutRow(f.ctx, envs[0].ID, "load", id, json.RawMessage(`{"i":1}`)); err != nil {
					mu.Lock()
					failures = append(failures, "write: "+err.Error())
					mu.Unlock()
				} else {
					writes.Add(1)
				}
				if _, err := f.p.GetRow(f.ctx, envs[1].ID, "accounts", "r0000"); err != nil {
					mu.Lock()
					failures = append(failures, "read: "+err.Error())
					mu.Unlock()
				} else {
					reads.Add(1)
				}
			}
		}()
		time.Sleep(30 * time.Millisecond)
		f.clock.Advance(keyhold.BYOKActivationInterval + time.Minute)
		k2, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(priv2)})
		if err != nil {
			t.Fatal(err)
		}
		if k2, err = f.p.ActivateBYOKKey(f.ctx, k2.ID); err != nil {
			t.Fatal(err)
		}
		if k2.RewrapOperationID == "" {
			t.Fatal("the activation started no rewrap operation")
		}
		op, err := f.p.GetOperation(f.ctx, k2.RewrapOperationID)
		if err != nil || op.Kind != keyhold.OpBYOKRewrap || op.Total != 2 {
			t.Fatalf("the rewrap operation as its administrator sees it: %+v, %v; want %s of 2 keys", op, err, keyhold.OpBYOKRewrap)
		}
		op = f.wait(t, op)
		time.Sleep(30 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		if op.State != keyhold.OperationSucceeded || op.Done != 2 {
			t.Fatalf("rewrap ended %s (%s %s), done %d of %d", op.State, op.ErrorCode, op.ErrorMsg, op.Done, op.Total)
		}
		if len(failures) > 0 || reads.Load() == 0 || writes.Load() == 0 {
			t.Fatalf("during the rewrap: %d reads, %d writes, failures %v", reads.Load(), writes.Load(), failures)
		}
		for i, e := range envs {
			wks := f.wrapped(t, e.ID)
			if len(wks) != 1 {
				t.Fatalf("environment %s: %v, want one copy", e.ID, describeKeys(wks))
			}
			for _, wk := range wks {
				if wk.Root != keyhold.RootBYOK || wk.KeyID != byokKIDPrefix+k2.ID {
					t.Fatalf("environment %s epoch %d is under %s %s, want the new key %s", e.ID, wk.Epoch, wk.Root, wk.KeyID, k2.ID)
				}
				if _, err := crypt.UnwrapOAEP(priv1, crypt.AlgRSAOAEP256, wk.Ciphertext); err == nil {
					t.Fatalf("the old key still unwraps environment %s epoch %d", e.ID, wk.Epoch)
				}
				payload, err := crypt.UnwrapOAEP(priv2, crypt.AlgRSAOAEP256, wk.Ciphertext)
				if err != nil {
					t.Fatalf("the new key does not unwrap environment %s: %v", e.ID, err)
				}
				ek, err := crypt.OpenEKPayload(e.ID, wk.Epoch, payload)
				if err != nil {
					t.Fatal(err)
				}
				ek.Destroy()
			}
			f.p.DropKeys(e.ID)
			f.check(t, e.ID, data[i])
		}
		if got := describeKeys(f.wrapped(t, plain.ID)); strings.Join(got, ",") != strings.Join(plainKeys, ",") {
			t.Fatalf("the platform-key environment's keys changed: %v → %v", plainKeys, got)
		}
		ks, err := f.p.ListBYOKKeys(f.ctx)
		if err != nil || len(ks) != 2 || ks[0].State != keyhold.BYOKAvailable || ks[1].State != keyhold.BYOKActive {
			t.Fatalf("keys after the rewrap: %+v, %v; want the old one Available", ks, err)
		}
		moved := map[string]bool{}
		for _, a := range f.fixture.auditAll(t) {
			if a.Action == auditEnvBYOKRewrap && strings.Contains(a.Detail, k2.RewrapOperationID) {
				moved[a.EnvID] = true
			}
		}
		if !moved[envs[0].ID] || !moved[envs[1].ID] {
			t.Errorf("rewrap audit entries for %v, want both environments", moved)
		}
		t.Logf("during the rewrap: %d reads, %d writes, no error", reads.Load(), writes.Load())
	})
}

// TestBYOKRewrapWaits: while a rewrap runs, another activation is refused
// (409, naming the wait) and changes nothing; a rewrap of a locked tenant
// pauses, saying the unlock ends the wait, and goes on once the tenant is
// unlocked.
func TestBYOKRewrapWaits(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		f.byokTenant(t)
		env := f.managedEnv(t, "byok")
		c := f.fill(t, env.ID, 3)
		f.clock.Advance(keyhold.BYOKActivationInterval + time.Minute)
		up2 := keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))}
		k2, err := f.p.UploadBYOKKey(f.ctx, up2)
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
		k3, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
		if err != nil {
			t.Fatal(err)
		}
		if k2, err = f.p.ActivateBYOKKey(f.ctx, k2.ID); err != nil || k2.RewrapOperationID == "" {
			t.Fatalf("activation: %+v, %v", k2, err)
		}
		// No runner yet: the rewrap is still queued a day later.
		f.clock.Advance(keyhold.BYOKActivationInterval + time.Minute)
		f.fixture.refuse(t, "an activation while a rewrap runs", keyhold.CodeConflict, []string{"still being moved", k3.ID}, func() error {
			_, err := f.p.ActivateBYOKKey(f.ctx, k3.ID)
			return err
		})
		if _, err := f.p.LockBYOKTenant(f.ctx); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.runner.Run(ctx) }()
		func() {
			defer func() { cancel(); <-done }()
			deadline := time.Now().Add(30 * time.Second)
			for {
				op, err := f.p.GetOperation(f.ctx, k2.RewrapOperationID)
				if err != nil {
					t.Fatal(err)
				}
				if op.Phase == keyhold.OperationPaused {
					if !strings.Contains(op.ErrorMsg, "keyhold byok unlock") {
						t.Errorf("the paused rewrap says %q, want the unlock named", op.ErrorMsg)
					}
					break
				}
				if op.State != keyhold.OperationRunning || time.Now().After(deadline) {
					t.Fatalf("rewrap of a locked tenant: %s %s %q, want Paused", op.State, op.Phase, op.ErrorMsg)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].KeyID == byokKIDPrefix+k2.ID {
				t.Fatalf("the paused rewrap moved %v", describeKeys(wks))
			}
			if _, err := f.p.UnlockBYOKTenant(f.ctx, up2); err != nil {
				t.Fatal(err)
			}
			op := f.wait(t, &keyhold.Operation{ID: k2.RewrapOperationID})
			if op.State != keyhold.OperationSucceeded {
				t.Fatalf("after the unlock: %s %s %q", op.State, op.ErrorCode, op.ErrorMsg)
			}
		}()
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].KeyID != byokKIDPrefix+k2.ID {
			t.Fatalf("after the rewrap: %v", describeKeys(wks))
		}
		f.p.DropKeys(env.ID)
		f.check(t, env.ID, c)
	})
}
