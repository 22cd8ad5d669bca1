package ops

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhold/keyhold"
)

// Defaults of Config.
const (
	DefaultLeaseTTL     = 30 * time.Second
	DefaultPollInterval = 200 * time.Millisecond
	DefaultConcurrency  = 4
	DefaultMaxAttempts  = 20
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
)

// Config configures a Runner.
type Config struct {
	// Store holds the operations. Required.
	Store keyhold.Store
	// Clock gives the times written to operations and leases (default
	// the system clock). Leases compare the clocks of the replicas that
	// share a database: keep them in sync (NTP) to well within LeaseTTL/6.
	Clock keyhold.Clock
	// Logger receives the Runner's log (default: discarded).
	Logger *slog.Logger
	// Registerer receives the Runner's metrics (may be nil).
	Registerer prometheus.Registerer
	// Owner names this Runner in the leases it takes. It must be unique
	// among the Runners sharing the store; the default is the host name,
	// the process id and a random suffix.
	Owner string
	// LeaseTTL is how long a claim or a renewal holds an operation
	// (default 30s). The Runner renews the lease every LeaseTTL/3 while a
	// step runs; another Runner may take over an operation whose lease
	// ran out, so a Runner that can't renew stops the step (cancels its
	// context) LeaseTTL/6 before the lease ends.
	LeaseTTL time.Duration
	// PollInterval is how often Run looks for work, and Wait for an
	// operation's end, when nothing wakes them sooner (default 200ms).
	PollInterval time.Duration
	// Concurrency is how many operations Run works on at once (default 4).
	Concurrency int
	// MaxAttempts is how many times a step, or a rollback, may fail
	// transiently in a row before the operation fails (default 20).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait before a transiently
	// failed step runs again: MinBackoff after the first failure, twice
	// as long after each further one, never more than MaxBackoff, plus up
	// to half as much again at random (defaults 1s and 1m).
	MinBackoff, MaxBackoff time.Duration
}

// Runner stores and runs durable operations. It is safe for concurrent use.
// Any number of Runners may share a store: while their leases are healthy
// (each Runner renews its own, and the replicas' clocks agree), an
// operation is worked on by one Runner at a time, and a Runner that lost an
// operation's lease can't record anything about it (every write of an
// operation is a compare-and-swap on its version, which a claim increments).
type Runner struct {
	store       keyhold.Store
	clock       keyhold.Clock
	log         *slog.Logger
	owner       string
	ttl         time.Duration
	poll        time.Duration
	concurrency int
	maxAttempts int
	minBackoff  time.Duration
	maxBackoff  time.Duration
	m           metrics

	mu    sync.RWMutex
	kinds map[string]*Kind

	kick    chan struct{}
	running atomic.Bool

	changedMu sync.Mutex
	changed   chan struct{} // closed, and replaced, when an operation ends here
}

type metrics struct {
	started   *prometheus.CounterVec
	succeeded *prometheus.CounterVec
	failed    *prometheus.CounterVec
	steps     *prometheus.HistogramVec
}

