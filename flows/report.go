package flows

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
)

var _ keyhold.FlowReportService = (*Service)(nil)

// FlowRunReport is the tenant-wide flow-run report over [from, to)
// (keyhold.FlowReportService), from one count in the store: nothing is
// opened, so a locked environment is counted too. An environment linked to
// a customer key gets its counts by status only (spec 004 keeps its flow
// data out of tenant-wide reporting); a platform-key environment's row
// also breaks them down by flow. Environments without runs in the window
// are left out. Only a platform administrator of the caller's tenant may
// ask. A zero to is now, a zero from DefaultFlowReportWindow before to;
// a window that is empty, reversed or longer than
// keyhold.MaxFlowReportWindow is refused.
func (s *Service) FlowRunReport(ctx context.Context, from, to time.Time) (*keyhold.FlowRunReport, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if to.IsZero() {
		to = s.clock.Now()
	}
	if from.IsZero() {
		from = to.Add(-keyhold.DefaultFlowReportWindow)
	}
	const how = "give startTime before endTime, at most 90 days apart, as RFC 3339 times (e.g. 2024-05-01T00:00:00Z)"
	switch {
	case !from.Before(to):
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the report's window from %s to %s is empty: %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), how)
	case to.Sub(from) > keyhold.MaxFlowReportWindow:
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the report's window from %s to %s is longer than 90 days: %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), how)
	}
	out := &keyhold.FlowRunReport{From: from.UTC(), To: to.UTC(), Environments: []*keyhold.FlowRunReportRow{}}
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := tenantAdmin(ctx, tx, id); err != nil {
			return err
		}
		counts, err := tx.FlowRunCounts(ctx, id.TenantID, from, to)
		if err != nil {
			return err
		}
		var row *keyhold.FlowRunReportRow
		var flow *keyhold.FlowRunReportFlow
		for _, c := range counts {
			if row == nil || row.EnvID != c.EnvID {
				env, err := tx.Environment(ctx, c.EnvID)
				if err != nil {
					return err
				}
				row = &keyhold.FlowRunReportRow{EnvID: env.ID, DisplayName: env.DisplayName, CustomerManagedKey: env.PolicyID != "", Runs: map[string]int{}}
				flow = nil
				out.Environments = append(out.Environments, row)
			}
			status := c.Status
			if status == keyhold.RunWaiting {
				status = keyhold.RunRunning // as the API shows a queued run
			}
			row.Runs[status] += c.Count
			row.Total += c.Count
			if row.CustomerManagedKey {
				continue
			}
			if flow == nil || flow.FlowID != c.FlowID {
				flow = &keyhold.FlowRunReportFlow{FlowID: c.FlowID, Runs: map[string]int{}}
				row.Flows = append(row.Flows, flow)
			}
			flow.Runs[status] += c.Count
			flow.Total += c.Count
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// tenantAdmin checks that id is a platform administrator of its tenant.
func tenantAdmin(ctx context.Context, tx keyhold.Tx, id *keyhold.Identity) error {
	roles, err := tx.DirectoryRoles(ctx, id.TenantID, id.PrincipalID)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if r.IsPlatformAdmin() {
			return nil
		}
	}
	return keyhold.Errorf(keyhold.CodeForbidden, "principal %s may not read the tenant's flow-run report: only a platform administrator of tenant %s may; ask one to run it, or to assign you the role", id.PrincipalID, id.TenantID)
}
