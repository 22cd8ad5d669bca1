package platform

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/flows/placement"
	"github.com/keyhold/keyhold/ops"
)

// The flows migration's fault points (keyhold_faults builds), each after
// an item's write has committed: the crash tests kill the server at the
// first one passed, mid-step.
const (
	faultFlowMoved   = "flows:flow-moved"   // a definition moved
	faultKeyMoved    = "flows:key-moved"    // a callback key moved
	faultPartition   = "flows:partition"    // the link's pre-migration key stored
	faultPreMigrated = "flows:pre-migrated" // a finished run moved to the partition
	faultRunMoved    = "flows:run-moved"    // a run moved to another epoch
)

// flowPlacement says where a re-key puts the flows' items (issue 16).
type flowPlacement int

const (
	// flowsFollow: every item to the new epoch (an environment on the
	// platform key: nothing needs the platform partition any more).
	flowsFollow flowPlacement = iota
	// flowsKeep: items on the platform partition (epoch 0) stay there,
	// the rest move to the new epoch (a swap or a re-key between
	// customer keys: the reason they stayed still holds).
	flowsKeep
	// flowsPlace: a link from the platform key. The flows in spec 004's
	// categories (placement.Classify) go to the platform partition, with
	// their callback keys and runs; the others to the new epoch.
	flowsPlace
)

// flowPlacementOf is where op's re-key puts the flows of env: a link from
// the platform key (or a legacy BYOK key) places them, and so does the
// re-key that finishes such a link after its own re-key failed
// (PlaceFlows); a swap or re-key of a linked environment keeps them; an
// environment on the platform key has them all follow.
func flowPlacementOf(op *keyhold.Operation, env *keyhold.Environment) flowPlacement {
	in, err := opInput(op)
	switch {
	case err != nil:
	case op.Kind == keyhold.OpLink && in.FromPolicyID == "", op.Kind == keyhold.OpRekey && in.PlaceFlows:
		return flowsPlace
	}
	if env.PolicyID != "" {
		return flowsKeep
	}
	return flowsFollow
}

