package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// fast are Runner settings for in-process tests.
func fast(s keyhold.Store) ops.Config {
	return ops.Config{Store: s, LeaseTTL: 3 * time.Second, PollInterval: 10 * time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

// start runs r's worker loop until the test ends (or stop is called), and
// fails the test if Run returns an error.
func start(t *testing.T, r *ops.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newRunner(t *testing.T, cfg ops.Config) *ops.Runner {
	t.Helper()
	r, err := ops.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// counter counts step runs by operation and step. It is safe for
// concurrent use.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(op *keyhold.Operation, step string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op.ID+"/"+step]++
	return c.n[op.ID+"/"+step]
}

func (c *counter) get(id, step string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id+"/"+step]
}

// counted returns steps that only count their runs.
func counted(c *counter, names ...string) []ops.Step {
	var steps []ops.Step
	for _, name := range names {
		steps = append(steps, ops.Step{Name: name, Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			c.add(op, name)
			return ops.StepResult{}, nil
		}})
	}
	return steps
}

func newOp(kind, target string) *keyhold.Operation {
	return &keyhold.Operation{Kind: kind, TenantID: "t1", Target: target, CreatedBy: "u1"}
}

func submitWait(t *testing.T, r *ops.Runner, op *keyhold.Operation) *keyhold.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Submit(ctx, op); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	got, err := r.Wait(ctx, op.ID)
	if err != nil {
		t.Fatalf("Wait(%s): %v", op.ID, err)
	}
	return got
}

func wantCode(t *testing.T, what string, err error, code string, names ...string) {
	t.Helper()
	if got := keyhold.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %s", what, err, got, code)
	}
	for _, n := range names {
		if !strings.Contains(keyhold.ErrorMessage(err), n) {
			t.Errorf("%s: message %q doesn't name %q", what, keyhold.ErrorMessage(err), n)
		}
	}
}

// metric returns the value of a counter in reg with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func TestSubmitRunWait(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		s := open(t)
		reg := prometheus.NewRegistry()
		cfg := fast(s)
		cfg.Registerer = reg
		r := newRunner(t, cfg)
		var c counter
		r.Register("three", ops.Kind{Steps: counted(&c, "one", "two", "three")})
		// Next jumps: a skips b; c goes back to b once: a, c, b, c, d.
		jumps := ops.Kind{Steps: []ops.Step{
			{Name: "a", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				c.add(op, "a")
				return ops.StepResult{Next: "c"}, nil
			}},
			{Name: "b", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				c.add(op, "b")
				return ops.StepResult{}, nil // on to c, the following step
			}},
			{Name: "c", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				if c.add(op, "c") == 1 {
					return ops.StepResult{Next: "b"}, nil
				}
				return ops.StepResult{}, nil
			}},
			{Name: "d", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				c.add(op, "d")
				return ops.StepResult{}, nil
			}},
		}}
		r.Register("jumps", jumps)
		start(t, r)

		op := newOp("three", "env-1")
		op.Input = json.RawMessage(`{"x":1}`)
		before := time.Now()
		got := submitWait(t, r, op)
		if op.ID == "" || got.ID != op.ID {
			t.Fatalf("Submit set id %q, Wait returned %q", op.ID, got.ID)
		}
		if got.State != keyhold.OperationSucceeded || got.Step != "" || got.ErrorCode != "" || got.Attempts != 0 {
			t.Errorf("ended operation: %s at %q, error %q, attempts %d; want Succeeded, no step, no error", got.State, got.Step, got.ErrorCode, got.Attempts)
		}
		if got.CreatedAt.Before(before.Add(-time.Second)) || got.FinishedAt.Before(got.CreatedAt) || !got.LeaseUntil.IsZero() {
			t.Errorf("times: created %v, finished %v, lease until %v", got.CreatedAt, got.FinishedAt, got.LeaseUntil)
		}
		if string(got.Input) != `{"x":1}` || got.Kind != "three" || got.Target != "env-1" || got.TenantID != "t1" || got.CreatedBy != "u1" {
			t.Errorf("the caller's fields changed: %+v", got)
		}
		for _, step := range []string{"one", "two", "three"} {
			if n := c.get(op.ID, step); n != 1 {
				t.Errorf("step %s ran %d times, want 1", step, n)
			}
		}
		g, err := r.Get(context.Background(), op.ID)
		if err != nil || g.Version != got.Version {
			t.Errorf("Get: %v, %v", g, err)
		}
		_, err = r.Get(context.Background(), "nope")
		wantCode(t, "Get(nope)", err, keyhold.CodeNotFound, "nope")

		jop := submitWait(t, r, newOp("jumps", "env-2"))
		if jop.State != keyhold.OperationSucceeded {
			t.Errorf("jumps: %s %s", jop.State, jop.ErrorMsg)
		}
		for step, want := range map[string]int{"a": 1, "b": 1, "c": 2, "d": 1} {
			if n := c.get(jop.ID, step); n != want {
				t.Errorf("jumps: step %s ran %d times, want %d", step, n, want)
			}
		}

		if v := metric(t, reg, "keyhold_operations_started_total", map[string]string{"kind": "three"}); v != 1 {
			t.Errorf("started{three} = %v, want 1", v)
		}
		if v := metric(t, reg, "keyhold_operations_succeeded_total", map[string]string{"kind": "three"}); v != 1 {
			t.Errorf("succeeded{three} = %v, want 1", v)
		}
		if v := metric(t, reg, "keyhold_operation_step_duration_seconds", map[string]string{"kind": "jumps", "step": "c", "result": "ok"}); v != 2 {
			t.Errorf("step duration samples{jumps, c} = %v, want 2", v)
		}
	})
}