// New returns a Runner with no kinds registered. It fails if cfg has no
// Store or the metrics can't be registered.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil {
		return nil, errors.New("ops: Config.Store is required")
	}
	r := &Runner{
		store:       cfg.Store,
		clock:       cfg.Clock,
		log:         cfg.Logger,
		owner:       cfg.Owner,
		ttl:         orDefault(cfg.LeaseTTL, DefaultLeaseTTL),
		poll:        orDefault(cfg.PollInterval, DefaultPollInterval),
		concurrency: orDefault(cfg.Concurrency, DefaultConcurrency),
		maxAttempts: orDefault(cfg.MaxAttempts, DefaultMaxAttempts),
		minBackoff:  orDefault(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff:  orDefault(cfg.MaxBackoff, DefaultMaxBackoff),
		kinds:       map[string]*Kind{},
		kick:        make(chan struct{}, 1),
		changed:     make(chan struct{}),
	}
	if r.clock == nil {
		r.clock = keyhold.SystemClock{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.owner == "" {
		r.owner = defaultOwner()
	}
	r.maxBackoff = max(r.maxBackoff, r.minBackoff)
	if err := r.initMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	r.log = r.log.With("owner", r.owner)
	return r, nil
}

// orDefault returns v, or def if v is zero or negative.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "keyhold"
	}
	var b [4]byte
	crand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

func (r *Runner) initMetrics(reg prometheus.Registerer) error {
	r.m.started = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_operations_started_total", Help: "Durable operations whose first step started, by kind.",
	}, []string{"kind"})
	r.m.succeeded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_operations_succeeded_total", Help: "Durable operations that succeeded, by kind.",
	}, []string{"kind"})
	r.m.failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhold_operations_failed_total", Help: "Durable operations that failed (and were rolled back), by kind and error code.",
	}, []string{"kind", "code"})
	r.m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "keyhold_operation_step_duration_seconds",
		Help:    "Time a durable operation's step (or rollback) took, by kind, step and result (ok, again, paused, transient, permanent, stopped).",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms to about 4m
	}, []string{"kind", "step", "result"})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{r.m.started, r.m.succeeded, r.m.failed, r.m.steps} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("ops: registering metrics: %w", err)
		}
	}
	return nil
}

// Owner returns the name this Runner writes in the leases it holds.
func (r *Runner) Owner() string { return r.owner }

// Register adds a kind of operation under name. Register it in every
// Runner that shares the store before any of them runs: a Runner that
// claims an operation of a kind it doesn't know leaves it to the others
// for a LeaseTTL. It panics if k is malformed (no steps, steps without a
// name or a Run function, duplicate or reserved step names) or name is
// taken, as registering is part of the program's setup.
func (r *Runner) Register(name string, k Kind) {
	if err := k.validate(name); err != nil {
		panic(err)
	}
	k.Steps = slices.Clone(k.Steps)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[name]; dup {
		panic(fmt.Sprintf("ops: kind %q is registered twice", name))
	}
	r.kinds[name] = &k
}

func (r *Runner) kind(name string) *Kind {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.kinds[name]
}

// Prepare makes op a new operation, ready for tx.CreateOperation in the
// caller's own transaction (followed by Kick once it is committed): it sets
// an ID (a random UUID) if op has none, the state Running at the kind's
// first step in phase Queued, the creation time, and clears everything a
// runner records.
// The caller sets Kind, Target, TenantID, CreatedBy and Input. It returns
// CodeBadRequest for an unknown kind or a missing target.
func (r *Runner) Prepare(op *keyhold.Operation) error {
	k := r.kind(op.Kind)
	if k == nil {
		return keyhold.Errorf(keyhold.CodeBadRequest, "unknown operation kind %q", op.Kind)
	}
	if op.Target == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "operation of kind %q has no target: name what it works on (the environment's id)", op.Kind)
	}
	if op.ID == "" {
		op.ID = uuid.NewString()
	}
	now := r.clock.Now().UTC()
	op.State, op.Step = keyhold.OperationRunning, k.Steps[0].Name
	op.Progress, op.Done, op.Total, op.Attempts = nil, 0, 0, 0
	op.ErrorCode, op.ErrorMsg = "", ""
	op.Phase, op.PhaseReason = keyhold.OperationQueued, ""
	op.CreatedAt, op.UpdatedAt, op.FinishedAt = now, now, time.Time{}
	op.LeaseOwner, op.LeaseUntil, op.Version = "", time.Time{}, 0
	return nil
}

// Submit stores op as a new operation (see Prepare for what it sets) and
// wakes this Runner's worker loop. It returns CodeBadRequest for an unknown
// kind or a missing target, and CodeConflict, naming the running operation,
// if op.Target already has a Running operation; nothing is stored then.
func (r *Runner) Submit(ctx context.Context, op *keyhold.Operation) error {
	if err := r.Prepare(op); err != nil {
		return err
	}
	err := r.store.Update(ctx, func(tx keyhold.Tx) error {
		c := *op
		if err := tx.CreateOperation(ctx, &c); err != nil {
			return err
		}
		op.Version = c.Version
		return nil
	})
	if err != nil {
		return err
	}
	r.log.Info("operation submitted", "op", op.ID, "kind", op.Kind, "target", op.Target)
	r.Kick()
	return nil
}

