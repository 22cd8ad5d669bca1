package platform

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// lockTrigger is a real store that runs fire once, at the start of the
// first transaction (Update, or View if onView) that begins once when()
// holds: a lock that lands between two writes of a running operation. Its
// transactions count the rows they reseal and the environments they
// disable, for when() to look at.
type lockTrigger struct {
	sealingStore
	reseals  atomic.Int64 // rows resealed (a re-key's moves)
	disables atomic.Int64 // environments written as Disabled

	mu     sync.Mutex
	when   func() bool
	fire   func()
	onView bool
	firing chan struct{} // closed when a fire in progress ends
}

// firingKey marks the context of fire's own store calls (firingCtx): every
// other call waits while a fire is in progress, so that the lock it makes
// lands as one step in the operation's life, whichever goroutine (a step,
// the claim loop, a heartbeat) happened to trip it.
type firingKey struct{}

func firingCtx(ctx context.Context) context.Context { return context.WithValue(ctx, firingKey{}, true) }

// gate waits for a fire in progress, unless ctx is the fire's own.
func (s *lockTrigger) gate(ctx context.Context) {
	s.mu.Lock()
	ch := s.firing
	s.mu.Unlock()
	if ch != nil && ctx.Value(firingKey{}) == nil {
		<-ch
	}
}

// arm makes fire run at the start of the first transaction after when()
// holds.
func (s *lockTrigger) arm(onView bool, when func() bool, fire func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.when, s.fire, s.onView = when, fire, onView
}

func (s *lockTrigger) maybeFire(ctx context.Context, view bool) {
	s.gate(ctx)
	s.mu.Lock()
	var fire func()
	var done chan struct{}
	if s.fire != nil && (!view || s.onView) && s.when() {
		fire, s.fire = s.fire, nil
		done = make(chan struct{})
		s.firing = done
	}
	s.mu.Unlock()
	if fire != nil {
		fire()
		s.mu.Lock()
		s.firing = nil
		s.mu.Unlock()
		close(done)
	}
}

func (s *lockTrigger) View(ctx context.Context, fn func(keyhold.Tx) error) error {
	s.maybeFire(ctx, true)
	return s.Store.View(ctx, fn)
}

func (s *lockTrigger) Update(ctx context.Context, fn func(keyhold.Tx) error) error {
	s.maybeFire(ctx, false)
	return s.Store.Update(ctx, func(tx keyhold.Tx) error { return fn(countingTx{Tx: tx, s: s}) })
}

// countingTx counts a transaction's reseals and disables.
type countingTx struct {
	keyhold.Tx
	s *lockTrigger
}

func (t countingTx) ResealRow(ctx context.Context, r *keyhold.RowRecord, fromEpoch uint32) error {
	err := t.Tx.ResealRow(ctx, r, fromEpoch)
	if err == nil {
		t.s.reseals.Add(1)
	}
	return err
}

func (t countingTx) ResealRows(ctx context.Context, envID string, rs []*keyhold.RowRecord, fromEpoch uint32) (int64, error) {
	n, err := t.Tx.ResealRows(ctx, envID, rs, fromEpoch)
	if err == nil {
		t.s.reseals.Add(n)
	}
	return n, err
}

func (t countingTx) UpdateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	err := t.Tx.UpdateEnvironment(ctx, e)
	if err == nil && e.State == keyhold.StateDisabled {
		t.s.disables.Add(1)
	}
	return err
}

// fastLockRecheck makes paused operations look again every 50 ms, and
// re-key pages tiny (batch rows, stepTime per step run), until the test
// ends. Call it before the fixture, so that its runner stops first.
func fastLockRecheck(t *testing.T, batch int, stepTime time.Duration) {
	recheck, b, st := lockedRecheck, rekeyBatch, rekeyStepTime
	lockedRecheck, rekeyBatch, rekeyStepTime = 50*time.Millisecond, batch, stepTime
	t.Cleanup(func() { lockedRecheck, rekeyBatch, rekeyStepTime = recheck, b, st })
}

