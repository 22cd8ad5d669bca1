package platform

import (
	"context"

	"github.com/keyhold/keyhold"
)

// showFlowWarning fills in env.PlatformKeyFlows: in an environment linked
// to a customer key, the number of its flows sealed under the platform
// key's partition, as the store counts them (FlowEpochCounts), never as
// classification predicts. An environment without a policy has no
// warning, whatever its flows are sealed under.
func showFlowWarning(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) error {
	env.PlatformKeyFlows = 0
	if env.PolicyID == "" {
		return nil
	}
	counts, err := tx.FlowEpochCounts(ctx, env.ID)
	if err != nil {
		return err
	}
	for _, c := range counts {
		if c.Store == keyhold.FlowCountFlows && c.Epoch == keyhold.PlatformEpoch {
			env.PlatformKeyFlows = c.Count
		}
	}
	return nil
}
