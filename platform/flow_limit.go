package platform

import (
	"context"

	"github.com/keyhold/keyhold"
)

// DefaultCMKFlowEnvironmentsLimit is spec 004's limit on the environments
// with flows that one tenant may have under customer-managed keys. Only
// the platform operator raises it (Config.CMKFlowEnvironmentsLimit,
// keyhold serve --cmk-flow-environments-limit): tenants can't.
const DefaultCMKFlowEnvironmentsLimit = 25

// flowEnvLimit returns the limit in force: configured, or the default for
// zero (and for a negative value, which the command line refuses).
func flowEnvLimit(configured int) int {
	if configured <= 0 {
		return DefaultCMKFlowEnvironmentsLimit
	}
	return configured
}

// requireFlowEnvRoom refuses to link env when it has flows and the tenant
// already has limit environments with flows linked to enterprise policies
// (an environment counts from the start of its link). An environment
// without flows, or one already linked (a swap or a re-key), adds none.
// It reads flow rows only, never a definition, and runs inside the link's
// checks, so a refusal changes nothing.
func requireFlowEnvRoom(ctx context.Context, tx keyhold.Tx, configured int, env *keyhold.Environment) error {
	if env.PolicyID != "" {
		return nil
	}
	if fs, err := tx.ListFlows(ctx, env.ID); err != nil || len(fs) == 0 {
		return err
	}
	limit := flowEnvLimit(configured)
	envs, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: env.TenantID})
	if err != nil {
		return err
	}
	// An environment counts from the start of its link: one whose link is
	// still running has no policy yet.
	linking := map[string]bool{}
	running, err := tx.ListOperations(ctx, keyhold.OperationFilter{TenantID: env.TenantID, Kind: keyhold.OpLink, State: keyhold.OperationRunning})
	if err != nil {
		return err
	}
	for _, op := range running {
		linking[op.Target] = true
	}
	n := 0
	for _, e := range envs {
		if (e.PolicyID == "" && !linking[e.ID]) || e.ID == env.ID {
			continue
		}
		fs, err := tx.ListFlows(ctx, e.ID)
		if err != nil {
			return err
		}
		if len(fs) > 0 {
			n++
		}
	}
	if n < limit {
		return nil
	}
	return keyhold.Errorf(keyhold.CodeCMKFlowEnvironmentsLimit,
		"environment %s has flows, and tenant %s already has %d environments with flows under customer-managed keys, its limit of %d: "+
			"move its flows out or link an environment without flows, or ask the platform operator to raise the limit (keyhold serve --cmk-flow-environments-limit N); tenants can't raise it themselves",
		env.ID, env.TenantID, n, limit)
}