// dataState renders everything an environment's data and keys are, as
// stored: every row and file record with a hash of its ciphertext, every
// wrapped key, and its items per epoch.
func (f *cmkFixture) dataState(t *testing.T, envID string) string {
	t.Helper()
	s, err := f.dataStateErr(envID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dataStateErr is dataState for goroutines that may not call t.Fatal.
func (f *cmkFixture) dataStateErr(envID string) (string, error) {
	var b strings.Builder
	ctx := firingCtx(context.Background()) // also called by a fire (lockFromTrigger)
	err := f.store.View(ctx, func(tx keyhold.Tx) error {
		b.Reset()
		rows, err := tx.ListRows(ctx, keyhold.RowFilter{EnvID: envID, Limit: 100000})
		if err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Fprintf(&b, "row %s/%s v%d e%d %x\n", r.Table, r.ID, r.Version, r.Epoch, sha256.Sum256(r.Ciphertext))
		}
		files, err := tx.ListFiles(ctx, envID)
		if err != nil {
			return err
		}
		for _, fr := range files {
			fmt.Fprintf(&b, "file %s v%d e%d gen %s chunks %d\n", fr.Name, fr.Version, fr.Epoch, fr.Generation, fr.Chunks)
		}
		wks, err := tx.WrappedKeys(ctx, envID)
		if err != nil {
			return err
		}
		for _, k := range wks {
			fmt.Fprintf(&b, "key %d/%s/%s/%s %x\n", k.Epoch, k.Root, k.PrincipalID, k.KeyID, sha256.Sum256(k.Ciphertext))
		}
		counts, err := tx.EpochCounts(ctx, envID)
		fmt.Fprintf(&b, "epochs %v\n", counts)
		return err
	})
	return b.String(), err
}

// lockFromTrigger locks env the way the test case asks, from inside a
// store call of the operation's runner (so it reports with t.Error, never
// t.Fatal): with revoke, it deletes the policy identity's role assignment
// and runs the health check, which locks the environment and drops its
// cached keys; without, it only writes the Locked state, as another
// replica's lock looks to a runner whose cache still holds the keys. It
// returns the environment's data state right after the lock.
func (f *cmkFixture) lockFromTrigger(t *testing.T, revoke bool, pol *keyhold.EnterprisePolicy, scope, grant, envID string) string {
	ctx := firingCtx(context.Background())
	if revoke {
		if _, err := f.arm.DeleteRoleAssignment(firingCtx(f.ctx), scope, grant); err != nil {
			t.Errorf("delete role assignment: %v", err)
		}
		if _, err := f.p.CheckPolicyHealth(ctx, pol.ID()); err != nil {
			t.Errorf("CheckPolicyHealth: %v", err)
		}
	} else if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
		e, err := tx.Environment(ctx, envID)
		if err != nil {
			return err
		}
		e.State, e.LockedAt = keyhold.StateLocked, f.clock.Now().UTC()
		return tx.UpdateEnvironment(ctx, e)
	}); err != nil {
		t.Errorf("locking the environment: %v", err)
	}
	s, err := f.dataStateErr(envID)
	if err != nil {
		t.Errorf("reading the data state at the lock: %v", err)
	}
	return s
}

