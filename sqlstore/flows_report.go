package sqlstore

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
)

// FlowRunCounts counts a tenant's runs started in [from, to) by
// environment, flow and status, in one statement.
func (t *tx) FlowRunCounts(ctx context.Context, tenantID string, from, to time.Time) ([]keyhold.FlowRunCount, error) {
	return list(t, ctx, "count flow runs", func(r scanner) (keyhold.FlowRunCount, error) {
		var c keyhold.FlowRunCount
		var n int64
		err := r.Scan(&c.EnvID, &c.FlowID, &c.Status, &n)
		c.Count = int(n)
		return c, err
	}, `SELECT r.env_id, r.flow_id, r.status, COUNT(*) FROM flow_runs r JOIN environments e ON e.id = r.env_id
		WHERE e.tenant_id = ? AND r.started_at >= ? AND r.started_at < ?
		GROUP BY r.env_id, r.flow_id, r.status ORDER BY r.env_id, r.flow_id, r.status`, tenantID, nanos(from), nanos(to))
}
