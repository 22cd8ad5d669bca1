package flows

import (
	"context"

	"github.com/keyhold/keyhold"
)

// refuseWhileMigrating refuses, inside a flow write's own transaction, to
// create or update a flow while its environment's encryption operation
// (a link, swap, re-key or unlink, which moves the flows: issue 16) runs:
// spec 004 blocks creation and update of flows during the migration, so
// that the re-key neither misses a flow nor classifies one that changes
// under it. Reading the environment in the same transaction as the write
// means an operation that starts concurrently either sees the write or
// makes it fail. Running flows keep running: runs don't come here.
func refuseWhileMigrating(ctx context.Context, tx keyhold.Tx, envID string) error {
	env, err := tx.Environment(ctx, envID)
	if err != nil {
		return err
	}
	if env.EncryptionStatus != keyhold.EncryptionRunning {
		return nil
	}
	where := "to its customer-managed key"
	if env.LastOperationID != "" {
		if op, err := tx.Operation(ctx, env.LastOperationID); err == nil && op.Kind == keyhold.OpUnlink {
			where = "back to the platform key"
		}
	}
	return keyhold.Errorf(keyhold.CodeFlowsMigrating, "the flows of environment %s are being migrated %s (operation %s): flows can't be created or updated until it ends; try again when the operation has finished", envID, where, env.LastOperationID)
}
