package flows

import (
	"context"

	"github.com/keyhold/keyhold"
)

// Where a flow's items are sealed (issue 16). A flow kept on the platform
// key's partition at its environment's link to a customer key (spec 004's
// categories, flows/placement) has its definition, callback key and runs
// sealed there (epoch keyhold.PlatformEpoch); every other flow's under the
// environment's current epoch. SealPlatform and OpenPlatform don't check
// the environment's state, so these two ask Serving first: a locked or
// disabled environment stops its platform-partition flows as it stops the
// others. A run's trigger, insert, claim and saves check the state in a
// transaction they have anyway instead (checked.go), and seal or open
// with SealUnder and OpenUnder.

// sealAt seals one of a flow's items: on the platform partition if
// onPlatform, else under the current epoch; it says which epoch.
func (s *Service) sealAt(ctx context.Context, envID, store, item string, version uint64, onPlatform bool, pt []byte) ([]byte, uint32, error) {
	if !onPlatform {
		return s.seal.Seal(ctx, envID, store, item, version, pt)
	}
	if err := s.seal.Serving(ctx, envID); err != nil {
		return nil, 0, err
	}
	ct, err := s.seal.SealPlatform(ctx, envID, store, item, version, pt)
	return ct, keyhold.PlatformEpoch, err
}

// openAt opens one of a flow's items sealed under epoch.
func (s *Service) openAt(ctx context.Context, envID, store, item string, version uint64, epoch uint32, ct []byte) ([]byte, error) {
	if epoch != keyhold.PlatformEpoch {
		return s.seal.Open(ctx, envID, store, item, version, epoch, ct)
	}
	if err := s.seal.Serving(ctx, envID); err != nil {
		return nil, err
	}
	return s.seal.OpenPlatform(ctx, envID, store, item, version, ct)
}
