package keyhold

import (
	"context"
	"time"
)

// The tenant-wide flow-run report (issue 16): per environment, how many
// runs started in a window ended (or stand) in each status. Spec 004 keeps
// a customer-key environment's flow data out of tenant-wide reporting, so
// its row has its counts only; a platform-key environment's row also
// breaks them down by flow. No row ever carries a run's content.

// FlowRunCount is how many runs of one flow of an environment, started in
// a window, have one status: what the store counts for the report.
type FlowRunCount struct {
	EnvID  string
	FlowID string
	Status string
	Count  int
}

// FlowReportTx is the part of a store transaction the report reads.
type FlowReportTx interface {
	// FlowRunCounts counts the runs of tenantID's environments that
	// started in [from, to), by environment, flow and status, ordered so.
	FlowRunCounts(ctx context.Context, tenantID string, from, to time.Time) ([]FlowRunCount, error)
}

// MaxFlowReportWindow is the longest window a report covers, and
// DefaultFlowReportWindow the one it covers when only its end is given.
const (
	MaxFlowReportWindow     = 90 * 24 * time.Hour
	DefaultFlowReportWindow = 7 * 24 * time.Hour
)

// FlowRunReport is the report over [From, To).
type FlowRunReport struct {
	From         time.Time           `json:"startTime"`
	To           time.Time           `json:"endTime"`
	Environments []*FlowRunReportRow `json:"environments"`
}

// FlowRunReportRow is one environment's runs. Runs counts them by status
// (Succeeded, Failed, Cancelled, Skipped, Running; a queued run counts as
// Running). Flows is the breakdown by flow, for a platform-key environment
// only: empty when CustomerManagedKey is set.
type FlowRunReportRow struct {
	EnvID              string               `json:"environmentId"`
	DisplayName        string               `json:"displayName"`
	CustomerManagedKey bool                 `json:"customerManagedKey"`
	Total              int                  `json:"total"`
	Runs               map[string]int       `json:"runs"`
	Flows              []*FlowRunReportFlow `json:"flows,omitempty"`
}

// FlowRunReportFlow is one flow's runs in a platform-key environment's row.
type FlowRunReportFlow struct {
	FlowID string         `json:"flowName"`
	Total  int            `json:"total"`
	Runs   map[string]int `json:"runs"`
}

// FlowReportService answers the report for the caller's tenant; only a
// platform administrator may ask.
type FlowReportService interface {
	FlowRunReport(ctx context.Context, from, to time.Time) (*FlowRunReport, error)
}