// rekeyFlows moves an environment's flows' items (definitions, callback
// keys, run states, OAuth connections; issue 15) to where they belong at
// epoch to (see flowPlacement), after its rows and files, before the old
// wrapped keys are destroyed. Each item is sealed again at its next
// version and written by a compare-and-set, in a transaction that pauses
// a locked environment's re-key as the rows' pages do. One that lost a
// race (an engine saving a run's state, which it seals where its flow is
// itself) is left, and the step runs again for it. Non-OAuth connections
// stay under the platform key's partition (epoch 0), as spec 004 keeps
// them.
//
// Placing flows at a link needs each flow's trigger and child flows,
// which are inside the sealed definition: the re-key opens every
// definition anyway, so it reads them there and classifies with the flows
// service's own code (flows/placement), rather than asking the flows
// service, which holds no key and may not run in this process. A step run
// again after a crash classifies the same definitions the same way.
//
// At a link (flowsPlace, partition naming the link operation), the run
// history of the flows that move is not carried forward: their finished
// runs go to the link's pre-migration partition (premigration.go), each
// in one transaction that deletes the run and stores it there, so a
// crash leaves every run in exactly one place. Their Waiting and Running
// runs move to the new epoch and keep running.
func rekeyFlows(ctx context.Context, p *core, envID string, to uint32, mode flowPlacement, partition string) error {
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
		var k *crypt.StoreKey
		var err error
		if epoch == keyhold.PlatformEpoch {
			k, err = p.mmk.DerivePartitionKey(envID, store)
		} else {
			k, err = p.storeKey(ctx, envID, epoch, store)
		}
		if err == nil {
			keys[id] = k
		}
		return k, err
	}
	open := func(store, item string, from uint32, version uint64, ct []byte) ([]byte, error) {
		k, err := key(from, store)
		if err != nil {
			return nil, err
		}
		pt, err := k.Open(item, version, ct)
		if err != nil {
			return nil, ops.Permanent(keyhold.Errorf(keyhold.CodeInternal, "%s item %q of environment %s failed its integrity check and can't be re-keyed: delete it, then link the environment again", store, item, envID).WithCause(err))
		}
		return pt, nil
	}
	// move opens ct (item at version under epoch from) and seals it
	// under dst at version+1.
	move := func(store, item string, from, dst uint32, version uint64, ct []byte) ([]byte, error) {
		pt, err := open(store, item, from, version, ct)
		if err != nil {
			return nil, err
		}
		defer clear(pt)
		k, err := key(dst, store)
		if err != nil {
			return nil, err
		}
		return k.Seal(item, version+1, pt)
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
	// dest is where each flow goes.
	dest := map[string]uint32{}
	var stay map[string]*keyhold.PlatformFlow
	if mode == flowsPlace {
		shapes := make([]placement.FlowShape, 0, len(flows))
		for _, f := range flows {
			pt, err := open(keyhold.StoreFlows, keyhold.FlowItemID(f.ID), f.Epoch, f.Version, f.Sealed)
			if err != nil {
				return err
			}
			sh, err := placement.Shape(f, pt)
			clear(pt)
			if err != nil {
				return ops.Permanent(keyhold.Errorf(keyhold.CodeInternal, "flow %s of environment %s can't be placed: its definition no longer parses (%s); fix or delete it, then link again", f.ID, envID, keyhold.ErrorMessage(err)))
			}
			shapes = append(shapes, sh)
		}
		stay = placement.Classify(shapes)
	}
	for _, f := range flows {
		switch {
		case mode == flowsPlace && stay[f.ID] != nil, mode == flowsKeep && f.Epoch == keyhold.PlatformEpoch:
			dest[f.ID] = keyhold.PlatformEpoch
		default:
			dest[f.ID] = to
		}
	}
	for _, f := range flows {
		dst := dest[f.ID]
		if f.Epoch != dst {
			ct, err := move(keyhold.StoreFlows, keyhold.FlowItemID(f.ID), f.Epoch, dst, f.Version, f.Sealed)
			if err != nil {
				return err
			}
			c := *f
			c.Epoch, c.Version, c.Sealed = dst, f.Version+1, ct
			if err := settle(write(func(tx keyhold.Tx) error { return tx.PutFlow(ctx, &c) })); err != nil {
				return err
			}
			flowsFault(faultFlowMoved)
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
		if k.Epoch != dst {
			ct, err := move(keyhold.StoreFlows, keyhold.FlowKeyItemID(f.ID), k.Epoch, dst, k.Version, k.Sealed)
			if err != nil {
				return err
			}
			c := *k
			c.Epoch, c.Version, c.Sealed = dst, k.Version+1, ct
			if err := settle(write(func(tx keyhold.Tx) error { return tx.PutFlowKey(ctx, &c) })); err != nil {
				return err
			}
			flowsFault(faultKeyMoved)
		}
	}
	for _, cn := range conns {
		if cn.Epoch == to || cn.Epoch == keyhold.PlatformEpoch {
			continue
		}
		ct, err := move(keyhold.StoreConnections, keyhold.ConnectionItemID(cn.API, cn.Name), cn.Epoch, to, cn.Version, cn.Sealed)
		if err != nil {
			return err
		}
		c := *cn
		c.Epoch, c.Version, c.Sealed = to, cn.Version+1, ct
		if err := settle(write(func(tx keyhold.Tx) error { return tx.PutConnection(ctx, &c) })); err != nil {
			return err
		}
	}
	var pre *crypt.StoreKey // the link's pre-migration partition, once needed
	defer func() { pre.Destroy() }()
	for _, f := range flows {
		dst := dest[f.ID]
		for {
			var runs []*keyhold.FlowRunRecord
			if err := p.store.View(ctx, func(tx keyhold.Tx) (err error) {
				runs, err = tx.FlowRunsOfFlowOffEpoch(ctx, envID, f.ID, dst, rekeyBatch)
				return err
			}); err != nil {
				return err
			}
			moved := 0
			for _, r := range runs {
				if mode == flowsPlace && dst == to && r.Terminal() {
					if pre == nil {
						k, err := premigrationKey(ctx, p, envID, partition)
						if err != nil {
							return err
						}
						pre = k
						flowsFault(faultPartition)
					}
					item := keyhold.FlowRunItemID(r.FlowID, r.ID)
					pt, err := open(keyhold.StoreRuns, item, r.Epoch, r.StateVersion, r.Sealed)
					if err != nil {
						return err
					}
					ct, err := pre.Seal(item, r.StateVersion, pt)
					clear(pt)
					if err != nil {
						return err
					}
					pr := &keyhold.PreMigrationRunRecord{EnvID: envID, PartitionID: partition, FlowID: r.FlowID, ID: r.ID, Status: r.Status,
						TriggerName: r.TriggerName, StartedAt: r.StartedAt, EndedAt: r.EndedAt, StateVersion: r.StateVersion, Sealed: ct}
					err = write(func(tx keyhold.Tx) error { return tx.MoveRunToPreMigration(ctx, pr, r.Version) })
					if err == nil {
						moved++
						flowsFault(faultPreMigrated)
					} else if err := settle(err); err != nil {
						return err
					}
					continue
				}
				ct, err := move(keyhold.StoreRuns, keyhold.FlowRunItemID(r.FlowID, r.ID), r.Epoch, dst, r.StateVersion, r.Sealed)
				if err != nil {
					return err
				}
				c := *r
				c.Epoch, c.Version, c.StateVersion, c.Sealed = dst, r.Version+1, r.StateVersion+1, ct
				err = write(func(tx keyhold.Tx) error { return tx.PutFlowRun(ctx, &c) })
				if err == nil {
					moved++
					flowsFault(faultRunMoved)
				} else if err := settle(err); err != nil {
					return err
				}
			}
			if moved == 0 || len(runs) < rekeyBatch {
				break
			}
		}
	}
	if lost > 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "%d flows items of environment %s changed while the re-key moved them: the re-key tries them again", lost, envID)
	}
	return nil
}

