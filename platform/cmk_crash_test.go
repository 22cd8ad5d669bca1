//go:build keyhold_faults

package platform

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/ops/opstest"
)

// The crash tests run the lifecycle's operations in child processes (this
// test binary run again, see package opstest), kill the one holding the
// operation with SIGKILL at a fault point, and let a restarted child (or,
// on PostgreSQL, a second replica that was running all along) finish the
// operation or roll it back. Then every row and file must read back, and
// the environment, its wrapped keys and its epochs must be exactly those of
// a finished, or a rolled back, operation.

func TestMain(m *testing.M) { opstest.Main(m, crashSetup) }

// crashSetup opens, in a child process, the platform whose kinds its
// Runner runs: the store the parent made, the same master key and vault
// base URL. Re-key pages are made tiny so that a re-key of a few rows
// takes several step runs, each a place to crash.
func crashSetup(s keyhold.Store, r *ops.Runner) {
	rekeyBatch, rekeyStepTime = 2, 0
	byokRewrapBatch = 1 // one copy per run: a crash between runs too
	master, err := crashMasterKey()
	if err != nil {
		panic(err)
	}
	if _, _, err := openCMK(context.Background(), s, master, r, nil); err != nil {
		panic(fmt.Sprintf("crash child: open platform: %v", err))
	}
}

// crashScenario sets up one operation in the parent and checks its end.
type crashScenario struct {
	// start seeds the store and starts the operation under test; it
	// returns the operation and a check of the store once it ended.
	start func(t *testing.T, f *cmkFixture) (opID string, check func(t *testing.T, op *keyhold.Operation))
	// fail says the operation must fail (and roll back).
	fail bool
}

// crashEnv creates a Managed Environment with a few rows and one small
// file.
func crashEnv(t *testing.T, f *cmkFixture, name string) (*keyhold.Environment, *content) {
	env := f.managedEnv(t, name)
	return env, f.fill(t, env.ID, 5, 3000)
}

// runParent runs the parent's runner while fn runs (to set up a state
// that takes an operation, such as a link before a swap), and stops it.
func (f *cmkFixture) runParent(t *testing.T, fn func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.runner.Run(ctx) }()
	defer func() { cancel(); <-done }()
	fn()
}

// crashPolicy makes a vault, key and policy with its grant.
func crashPolicy(t *testing.T, f *cmkFixture, name string) (*keyhold.EnterprisePolicy, string, string) {
	v := f.newVault(t, "kv-"+name, true)
	f.newKey(t, v, "k")
	pol := f.newPolicy(t, name, v, "k", nil)
	scope, grant := f.grantKey(t, pol, v, "k")
	return pol, scope, grant
}