// waitPaused waits until the operation is recorded paused and returns it,
// as the admin API's GetOperation shows it.
func (f *cmkFixture) waitPaused(t *testing.T, opID string) *keyhold.Operation {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		op, err := f.p.GetOperation(f.ctx, opID)
		if err != nil {
			t.Fatal(err)
		}
		if ops.IsPaused(op) {
			return op
		}
		if op.State != keyhold.OperationRunning || time.Now().After(deadline) {
			t.Fatalf("operation %s: %s at %q, %q %q; want it paused", op.ID, op.State, op.Step, op.ErrorCode, op.ErrorMsg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requirePausedOnLock checks a paused operation: Running at step, no error
// code, no attempt counted, and a status message that names the
// environment, the policy, the cause and the way out.
func requirePausedOnLock(t *testing.T, op *keyhold.Operation, step, envID, policyID, cause string) {
	t.Helper()
	if op.State != keyhold.OperationRunning || op.Step != step || op.ErrorCode != "" || op.Attempts != 0 {
		t.Errorf("paused operation: %s at %q, code %q, attempts %d; want Running at %q, no code, no attempts", op.State, op.Step, op.ErrorCode, op.Attempts, step)
	}
	for _, want := range []string{"Paused: environment " + envID + " is locked", policyID, cause, "re-enables", "resumes"} {
		if !strings.Contains(op.ErrorMsg, want) {
			t.Errorf("pause message %q lacks %q", op.ErrorMsg, want)
		}
	}
}

// noRollback checks that no operation on envID was rolled back.
func (f *cmkFixture) noRollback(t *testing.T, envID string) {
	t.Helper()
	for _, a := range f.auditActions(t, envID) {
		if a == auditRollback {
			t.Errorf("audit %v: an operation was rolled back", f.auditActions(t, envID))
		}
	}
}

// TestLockRefusesOperations: on a Locked environment, link (a swap), the
// re-key that linking again starts, and unlink are refused with
// EnvironmentLocked, naming the policy and the revocation, and change
// nothing; once re-enabled, the same unlink runs.
func TestLockRefusesOperations(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "refuse")
		other := f.newVault(t, "kv-refuse-other", true)
		f.newKey(t, other, "k")
		pol2 := f.newPolicy(t, "pol-refuse-other", other, "k", nil)
		f.grantKey(t, pol2, other, "k")
		f.revoke(t, w.grantSc, w.grantNme)
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		f.requireLocked(t, w, keyhold.InnerForbiddenByRbac)
		locked := func() string { return w.env.ID }
		mention := []string{"is locked", w.pol.ID(), keyhold.InnerForbiddenByRbac, "re-enables"}
		link := func(pol *keyhold.EnterprisePolicy) func(string) error {
			return func(envID string) error { _, err := f.p.LinkPolicy(f.ctx, envID, pol.SystemID); return err }
		}
		unlink := func(pol *keyhold.EnterprisePolicy) func(string) error {
			return func(envID string) error { _, err := f.p.UnlinkPolicy(f.ctx, envID, pol.SystemID); return err }
		}
		f.runRefusals(t, []refusal{
			{"swap", locked, link(pol2), keyhold.CodeEnvironmentLocked, "", mention},
			{"unlink", locked, unlink(w.pol), keyhold.CodeEnvironmentLocked, "", mention},
			{"unlink from another policy", locked, unlink(pol2), keyhold.CodeEnvironmentLocked, "", mention},
			{"re-key", func() string {
				f.setEnv(t, w.env.ID, func(e *keyhold.Environment) { e.EncryptionStatus = keyhold.EncryptionFailed })
				return w.env.ID
			}, link(w.pol), keyhold.CodeEnvironmentLocked, "", mention},
		})
		if ops := f.operations(t, w.pol.ID()); len(ops) != 0 {
			t.Errorf("operations on the policy after the refusals: %+v", ops)
		}
		// Not the lock's doing otherwise: re-enabled, the unlink runs.
		w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
		f.health(t, w.pol, keyhold.HealthHealthy)
		if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(f.ctx, w.env.ID, w.pol.SystemID) })
		f.check(t, w.env.ID, w.data)
	})
}

// TestRekeyPausesWhileLocked: an environment locks while its link is
// re-keying its rows. The re-key neither fails nor rolls back nor touches
// a row, file or key after the lock: it pauses, and says why. After the
// key is back and an administrator re-enables the environment, it goes on
// from where it stopped and finishes, and every row and file reads back
// byte-for-byte. The lock lands three ways: between two runs of the step,
// inside a run (between two pages, where its keys are dropped and the
// unwrap is refused), and by another replica whose key cache still holds
// the keys (only the check inside the page's transaction can stop it).
func TestRekeyPausesWhileLocked(t *testing.T) {
	cases := []struct {
		name     string
		stepTime time.Duration
		onView   bool
		revoke   bool // a real revocation and health check, or only the Locked state
	}{
		{"between-step-runs", 0, false, true},
		{"within-a-step-run", time.Hour, true, true},
		{"other-replica", time.Hour, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fastLockRecheck(t, 2, tc.stepTime)
			storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
				ts := &lockTrigger{sealingStore: sealingStore{open(t)}}
				f := newCMKFixture(t, ts, true)
				v := f.newVault(t, "kv-pause", true)
				f.newKey(t, v, "k")
				pol := f.newPolicy(t, "pol-pause", v, "k", nil)
				scope, grant := f.grantKey(t, pol, v, "k")
				env := f.managedEnv(t, "e")
				c := f.fill(t, env.ID, 12, 3000, 2*ChunkSize+5)

				var atLock string
				fired := make(chan struct{})
				ts.arm(tc.onView, func() bool { return ts.reseals.Load() >= 2 }, func() {
					atLock = f.lockFromTrigger(t, tc.revoke, pol, scope, grant, env.ID)
					close(fired)
				})
				op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
				if err != nil {
					t.Fatal(err)
				}
				paused := f.waitPaused(t, op.ID)
				<-fired
				cause := ""
				if tc.revoke {
					cause = keyhold.InnerForbiddenByRbac
				}
				requirePausedOnLock(t, paused, stepRekey, env.ID, pol.ID(), cause)
				if e := f.env(t, env.ID); e.State != keyhold.StateLocked || e.Epoch != 2 || e.EncryptionStatus != keyhold.EncryptionRunning {
					t.Fatalf("environment while paused: %s, epoch %d, encryption %s; want Locked, 2, Running", e.State, e.Epoch, e.EncryptionStatus)
				}
				// Mid-way: some items moved to epoch 2, some still on 1.
				if cs := f.epochCounts(t, env.ID); len(cs) != 2 {
					t.Fatalf("items per epoch at the pause %v: want some on each epoch", cs)
				}
				// It stays paused, and nothing changes, over many rechecks.
				time.Sleep(10 * lockedRecheck)
				if got := f.dataState(t, env.ID); got != atLock {
					t.Fatalf("data or keys changed after the lock:\nat the lock:\n%s\nnow:\n%s", atLock, got)
				}
				again, err := f.p.GetOperation(f.ctx, op.ID)
				if err != nil {
					t.Fatal(err)
				}
				requirePausedOnLock(t, again, stepRekey, env.ID, pol.ID(), cause)
				f.noRollback(t, env.ID)

				if tc.revoke {
					f.grantKey(t, pol, v, "k")
					f.health(t, pol, keyhold.HealthHealthy)
				}
				if err := f.p.EnableEnvironment(f.ctx, env.ID); err != nil {
					t.Fatalf("EnableEnvironment: %v", err)
				}
				done := f.wait(t, op)
				if done.State != keyhold.OperationSucceeded || done.ErrorMsg != "" || ops.IsPaused(done) {
					t.Fatalf("after the re-enable the operation ended %s %q %q", done.State, done.ErrorCode, done.ErrorMsg)
				}
				f.noRollback(t, env.ID)
				wantLinked(t, f, env.ID, pol, 2, "", c)
			})
		})
	}
}