// TestAgain runs a batched step: it records its cursor between batches,
// and each batch sees the cursor the last one recorded.
func TestAgain(t *testing.T) {
	s := storetest.OpenSQLite(t)
	r := newRunner(t, fast(s))
	const total, size = 10, 3
	var runs atomic.Int32
	var mismatch atomic.Value
	r.Register("batches", ops.Kind{Steps: []ops.Step{
		{Name: "copy", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			runs.Add(1)
			// What the step is given is what the store holds.
			stored, err := r.Get(ctx, op.ID)
			if err != nil {
				return ops.StepResult{}, err
			}
			if string(stored.Progress) != string(op.Progress) || stored.Done != op.Done {
				mismatch.Store(fmt.Sprintf("stored %s/%d, given %s/%d", stored.Progress, stored.Done, op.Progress, op.Done))
			}
			var p struct{ Next int64 }
			if op.Progress != nil {
				json.Unmarshal(op.Progress, &p)
			}
			p.Next = min(p.Next+size, total)
			op.Progress, _ = json.Marshal(p)
			op.Done, op.Total = p.Next, total
			return ops.StepResult{Again: p.Next < total}, nil
		}},
		{Name: "check", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			if op.Done != total {
				return ops.StepResult{}, ops.Permanent(fmt.Errorf("check: done %d", op.Done))
			}
			return ops.StepResult{}, nil
		}},
	}})
	start(t, r)
	got := submitWait(t, r, newOp("batches", "env-1"))
	if got.State != keyhold.OperationSucceeded || got.Done != total || got.Total != total || string(got.Progress) != `{"Next":10}` {
		t.Errorf("ended: %s %q, done %d of %d, progress %s", got.State, got.ErrorMsg, got.Done, got.Total, got.Progress)
	}
	if n := runs.Load(); n != 4 {
		t.Errorf("the batch step ran %d times, want 4", n)
	}
	if m := mismatch.Load(); m != nil {
		t.Errorf("a batch was not given the recorded progress: %s", m)
	}
}

func TestPermanentErrorRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"client code", keyhold.Errorf(keyhold.CodeKeyNotFound, "key %q not found", "k1"), keyhold.CodeKeyNotFound, `key "k1" not found`},
		{"forbidden", fmt.Errorf("wrap: %w", keyhold.Errorf(keyhold.CodeForbidden, "no wrapKey permission")), keyhold.CodeForbidden, "no wrapKey permission"},
		{"marked permanent", ops.Permanent(errors.New("secret server detail")), keyhold.CodeInternal, keyhold.ErrorMessage(errors.New(""))},
		{"conflict", keyhold.Errorf(keyhold.CodeConflict, "policy is in use"), keyhold.CodeConflict, "policy is in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.OpenSQLite(t)
			r := newRunner(t, fast(s))
			var c counter
			var rolledBack *keyhold.Operation
			k := ops.Kind{Steps: counted(&c, "one", "two", "three"), Rollback: func(ctx context.Context, op *keyhold.Operation) error {
				c.add(op, "rollback")
				rolledBack = op
				return nil
			}}
			k.Steps[1].Run = func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
				c.add(op, "two")
				op.Done = 99 // not recorded: the step failed
				return ops.StepResult{}, tc.err
			}
			r.Register("k", k)
			start(t, r)
			got := submitWait(t, r, newOp("k", "env-1"))
			if got.State != keyhold.OperationFailed || got.ErrorCode != tc.wantCode || got.ErrorMsg != tc.wantMsg {
				t.Errorf("ended: %s %s %q, want Failed %s %q", got.State, got.ErrorCode, got.ErrorMsg, tc.wantCode, tc.wantMsg)
			}
			if got.Step != "" || got.FinishedAt.IsZero() || got.Done != 0 {
				t.Errorf("ended at step %q, finished %v, done %d", got.Step, got.FinishedAt, got.Done)
			}
			for step, want := range map[string]int{"one": 1, "two": 1, "three": 0, "rollback": 1} {
				if n := c.get(got.ID, step); n != want {
					t.Errorf("%s ran %d times, want %d", step, n, want)
				}
			}
			if rolledBack == nil || rolledBack.Step != "two" || rolledBack.ErrorCode != tc.wantCode || rolledBack.State != keyhold.OperationRunning {
				t.Errorf("rollback saw %+v; want the operation Running at the failed step, with the error", rolledBack)
			}
		})
	}
}

func TestTransientErrorRetried(t *testing.T) {
	s := storetest.OpenSQLite(t)
	cfg := fast(s)
	cfg.MaxAttempts = 4
	r := newRunner(t, cfg)
	var c counter
	var rollbacks atomic.Int32
	flaky := func(failures int, err error) ops.Kind {
		return ops.Kind{Steps: []ops.Step{{Name: "call", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			if c.add(op, "call") <= failures {
				return ops.StepResult{}, err
			}
			return ops.StepResult{}, nil
		}}}, Rollback: func(ctx context.Context, op *keyhold.Operation) error {
			rollbacks.Add(1)
			return nil
		}}
	}
	r.Register("vault-down-3", flaky(3, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "vault unreachable")))
	r.Register("db-down-2", flaky(2, errors.New("connection refused")))
	r.Register("conflict-marked-transient", flaky(1, ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "lost a race"))))
	r.Register("always-down", flaky(1000, keyhold.Errorf(keyhold.CodeServiceUnavailable, "down for maintenance")))
	start(t, r)

	for kind, runs := range map[string]int{"vault-down-3": 4, "db-down-2": 3, "conflict-marked-transient": 2} {
		got := submitWait(t, r, newOp(kind, kind))
		if got.State != keyhold.OperationSucceeded || got.Attempts != 0 {
			t.Errorf("%s: %s %s %q, attempts %d; want Succeeded, attempts reset", kind, got.State, got.ErrorCode, got.ErrorMsg, got.Attempts)
		}
		if n := c.get(got.ID, "call"); n != runs {
			t.Errorf("%s: the step ran %d times, want %d", kind, n, runs)
		}
	}
	if n := rollbacks.Load(); n != 0 {
		t.Errorf("%d rollbacks after transient failures, want none", n)
	}
	got := submitWait(t, r, newOp("always-down", "env-x"))
	if got.State != keyhold.OperationFailed || got.ErrorCode != keyhold.CodeServiceUnavailable || got.ErrorMsg != "down for maintenance" {
		t.Errorf("always-down: %s %s %q, want Failed ServiceUnavailable", got.State, got.ErrorCode, got.ErrorMsg)
	}
	if n := c.get(got.ID, "call"); n != cfg.MaxAttempts {
		t.Errorf("always-down: the step ran %d times, want MaxAttempts (%d)", n, cfg.MaxAttempts)
	}
	if n := rollbacks.Load(); n != 1 {
		t.Errorf("%d rollbacks after the attempts ran out, want 1", n)
	}
}