func crashScenarios() map[string]crashScenario {
	return map[string]crashScenario{
		"link": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol, _, _ := crashPolicy(t, f, "pol")
			env, c := crashEnv(t, f, "e")
			op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			return op.ID, func(t *testing.T, op *keyhold.Operation) {
				wantLinked(t, f, env.ID, pol, 2, "", c)
				if op.Done != 6 || op.Total != 6 {
					t.Errorf("operation done %d of %d, want 6 of 6", op.Done, op.Total)
				}
			}
		}},
		"byok-migrate": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			// A BYOK environment's link: the migration (byok_migrate.go).
			pol, _, _ := crashPolicy(t, f, "pol")
			env, c := crashEnv(t, f, "e")
			f.byokTenant(t) // after the environment, which apply then moves
			if _, err := f.p.ApplyBYOK(f.ctx, env.ID); err != nil {
				t.Fatal(err)
			}
			op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			return op.ID, func(t *testing.T, op *keyhold.Operation) {
				wantLinked(t, f, env.ID, pol, 2, "", c)
				wantBYOKMigrated(t, f, env.ID)
			}
		}},
		"byok-rewrap": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			// A newer BYOK key's activation: the rewrap (byok_rewrap.go).
			f.byokTenant(t)
			var envs []*keyhold.Environment
			var cs []*content
			for i := range 2 {
				env, c := crashEnv(t, f, fmt.Sprint("e", i)) // under the first key
				envs, cs = append(envs, env), append(cs, c)
			}
			f.clock.Advance(keyhold.BYOKActivationInterval + time.Minute)
			k2, err := f.p.UploadBYOKKey(f.ctx, keyhold.BYOKUpload{JWK: privateJWK(newRSA(t, 2048))})
			if err != nil {
				t.Fatal(err)
			}
			if k2, err = f.p.ActivateBYOKKey(f.ctx, k2.ID); err != nil || k2.RewrapOperationID == "" {
				t.Fatalf("activation: %+v, %v", k2, err)
			}
			return k2.RewrapOperationID, func(t *testing.T, op *keyhold.Operation) {
				for i, env := range envs {
					e := f.env(t, env.ID)
					if e.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft || e.State != keyhold.StateEnabled {
						t.Errorf("environment %s: %s %s, want CustomerViaMicrosoft and Enabled", env.ID, e.KeyManagedBy, e.State)
					}
					if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].KeyID != byokKIDPrefix+k2.ID {
						t.Errorf("environment %s: wrapped keys %v, want one under the new key %s", env.ID, describeKeys(wks), k2.ID)
					}
					f.p.DropKeys(env.ID)
					f.check(t, env.ID, cs[i])
				}
				if op.Done != op.Total || op.Total != 2 {
					t.Errorf("operation done %d of %d, want 2 of 2", op.Done, op.Total)
				}
			}
		}},
		"link-fails": {fail: true, start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol, scope, grant := crashPolicy(t, f, "pol")
			env, c := crashEnv(t, f, "e")
			op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			f.revoke(t, scope, grant) // the rewrap fails: Forbidden
			return op.ID, func(t *testing.T, op *keyhold.Operation) {
				wantOnMMK(t, f, env.ID, 1, keyhold.EncryptionFailed, c)
			}
		}},
		"swap": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol1, _, _ := crashPolicy(t, f, "pol-one")
			pol2, _, _ := crashPolicy(t, f, "pol-two")
			env, c := crashEnv(t, f, "e")
			f.runParent(t, func() {
				f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol1.SystemID) })
			})
			op, err := f.p.LinkPolicy(f.ctx, env.ID, pol2.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			return op.ID, func(t *testing.T, op *keyhold.Operation) { wantLinked(t, f, env.ID, pol2, 3, "", c) }
		}},
		"unlink": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol, _, _ := crashPolicy(t, f, "pol")
			env, c := crashEnv(t, f, "e")
			f.runParent(t, func() {
				f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
			})
			op, err := f.p.UnlinkPolicy(f.ctx, env.ID, pol.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			return op.ID, func(t *testing.T, op *keyhold.Operation) { wantOnMMK(t, f, env.ID, 2, keyhold.EncryptionSucceeded, c) }
		}},
		"unlink-fails": {fail: true, start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol, scope, grant := crashPolicy(t, f, "pol")
			env, c := crashEnv(t, f, "e")
			f.runParent(t, func() {
				f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
			})
			op, err := f.p.UnlinkPolicy(f.ctx, env.ID, pol.SystemID)
			if err != nil {
				t.Fatal(err)
			}
			f.revoke(t, scope, grant) // the rewrap can't unwrap: Forbidden
			f.p.DropKeys("")
			return op.ID, func(t *testing.T, op *keyhold.Operation) {
				e := f.env(t, env.ID)
				if e.KeyManagedBy != keyhold.KeyManagedByCustomer || e.PolicyID != pol.ID() || e.State != keyhold.StateEnabled || e.EncryptionStatus != keyhold.EncryptionFailed {
					t.Errorf("environment %+v: want still linked, Enabled, Failed", e)
				}
				if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].Root != keyhold.RootCMK {
					t.Errorf("wrapped keys %v: want the one CMK copy", describeKeys(wks))
				}
				f.grantKey(t, pol, f.vaultOf(t, pol), "k")
				f.check(t, env.ID, c)
			}
		}},
		"rotate": {start: func(t *testing.T, f *cmkFixture) (string, func(*testing.T, *keyhold.Operation)) {
			pol, _, _ := crashPolicy(t, f, "pol")
			var envs []*keyhold.Environment
			var cs []*content
			for i := range 3 {
				env, c := crashEnv(t, f, fmt.Sprint("e", i))
				f.runParent(t, func() {
					f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
				})
				envs, cs = append(envs, env), append(cs, c)
			}
			k2, err := f.kv.RotateKey(f.ctx, vaultNameOf(pol), "k")
			if err != nil {
				t.Fatal(err)
			}
			if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
				t.Fatalf("PickUpRotations = %d, %v", n, err)
			}
			ops := f.operations(t, pol.ID())
			return ops[0].ID, func(t *testing.T, op *keyhold.Operation) {
				for i, env := range envs {
					wantLinked(t, f, env.ID, pol, 2, k2.KID, cs[i])
				}
			}
		}},
	}
}