// TestUnlinkPausedBeforeRewrap: an environment locks between its unlink's
// disable and rewrap steps. The unlink pauses with the keys as they were;
// once the key is back and the environment re-enabled (which makes it
// Enabled), the unlink takes it out of service again before it moves the
// keys, and finishes: the environment is on the platform's key and its
// data reads back.
//
// With a recheck of an hour it shows that the re-enable itself wakes the
// paused operation (Runner.Resume): it finishes in seconds.
func TestUnlinkPausedBeforeRewrap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recheck time.Duration
	}{{"recheck", 50 * time.Millisecond}, {"woken-by-enable", time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			fastLockRecheck(t, rekeyBatch, rekeyStepTime)
			lockedRecheck = tc.recheck // no runner is running yet; fastLockRecheck's cleanup restores it
			testUnlinkPausedBeforeRewrap(t)
		})
	}
}

func testUnlinkPausedBeforeRewrap(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		ts := &lockTrigger{sealingStore: sealingStore{open(t)}}
		f := newCMKFixture(t, ts, true)
		v := f.newVault(t, "kv-unlink-pause", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol-unlink-pause", v, "k", nil)
		scope, grant := f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "e")
		c := f.fill(t, env.ID, 4, 100)
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })

		base := ts.disables.Load()
		var atLock string
		fired := make(chan struct{})
		ts.arm(false, func() bool { return ts.disables.Load() > base }, func() {
			atLock = f.lockFromTrigger(t, true, pol, scope, grant, env.ID)
			close(fired)
		})
		op, err := f.p.UnlinkPolicy(f.ctx, env.ID, pol.SystemID)
		if err != nil {
			t.Fatal(err)
		}
		paused := f.waitPaused(t, op.ID)
		<-fired
		requirePausedOnLock(t, paused, stepRewrap, env.ID, pol.ID(), keyhold.InnerForbiddenByRbac)
		time.Sleep(10 * min(lockedRecheck, 50*time.Millisecond))
		if got := f.dataState(t, env.ID); got != atLock {
			t.Fatalf("data or keys changed after the lock:\nat the lock:\n%s\nnow:\n%s", atLock, got)
		}
		if e := f.env(t, env.ID); e.State != keyhold.StateLocked || e.PolicyID != pol.ID() {
			t.Fatalf("environment while paused: %s, policy %q; want Locked, still linked", e.State, e.PolicyID)
		}
		f.grantKey(t, pol, v, "k")
		f.health(t, pol, keyhold.HealthHealthy)
		if err := f.p.EnableEnvironment(f.ctx, env.ID); err != nil {
			t.Fatalf("EnableEnvironment: %v", err)
		}
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // far less than an hour's recheck
		defer cancel()
		done, err := f.runner.Wait(wctx, op.ID)
		if err != nil {
			t.Fatalf("the unlink did not finish within 30 s of the re-enable (recheck %v): %v", lockedRecheck, err)
		}
		if done.State != keyhold.OperationSucceeded || done.ErrorMsg != "" {
			t.Fatalf("after the re-enable the unlink ended %s %q %q", done.State, done.ErrorCode, done.ErrorMsg)
		}
		f.noRollback(t, env.ID)
		var disables int
		for _, a := range f.auditActions(t, env.ID) {
			if a == auditUnlinkDisable {
				disables++
			}
		}
		if disables != 2 {
			t.Errorf("audit %v: want the unlink to disable the environment again after its re-enable (2 %s)", f.auditActions(t, env.ID), auditUnlinkDisable)
		}
		wantOnMMK(t, f, env.ID, 2, keyhold.EncryptionSucceeded, c)
	})
}