// Get returns an operation, or CodeNotFound. A paused one shows its
// reason as its ErrorMsg (keyhold.Operation.ShowPause).
func (r *Runner) Get(ctx context.Context, id string) (*keyhold.Operation, error) {
	var op *keyhold.Operation
	err := r.store.View(ctx, func(tx keyhold.Tx) (err error) {
		op, err = tx.Operation(ctx, id)
		return err
	})
	op.ShowPause()
	return op, err
}

// Wait returns the operation once it is no longer Running (Succeeded or
// Failed), checking every PollInterval and whenever this Runner ends an
// operation. It returns CodeNotFound for an unknown id, and ctx's error if
// ctx ends first.
func (r *Runner) Wait(ctx context.Context, id string) (*keyhold.Operation, error) {
	t := time.NewTimer(r.poll)
	defer t.Stop()
	for {
		changed := r.changedChan()
		op, err := r.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if op.State != keyhold.OperationRunning {
			return op, nil
		}
		t.Reset(r.poll)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-t.C:
		}
	}
}

func (r *Runner) changedChan() chan struct{} {
	r.changedMu.Lock()
	defer r.changedMu.Unlock()
	return r.changed
}

func (r *Runner) notifyChanged() {
	r.changedMu.Lock()
	defer r.changedMu.Unlock()
	close(r.changed)
	r.changed = make(chan struct{})
}

// Kick wakes the worker loop to look for work now rather than at its next
// poll. It never blocks.
func (r *Runner) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run is the worker loop: it claims operations, up to Concurrency at once,
// and runs them, until ctx ends. It then stops the steps in flight (their
// contexts end), records the progress of any that completed anyway,
// releases their leases so that another Runner can take them over at once,
// and returns nil. Only one Run may be active per Runner.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("ops: this Runner's Run is already running")
	}
	defer r.running.Store(false)
	r.log.Info("operation runner started", "lease", r.ttl, "concurrency", r.concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, r.concurrency)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.log.Info("operation runner stopping")
			return nil
		case <-r.kick:
		case <-t.C:
		}
	claim:
		for ctx.Err() == nil {
			select {
			case slots <- struct{}{}:
			default:
				break claim // busy: a finishing job kicks the loop
			}
			op, k, first, err := r.claim(ctx)
			if err != nil || op == nil {
				<-slots
				if err != nil && ctx.Err() == nil {
					r.log.Warn("claiming an operation failed; retrying", "err", err)
				}
				break
			}
			if k == nil {
				<-slots
				r.deferUnknown(op)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots; r.Kick() }()
				r.execute(ctx, k, op, first)
			}()
		}
		t.Reset(r.poll)
	}
}

// claim leases the oldest claimable operation, or returns nil if there is
// none. first reports the operation's first claim: it was Queued, and the
// same transaction makes it Running, so that exactly one claim, across
// every Runner, sees it Queued.
func (r *Runner) claim(ctx context.Context) (op *keyhold.Operation, k *Kind, first bool, err error) {
	err = r.store.Update(ctx, func(tx keyhold.Tx) (err error) {
		now := r.clock.Now()
		op, err = tx.ClaimOperation(ctx, r.owner, now, now.Add(r.ttl))
		if err != nil {
			return err
		}
		first = op.Phase == keyhold.OperationQueued
		if first {
			op.Phase = keyhold.OperationInProgress
			return tx.UpdateOperation(ctx, op)
		}
		return nil
	})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	return op, r.kind(op.Kind), first, nil
}

