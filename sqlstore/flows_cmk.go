package sqlstore

import (
	"context"

	"github.com/keyhold/keyhold"
)

// FlowEpochCounts counts an environment's flows, runs and connections by
// epoch in one statement, so the three counts are of one snapshot.
func (t *tx) FlowEpochCounts(ctx context.Context, envID string) ([]keyhold.FlowEpochCount, error) {
	return list(t, ctx, "count flows by epoch", func(r scanner) (keyhold.FlowEpochCount, error) {
		var c keyhold.FlowEpochCount
		var epoch, n int64
		err := r.Scan(&c.Store, &epoch, &n)
		c.Epoch, c.Count = uint32(epoch), int(n)
		return c, err
	}, `SELECT store, epoch, n FROM (
		SELECT '`+keyhold.FlowCountConnections+`' AS store, epoch, COUNT(*) AS n FROM flow_connections WHERE env_id = ? GROUP BY epoch
		UNION ALL SELECT '`+keyhold.FlowCountFlows+`', epoch, COUNT(*) FROM flows WHERE env_id = ? GROUP BY epoch
		UNION ALL SELECT '`+keyhold.FlowCountRuns+`', epoch, COUNT(*) FROM flow_runs WHERE env_id = ? GROUP BY epoch
	) c ORDER BY store, epoch`, envID, envID, envID)
}

// FlowRunsOfFlowOffEpoch lists at most limit runs of one flow whose state
// is sealed under an epoch other than epoch, by id.
func (t *tx) FlowRunsOfFlowOffEpoch(ctx context.Context, envID, flowID string, epoch uint32, limit int) ([]*keyhold.FlowRunRecord, error) {
	return list(t, ctx, "list a flow's runs off an epoch", scanRun, `SELECT `+runCols+` FROM flow_runs
		WHERE env_id = ? AND flow_id = ? AND epoch <> ? AND state_version > 0 ORDER BY id LIMIT ?`,
		envID, flowID, int64(epoch), clampLimit(limit, DefaultFlowRunLimit, MaxFlowRunLimit))
}