func TestRollbackFailures(t *testing.T) {
	s := storetest.OpenSQLite(t)
	cfg := fast(s)
	cfg.MaxAttempts = 3
	r := newRunner(t, cfg)
	var c counter
	failing := func(rollbackFailures int, err error) ops.Kind {
		return ops.Kind{Steps: []ops.Step{{Name: "s", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			return ops.StepResult{}, keyhold.Errorf(keyhold.CodeBadRequest, "bad input")
		}}}, Rollback: func(ctx context.Context, op *keyhold.Operation) error {
			if c.add(op, "rollback") <= rollbackFailures {
				return err
			}
			return nil
		}}
	}
	r.Register("retried", failing(2, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "vault unreachable")))
	r.Register("exhausted", failing(100, keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "vault unreachable")))
	r.Register("permanent", failing(100, keyhold.Errorf(keyhold.CodeForbidden, "no unwrapKey permission")))
	r.Register("panics", ops.Kind{Steps: []ops.Step{{Name: "s", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		panic("bug")
	}}}})
	start(t, r)
	for _, tc := range []struct {
		kind     string
		runs     int
		wantCode string
		wantMsg  string
	}{
		{"retried", 3, keyhold.CodeBadRequest, "bad input"},
		{"exhausted", 3, keyhold.CodeBadRequest, "bad input The rollback failed too: vault unreachable"},
		{"permanent", 1, keyhold.CodeBadRequest, "bad input The rollback failed too: no unwrapKey permission"},
		{"panics", 0, keyhold.CodeInternal, keyhold.ErrorMessage(errors.New(""))},
	} {
		got := submitWait(t, r, newOp(tc.kind, tc.kind))
		if got.State != keyhold.OperationFailed || got.ErrorCode != tc.wantCode || got.ErrorMsg != tc.wantMsg {
			t.Errorf("%s: %s %s %q, want Failed %s %q", tc.kind, got.State, got.ErrorCode, got.ErrorMsg, tc.wantCode, tc.wantMsg)
		}
		if n := c.get(got.ID, "rollback"); n != tc.runs {
			t.Errorf("%s: the rollback ran %d times, want %d", tc.kind, n, tc.runs)
		}
	}
}

func TestOneRunningOperationPerTarget(t *testing.T) {
	s := storetest.OpenSQLite(t)
	r := newRunner(t, fast(s))
	release := make(chan struct{})
	r.Register("slow", ops.Kind{Steps: []ops.Step{{Name: "wait", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		select {
		case <-release:
			return ops.StepResult{}, nil
		case <-ctx.Done():
			return ops.StepResult{}, ctx.Err()
		}
	}}}})
	start(t, r)
	ctx := context.Background()
	first := newOp("slow", "env-1")
	if err := r.Submit(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := newOp("slow", "env-1")
	err := r.Submit(ctx, second)
	wantCode(t, "second Submit on env-1", err, keyhold.CodeConflict, "env-1", first.ID)
	var all []*keyhold.Operation
	s.View(ctx, func(tx keyhold.Tx) (err error) {
		all, err = tx.ListOperations(ctx, keyhold.OperationFilter{})
		return err
	})
	if len(all) != 1 || all[0].ID != first.ID {
		t.Errorf("stored operations after the refused Submit: %d, want only the first", len(all))
	}
	// Another target is free.
	other := newOp("slow", "env-2")
	if err := r.Submit(ctx, other); err != nil {
		t.Fatalf("Submit on env-2: %v", err)
	}
	close(release)
	for _, id := range []string{first.ID, other.ID} {
		if got, err := r.Wait(ctx, id); err != nil || got.State != keyhold.OperationSucceeded {
			t.Fatalf("Wait(%s): %v, %v", id, got, err)
		}
	}
	if got := submitWait(t, r, newOp("slow", "env-1")); got.State != keyhold.OperationSucceeded {
		t.Errorf("a new operation on env-1 after the first ended: %s", got.State)
	}
}