// TestRotationSkipsLockedEnvironments: with access restored but one of a
// policy's two environments still Locked, a key rotation moves the other
// one to the new key version and leaves the locked one's wrapped key
// exactly as it was, without failing; the pickup does not submit again for
// the locked one alone, and picks it up once it is re-enabled.
func TestRotationSkipsLockedEnvironments(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-rotate-locked", true)
		k1 := f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol", v, "k", nil)
		scope, grant := f.grantKey(t, pol, v, "k")
		var envs []*keyhold.Environment
		var contents []*content
		for i := range 2 {
			e := f.managedEnv(t, fmt.Sprint("e", i))
			contents = append(contents, f.fill(t, e.ID, 3, 50))
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e.ID, pol.SystemID) })
			envs = append(envs, e)
		}
		locked, serving := envs[0], envs[1]
		f.revoke(t, scope, grant)
		f.health(t, pol, keyhold.HealthUnhealthy)
		f.grantKey(t, pol, v, "k")
		f.health(t, pol, keyhold.HealthHealthy)
		if err := f.p.EnableEnvironment(f.ctx, serving.ID); err != nil {
			t.Fatal(err)
		}
		if s := f.env(t, locked.ID).State; s != keyhold.StateLocked {
			t.Fatalf("first environment %s, want still Locked", s)
		}
		f.clock.Advance(time.Hour)
		k2, err := f.kv.RotateKey(f.ctx, v.Name, "k")
		if err != nil {
			t.Fatal(err)
		}
		before := f.state(t, locked.ID)
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
			t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
		}
		op := f.wait(t, f.operations(t, pol.ID())[0])
		if op.State != keyhold.OperationSucceeded || op.Done != 1 {
			t.Fatalf("rotation %s %s %q, %d done; want Succeeded with 1", op.State, op.ErrorCode, op.ErrorMsg, op.Done)
		}
		if wks := f.wrapped(t, serving.ID); len(wks) != 1 || wks[0].KeyID != stored(k2.KID) {
			t.Errorf("serving environment: wrapped keys %v, want one under %s", describeKeys(wks), k2.KID)
		}
		if after := f.state(t, locked.ID); after != before {
			t.Errorf("the rotation changed the locked environment:\nbefore %+v\nafter  %+v", before, after)
		}
		if wks := f.wrapped(t, locked.ID); len(wks) != 1 || wks[0].KeyID != stored(k1.KID) {
			t.Errorf("locked environment: wrapped keys %v, want still one under %s", describeKeys(wks), k1.KID)
		}
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 0 {
			t.Fatalf("PickUpRotations with only a locked environment behind = %d, %v; want 0", n, err)
		}
		if err := f.p.EnableEnvironment(f.ctx, locked.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
			t.Fatalf("PickUpRotations after the re-enable = %d, %v; want 1", n, err)
		}
		rots := f.operations(t, pol.ID())
		if op := f.wait(t, rots[0]); op.State != keyhold.OperationSucceeded || op.Done != 1 {
			t.Fatalf("second rotation %s %s %q, %d done; want Succeeded with 1", op.State, op.ErrorCode, op.ErrorMsg, op.Done)
		}
		for i, e := range envs {
			if wks := f.wrapped(t, e.ID); len(wks) != 1 || wks[0].KeyID != stored(k2.KID) {
				t.Errorf("environment %d: wrapped keys %v, want one under %s", i, describeKeys(wks), k2.KID)
			}
			f.check(t, e.ID, contents[i])
		}
	})
}
