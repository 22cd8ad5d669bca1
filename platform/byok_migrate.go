package platform

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Migration from the legacy BYOK key to a customer-managed key (spec 000),
// through the same link call as any environment (LinkPolicy): the link's
// rewrap step is the custody move from the BYOK copy of each epoch's
// environment key to the policy's key. Unlike a plain link, the
// environment stays Enabled throughout (cmkInput.FromBYOK: the disable
// step does nothing): the move changes no environment key, only which
// root wraps it, and commits atomically, so reads and writes go on under
// the same key before and after it.
//
// The rewrap's transaction records the migration (byok_migrations). From
// then on the environment can't be moved back under the BYOK key
// (ApplyBYOK refuses), and can't be unlinked to the platform's key for
// keyhold.BYOKUnlinkDelay after it (refuseUnlinkAfterBYOK).

// recordBYOKMigration records, in the rewrap's transaction, that env
// migrated off the BYOK key its moves leave.
func recordBYOKMigration(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment, moves []*custodyMove, now time.Time) error {
	keyID := ""
	for _, m := range moves {
		if m.from.Root == keyhold.RootBYOK {
			keyID = strings.TrimPrefix(m.from.KeyID, byokKIDPrefix)
		}
	}
	if keyID == "" {
		return nil // moved in an earlier run of the step: recorded then
	}
	return tx.PutBYOKMigration(ctx, &keyhold.BYOKMigration{EnvID: env.ID, TenantID: env.TenantID, KeyID: keyID, MigratedAt: now.UTC()})
}

// refuseUnlinkAfterBYOK refuses to unlink an environment within
// keyhold.BYOKUnlinkDelay of its migration from BYOK, naming the date
// from which it may.
func refuseUnlinkAfterBYOK(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment, now time.Time) error {
	m, err := tx.BYOKMigration(ctx, env.ID)
	if err != nil || m == nil {
		return err
	}
	if from := m.MigratedAt.Add(keyhold.BYOKUnlinkDelay); now.Before(from) {
		return keyhold.Errorf(keyhold.CodeConflict,
			"environment %s migrated from the tenant's BYOK key to a customer-managed key at %s, and can't return to the Microsoft-managed key for 7 days after (spec 000): unlink it on or after %s",
			env.ID, m.MigratedAt.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	return nil
}
