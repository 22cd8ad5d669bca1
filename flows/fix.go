package flows

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/placement"
	"github.com/keyhold/keyhold/flows/wdl"
)

// The fixes move flows (issue 16). A flow kept on the platform partition
// at its environment's link stays there only while it is in one of spec
// 004's categories. Saving it re-classifies it against the environment's
// other flows: switched from a v1 Power Apps trigger to v2, or added to a
// solution (or no longer calling a kept child), it leaves the category,
// and the save seals it, with its callback key, under the environment's
// current (customer) epoch. Its runs already on the platform partition
// stay readable there; its next runs are sealed where it now is. The
// parents kept only because of it move in the same save, each in its own
// write (fix_cascade.go).

// staysOnPlatform says whether a flow being saved as rec (with def) that
// is on the platform partition now stays there: its environment is
// linked to a customer key and the flow, as saved, is in a category.
func (s *Service) staysOnPlatform(ctx context.Context, rec *keyhold.FlowRecord, def *wdl.Definition) (bool, error) {
	var env *keyhold.Environment
	var recs []*keyhold.FlowRecord
	if err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		if env, err = tx.Environment(ctx, rec.EnvID); err != nil {
			return err
		}
		recs, err = tx.ListFlows(ctx, rec.EnvID)
		return err
	}); err != nil {
		return false, err
	}
	if env.PolicyID == "" {
		return false, nil // on the platform key anyway: nothing to keep apart
	}
	shapes := []placement.FlowShape{placement.Of(rec, def)}
	for _, r := range recs {
		if r.ID == rec.ID {
			continue
		}
		fd, err := s.openFlow(ctx, r)
		if err != nil {
			return false, err
		}
		shapes = append(shapes, placement.Of(r, fd.def))
	}
	return placement.Classify(shapes)[rec.ID] != nil, nil
}

// keyOffPlatform returns the flow's callback key sealed again under the
// environment's current epoch, at its next version, if it is on the
// platform partition (nil if the flow has none there): the save that
// moves the flow writes it in the same transaction.
func (s *Service) keyOffPlatform(ctx context.Context, envID, flowID string) (*keyhold.FlowKeyRecord, error) {
	var k *keyhold.FlowKeyRecord
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		k, err = tx.FlowKey(ctx, envID, flowID)
		return err
	})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return nil, nil
	}
	if err != nil || k.Epoch != keyhold.PlatformEpoch {
		return nil, err
	}
	pt, err := s.openAt(ctx, envID, keyhold.StoreFlows, keyItem(flowID), k.Version, k.Epoch, k.Sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	nk := *k
	nk.Version = k.Version + 1
	if nk.Sealed, nk.Epoch, err = s.sealAt(ctx, envID, keyhold.StoreFlows, keyItem(flowID), nk.Version, false, pt); err != nil {
		return nil, err
	}
	return &nk, nil
}