// deferUnknown leaves an operation of a kind this Runner doesn't know
// alone. The claim holds it for a LeaseTTL, so this Runner claims other
// work meanwhile, and after that a Runner that knows the kind (a newer
// replica) can take it.
func (r *Runner) deferUnknown(op *keyhold.Operation) {
	r.log.Warn("claimed an operation of a kind this runner doesn't know; leaving it to another runner",
		"op", op.ID, "kind", op.Kind, "until", op.LeaseUntil)
}

// backoff returns the wait before the attempt after the given number of
// transient failures.
func (r *Runner) backoff(failures int) time.Duration {
	d := r.maxBackoff
	if shift := failures - 1; shift < 30 && r.minBackoff<<shift < r.maxBackoff {
		d = r.minBackoff << shift
	}
	return d + rand.N(d/2+1)
}

// errLeaseLost is the cause of a step's context ending because another
// Runner may hold the operation now.
var errLeaseLost = errors.New("ops: the operation's lease was lost")

// job is one claimed operation being worked on.
type job struct {
	r    *Runner
	k    *Kind
	log  *slog.Logger
	runC context.Context // Run's context: done when the Runner stops

	mu    sync.Mutex
	saved keyhold.Operation // as last written to the store
}

func clone(op *keyhold.Operation) *keyhold.Operation {
	c := *op
	c.Input, c.Progress = slices.Clip(slices.Clone(op.Input)), slices.Clip(slices.Clone(op.Progress))
	return &c
}

// current returns a copy of the operation as last recorded.
func (j *job) current() *keyhold.Operation {
	j.mu.Lock()
	defer j.mu.Unlock()
	return clone(&j.saved)
}

// execute works on a claimed operation until it ends, the Runner stops,
// the lease is lost, or a transient failure defers it. first: this is the
// operation's first claim (see claim).
func (r *Runner) execute(runCtx context.Context, k *Kind, op *keyhold.Operation, first bool) {
	j := &job{r: r, k: k, runC: runCtx, saved: *clone(op),
		log: r.log.With("op", op.ID, "kind", op.Kind, "target", op.Target)}
	ctx, cancel := context.WithCancelCause(runCtx)
	hb := make(chan struct{})
	go func() {
		defer close(hb)
		j.heartbeat(ctx, cancel)
	}()
	defer func() {
		cancel(nil)
		<-hb
	}()
	if first {
		r.m.started.WithLabelValues(op.Kind).Inc()
	}
	j.log.Debug("operation claimed", "step", op.Step, "version", op.Version)
	for {
		cur := j.current()
		var more bool
		if cur.Phase == keyhold.OperationRollingBack {
			more = j.rollback(ctx, cur)
		} else {
			more = j.step(ctx, cur)
		}
		if !more {
			return
		}
		if runCtx.Err() != nil {
			j.release()
			return
		}
	}
}

// heartbeat renews the lease every LeaseTTL/3 until ctx ends. It cancels
// ctx with errLeaseLost when another Runner took the operation, or when
// the lease is about to run out without a successful renewal (retrying a
// failed renewal every PollInterval until then).
func (j *job) heartbeat(ctx context.Context, cancel context.CancelCauseFunc) {
	r := j.r
	every := max(r.ttl/3, time.Millisecond)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		j.mu.Lock()
		next := clone(&j.saved)
		next.LeaseUntil = r.clock.Now().Add(r.ttl)
		err := j.write(ctx, next)
		deadline := j.saved.LeaseUntil.Add(-r.ttl / 6)
		j.mu.Unlock()
		now := r.clock.Now()
		switch {
		case err == nil:
			t.Reset(every)
		case ctx.Err() != nil:
			return
		case errors.Is(err, errLeaseLost):
			j.log.Warn("another runner took over the operation; stopping its step", "err", err)
			cancel(errLeaseLost)
			return
		case !now.Before(deadline):
			j.log.Error("could not renew the operation's lease before it ends; stopping its step", "err", err)
			cancel(errLeaseLost)
			return
		default:
			j.log.Warn("renewing the operation's lease failed; retrying", "err", err)
			t.Reset(min(r.poll, deadline.Sub(now)))
		}
	}
}

