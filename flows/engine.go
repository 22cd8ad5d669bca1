package flows

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// The engine. A run is executed by the engine that holds its lease
// (LeaseOwner until LeaseUntil). Every write of the run record is a
// compare-and-set on its version, so an engine whose lease was taken over
// (it stalled past LeaseTTL, or was killed) fails its next write and
// stops: two engines never both record progress. The state is saved,
// sealed, after each action starts and ends (wdl.Execute's save), and an
// engine that claims a run resumes from it: completed actions are not run
// again.

// Start runs the engine until Close: it claims runnable runs (new ones
// waiting on the concurrency limits, and those whose engine's lease
// expired), fires due recurrence slots and deletes expired run history.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.PollInterval)
		defer t.Stop()
		for {
			s.Tick(context.Background())
			select {
			case <-s.stop:
				return
			case <-t.C:
			case <-s.wake:
			}
		}
	}()
}

// Close stops the engine and waits for the runs it executes to stop
// (they stop at their next step; their leases expire and another engine,
// or this one restarted, resumes them).
func (s *Service) Close() {
	s.closed.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// Tick does one round of the engine's work; tests call it to step the
// engine on an injected clock.
func (s *Service) Tick(ctx context.Context) {
	s.fireSchedules(ctx)
	var runnable []*keyhold.FlowRunRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		runnable, err = tx.RunnableFlowRuns(ctx, s.clock.Now(), 100)
		return err
	})
	if err != nil {
		s.log.WarnContext(ctx, "flows: listing runnable runs", "err", err)
		return
	}
	for _, r := range runnable {
		if c, err := s.claim(ctx, r); err == nil && c != nil {
			s.spawn(c)
		}
	}
	s.expire(ctx)
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// claimed is a run this engine has just claimed, with what the claim's
// transaction read for executing it: the flow and the environment's
// current epoch, or why the run can't go on now (refused: the
// environment is locked or disabled, the flow is gone), which pauses it.
type claimed struct {
	rec     *keyhold.FlowRunRecord
	flow    *keyhold.FlowRecord
	current uint32
	refused error
}

// claim takes a run's lease for this engine if the concurrency limits
// allow, in one transaction; nil if they don't or another engine won.
// The same transaction reads the run's flow and checks the environment
// (ServingIn), so the engine opens the flow and the state without a
// transaction of its own (and nothing, if the check refused). A refused
// run is claimed still: execute pauses it, as at a refused save.
func (s *Service) claim(ctx context.Context, rec *keyhold.FlowRunRecord) (*claimed, error) {
	if s.isRunning(rec) {
		return nil, nil
	}
	now := s.clock.Now().UTC()
	r := *rec
	c := &claimed{rec: &r}
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		if n, err := tx.ActiveFlowRuns(ctx, rec.EnvID, rec.FlowID, now); err != nil || n >= s.cfg.MaxRunsPerFlow {
			return errLimited(err)
		}
		if n, err := tx.ActiveFlowRuns(ctx, rec.EnvID, "", now); err != nil || n >= s.cfg.MaxRunsPerEnv {
			return errLimited(err)
		}
		c.flow, c.refused = tx.Flow(ctx, rec.EnvID, rec.FlowID)
		if c.refused == nil {
			c.current, c.refused = s.seal.ServingIn(ctx, tx, rec.EnvID)
		}
		r.Status, r.LeaseOwner, r.LeaseUntil = keyhold.RunRunning, s.cfg.Owner, now.Add(s.cfg.LeaseTTL)
		r.Version, r.UpdatedAt = rec.Version+1, now
		return tx.PutFlowRun(ctx, &r)
	})
	if errors.Is(err, errAtLimit) || keyhold.ErrorCode(err) == keyhold.CodeConflict {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

var errAtLimit = errors.New("flows: at the concurrency limit")

func errLimited(err error) error {
	if err != nil {
		return err
	}
	return errAtLimit
}

func (s *Service) isRunning(rec *keyhold.FlowRunRecord) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[runKey(rec.EnvID, rec.FlowID, rec.ID)]
}

// spawn executes a claimed run in the background.
func (s *Service) spawn(c *claimed) {
	rec := c.rec
	k := runKey(rec.EnvID, rec.FlowID, rec.ID)
	s.mu.Lock()
	if s.running[k] {
		s.mu.Unlock()
		return
	}
	s.running[k] = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.running, k)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.execute(ctx, c)
	}()
}

