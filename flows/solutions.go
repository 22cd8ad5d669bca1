package flows

import (
	"context"

	"github.com/keyhold/keyhold"
)

// The environment setting "create new flows in solutions" (spec 004,
// Environment.FlowsInSolutions). While it is on, a flow created without a
// solution is created in the environment's default solution
// (keyhold.DefaultSolutionID), so it is a solution flow: it never falls
// into spec 004's non-solution category, and a Power Apps trigger can be
// referenced from an app under a customer-managed key. The setting is on
// by default once the environment is linked to a policy; an admin can
// turn it off (or on before the link). A flow that already exists keeps
// its solution, or none, until a save sets one.

// solutionOfNew is the solution a flow being created with solutionID
// goes into: solutionID if set, else the default solution while the
// environment's setting is on, else none.
func (s *Service) solutionOfNew(ctx context.Context, envID, solutionID string) (string, error) {
	if solutionID != "" {
		return solutionID, nil
	}
	var env *keyhold.Environment
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		env, err = tx.Environment(ctx, envID)
		return err
	}); err != nil {
		return "", err
	}
	if env.FlowsInSolutions() {
		return keyhold.DefaultSolutionID, nil
	}
	return "", nil
}
