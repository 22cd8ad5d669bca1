//go:build keyhold_faults

package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/ops/opstest"
)

func TestMain(m *testing.M) { opstest.Main(m, setup) }

// setup registers the kinds that the crash tests' child processes run.
func setup(s keyhold.Store, r *ops.Runner) {
	r.Register("mark", markKind(s))
}

// The "mark" kind stands in for a key change of an environment: it writes
// a marker key, then CMK-wrapped keys of epochs 2…keys+1 in batches of two,
// then switches the environment to the last epoch and deletes the marker.
// With fail set, its last step fails for good and the rollback puts the
// environment back as it was. Every step is idempotent.
const (
	markEnv     = "env-1"
	markTenant  = "tenant-1"
	markerEpoch = 1000
	batch       = 2
)

type markInput struct {
	Keys int  `json:"keys"`
	Fail bool `json:"fail"`
}

type markProgress struct {
	Next int `json:"next"` // keys written so far
}

func markKind(s keyhold.Store) ops.Kind {
	input := func(op *keyhold.Operation) (markInput, error) {
		var in markInput
		err := json.Unmarshal(op.Input, &in)
		return in, err
	}
	return ops.Kind{
		Steps: []ops.Step{
			{Name: "begin", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				return ops.StepResult{}, s.Update(ctx, func(tx keyhold.Tx) error {
					return tx.PutWrappedKey(ctx, &keyhold.WrappedKey{EnvID: op.Target, Epoch: markerEpoch, Root: keyhold.RootMMK,
						KeyID: "marker", Ciphertext: []byte("marker")})
				})
			}},
			{Name: "fill", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				in, err := input(op)
				if err != nil {
					return ops.StepResult{}, ops.Permanent(err)
				}
				var p markProgress
				if op.Progress != nil {
					if err := json.Unmarshal(op.Progress, &p); err != nil {
						return ops.StepResult{}, ops.Permanent(err)
					}
				}
				end := min(p.Next+batch, in.Keys)
				err = s.Update(ctx, func(tx keyhold.Tx) error {
					for i := p.Next; i < end; i++ {
						if err := tx.PutWrappedKey(ctx, cmkKey(op.Target, i)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return ops.StepResult{}, err
				}
				op.Progress, _ = json.Marshal(markProgress{Next: end})
				op.Done, op.Total = int64(end), int64(in.Keys)
				return ops.StepResult{Again: end < in.Keys}, nil
			}},
			{Name: "finish", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				in, err := input(op)
				if err != nil {
					return ops.StepResult{}, ops.Permanent(err)
				}
				if in.Fail {
					return ops.StepResult{}, keyhold.Errorf(keyhold.CodeKeyNotFound, "key %q was not found in the vault", "cmk-1")
				}
				return ops.StepResult{}, s.Update(ctx, func(tx keyhold.Tx) error {
					e, err := tx.Environment(ctx, op.Target)
					if err != nil {
						return err
					}
					if want := uint32(in.Keys + 1); e.Epoch != want {
						e.Epoch, e.KeyManagedBy = want, keyhold.KeyManagedByCustomer
						if err := tx.UpdateEnvironment(ctx, e); err != nil {
							return err
						}
					}
					return ignoreNotFound(tx.DeleteWrappedKey(ctx, op.Target, markerEpoch, keyhold.RootMMK))
				})
			}},
		},
		Rollback: func(ctx context.Context, op *keyhold.Operation) error {
			in, err := input(op)
			if err != nil {
				return ops.Permanent(err)
			}
			return s.Update(ctx, func(tx keyhold.Tx) error {
				for i := range in.Keys {
					if err := ignoreNotFound(tx.DeleteWrappedKey(ctx, op.Target, uint32(i+2), keyhold.RootCMK)); err != nil {
						return err
					}
				}
				if err := ignoreNotFound(tx.DeleteWrappedKey(ctx, op.Target, markerEpoch, keyhold.RootMMK)); err != nil {
					return err
				}
				e, err := tx.Environment(ctx, op.Target)
				if err != nil {
					return err
				}
				if e.Epoch != 1 {
					e.Epoch, e.KeyManagedBy = 1, keyhold.KeyManagedByMicrosoft
					return tx.UpdateEnvironment(ctx, e)
				}
				return nil
			})
		},
	}
}

func cmkKey(env string, i int) *keyhold.WrappedKey {
	return &keyhold.WrappedKey{EnvID: env, Epoch: uint32(i + 2), Root: keyhold.RootCMK, KeyID: "cmk-1",
		Ciphertext: fmt.Appendf(nil, "wrapped epoch %d", i+2)}
}

func ignoreNotFound(err error) error {
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil
	}
	return err
}

