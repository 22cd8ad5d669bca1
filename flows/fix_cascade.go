package flows

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/placement"
)

// freeParents moves, after a save took a flow off the platform partition
// (fix.go), every other flow of the environment that is on the partition
// and no longer in one of spec 004's categories: the parents (at any
// depth) kept only because they called it. It classifies all the
// environment's flows again, once: the classification is transitive, so
// a grandparent freed with its parent moves in the same pass. Each flow
// moves with its callback key in one compare-and-set write of its own;
// one that changed meanwhile, or any failure (a crash too; failures other
// than a conflict are logged), leaves it where it is, to its own next save or the next fix, which classify
// again. The save that triggered it has committed already, so nothing
// here undoes or fails it; it answers how many flows moved.
func (s *Service) freeParents(ctx context.Context, envID string) int {
	var env *keyhold.Environment
	var recs []*keyhold.FlowRecord
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if env, err = tx.Environment(ctx, envID); err != nil {
			return err
		}
		recs, err = tx.ListFlows(ctx, envID)
		return err
	}); err != nil {
		s.log.WarnContext(ctx, "flows: the parents of a fixed flow were not moved; they move at their next save", "environment", envID, "err", err)
		return 0
	}
	if env.PolicyID == "" {
		return 0
	}
	defs := make(map[string]*flowDef, len(recs))
	shapes := make([]placement.FlowShape, 0, len(recs))
	for _, r := range recs {
		fd, err := s.openFlow(ctx, r)
		if err != nil {
			s.log.WarnContext(ctx, "flows: the parents of a fixed flow were not moved; they move at their next save", "environment", envID, "flow", r.ID, "err", err)
			return 0
		}
		defs[r.ID] = fd
		shapes = append(shapes, placement.Of(r, fd.def))
	}
	stay := placement.Classify(shapes)
	moved := 0
	for _, r := range recs {
		if r.Epoch != keyhold.PlatformEpoch || stay[r.ID] != nil {
			continue
		}
		switch err := s.moveOffPlatform(ctx, defs[r.ID]); {
		case err == nil:
			moved++
		case keyhold.ErrorCode(err) != keyhold.CodeConflict: // a conflict: it changed, and its own save classifies it
			s.log.WarnContext(ctx, "flows: a parent of a fixed flow was not moved; it moves at its next save", "environment", envID, "flow", r.ID, "err", err)
		}
	}
	return moved
}

// moveOffPlatform seals a flow on the platform partition, as read in fd,
// and its callback key under the environment's current epoch at their
// next versions, and writes both in one transaction; a flow changed since
// fd was read is CodeConflict and stays.
func (s *Service) moveOffPlatform(ctx context.Context, fd *flowDef) error {
	rec := *fd.rec
	pt, err := s.openAt(ctx, rec.EnvID, keyhold.StoreFlows, flowItem(rec.ID), rec.Version, rec.Epoch, rec.Sealed)
	if err != nil {
		return err
	}
	defer clear(pt)
	rec.Version++
	if rec.Sealed, rec.Epoch, err = s.sealAt(ctx, rec.EnvID, keyhold.StoreFlows, flowItem(rec.ID), rec.Version, false, pt); err != nil {
		return err
	}
	key, err := s.keyOffPlatform(ctx, rec.EnvID, rec.ID)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx keyhold.Tx) error {
		if err := refuseWhileMigrating(ctx, tx, rec.EnvID); err != nil {
			return err
		}
		if err := tx.PutFlow(ctx, &rec); err != nil {
			return err
		}
		if key != nil {
			return tx.PutFlowKey(ctx, key)
		}
		return nil
	})
}