// vaultOf reads the vault a policy names.
func (f *cmkFixture) vaultOf(t *testing.T, pol *keyhold.EnterprisePolicy) *keyhold.Vault {
	var v *keyhold.Vault
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) { v, err = tx.Vault(context.Background(), vaultNameOf(pol)); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

type crashCase struct {
	scenario string
	fault    string
}

// crashCases lists every fault point of every scenario: each step's
// before, after and persisted points, and the rollback's for the failing
// ones.
func crashCases() []crashCase {
	kinds := assemble(&core{}).kinds()
	var cs []crashCase
	add := func(scenario string, points []string) {
		for _, p := range points {
			cs = append(cs, crashCase{scenario, p})
		}
	}
	add("link", ops.FaultPoints(keyhold.OpLink, kinds[keyhold.OpLink]))
	add("swap", ops.FaultPoints(keyhold.OpLink, kinds[keyhold.OpLink]))
	add("unlink", ops.FaultPoints(keyhold.OpUnlink, kinds[keyhold.OpUnlink]))
	add("rotate", ops.FaultPoints(keyhold.OpRotate, kinds[keyhold.OpRotate]))
	add("byok-migrate", ops.FaultPoints(keyhold.OpLink, kinds[keyhold.OpLink]))
	add("byok-rewrap", ops.FaultPoints(keyhold.OpBYOKRewrap, kinds[keyhold.OpBYOKRewrap]))
	add("link-fails", ops.RollbackFaultPoints(keyhold.OpLink))
	add("unlink-fails", ops.RollbackFaultPoints(keyhold.OpUnlink))
	return cs
}

// TestCrashSafety kills the server running each lifecycle operation
// (kill -9) at every step boundary, on SQLite, on PostgreSQL, and on
// PostgreSQL with two replicas of which the one holding the operation
// dies, and checks that the operation still ends, as it must, with every
// row and file readable.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash matrix starts two processes per case")
	}
	cases := crashCases()
	if len(cases) != 18+18+18+12+3+3+3+3 { // unlink: disable, rewrap, flows, enable
		t.Fatalf("%d crash cases: %v", len(cases), cases)
	}
	modes := []struct {
		name     string
		backend  func(t *testing.T) opstest.Backend
		replicas int
	}{
		{"sqlite", func(t *testing.T) opstest.Backend { return opstest.SQLite(t) }, 1},
		{"postgres", func(t *testing.T) opstest.Backend { return opstest.Postgres(t) }, 1},
		{"postgres-2-replicas", func(t *testing.T) opstest.Backend { return opstest.Postgres(t) }, 2},
	}
	scenarios := crashScenarios()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, m := range modes {
		for _, tc := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				t.Run(m.name+"/"+tc.scenario+"/"+tc.fault, func(t *testing.T) {
					runCrash(t, m.backend(t), m.replicas, scenarios[tc.scenario], tc.fault)
				})
			}()
		}
	}
	wg.Wait()
}

const crashTimeout = time.Minute

func runCrash(t *testing.T, b opstest.Backend, replicas int, sc crashScenario, fault string) {
	f := newCMKFixture(t, b.Open(t), false)
	opID, check := sc.start(t, f)
	lease := 500 * time.Millisecond
	var killed *opstest.Child
	switch replicas {
	case 1:
		a := opstest.StartChild(t, b, opstest.ChildOptions{Owner: "a", Fault: fault, LeaseTTL: lease})
		waitDead(t, a, fault)
		killed = a
		opstest.StartChild(t, b, opstest.ChildOptions{Owner: "b", LeaseTTL: lease})
	case 2:
		once := filepath.Join(t.TempDir(), "fault-fired")
		a := opstest.StartChild(t, b, opstest.ChildOptions{Owner: "a", Fault: fault, FaultOnce: once, LeaseTTL: lease})
		c := opstest.StartChild(t, b, opstest.ChildOptions{Owner: "b", Fault: fault, FaultOnce: once, LeaseTTL: lease})
		select {
		case <-a.Done():
			killed = a
		case <-c.Done():
			killed = c
		case <-time.After(crashTimeout):
			t.Fatalf("no replica died at %s within %v", fault, crashTimeout)
		}
		waitDead(t, killed, fault)
	}
	op := opstest.WaitEnded(t, f.store, opID, crashTimeout)
	want := keyhold.OperationSucceeded
	if sc.fail {
		want = keyhold.OperationFailed
	}
	if op.State != want {
		t.Fatalf("operation ended %s (%s %q), want %s", op.State, op.ErrorCode, op.ErrorMsg, want)
	}
	if strings.Contains(fault, ":persisted:") && (strings.HasSuffix(fault, ":destroy") || strings.HasSuffix(fault, ":"+ops.RollbackStep) ||
		(strings.HasPrefix(fault, keyhold.OpUnlink) && strings.HasSuffix(fault, ":enable")) || strings.HasPrefix(fault, keyhold.OpRotate+":persisted")) {
		// The killed child recorded the end itself.
		if op.LeaseOwner != killed.Owner {
			t.Errorf("the operation ended by %q, want %q, which recorded its last step before dying", op.LeaseOwner, killed.Owner)
		}
	}
	check(t, op)
}

// waitDead waits for a child to die by SIGKILL at its fault point.
func waitDead(t *testing.T, c *opstest.Child, fault string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(crashTimeout):
		t.Fatalf("child %s did not die at %s within %v", c.Owner, fault, crashTimeout)
	}
	if !c.Killed() {
		t.Fatalf("child %s exited without being killed at %s:\n%s", c.Owner, fault, c.Output())
	}
}
