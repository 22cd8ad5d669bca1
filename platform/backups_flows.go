package platform

import (
	"context"
	"encoding/json"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// Flows in backups (issue 15). A backup holds its environment's flows,
// their callback keys and recurrence schedules, and its connections, as
// stored (keyhold.BackupFlowItem: the records with their ciphertexts,
// under the epochs they were sealed with, never opened), written by the
// backup's final transaction, so they are of the same instant as its rows
// and files. Run history is not backed up: a restore brings the flows
// back without their runs (and deletes the target's).
//
// A restore (and a copy, through its snapshot) re-seals every item for
// the target before its swap transaction, keeping each item's custody:
// what the environment's key sealed is sealed again under the target's
// current epoch; what the platform key's partition sealed (non-OAuth
// connections, epoch 0) under the target's partition. Versions are kept,
// as rows keep theirs. The swap replaces the target's flows and
// connections in the same transaction as its rows. A backup taken before
// flows were backed up has no manifest item: restoring it leaves the
// target's flows as they are.

// backupFlows adds the environment's flow items to backup b, in b's final
// transaction.
func backupFlows(ctx context.Context, tx keyhold.Tx, b *keyhold.Backup) error {
	set, err := tx.EnvFlowSet(ctx, b.EnvID)
	if err != nil {
		return err
	}
	items := []*keyhold.BackupFlowItem{{Kind: keyhold.BackupFlowManifest, Item: "flows", Record: []byte(`{}`)}}
	add := func(kind, item string, epoch uint32, rec any) error {
		j, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		items = append(items, &keyhold.BackupFlowItem{Kind: kind, Item: item, Epoch: epoch, Record: j})
		return nil
	}
	for _, f := range set.Flows {
		if err := add(keyhold.BackupFlowRecord, f.ID, f.Epoch, f); err != nil {
			return err
		}
	}
	for _, k := range set.Keys {
		if err := add(keyhold.BackupFlowKey, k.FlowID, k.Epoch, k); err != nil {
			return err
		}
	}
	for _, s := range set.Schedules {
		if err := add(keyhold.BackupFlowSchedule, s.FlowID, keyhold.PlatformEpoch, s); err != nil {
			return err
		}
	}
	for _, c := range set.Connections {
		if err := add(keyhold.BackupFlowConnection, keyhold.ConnectionItemID(c.API, c.Name), c.Epoch, c); err != nil {
			return err
		}
	}
	return tx.PutBackupFlowItems(ctx, b.ID, items)
}

// stageFlows reads backup b's flow items and re-seals them for target
// under its epoch tEpoch (outside any transaction: a key may be
// unwrapped). nil if the backup holds no flows (taken before flows were
// backed up).
func (p *Backups) stageFlows(ctx context.Context, b *keyhold.Backup, target *keyhold.Environment, tEpoch uint32) (*keyhold.FlowSet, error) {
	var items []*keyhold.BackupFlowItem
	if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		items, err = tx.BackupFlowItems(ctx, b.ID)
		return err
	}); err != nil {
		return nil, err
	}
	manifest := false
	for _, it := range items {
		manifest = manifest || it.Kind == keyhold.BackupFlowManifest
	}
	if !manifest {
		return nil, nil
	}
	ring := newKeyRing()
	defer ring.destroy()
	key := func(envID string, epoch uint32, store string) (*crypt.StoreKey, error) {
		if k := ring.get(envID, epoch, store); k != nil {
			return k, nil
		}
		k, err := p.storeKey(ctx, envID, epoch, store)
		if err != nil {
			return nil, err
		}
		ring.put(envID, epoch, store, k)
		return k, nil
	}
	sealer := &Sealer{core: p.core}
	// reseal opens ct (store, item, version, sealed under epoch of the
	// backup's environment) and seals it for the target, in the same
	// custody: the target's current epoch, or its platform partition.
	reseal := func(store, item string, version uint64, epoch uint32, ct []byte) ([]byte, uint32, error) {
		var pt []byte
		var err error
		if epoch == keyhold.PlatformEpoch {
			pt, err = sealer.OpenPlatform(ctx, b.EnvID, store, item, version, ct)
		} else {
			var k *crypt.StoreKey
			if k, err = key(b.EnvID, epoch, store); err != nil {
				return nil, 0, err
			}
			if pt, err = k.Open(item, version, ct); err != nil {
				err = keyhold.Errorf(keyhold.CodeInternal, "%s item %q of backup %s failed its integrity check: the backup was altered; restore another backup", store, item, b.ID).WithCause(err)
			}
		}
		if err != nil {
			return nil, 0, ops.Permanent(err)
		}
		defer clear(pt)
		if epoch == keyhold.PlatformEpoch {
			out, err := sealer.SealPlatform(ctx, target.ID, store, item, version, pt)
			return out, keyhold.PlatformEpoch, err
		}
		k, err := key(target.ID, tEpoch, store)
		if err != nil {
			return nil, 0, err
		}
		out, err := k.Seal(item, version, pt)
		return out, tEpoch, err
	}
	set := &keyhold.FlowSet{}
	for _, it := range items {
		bad := func(err error) error {
			return ops.Permanent(keyhold.Errorf(keyhold.CodeInternal, "backup %s holds an unreadable %s item %q", b.ID, it.Kind, it.Item).WithCause(err))
		}
		switch it.Kind {
		case keyhold.BackupFlowRecord:
			f := &keyhold.FlowRecord{}
			if err := json.Unmarshal(it.Record, f); err != nil {
				return nil, bad(err)
			}
			ct, epoch, err := reseal(keyhold.StoreFlows, keyhold.FlowItemID(f.ID), f.Version, f.Epoch, f.Sealed)
			if err != nil {
				return nil, err
			}
			f.EnvID, f.Epoch, f.Sealed = target.ID, epoch, ct
			set.Flows = append(set.Flows, f)
		case keyhold.BackupFlowKey:
			k := &keyhold.FlowKeyRecord{}
			if err := json.Unmarshal(it.Record, k); err != nil {
				return nil, bad(err)
			}
			ct, epoch, err := reseal(keyhold.StoreFlows, keyhold.FlowKeyItemID(k.FlowID), k.Version, k.Epoch, k.Sealed)
			if err != nil {
				return nil, err
			}
			k.EnvID, k.Epoch, k.Sealed = target.ID, epoch, ct
			set.Keys = append(set.Keys, k)
		case keyhold.BackupFlowSchedule:
			s := &keyhold.FlowSchedule{}
			if err := json.Unmarshal(it.Record, s); err != nil {
				return nil, bad(err)
			}
			s.EnvID = target.ID
			set.Schedules = append(set.Schedules, s)
		case keyhold.BackupFlowConnection:
			c := &keyhold.ConnectionRecord{}
			if err := json.Unmarshal(it.Record, c); err != nil {
				return nil, bad(err)
			}
			ct, epoch, err := reseal(keyhold.StoreConnections, keyhold.ConnectionItemID(c.API, c.Name), c.Version, c.Epoch, c.Sealed)
			if err != nil {
				return nil, err
			}
			c.EnvID, c.Epoch, c.Sealed = target.ID, epoch, ct
			set.Connections = append(set.Connections, c)
		}
	}
	return set, nil
}
