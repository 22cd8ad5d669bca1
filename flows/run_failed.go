package flows

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// auditFlowRunFailed is the audit action of a failed run; its event is
// keyhold.EventFlowRunFailed.
const auditFlowRunFailed = "flow.run.failed"

// runFailed tells the tenant's administrators that a run failed: an audit
// entry and its keyhold.EventFlowRunFailed event, in one transaction, the
// event Pending for the tenant's webhook if it has one (as the platform's
// events are). What they say is built from the records' clear fields
// only: the flow's id and name, the run's id and end time. In an
// environment linked to a customer key that is all; in a platform-key
// environment the failed action's name is added. Never the trigger's
// inputs, an action's inputs or outputs, or an error's code or message:
// those are the run's content, and the events feed, webhooks and the audit
// log are tenant-wide (spec 004's analytics exclusions).
//
// It runs after the run's final state is stored, so an engine that dies
// in between loses the notice (the run itself is not lost); a failure to
// write it is logged.
func (s *Service) runFailed(ctx context.Context, run *keyhold.FlowRunRecord, flow *keyhold.FlowRecord, st *wdl.RunState) {
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := tx.Environment(ctx, run.EnvID)
		if err != nil {
			return err
		}
		summary := failedSummary(env, run, flow, st)
		a, err := keyhold.Audit(ctx, tx, keyhold.AuditEntry{At: s.clock.Now(), TenantID: env.TenantID, ActorID: "system",
			Action: auditFlowRunFailed, Target: runResourcePath(run.EnvID, run.FlowID, run.ID), EnvID: env.ID, Result: keyhold.RunFailed, Detail: summary})
		if err != nil {
			return err
		}
		ev := &keyhold.Event{TenantID: env.TenantID, At: a.At, Kind: keyhold.EventFlowRunFailed, PolicyID: env.PolicyID, EnvID: env.ID, AuditID: a.ID, Summary: summary}
		settings, err := tx.TenantSettings(ctx, env.TenantID)
		if err != nil {
			return err
		}
		if settings.WebhookURL != "" {
			ev.Delivery, ev.NextAttemptAt = keyhold.DeliveryPending, a.At
		}
		return tx.AppendEvent(ctx, ev)
	})
	if err != nil {
		s.log.WarnContext(ctx, "flows: writing the notice of a failed run", "environment", run.EnvID, "flow", run.FlowID, "run", run.ID, "err", err)
	}
}

// runResourcePath is a run's resource path, the target of its audit entry.
func runResourcePath(envID, flowID, runID string) string {
	return "/providers/Microsoft.ProcessSimple/environments/" + envID + "/flows/" + flowID + "/runs/" + runID
}

// failedSummary words a failed run's notice (see runFailed for what it
// may say).
func failedSummary(env *keyhold.Environment, run *keyhold.FlowRunRecord, flow *keyhold.FlowRecord, st *wdl.RunState) string {
	end := run.EndedAt
	if end.IsZero() {
		end = run.UpdatedAt
	}
	msg := fmt.Sprintf("run %s of flow %s (%q) in environment %s failed at %s", run.ID, flow.ID, flow.DisplayName, env.ID, end.UTC().Format(time.RFC3339))
	if env.PolicyID != "" {
		return msg + "; its content is protected by the environment's customer-managed key: open the run in the environment to see why"
	}
	if name := failedAction(st); name != "" {
		msg += fmt.Sprintf("; action %q failed", name)
	}
	return msg + "; open the run to see why"
}

// failedAction is the name of the first action (by start, then path) that
// failed or timed out, "" if none did (a Terminate, say).
func failedAction(st *wdl.RunState) string {
	var failed []string
	for path, a := range st.Actions {
		if a.Status == wdl.StatusFailed || a.Status == wdl.StatusTimedOut {
			failed = append(failed, path)
		}
	}
	slices.SortFunc(failed, func(x, y string) int {
		if c := st.Actions[x].Start.Compare(st.Actions[y].Start); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	if len(failed) == 0 {
		return ""
	}
	return st.Actions[failed[0]].Name
}
