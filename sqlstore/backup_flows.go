package sqlstore

import (
	"context"

	"github.com/keyhold/keyhold"
)

// PutBackupFlowItems adds flow items to a backup, one statement each (a
// backup holds an environment's flows: a few hundred at most).
func (t *tx) PutBackupFlowItems(ctx context.Context, backupID string, items []*keyhold.BackupFlowItem) error {
	for _, it := range items {
		n, err := t.execN(ctx, `INSERT INTO backup_flow_items (backup_id, kind, item, epoch, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			backupID, it.Kind, it.Item, int64(it.Epoch), blob(it.Record))
		if err != nil {
			if t.class(err) == ErrForeignKey {
				return backupNotFound(backupID).WithCause(err)
			}
			return t.fail("put backup flow item", err)
		}
		if n == 0 {
			return keyhold.Errorf(keyhold.CodeConflict, "backup %s already holds %s %q", backupID, it.Kind, it.Item)
		}
	}
	return nil
}

// BackupFlowItems lists a backup's flow items by kind and item.
func (t *tx) BackupFlowItems(ctx context.Context, backupID string) ([]*keyhold.BackupFlowItem, error) {
	return list(t, ctx, "list backup flow items", func(sc scanner) (*keyhold.BackupFlowItem, error) {
		it := &keyhold.BackupFlowItem{}
		err := sc.Scan(&it.Kind, &it.Item, u32Col{&it.Epoch}, &it.Record)
		return it, err
	}, `SELECT kind, item, epoch, record FROM backup_flow_items WHERE backup_id = ? ORDER BY kind, item`, backupID)
}

// ReplaceFlows deletes an environment's flows (runs, schedules, keys) and
// connections, then inserts set's records at their own versions.
func (t *tx) ReplaceFlows(ctx context.Context, envID string, set *keyhold.FlowSet) error {
	for _, table := range []string{"flow_runs", "flow_schedules", "flow_keys", "flows", "flow_connections"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE env_id = ?`, envID); err != nil {
			return t.fail("replace flows: clear", err)
		}
	}
	ins := func(what, q string, args ...any) error {
		if _, err := t.exec(ctx, q, args...); err != nil {
			if t.class(err) == ErrForeignKey {
				return envNotFound(envID).WithCause(err)
			}
			return t.fail("replace flows: insert "+what, err)
		}
		return nil
	}
	for _, f := range set.Flows {
		if err := checkTimes(f.CreatedAt, f.UpdatedAt); err != nil {
			return err
		}
		if err := ins("flow", `INSERT INTO flows (`+flowCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			envID, f.ID, f.DisplayName, f.State, f.SolutionID, f.TriggerName, f.TriggerType, f.TriggerKind, f.CreatedBy,
			int64(f.Epoch), int64(f.Version), blob(f.Sealed), nanos(f.CreatedAt), nanos(f.UpdatedAt)); err != nil {
			return err
		}
	}
	for _, k := range set.Keys {
		if err := checkTimes(k.CreatedAt); err != nil {
			return err
		}
		if err := ins("flow key", `INSERT INTO flow_keys (env_id, flow_id, epoch, version, sealed, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			envID, k.FlowID, int64(k.Epoch), int64(k.Version), blob(k.Sealed), nanos(k.CreatedAt)); err != nil {
			return err
		}
	}
	for _, s := range set.Schedules {
		if err := checkTimes(s.NextSlot, s.LastSlot); err != nil {
			return err
		}
		if err := ins("flow schedule", `INSERT INTO flow_schedules (env_id, flow_id, next_slot, last_slot) VALUES (?, ?, ?, ?)`,
			envID, s.FlowID, nanos(s.NextSlot), nanos(s.LastSlot)); err != nil {
			return err
		}
	}
	for _, c := range set.Connections {
		if err := checkTimes(c.CreatedAt); err != nil {
			return err
		}
		if err := ins("connection", `INSERT INTO flow_connections (`+connCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			envID, c.API, c.Name, c.DisplayName, c.Kind, c.PrincipalID, c.CreatedBy, int64(c.Epoch), int64(c.Version), blob(c.Sealed), nanos(c.CreatedAt)); err != nil {
			return err
		}
	}
	return nil
}

// EnvFlowSet reads an environment's flows, callback keys, schedules and
// connections as stored.
func (t *tx) EnvFlowSet(ctx context.Context, envID string) (*keyhold.FlowSet, error) {
	set := &keyhold.FlowSet{}
	var err error
	if set.Flows, err = t.ListFlows(ctx, envID); err != nil {
		return nil, err
	}
	if set.Keys, err = list(t, ctx, "list flow keys", func(sc scanner) (*keyhold.FlowKeyRecord, error) {
		k := &keyhold.FlowKeyRecord{}
		err := sc.Scan(&k.EnvID, &k.FlowID, u32Col{&k.Epoch}, u64Col{&k.Version}, &k.Sealed, timeCol{&k.CreatedAt})
		return k, err
	}, `SELECT env_id, flow_id, epoch, version, sealed, created_at FROM flow_keys WHERE env_id = ? ORDER BY flow_id`, envID); err != nil {
		return nil, err
	}
	if set.Schedules, err = list(t, ctx, "list flow schedules", func(sc scanner) (*keyhold.FlowSchedule, error) {
		s := &keyhold.FlowSchedule{}
		err := sc.Scan(&s.EnvID, &s.FlowID, timeCol{&s.NextSlot}, timeCol{&s.LastSlot})
		return s, err
	}, `SELECT env_id, flow_id, next_slot, last_slot FROM flow_schedules WHERE env_id = ? ORDER BY flow_id`, envID); err != nil {
		return nil, err
	}
	if set.Connections, err = t.ListConnections(ctx, envID); err != nil {
		return nil, err
	}
	return set, nil
}
