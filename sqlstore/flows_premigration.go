package sqlstore

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
)

// Pre-migration partitions (issue 16): keys and runs.

const preKeyCols = `env_id, partition_id, key_id, wrapped, created_at, expires_at`

func scanPreKey(sc scanner) (*keyhold.PreMigrationKey, error) {
	k := &keyhold.PreMigrationKey{}
	err := sc.Scan(&k.EnvID, &k.PartitionID, &k.KeyID, &k.Wrapped, timeCol{&k.CreatedAt}, timeCol{&k.ExpiresAt})
	return k, err
}

// PutPreMigrationKey inserts a partition's key.
func (t *tx) PutPreMigrationKey(ctx context.Context, k *keyhold.PreMigrationKey) error {
	if err := checkTimes(k.CreatedAt, k.ExpiresAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO flow_premigration_keys (`+preKeyCols+`) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.EnvID, k.PartitionID, k.KeyID, blob(k.Wrapped), nanos(k.CreatedAt), nanos(k.ExpiresAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return envNotFound(k.EnvID).WithCause(err)
		}
		return t.fail("put pre-migration key", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "pre-migration partition %q of environment %q has a key already", k.PartitionID, k.EnvID)
	}
	return nil
}

// PreMigrationKey returns a partition's key, or CodeNotFound.
func (t *tx) PreMigrationKey(ctx context.Context, envID, partitionID string) (*keyhold.PreMigrationKey, error) {
	k, err := get(t, ctx, "get pre-migration key", scanPreKey, `SELECT `+preKeyCols+` FROM flow_premigration_keys WHERE env_id = ? AND partition_id = ?`, envID, partitionID)
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "environment %q has no pre-migration partition %q", envID, partitionID))
	}
	return k, nil
}

// PreMigrationKeys lists an environment's partitions' keys, oldest first.
func (t *tx) PreMigrationKeys(ctx context.Context, envID string) ([]*keyhold.PreMigrationKey, error) {
	return list(t, ctx, "list pre-migration keys", scanPreKey, `SELECT `+preKeyCols+` FROM flow_premigration_keys WHERE env_id = ? ORDER BY created_at, partition_id`, envID)
}

// ExpiredPreMigrationKeys lists keys that expire at or before now.
func (t *tx) ExpiredPreMigrationKeys(ctx context.Context, now time.Time, limit int) ([]*keyhold.PreMigrationKey, error) {
	return list(t, ctx, "list expired pre-migration keys", scanPreKey, `SELECT `+preKeyCols+` FROM flow_premigration_keys WHERE expires_at <= ? ORDER BY expires_at, env_id, partition_id LIMIT ?`,
		nanos(now), clampLimit(limit, DefaultFlowRunLimit, MaxFlowRunLimit))
}

// DeletePreMigrationKey deletes a partition's key, if it has one.
func (t *tx) DeletePreMigrationKey(ctx context.Context, envID, partitionID string) error {
	if _, err := t.exec(ctx, `DELETE FROM flow_premigration_keys WHERE env_id = ? AND partition_id = ?`, envID, partitionID); err != nil {
		return t.fail("delete pre-migration key", err)
	}
	return nil
}

// MoveRunToPreMigration replaces a flow run, still at version, by r.
func (t *tx) MoveRunToPreMigration(ctx context.Context, r *keyhold.PreMigrationRunRecord, version uint64) error {
	if err := checkTimes(r.StartedAt, r.EndedAt); err != nil {
		return err
	}
	v, err := u64Arg(version)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `DELETE FROM flow_runs WHERE env_id = ? AND flow_id = ? AND id = ? AND version = ?`, r.EnvID, r.FlowID, r.ID, v)
	if err != nil {
		return t.fail("move a run to pre-migration", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "run %q of flow %q was changed or deleted since version %d was read", r.ID, r.FlowID, version)
	}
	sv, err := u64Arg(r.StateVersion)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, `INSERT INTO flow_premigration_runs (env_id, partition_id, flow_id, id, status, trigger_name, started_at, ended_at, state_version, sealed)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.EnvID, r.PartitionID, r.FlowID, r.ID, r.Status, r.TriggerName, nanos(r.StartedAt), nanos(r.EndedAt), sv, blob(r.Sealed)); err != nil {
		return t.fail("move a run to pre-migration", err)
	}
	return nil
}

// PreMigrationRuns lists a partition's runs by flow and id.
func (t *tx) PreMigrationRuns(ctx context.Context, envID, partitionID string) ([]*keyhold.PreMigrationRunRecord, error) {
	return list(t, ctx, "list pre-migration runs", func(sc scanner) (*keyhold.PreMigrationRunRecord, error) {
		r := &keyhold.PreMigrationRunRecord{}
		err := sc.Scan(&r.EnvID, &r.PartitionID, &r.FlowID, &r.ID, &r.Status, &r.TriggerName, timeCol{&r.StartedAt}, timeCol{&r.EndedAt}, u64Col{&r.StateVersion}, &r.Sealed)
		return r, err
	}, `SELECT env_id, partition_id, flow_id, id, status, trigger_name, started_at, ended_at, state_version, sealed
		FROM flow_premigration_runs WHERE env_id = ? AND partition_id = ? ORDER BY flow_id, id`, envID, partitionID)
}

// DeleteShreddedPreMigrationRuns deletes runs whose partition's key is
// gone.
func (t *tx) DeleteShreddedPreMigrationRuns(ctx context.Context, limit int) (int, error) {
	n, err := t.execN(ctx, `DELETE FROM flow_premigration_runs WHERE (env_id, partition_id, flow_id, id) IN
		(SELECT r.env_id, r.partition_id, r.flow_id, r.id FROM flow_premigration_runs r
		 WHERE NOT EXISTS (SELECT 1 FROM flow_premigration_keys k WHERE k.env_id = r.env_id AND k.partition_id = r.partition_id) LIMIT ?)`,
		clampLimit(limit, DefaultFlowRunLimit, MaxFlowRunLimit))
	if err != nil {
		return 0, t.fail("delete shredded pre-migration runs", err)
	}
	return int(n), nil
}