func TestSubmitValidation(t *testing.T) {
	s := storetest.OpenSQLite(t)
	r := newRunner(t, fast(s))
	r.Register("k", ops.Kind{Steps: counted(&counter{}, "s")})
	wantCode(t, "unknown kind", r.Submit(context.Background(), newOp("nope", "e1")), keyhold.CodeBadRequest, "nope")
	wantCode(t, "no target", r.Submit(context.Background(), newOp("k", "")), keyhold.CodeBadRequest, "target")
	op := newOp("k", "e1")
	op.ID, op.State, op.Step, op.ErrorCode, op.Done, op.LeaseOwner = "my-id", keyhold.OperationFailed, "x", "Bad", 5, "someone"
	if err := r.Prepare(op); err != nil {
		t.Fatal(err)
	}
	if op.ID != "my-id" || op.State != keyhold.OperationRunning || op.Step != "s" || op.ErrorCode != "" || op.Done != 0 || op.LeaseOwner != "" || op.CreatedAt.IsZero() {
		t.Errorf("Prepare: %+v", op)
	}
}

func TestRegisterRefusesMalformedKinds(t *testing.T) {
	r := newRunner(t, fast(storetest.OpenSQLite(t)))
	r.Register("taken", ops.Kind{Steps: counted(&counter{}, "s")})
	run := func(context.Context, *keyhold.Operation) (ops.StepResult, error) { return ops.StepResult{}, nil }
	for name, tc := range map[string]struct {
		kind string
		k    ops.Kind
	}{
		"no steps":       {"a", ops.Kind{}},
		"unnamed step":   {"a", ops.Kind{Steps: []ops.Step{{Run: run}}}},
		"no Run":         {"a", ops.Kind{Steps: []ops.Step{{Name: "s"}}}},
		"duplicate step": {"a", ops.Kind{Steps: []ops.Step{{Name: "s", Run: run}, {Name: "s", Run: run}}}},
		"reserved name":  {"a", ops.Kind{Steps: []ops.Step{{Name: ops.RollbackStep, Run: run}}}},
		"taken kind":     {"taken", ops.Kind{Steps: []ops.Step{{Name: "s", Run: run}}}},
		"no kind name":   {"", ops.Kind{Steps: []ops.Step{{Name: "s", Run: run}}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register didn't panic", name)
				}
			}()
			r.Register(tc.kind, tc.k)
		}()
	}
}

// TestTwoRunnersRunEachStepOnce runs 50 operations on two Runners sharing a
// PostgreSQL database: with healthy leases, every step runs exactly once.
func TestTwoRunnersRunEachStepOnce(t *testing.T) {
	s := storetest.OpenPostgres(t)
	var c counter
	var byRunner [2]atomic.Int32
	var runners [2]*ops.Runner
	for i := range runners {
		cfg := fast(s)
		cfg.Owner = fmt.Sprintf("replica-%d", i)
		runners[i] = newRunner(t, cfg)
		steps := counted(&c, "one", "two", "three")
		steps[0].Run = func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			c.add(op, "one")
			byRunner[i].Add(1)
			return ops.StepResult{}, nil
		}
		runners[i].Register("k", ops.Kind{Steps: steps})
	}
	ctx := context.Background()
	var ids []string
	for i := range 50 {
		op := newOp("k", fmt.Sprintf("env-%02d", i))
		if err := runners[i%2].Submit(ctx, op); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, op.ID)
	}
	for _, r := range runners {
		start(t, r)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, id := range ids {
		got, err := runners[0].Wait(wctx, id)
		if err != nil {
			t.Fatalf("Wait(%s): %v", id, err)
		}
		if got.State != keyhold.OperationSucceeded {
			t.Errorf("%s: %s %q", id, got.State, got.ErrorMsg)
		}
		for _, step := range []string{"one", "two", "three"} {
			if n := c.get(id, step); n != 1 {
				t.Errorf("%s: step %s ran %d times, want exactly once", id, step, n)
			}
		}
	}
	t.Logf("operations started by each runner: %d, %d", byRunner[0].Load(), byRunner[1].Load())
}