// write stores next over the saved operation, at the saved version, and
// makes it the saved one. It returns an error wrapping errLeaseLost if
// another Runner changed the operation. j.mu must be held.
func (j *job) write(ctx context.Context, next *keyhold.Operation) error {
	next.Version = j.saved.Version
	var stored keyhold.Operation
	err := j.r.store.Update(ctx, func(tx keyhold.Tx) error {
		// A copy per attempt: Update may run this again, and a failed
		// attempt must not leave next's version incremented.
		c := *next
		if err := tx.UpdateOperation(ctx, &c); err != nil {
			return err
		}
		stored = c
		return nil
	})
	switch keyhold.ErrorCode(err) {
	case "":
		j.saved = stored
		return nil
	case keyhold.CodeNotFound:
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	case keyhold.CodeConflict:
		// Either another writer changed it, or the database reported
		// contention too often: only the stored version tells.
		cur, gerr := j.r.Get(ctx, j.saved.ID)
		if gerr == nil && cur.Version == j.saved.Version {
			return err
		}
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	}
	return err
}

// persist writes next as write does, retrying failures other than a lost
// lease until the lease is about to end. It runs even after the Runner
// began to stop, so that completed work is recorded.
func (j *job) persist(next *keyhold.Operation) error {
	ctx := context.WithoutCancel(j.runC)
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		err := j.write(ctx, clone(next))
		if err == nil || errors.Is(err, errLeaseLost) {
			return err
		}
		if !j.r.clock.Now().Before(j.saved.LeaseUntil.Add(-j.r.ttl / 6)) {
			return err
		}
		j.log.Warn("recording the operation failed; retrying", "err", err)
		time.Sleep(j.r.poll)
	}
}

// release gives up the lease, so that another Runner can take the
// operation at once, when this one stops.
func (j *job) release() {
	next := j.current()
	next.LeaseOwner, next.LeaseUntil = "", time.Time{}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.runC), 5*time.Second)
	defer cancel()
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.write(ctx, next); err != nil {
		j.log.Warn("releasing the operation's lease failed; it frees itself when it ends", "err", err)
		return
	}
	j.log.Info("runner stopping: operation released", "step", next.Step)
}

// stopped reports whether ctx ended because the lease was lost or the
// Runner is stopping, and logs which.
func (j *job) stopped(ctx context.Context) bool {
	if ctx.Err() == nil {
		return false
	}
	if errors.Is(context.Cause(ctx), errLeaseLost) {
		j.log.Warn("operation abandoned: its lease was lost")
	}
	return true
}

// leaseLost reports whether ctx ended because the lease was lost.
func leaseLost(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errLeaseLost)
}