// lease is a run this engine executes: its record as last written, which
// the saves and the renewals update under mu.
type lease struct {
	mu  sync.Mutex
	rec *keyhold.FlowRunRecord
}

// write writes the next version of the run, changed by fn, renewing the
// lease. A conflict means the run was changed elsewhere (cancelled, or
// taken over): the caller stops.
func (s *Service) write(ctx context.Context, l *lease, fn func(r *keyhold.FlowRunRecord) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := *l.rec
	if err := fn(&r); err != nil {
		return err
	}
	s.renew(&r, l.rec.Version)
	if err := s.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, &r) }); err != nil {
		return err
	}
	l.rec = &r
	return nil
}

// renew sets r as the version after prev, renewing the lease.
func (s *Service) renew(r *keyhold.FlowRunRecord, prev uint64) {
	now := s.clock.Now().UTC()
	r.Version, r.UpdatedAt = prev+1, now
	if !r.Terminal() && r.LeaseOwner == s.cfg.Owner {
		r.LeaseUntil = now.Add(s.cfg.LeaseTTL)
	}
}

// errEpochMoved: the environment's epoch is no longer the one a state
// was sealed under; writeState seals it again under the current one.
var errEpochMoved = errors.New("flows: the environment's epoch moved")

// writeState writes the next version of the run, changed by fn, with st
// sealed as its state: every save of a run's state goes through it.
//
// The state is sealed where the run's last state is (the lease's record:
// its epoch is PlatformEpoch for a flow kept on the platform partition,
// issue 16), so no save reads the flow. Only the re-key moves a run's
// state elsewhere, and it writes the run with a compare-and-set: the
// write then conflicts, and writeState re-reads the run and, if it is
// still this engine's, seals again where it now is. Sealing happens
// before the write transaction (an unwrap must not hold it open), with
// SealUnder, which reads nothing; the environment's state is checked in
// the write transaction itself (ServingIn), so a locked or disabled
// environment's run stops at that save with nothing written, and a lock
// that commits before the write can't let one more save through. If the
// environment's epoch moved since (a rotation), the state is sealed
// again under the new one.
func (s *Service) writeState(ctx context.Context, l *lease, st *wdl.RunState, fn func(r *keyhold.FlowRunRecord) error) error {
	pt, err := json.Marshal(st)
	if err != nil {
		return err
	}
	defer clear(pt)
	l.mu.Lock()
	defer l.mu.Unlock()
	epoch := l.rec.Epoch
	for attempt := 0; ; attempt++ {
		r := *l.rec
		if err := fn(&r); err != nil {
			return err
		}
		s.renew(&r, l.rec.Version)
		r.StateVersion = l.rec.StateVersion + 1
		if l.rec.Epoch == keyhold.PlatformEpoch {
			epoch = keyhold.PlatformEpoch
		}
		if r.Sealed, err = s.seal.SealUnder(ctx, r.EnvID, keyhold.StoreRuns, runItem(r.FlowID, r.ID), r.StateVersion, epoch, pt); err != nil {
			return err
		}
		r.Epoch = epoch
		err = s.putChecked(ctx, r.EnvID, &epoch, func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, &r) })
		if err == nil {
			l.rec = &r
			return nil
		}
		if attempt >= 3 {
			return err
		}
		switch {
		case errors.Is(err, errEpochMoved):
			continue
		case keyhold.ErrorCode(err) == keyhold.CodeConflict:
			// Moved by the re-key (still ours: go on where it now
			// is), or cancelled or taken over (stop).
			var now *keyhold.FlowRunRecord
			if rerr := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
				now, err = tx.FlowRun(ctx, r.EnvID, r.FlowID, r.ID)
				return err
			}); rerr != nil || now.Terminal() || now.LeaseOwner != s.cfg.Owner || now.StateVersion <= l.rec.StateVersion {
				return err
			}
			l.rec, epoch = now, now.Epoch
			continue
		}
		return err
	}
}

// pauseFor is how long a run whose step could not go on (the environment
// is locked, the store failed) waits before an engine tries it again.
const pauseFor = 5 * time.Second

