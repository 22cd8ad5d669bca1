package platform

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/ops"
)

// rekeyFlows moves an environment's flows' items (definitions, callback
// keys, run states, OAuth connections; issue 15) off old epochs to epoch
// to, after its rows and files, before the old wrapped keys are
// destroyed. Each item is sealed again at its next version and written by
// a compare-and-set, in a transaction that pauses a locked environment's
// re-key as the rows' pages do. One that lost a race (an engine saving a
// run's state, which it seals under the current epoch itself) is left,
// and the step runs again for it. Non-OAuth connections stay under the
// platform key's partition (epoch 0), as spec 004 keeps them.
func rekeyFlows(ctx context.Context, p *core, envID string, to uint32) error {
	keys := map[string]*crypt.StoreKey{}
	defer func() {
		for _, k := range keys {
			k.Destroy()
		}
	}()
	key := func(epoch uint32, store string) (*crypt.StoreKey, error) {
		id := cacheID(envID, epoch) + "/" + store
		if k, ok := keys[id]; ok {
			return k, nil
		}
		k, err := p.storeKey(ctx, envID, epoch, store)
		if err == nil {
			keys[id] = k
		}
		return k, err
	}
	// move opens ct (item at version under epoch from) and seals it
	// under to at version+1.
	move := func(store, item string, from uint32, version uint64, ct []byte) ([]byte, error) {
		oldK, err := key(from, store)
		if err != nil {
			return nil, err
		}
		newK, err := key(to, store)
		if err != nil {
			return nil, err
		}
		pt, err := oldK.Open(item, version, ct)
		if err != nil {
			return nil, ops.Permanent(keyhold.Errorf(keyhold.CodeInternal, "%s item %q of environment %s failed its integrity check and can't be re-keyed: delete it, then link the environment again", store, item, envID).WithCause(err))
		}
		defer clear(pt)
		return newK.Seal(item, version+1, pt)
	}
	write := func(fn func(tx keyhold.Tx) error) error {
		return p.store.Update(ctx, func(tx keyhold.Tx) error {
			if err := pauseIfLocked(ctx, tx, envID); err != nil {
				return err
			}
			return fn(tx)
		})
	}
	lost := 0
	settle := func(err error) error {
		if keyhold.ErrorCode(err) == keyhold.CodeConflict {
			lost++
			return nil
		}
		return err
	}

	var flows []*keyhold.FlowRecord
	var conns []*keyhold.ConnectionRecord
	if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if flows, err = tx.ListFlows(ctx, envID); err != nil {
			return err
		}
		conns, err = tx.ListConnections(ctx, envID)
		return err
	}); err != nil {
		return err
	}
	for _, f := range flows {
		if f.Epoch != to {
			ct, err := move(keyhold.StoreFlows, keyhold.FlowItemID(f.ID), f.Epoch, f.Version, f.Sealed)
			if err != nil {
				return err
			}
			c := *f
			c.Epoch, c.Version, c.Sealed = to, f.Version+1, ct
			if err := settle(write(func(tx keyhold.Tx) error { return tx.PutFlow(ctx, &c) })); err != nil {
				return err
			}
		}
		var k *keyhold.FlowKeyRecord
		err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
			k, err = tx.FlowKey(ctx, envID, f.ID)
			return err
		})
		if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			continue
		} else if err != nil {
			return err
		}
		if k.Epoch != to {
			ct, err := move(keyhold.StoreFlows, keyhold.FlowKeyItemID(f.ID), k.Epoch, k.Version, k.Sealed)
			if err != nil {
				return err
			}
			c := *k
			c.Epoch, c.Version, c.Sealed = to, k.Version+1, ct
			if err := settle(write(func(tx keyhold.Tx) error { return tx.PutFlowKey(ctx, &c) })); err != nil {
				return err
			}
		}
	}
	for _, cn := range conns {
		if cn.Epoch == to || cn.Epoch == keyhold.PlatformEpoch {
			continue
		}
		ct, err := move(keyhold.StoreConnections, keyhold.ConnectionItemID(cn.API, cn.Name), cn.Epoch, cn.Version, cn.Sealed)
		if err != nil {
			return err
		}
		c := *cn
		c.Epoch, c.Version, c.Sealed = to, cn.Version+1, ct
		if err := settle(write(func(tx keyhold.Tx) error { return tx.PutConnection(ctx, &c) })); err != nil {
			return err
		}
	}
	for {
		var runs []*keyhold.FlowRunRecord
		if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
			runs, err = tx.FlowRunsOffEpoch(ctx, envID, to, rekeyBatch)
			return err
		}); err != nil {
			return err
		}
		moved := 0
		for _, r := range runs {
			ct, err := move(keyhold.StoreRuns, keyhold.FlowRunItemID(r.FlowID, r.ID), r.Epoch, r.StateVersion, r.Sealed)
			if err != nil {
				return err
			}
			c := *r
			c.Epoch, c.Version, c.StateVersion, c.Sealed = to, r.Version+1, r.StateVersion+1, ct
			err = write(func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, &c) })
			if err == nil {
				moved++
			} else if err := settle(err); err != nil {
				return err
			}
		}
		if moved == 0 || len(runs) < rekeyBatch {
			break
		}
	}
	if lost > 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "%d flows items of environment %s changed while the re-key moved them: the re-key tries them again", lost, envID)
	}
	return nil
}