// step runs op's current step once and records the outcome. It reports
// whether the job should go on with the operation.
func (j *job) step(ctx context.Context, op *keyhold.Operation) bool {
	r, k := j.r, j.k
	i := k.index(op.Step)
	if i < 0 {
		return j.fail(ctx, op.Step, Permanent(keyhold.Errorf(keyhold.CodeInternal,
			"the operation is at step %q, which kind %q doesn't have (was it renamed by an upgrade?)", op.Step, op.Kind)))
	}
	s := k.Steps[i]
	fault(faultBefore(op.Kind, s.Name))
	start := time.Now()
	res, err := runStep(ctx, s, op)
	if err == nil && !res.Again && res.Next != "" && k.index(res.Next) < 0 {
		err = Permanent(keyhold.Errorf(keyhold.CodeInternal, "step %q of kind %q named an unknown next step %q", s.Name, op.Kind, res.Next))
	}
	var paused *pausedError
	result := "ok"
	switch {
	case err != nil && ctx.Err() != nil:
		result = "stopped"
	case errors.As(err, &paused):
		result = "paused"
	case err != nil && IsPermanent(err):
		result = "permanent"
	case err != nil:
		result = "transient"
	case res.Again:
		result = "again"
	}
	r.m.steps.WithLabelValues(op.Kind, s.Name, result).Observe(time.Since(start).Seconds())
	if leaseLost(ctx) {
		// Another Runner may be running this step now: record nothing.
		j.stopped(ctx)
		return false
	}
	if err != nil {
		if ctx.Err() != nil {
			return true // the Runner is stopping: execute releases the lease
		}
		if paused != nil {
			return j.pause(s.Name, paused)
		}
		return j.fail(ctx, s.Name, err)
	}
	fault(faultAfter(op.Kind, s.Name))

	now := r.clock.Now()
	next := j.current()
	if IsPaused(next) {
		j.log.Info("operation resumed", "step", s.Name)
		next.ErrorMsg, next.PhaseReason = "", ""
	}
	next.Phase = keyhold.OperationInProgress
	next.Progress, next.Done, next.Total = op.Progress, op.Done, op.Total
	next.Attempts, next.UpdatedAt, next.LeaseOwner, next.LeaseUntil = 0, now, r.owner, now.Add(r.ttl)
	switch {
	case res.Again:
	case res.Next != "":
		next.Step = res.Next
	case i+1 < len(k.Steps):
		next.Step = k.Steps[i+1].Name
	default:
		next.State, next.Step, next.FinishedAt, next.LeaseUntil = keyhold.OperationSucceeded, "", now, time.Time{}
		next.Phase = ""
	}
	if err := j.persist(next); err != nil {
		j.log.Warn("could not record the end of a step; another runner will run it again", "step", s.Name, "err", err)
		return false
	}
	fault(faultPersisted(op.Kind, s.Name))
	if next.State == keyhold.OperationSucceeded {
		j.log.Info("operation succeeded")
		r.m.succeeded.WithLabelValues(op.Kind).Inc()
		r.notifyChanged()
		return false
	}
	return true
}

// runStep calls s.Run, turning a panic into a permanent error.
func runStep(ctx context.Context, s Step, op *keyhold.Operation) (res StepResult, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Permanent(fmt.Errorf("step %q panicked: %v\n%s", s.Name, v, debug.Stack()))
		}
	}()
	return s.Run(ctx, op)
}

// runRollback calls k.Rollback (if any), turning a panic into a permanent
// error.
func runRollback(ctx context.Context, k *Kind, op *keyhold.Operation) (err error) {
	if k.Rollback == nil {
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			err = Permanent(fmt.Errorf("rollback panicked: %v\n%s", v, debug.Stack()))
		}
	}()
	return k.Rollback(ctx, op)
}

// fail handles a step's error: a transient one defers the operation for a
// backoff; a permanent one, or the last transient one allowed, is recorded
// as the operation's failure, which turns it to rolling back. It reports
// whether the job should go on with the operation.
func (j *job) fail(ctx context.Context, step string, err error) bool {
	r := j.r
	next := j.current()
	now := r.clock.Now()
	if !IsPermanent(err) && next.Attempts+1 < r.maxAttempts {
		return j.retryLater(next, step, err)
	}
	j.log.Warn("step failed; rolling the operation back", "step", step, "attempts", next.Attempts+1, "err", err)
	next.ErrorCode, next.ErrorMsg = keyhold.ErrorCode(err), keyhold.ErrorMessage(err)
	if next.ErrorCode == "" {
		// An *keyhold.Error without a code: the failed operation must
		// still show one.
		next.ErrorCode = keyhold.CodeInternal
	}
	next.Phase, next.PhaseReason = keyhold.OperationRollingBack, next.ErrorMsg
	next.Attempts, next.UpdatedAt, next.LeaseOwner, next.LeaseUntil = 0, now, r.owner, now.Add(r.ttl)
	if err := j.persist(next); err != nil {
		j.log.Warn("could not record the operation's failure; another runner will run the step again", "step", step, "err", err)
		return false
	}
	return true
}