// execute runs a claimed run to its end, or until it can't go on.
func (s *Service) execute(ctx context.Context, c *claimed) {
	rec := c.rec
	l := &lease{rec: rec}
	err := s.executeLeased(ctx, l, c)
	if err == nil {
		return
	}
	if keyhold.ErrorCode(err) == keyhold.CodeConflict {
		return // cancelled or taken over: not ours any more
	}
	// Paused: keep the state as last saved, and let the lease lapse soon
	// so that an engine retries after pauseFor (a re-enabled environment
	// resumes there). This write needs no seal, so it succeeds while the
	// environment is locked.
	s.log.InfoContext(ctx, "flows: run paused", "environment", rec.EnvID, "flow", rec.FlowID, "run", rec.ID, "err", err)
	l.mu.Lock()
	r := *l.rec
	l.mu.Unlock()
	r.Version++
	r.LeaseUntil = s.clock.Now().UTC().Add(pauseFor)
	_ = s.store.Update(context.WithoutCancel(ctx), func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, &r) })
}

// executeLeased opens the flow and the state the claim read and checked
// (claimed) and executes the run; a claim that refused opens nothing.
func (s *Service) executeLeased(ctx context.Context, l *lease, c *claimed) error {
	if c.refused != nil {
		return c.refused
	}
	fd, err := s.openFlowUnder(ctx, c.flow, c.current)
	if err != nil {
		return err
	}
	st, err := s.openStateUnder(ctx, l.rec)
	if err != nil {
		return err
	}
	// Renew the lease while an action takes long (an Http call, a child
	// flow): a save renews it too.
	rctx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go func() {
		t := time.NewTicker(s.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				_ = s.write(rctx, l, func(*keyhold.FlowRunRecord) error { return nil })
			}
		}
	}()
	h := &host{s: s, l: l, fd: fd}
	save := func(st *wdl.RunState) error {
		return s.writeState(ctx, l, st, func(*keyhold.FlowRunRecord) error { return nil })
	}
	params := map[string]any{}
	for k, v := range fd.def.Parameters {
		params[k] = v
	}
	if err := wdl.Execute(ctx, fd.def, st, params, h, save); err != nil {
		return err
	}
	stopRenew()
	status := keyhold.RunFailed
	switch st.Status {
	case wdl.StatusSucceeded:
		status = keyhold.RunSucceeded
	case wdl.StatusCancelled:
		status = keyhold.RunCancelled
	}
	if err := s.writeState(ctx, l, st, func(r *keyhold.FlowRunRecord) error {
		r.Status, r.EndedAt, r.LeaseOwner, r.LeaseUntil = status, s.clock.Now().UTC(), "", time.Time{}
		return nil
	}); err != nil {
		return err
	}
	s.finished(l.rec)
	if status == keyhold.RunFailed {
		s.runFailed(context.WithoutCancel(ctx), l.rec, fd.rec, st)
	}
	return nil
}

// finished wakes those waiting for a run's end in this process.
func (s *Service) finished(rec *keyhold.FlowRunRecord) {
	k := runKey(rec.EnvID, rec.FlowID, rec.ID)
	s.mu.Lock()
	ws := s.waiters[k]
	delete(s.waiters, k)
	s.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
	s.poke() // a slot under the limits may have freed
}

// waitRun waits until a run has finished (here or on another engine) and
// returns its final record.
func (s *Service) waitRun(ctx context.Context, run *keyhold.FlowRunRecord) (*keyhold.FlowRunRecord, error) {
	k := runKey(run.EnvID, run.FlowID, run.ID)
	for {
		ch := make(chan struct{})
		s.mu.Lock()
		s.waiters[k] = append(s.waiters[k], ch)
		s.mu.Unlock()
		var rec *keyhold.FlowRunRecord
		err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
			rec, err = tx.FlowRun(ctx, run.EnvID, run.FlowID, run.ID)
			return err
		})
		if err != nil {
			return nil, err
		}
		if rec.Terminal() {
			return rec, nil
		}
		t := time.NewTimer(200 * time.Millisecond) // another engine's run: poll
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// expire deletes finished runs older than the retention, a page a tick.
func (s *Service) expire(ctx context.Context) {
	cut := s.clock.Now().Add(-s.cfg.Retention)
	if err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		_, err := tx.DeleteFlowRunsBefore(ctx, cut, 500)
		return err
	}); err != nil {
		s.log.WarnContext(ctx, "flows: deleting expired runs", "err", err)
	}
}