// blocking returns a kind whose one step signals started and then waits
// for ctx to end (returning its error) or for release.
func blocking(started chan<- string, release <-chan struct{}, c *counter) ops.Kind {
	return ops.Kind{Steps: []ops.Step{{Name: "block", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		c.add(op, "block")
		select {
		case started <- op.ID:
		default:
		}
		select {
		case <-ctx.Done():
			return ops.StepResult{}, ctx.Err()
		case <-release:
			return ops.StepResult{}, nil
		}
	}}}}
}

// TestLeaseExpiryHandOver has a replica that died holding an operation's
// lease; another takes the operation over once the lease ends, not before.
func TestLeaseExpiryHandOver(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		s := open(t)
		r := newRunner(t, fast(s))
		var firstRun atomic.Value
		r.Register("k", ops.Kind{Steps: []ops.Step{{Name: "s", Run: func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
			firstRun.CompareAndSwap(nil, time.Now())
			return ops.StepResult{}, nil
		}}}})
		ctx := context.Background()
		op := newOp("k", "env-1")
		if err := r.Submit(ctx, op); err != nil {
			t.Fatal(err)
		}
		// The dead replica's claim.
		leaseEnd := time.Now().Add(700 * time.Millisecond)
		err := s.Update(ctx, func(tx keyhold.Tx) error {
			_, err := tx.ClaimOperation(ctx, "dead-replica", time.Now(), leaseEnd)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		start(t, r)
		got, err := r.Wait(ctx, op.ID)
		if err != nil || got.State != keyhold.OperationSucceeded {
			t.Fatalf("Wait: %v, %v", got, err)
		}
		if ran := firstRun.Load().(time.Time); ran.Before(leaseEnd) {
			t.Errorf("the step ran %v before the dead replica's lease ended", leaseEnd.Sub(ran))
		}
		if got.LeaseOwner != r.Owner() {
			t.Errorf("finished by %q, want %q", got.LeaseOwner, r.Owner())
		}
	})
}