// retryLater records a transient failure and keeps the lease until the
// backoff ends, when any Runner may claim the operation again.
func (j *job) retryLater(next *keyhold.Operation, step string, err error) bool {
	r := j.r
	if IsPaused(next) {
		// No longer paused: retrying a fault.
		next.Phase, next.ErrorMsg, next.PhaseReason = keyhold.OperationInProgress, "", ""
	}
	next.Attempts++
	wait := r.backoff(next.Attempts)
	next.LeaseOwner, next.LeaseUntil = r.owner, r.clock.Now().Add(wait)
	j.log.Warn("step failed; will retry", "step", step, "attempts", next.Attempts, "retry_in", wait, "err", err)
	if err := j.persist(next); err != nil {
		j.log.Warn("could not record a failed attempt", "step", step, "err", err)
	}
	return false
}

// pause records that a step paused (see Paused): the operation stays at
// the step in phase Paused, with its attempts unchanged and a PhaseReason
// that says why (which Get shows as the ErrorMsg the API has always shown
// for it, but which is stored once), and
// is reserved until the pause's wait ends, when any Runner may claim it
// and run the step again. It reports whether the job should go on with the
// operation: never.
func (j *job) pause(step string, pe *pausedError) bool {
	r := j.r
	next := j.current()
	now := r.clock.Now()
	wait := pe.after
	if wait <= 0 {
		wait = r.minBackoff
	}
	if next.Phase != keyhold.OperationPaused || next.PhaseReason != pe.reason {
		j.log.Warn("operation paused", "step", step, "recheck_in", wait, "reason", pe.reason)
		// The reason is stored once, as PhaseReason: readers show it
		// as the ErrorMsg (keyhold.Operation.ShowPause).
		next.Phase, next.PhaseReason = keyhold.OperationPaused, pe.reason
		next.ErrorMsg, next.UpdatedAt = "", now
	} else {
		j.log.Debug("operation still paused", "step", step, "recheck_in", wait)
	}
	next.LeaseOwner, next.LeaseUntil = r.owner, now.Add(wait)
	if err := j.persist(next); err != nil {
		j.log.Warn("could not record the operation's pause; another runner will run the step again", "step", step, "err", err)
	}
	return false
}

// rollback runs the kind's rollback of a failed operation once and records
// the outcome. It reports whether the job should go on with the operation.
func (j *job) rollback(ctx context.Context, op *keyhold.Operation) bool {
	r, k := j.r, j.k
	fault(faultBefore(op.Kind, RollbackStep))
	start := time.Now()
	err := runRollback(ctx, k, op)
	result := "ok"
	switch {
	case err != nil && ctx.Err() != nil:
		result = "stopped"
	case err != nil && IsPermanent(err):
		result = "permanent"
	case err != nil:
		result = "transient"
	}
	r.m.steps.WithLabelValues(op.Kind, RollbackStep, result).Observe(time.Since(start).Seconds())
	if leaseLost(ctx) {
		j.stopped(ctx)
		return false
	}
	next := j.current()
	if err != nil {
		if ctx.Err() != nil {
			return true
		}
		if !IsPermanent(err) && next.Attempts+1 < r.maxAttempts {
			return j.retryLater(next, RollbackStep, err)
		}
		j.log.Error("rollback failed; marking the operation failed without it", "attempts", next.Attempts+1, "err", err)
		next.ErrorMsg += " The rollback failed too: " + keyhold.ErrorMessage(err)
	} else {
		fault(faultAfter(op.Kind, RollbackStep))
	}
	now := r.clock.Now()
	next.State, next.Step, next.FinishedAt, next.UpdatedAt = keyhold.OperationFailed, "", now, now
	next.Phase, next.PhaseReason = "", ""
	next.LeaseOwner, next.LeaseUntil = r.owner, time.Time{}
	if err := j.persist(next); err != nil {
		j.log.Warn("could not record the operation's end; another runner will roll it back again", "err", err)
		return false
	}
	if err == nil {
		fault(faultPersisted(op.Kind, RollbackStep))
	}
	j.log.Info("operation failed", "code", next.ErrorCode, "message", next.ErrorMsg)
	r.m.failed.WithLabelValues(op.Kind, next.ErrorCode).Inc()
	r.notifyChanged()
	return false
}