// stepUnlinkFlows is the unlink's step after its rewrap (the unlink has no
// re-key): the flows kept on the platform partition at the link, with
// their callback keys and runs, move back under the environment's current
// epoch, now wrapped by the platform key, since the reason they stayed no
// longer applies. The environment is still Disabled, so no engine races
// it; a step run again after a crash finds what moved already moved.
func stepUnlinkFlows(c *CMK) func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
	return func(ctx context.Context, op *keyhold.Operation) (ops.StepResult, error) {
		var env *keyhold.Environment
		if err := c.store.View(ctx, func(tx keyhold.Tx) (err error) {
			env, err = tx.Environment(ctx, op.Target)
			return err
		}); err != nil {
			return ops.StepResult{}, err
		}
		if env.LastOperationID != op.ID {
			return ops.StepResult{}, errNotOurs(env, op)
		}
		return ops.StepResult{}, storeConflict(rekeyFlows(ctx, c.core, env.ID, env.Epoch, flowsFollow, ""))
	}
}

// failedLinkPlaces says whether the re-key that LinkPolicy starts again for
// env, whose last encryption operation failed, must place its flows: that
// operation was a link from the platform key (or a re-key finishing one),
// which may have failed before the flows were placed. Placing again is
// safe when they were: placement is a pure function of the definitions.
func failedLinkPlaces(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment) (bool, error) {
	if env.LastOperationID == "" {
		return false, nil
	}
	last, err := tx.Operation(ctx, env.LastOperationID)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return false, nil
	} else if err != nil {
		return false, err
	}
	in, err := opInput(last)
	if err != nil {
		return false, nil
	}
	return (last.Kind == keyhold.OpLink && in.FromPolicyID == "") || (last.Kind == keyhold.OpRekey && in.PlaceFlows), nil
}