// TestLostLeaseStopsStep has another worker take over an operation while
// its step runs: the heartbeat notices, the step's context ends, and the
// Runner writes nothing more to the operation.
func TestLostLeaseStopsStep(t *testing.T) {
	s := storetest.OpenSQLite(t)
	cfg := fast(s)
	cfg.LeaseTTL = 300 * time.Millisecond // heartbeat every 100ms
	r := newRunner(t, cfg)
	started := make(chan string, 1)
	stepErr := make(chan error, 1)
	var c counter
	k := blocking(started, nil, &c)
	inner := k.Steps[0].Run
	k.Steps[0].Run = func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		res, err := inner(ctx, op)
		stepErr <- err
		return res, err
	}
	r.Register("k", k)
	stop := start(t, r)
	ctx := context.Background()
	op := newOp("k", "env-1")
	if err := r.Submit(ctx, op); err != nil {
		t.Fatal(err)
	}
	<-started
	// A worker whose clock is far ahead takes the operation over.
	var stolen *keyhold.Operation
	err := s.Update(ctx, func(tx keyhold.Tx) (err error) {
		stolen, err = tx.ClaimOperation(ctx, "thief", time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stepErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the step returned %v, want its context canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the step's context didn't end after the lease was taken over")
	}
	stop()
	got, err := r.Get(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != stolen.Version || got.LeaseOwner != "thief" || got.State != keyhold.OperationRunning {
		t.Errorf("after the takeover the operation is v%d owned by %q, %s; want v%d owned by thief, Running",
			got.Version, got.LeaseOwner, got.State, stolen.Version)
	}
}

// TestStopReleasesLease stops a Runner during a step: it releases the
// lease, so that another Runner takes the operation at once rather than
// after LeaseTTL.
func TestStopReleasesLease(t *testing.T) {
	s := storetest.OpenSQLite(t)
	cfg := fast(s)
	cfg.LeaseTTL = time.Hour
	a := newRunner(t, cfg)
	started := make(chan string, 1)
	release := make(chan struct{})
	var c counter
	a.Register("k", blocking(started, release, &c))
	stopA := start(t, a)
	ctx := context.Background()
	op := newOp("k", "env-1")
	if err := a.Submit(ctx, op); err != nil {
		t.Fatal(err)
	}
	<-started
	stopA()
	got, err := a.Get(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != keyhold.OperationRunning || got.LeaseOwner != "" || !got.LeaseUntil.IsZero() || got.Step != "block" {
		t.Fatalf("after Run stopped: %s at %q, lease %q until %v; want Running at block, no lease", got.State, got.Step, got.LeaseOwner, got.LeaseUntil)
	}
	b := newRunner(t, cfg)
	b.Register("k", blocking(started, release, &c))
	close(release)
	start(t, b)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err = b.Wait(wctx, op.ID)
	if err != nil || got.State != keyhold.OperationSucceeded || got.LeaseOwner != b.Owner() {
		t.Fatalf("b: %v, %v", got, err)
	}
	if n := c.get(op.ID, "block"); n != 2 {
		t.Errorf("the step ran %d times, want 2 (stopped once, then run by b)", n)
	}
}

// TestUnknownKind leaves an operation of a kind the Runner doesn't know to
// other Runners, and runs other work meanwhile.
func TestUnknownKind(t *testing.T) {
	s := storetest.OpenSQLite(t)
	r := newRunner(t, fast(s))
	r.Register("known", ops.Kind{Steps: counted(&counter{}, "s")})
	ctx := context.Background()
	unknown := &keyhold.Operation{ID: "from-a-newer-replica", Kind: "future", Target: "env-1", State: keyhold.OperationRunning,
		Step: "s", CreatedAt: time.Now().Add(-time.Minute)}
	if err := s.Update(ctx, func(tx keyhold.Tx) error { return tx.CreateOperation(ctx, unknown) }); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	if got := submitWait(t, r, newOp("known", "env-2")); got.State != keyhold.OperationSucceeded {
		t.Errorf("known: %s", got.State)
	}
	got, err := r.Get(ctx, unknown.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != keyhold.OperationRunning || got.Step != "s" || got.LeaseOwner != r.Owner() || !got.LeaseUntil.After(time.Now()) {
		t.Errorf("unknown kind: %s at %q, lease %q until %v; want left Running, leased for a while", got.State, got.Step, got.LeaseOwner, got.LeaseUntil)
	}
}

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"plain error (database)", errors.New("connection reset"), false},
		{"internal", keyhold.Errorf(keyhold.CodeInternal, "x"), false},
		{"service unavailable", keyhold.Errorf(keyhold.CodeServiceUnavailable, "x"), false},
		{"key vault unavailable, wrapped", fmt.Errorf("unwrap: %w", keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "x")), false},
		{"forbidden", keyhold.Errorf(keyhold.CodeForbidden, "x"), true},
		{"bad request", keyhold.Errorf(keyhold.CodeBadRequest, "x"), true},
		{"not found", keyhold.Errorf(keyhold.CodeNotFound, "x"), true},
		{"key not found", keyhold.Errorf(keyhold.CodeKeyNotFound, "x"), true},
		{"conflict", keyhold.Errorf(keyhold.CodeConflict, "x"), true},
		{"marked permanent", ops.Permanent(errors.New("x")), true},
		{"marked transient", ops.Transient(keyhold.Errorf(keyhold.CodeConflict, "x")), false},
		{"outer mark wins", ops.Permanent(ops.Transient(errors.New("x"))), true},
		{"context deadline", context.DeadlineExceeded, false},
	} {
		if got := ops.IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s: IsPermanent = %v, want %v", tc.name, got, tc.want)
		}
	}
	if ops.Permanent(nil) != nil || ops.Transient(nil) != nil {
		t.Errorf("marking nil gave non-nil")
	}
}
