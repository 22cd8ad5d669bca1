package flows

import (
	"context"
	"encoding/json"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// Where the environment's state is checked (issue 15's throughput). A
// locked or disabled environment's flows must neither run nor open
// (keyhold.EnvironmentSealer): every open and seal of a flow's items
// follows a check that the environment serves (ServingIn). The check runs
// inside a transaction the caller needs anyway, not one of its own: the
// read that loads the flow (loadFlow) or the run (openRun), the write that
// stores a run's state (putChecked) and the engine's claim of a run
// (engine.go). The opens after it (OpenUnder) and the seals before a
// checked write (SealUnder) read nothing. A sealed run then costs the
// transactions a plain one does.

// serving checks, in a read transaction of its own, that envID serves
// and returns its current epoch: for the opens that have no other
// transaction to check in.
func (s *Service) serving(ctx context.Context, envID string) (epoch uint32, err error) {
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		epoch, err = s.seal.ServingIn(ctx, tx, envID)
		return err
	})
	return epoch, err
}

// readFlow reads a flow in tx; a missing one is FlowNotFound, saying how
// to find it.
func readFlow(ctx context.Context, tx keyhold.Tx, envID, flowID string) (*keyhold.FlowRecord, error) {
	rec, err := tx.Flow(ctx, envID, flowID)
	if keyhold.ErrorCode(err) == keyhold.CodeFlowNotFound {
		return nil, keyhold.Errorf(keyhold.CodeFlowNotFound, "flow %q was not found in environment %s: list the environment's flows to find its name", keyhold.Clip(flowID), envID)
	}
	return rec, err
}

// readRun reads a run in tx; a missing one is FlowRunNotFound, saying how
// to find it.
func readRun(ctx context.Context, tx keyhold.Tx, envID, flowID, runID string) (*keyhold.FlowRunRecord, error) {
	rec, err := tx.FlowRun(ctx, envID, flowID, runID)
	if keyhold.ErrorCode(err) == keyhold.CodeFlowRunNotFound {
		return nil, keyhold.Errorf(keyhold.CodeFlowRunNotFound, "run %q of flow %q was not found in environment %s: list the flow's runs to find it", keyhold.Clip(runID), keyhold.Clip(flowID), envID)
	}
	return rec, err
}

// loadFlow reads a flow, refuses it with check (if not nil) and checks
// the environment, in one read transaction, then opens the flow: a
// locked environment's flow is not opened.
func (s *Service) loadFlow(ctx context.Context, envID, flowID string, check func(*keyhold.FlowRecord) error) (*flowDef, error) {
	var rec *keyhold.FlowRecord
	var current uint32
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if rec, err = readFlow(ctx, tx, envID, flowID); err != nil {
			return err
		}
		if check != nil {
			if err := check(rec); err != nil {
				return err
			}
		}
		current, err = s.seal.ServingIn(ctx, tx, envID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.openFlowUnder(ctx, rec, current)
}

// openRun is the read of a run's state for the API: the caller may use
// the environment's flows; the run is read and the environment checked
// in one read transaction (a run without state, a skipped slot, opens
// nothing and needs no check); then the state is opened.
func (s *Service) openRun(ctx context.Context, envID, flowID, runID string) (*keyhold.FlowRunRecord, *wdl.RunState, error) {
	if _, _, err := s.caller(ctx, envID); err != nil {
		return nil, nil, err
	}
	var rec *keyhold.FlowRunRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if rec, err = readRun(ctx, tx, envID, flowID, runID); err != nil || rec.StateVersion == 0 {
			return err
		}
		_, err = s.seal.ServingIn(ctx, tx, envID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	st, err := s.openStateUnder(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	return rec, st, nil
}

// openState opens a run's sealed state, checking the environment first
// in a read transaction of its own.
func (s *Service) openState(ctx context.Context, rec *keyhold.FlowRunRecord) (*wdl.RunState, error) {
	if rec.StateVersion != 0 {
		if _, err := s.serving(ctx, rec.EnvID); err != nil {
			return nil, err
		}
	}
	return s.openStateUnder(ctx, rec)
}

// openStateUnder opens a run's sealed state; the caller checked the
// environment.
func (s *Service) openStateUnder(ctx context.Context, rec *keyhold.FlowRunRecord) (*wdl.RunState, error) {
	if rec.StateVersion == 0 { // a skipped slot: no state
		return &wdl.RunState{Status: rec.Status, Actions: map[string]*wdl.ActionState{}}, nil
	}
	pt, err := s.seal.OpenUnder(ctx, rec.EnvID, keyhold.StoreRuns, runItem(rec.FlowID, rec.ID), rec.StateVersion, rec.Epoch, rec.Sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	st := &wdl.RunState{}
	if err := json.Unmarshal(pt, st); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "run %s: its stored state is not valid", rec.ID).WithCause(err)
	}
	return st, nil
}

// putChecked writes with put in a transaction that first checks the
// environment and that *epoch, which the item was sealed under (with
// SealUnder), is still the current one (PlatformEpoch always is). If the
// epoch moved (a rotation), nothing is written, *epoch is the new one and
// the error is errEpochMoved: seal again under it and retry.
func (s *Service) putChecked(ctx context.Context, envID string, epoch *uint32, put func(tx keyhold.Tx) error) error {
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		current, err := s.seal.ServingIn(ctx, tx, envID)
		if err != nil {
			return err
		}
		if *epoch != keyhold.PlatformEpoch && current != *epoch {
			*epoch = current
			return errEpochMoved
		}
		return put(tx)
	})
}
