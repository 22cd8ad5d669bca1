package platform

import (
	"context"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// OpEnable is the kind of the operation that records a re-enabled Locked
// environment (EnableEnvironmentOp).
const OpEnable = "enable"

// EnableEnvironmentOp re-enables a Locked environment as EnableEnvironment
// does, and on success records it as a finished operation of kind
// "enable" (Succeeded, targeting the environment), so that the admin API
// can answer it as it answers a link: 202 with an operation to poll. The
// re-enable itself is synchronous; the record is stored after it commits.
// Errors are EnableEnvironment's, unchanged, and record nothing.
func (p *Platform) EnableEnvironmentOp(ctx context.Context, envID string) (*keyhold.Operation, error) {
	if err := p.EnableEnvironment(ctx, envID); err != nil {
		return nil, err
	}
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var op *keyhold.Operation
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		env, err := environmentFor(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		now := p.clock.Now().UTC()
		op = &keyhold.Operation{
			ID: uuid.NewString(), TenantID: env.TenantID, Kind: OpEnable, Target: env.ID,
			State: keyhold.OperationSucceeded, CreatedBy: id.PrincipalID,
			CreatedAt: now, UpdatedAt: now, FinishedAt: now,
		}
		return tx.CreateOperation(ctx, op)
	})
	if err != nil {
		return nil, err
	}
	return op, nil
}