// seedMark creates the tenant and the environment, at epoch 1 with its
// MMK-wrapped key.
func seedMark(t *testing.T, s keyhold.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	err := s.Update(ctx, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: markTenant, DisplayName: "T", CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.CreateEnvironment(ctx, &keyhold.Environment{ID: markEnv, TenantID: markTenant, DisplayName: "E",
			Location: "europe", SKU: keyhold.SKUSandbox, State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByMicrosoft,
			Epoch: 1, CreatedBy: "u", CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		return tx.PutWrappedKey(ctx, &keyhold.WrappedKey{EnvID: markEnv, Epoch: 1, Root: keyhold.RootMMK, KeyID: "mmk/1",
			Ciphertext: []byte("wrapped epoch 1")})
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
}

func markOp(keys int, fail bool) *keyhold.Operation {
	in, _ := json.Marshal(markInput{Keys: keys, Fail: fail})
	return &keyhold.Operation{Kind: "mark", TenantID: markTenant, Target: markEnv, CreatedBy: "u", Input: in}
}

// checkMark checks the invariants of an ended "mark" operation: all of it
// done, or none of it, and every key as written.
func checkMark(t *testing.T, s keyhold.Store, op *keyhold.Operation, keys int, fail bool) {
	t.Helper()
	ctx := context.Background()
	var e *keyhold.Environment
	var wks []*keyhold.WrappedKey
	err := s.View(ctx, func(tx keyhold.Tx) (err error) {
		if e, err = tx.Environment(ctx, markEnv); err != nil {
			return err
		}
		wks, err = tx.WrappedKeys(ctx, markEnv)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1/MMK/mmk/1/wrapped epoch 1"}
	wantEpoch, wantKMB := uint32(1), keyhold.KeyManagedByMicrosoft
	if !fail {
		for i := range keys {
			k := cmkKey(markEnv, i)
			want = append(want, fmt.Sprintf("%d/%s/%s/%s", k.Epoch, k.Root, k.KeyID, k.Ciphertext))
		}
		wantEpoch, wantKMB = uint32(keys+1), keyhold.KeyManagedByCustomer
	}
	var got []string
	for _, k := range wks {
		got = append(got, fmt.Sprintf("%d/%s/%s/%s", k.Epoch, k.Root, k.KeyID, k.Ciphertext))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("wrapped keys:\n got %v\nwant %v", got, want)
	}
	if e.Epoch != wantEpoch || e.KeyManagedBy != wantKMB {
		t.Errorf("environment at epoch %d, key managed by %s; want %d, %s", e.Epoch, e.KeyManagedBy, wantEpoch, wantKMB)
	}
	if op.Step != "" || op.FinishedAt.IsZero() || !op.LeaseUntil.IsZero() {
		t.Errorf("ended operation: step %q, finished %v, lease until %v; want no step, a finish time, no lease", op.Step, op.FinishedAt, op.LeaseUntil)
	}
	if fail {
		if op.State != keyhold.OperationFailed || op.ErrorCode != keyhold.CodeKeyNotFound || op.ErrorMsg != `key "cmk-1" was not found in the vault` {
			t.Errorf("operation %s %s %q, want Failed KeyNotFound with the step's message", op.State, op.ErrorCode, op.ErrorMsg)
		}
		return
	}
	if op.State != keyhold.OperationSucceeded || op.ErrorCode != "" || op.Done != int64(keys) || op.Total != int64(keys) {
		t.Errorf("operation %s %s, done %d of %d; want Succeeded, %d of %d", op.State, op.ErrorCode, op.Done, op.Total, keys, keys)
	}
}

// TestCrash kills a Runner (kill -9) at every fault point of the "mark"
// kind, and of its rollback, and checks that a restarted Runner (or, on
// PostgreSQL, a second replica that was running all along) finishes the
// operation or rolls it back completely.
func TestCrash(t *testing.T) {
	const keys = 5 // three batches of the fill step
	type tcase struct {
		fault string
		fail  bool
	}
	var cases []tcase
	for _, p := range ops.FaultPoints("mark", markKind(nil)) {
		cases = append(cases, tcase{p, false})
	}
	for _, p := range ops.RollbackFaultPoints("mark") {
		cases = append(cases, tcase{p, true})
	}
	if len(cases) != 12 {
		t.Fatalf("%d fault points, want 12: %v", len(cases), cases)
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
	// The cases spend most of their time waiting for a dead child's lease
	// to end, so run several at once, more than -parallel's default of
	// GOMAXPROCS would.
	sem := make(chan struct{}, 6)
	var wg sync.WaitGroup
	for _, m := range modes {
		for _, tc := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				t.Run(m.name+"/"+tc.fault, func(t *testing.T) {
					res := opstest.Crash{Backend: m.backend(t), Setup: setup, Fault: tc.fault, Replicas: m.replicas}.
						Run(t, seedMark, markOp(keys, tc.fail))
					checkMark(t, res.Store, res.Op, keys, tc.fail)
					last := tc.fault == "mark:persisted:finish" || tc.fault == "mark:persisted:rollback"
					switch {
					case last && res.Finisher != res.Killed:
						t.Errorf("%s: the killed runner recorded the end, but the operation names %s", res, res.Finisher)
					case !last && res.Finisher == res.Killed:
						t.Errorf("%s: the killed runner can't have ended the operation", res)
					}
				})
			}()
		}
	}
	wg.Wait()
}

func TestFaultPoints(t *testing.T) {
	got := ops.FaultPoints("link", ops.Kind{Steps: counted(&counter{}, "wrap", "switch")})
	want := []string{"link:before:wrap", "link:after:wrap", "link:persisted:wrap", "link:before:switch", "link:after:switch", "link:persisted:switch"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("FaultPoints = %v, want %v", got, want)
	}
	if got, want := ops.RollbackFaultPoints("link"), []string{"link:before:rollback", "link:after:rollback", "link:persisted:rollback"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("RollbackFaultPoints = %v, want %v", got, want)
	}
	// Armed for other points, Fault returns (the crash tests show that it
	// kills at its own).
	t.Setenv(ops.FaultEnv, "link:before:wrap2, link:after:wrap")
	ops.Fault("link:before:wrap")
	ops.Fault("link")
}
