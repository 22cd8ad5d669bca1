package flows

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// schedule keeps a flow's recurrence schedule in step with it, in the
// flow's write: a started Recurrence flow has one (its next slot after
// now, unless it already has one for the same trigger), any other none.
func (s *Service) schedule(ctx context.Context, tx keyhold.Tx, rec *keyhold.FlowRecord, def *wdl.Definition) error {
	tr := def.Trigger()
	if rec.State != keyhold.FlowStarted || tr.Type != "Recurrence" || tr.Recurrence == nil {
		return tx.DeleteFlowSchedule(ctx, rec.EnvID, rec.ID)
	}
	now := s.clock.Now().UTC()
	return tx.PutFlowSchedule(ctx, &keyhold.FlowSchedule{EnvID: rec.EnvID, FlowID: rec.ID, NextSlot: tr.Recurrence.Next(now).UTC(), LastSlot: now})
}

// fireSchedules fires the due recurrence slots. A slot is claimed in a
// transaction that moves the schedule on only if it still names that
// slot, so each fires once across engines. After downtime, Logic Apps'
// catch-up applies: only the latest missed slot fires, and the schedule
// moves to the first slot after now. In a locked environment the slot is
// recorded as a Skipped run and the schedule moves on.
func (s *Service) fireSchedules(ctx context.Context) {
	now := s.clock.Now().UTC()
	var due []*keyhold.FlowSchedule
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		due, err = tx.DueFlowSchedules(ctx, now, 100)
		return err
	}); err != nil {
		s.log.WarnContext(ctx, "flows: listing due schedules", "err", err)
		return
	}
	for _, sch := range due {
		if err := s.fire(ctx, sch, now); err != nil {
			s.log.WarnContext(ctx, "flows: firing a recurrence", "environment", sch.EnvID, "flow", sch.FlowID, "err", err)
		}
	}
}

func (s *Service) fire(ctx context.Context, sch *keyhold.FlowSchedule, now time.Time) error {
	frec, err := s.flowRecord(ctx, sch.EnvID, sch.FlowID)
	if err != nil {
		return err
	}
	fd, err := s.openFlow(ctx, frec)
	locked := keyhold.ErrorCode(err) == keyhold.CodeEnvironmentLocked
	if err != nil && !locked {
		return err
	}
	var next time.Time
	slot := sch.NextSlot
	if !locked {
		r := fd.def.Trigger().Recurrence
		if r == nil {
			return s.store.Update(ctx, func(tx keyhold.Tx) error { return tx.DeleteFlowSchedule(ctx, sch.EnvID, sch.FlowID) })
		}
		if missed, ok := r.MissedSlot(sch.NextSlot.Add(-time.Nanosecond), now); ok {
			slot = missed // catch-up: the latest slot at or before now
		}
		next = r.Next(now).UTC()
	} else {
		// Locked: the definition can't be opened to compute the next
		// slot; try again a minute on, recording this slot as skipped.
		next = now.Add(time.Minute)
	}
	if err := s.store.Update(ctx, func(tx keyhold.Tx) error { return tx.ClaimFlowSlot(ctx, sch, next) }); err != nil {
		if keyhold.ErrorCode(err) == keyhold.CodeConflict {
			return nil // another engine fired it
		}
		return err
	}
	trigger := wdl.Outputs{Body: map[string]any{"scheduledTime": slot.Format(time.RFC3339)}}
	if locked {
		return s.skipped(ctx, frec, slot)
	}
	_, err = s.startRun(ctx, fd, trigger, "", "", 0)
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentLocked {
		return s.skipped(ctx, frec, slot)
	}
	return err
}

// skipped records a slot that did not run because the environment was
// locked: a run with status Skipped and no state (nothing can be sealed).
func (s *Service) skipped(ctx context.Context, frec *keyhold.FlowRecord, slot time.Time) error {
	now := s.clock.Now().UTC()
	rec := &keyhold.FlowRunRecord{EnvID: frec.EnvID, FlowID: frec.ID, ID: s.newRunID(), Status: keyhold.RunSkipped, TriggerName: frec.TriggerName,
		StartedAt: slot, EndedAt: now, Version: 1, UpdatedAt: now}
	return s.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, rec) })
}
