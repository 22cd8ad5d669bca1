package platform

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Sealer seals flows' items (issue 15) under an environment's key for the
// flows package, which never imports platform nor holds a key: it is
// keyhold.EnvironmentSealer. Only the stores flows own may be sealed
// through it, so it can't be used to forge a row or a file.
type Sealer struct {
	*core
}

var _ keyhold.EnvironmentSealer = (*Sealer)(nil)

// sealerStores are the stores a Sealer serves.
var sealerStores = map[string]bool{
	keyhold.StoreFlows:       true,
	keyhold.StoreRuns:        true,
	keyhold.StoreConnections: true,
}

func checkSealerStore(store string) error {
	if !sealerStores[store] {
		return fmt.Errorf("platform: the sealer serves the stores %q, %q and %q, not %q", keyhold.StoreFlows, keyhold.StoreRuns, keyhold.StoreConnections, store)
	}
	return nil
}

// serving loads an environment that may run flows, in its own read
// transaction (servingIn's rules).
func (s *Sealer) serving(ctx context.Context, envID string) (*keyhold.Environment, error) {
	var env *keyhold.Environment
	err := s.store.View(ctx, func(tx keyhold.Tx) (err error) {
		env, err = servingIn(ctx, tx, s.rec, envID)
		return err
	})
	return env, err
}

// servingIn loads, in tx, an environment that may run flows: Enabled, not
// Locked (lockedError, with the lock's reason) and not in a locked BYOK
// tenant.
func servingIn(ctx context.Context, tx keyhold.Tx, rec *crypt.RecordKey, envID string) (*keyhold.Environment, error) {
	env, err := tx.Environment(ctx, envID)
	if err != nil {
		return nil, err
	}
	if env.State == keyhold.StateLocked {
		return nil, lockedError(ctx, tx, env)
	}
	if err := byokServing(ctx, tx, rec, env); err != nil {
		return nil, err
	}
	if env.State != keyhold.StateEnabled {
		return nil, keyhold.Errorf(keyhold.CodeEnvironmentDisabled, "environment %s is %s and runs no flows: an administrator must enable it first", env.ID, env.State)
	}
	return env, nil
}

// ServingIn refuses with Seal's rules in the caller's transaction tx and
// returns the environment's current epoch: the flows engine checks it in
// the transaction that writes a run's state, so the check costs no
// transaction of its own and a lock can't commit between it and the
// write (see keyhold.EnvironmentSealer).
//
// It reads only the environment's gate (keyhold.EnvironmentGate), not
// the whole row: it runs at every save of a run. A refusal, and a BYOK
// environment (whose tenant's lock must be read too), go through
// servingIn.
func (s *Sealer) ServingIn(ctx context.Context, tx keyhold.Tx, envID string) (uint32, error) {
	g, err := tx.EnvironmentGate(ctx, envID)
	if err != nil {
		return 0, err
	}
	if g.State != keyhold.StateEnabled || g.KeyManagedBy == keyhold.KeyManagedByCustomerViaMicrosoft {
		env, err := servingIn(ctx, tx, s.rec, envID)
		if err != nil {
			return 0, err
		}
		return env.Epoch, nil
	}
	return g.Epoch, nil
}

// SealUnder seals an item under epoch (keyhold.PlatformEpoch: the platform
// key's partition) without reading the environment: the caller checks
// ServingIn, and the epoch, in the transaction that writes the result.
// The environment key still comes from the custody core, which refuses
// when the key can't be unwrapped.
func (s *Sealer) SealUnder(ctx context.Context, envID, store, itemID string, version uint64, epoch uint32, plaintext []byte) ([]byte, error) {
	if err := checkSealerStore(store); err != nil {
		return nil, err
	}
	if epoch == keyhold.PlatformEpoch {
		pk, err := s.mmk.DerivePartitionKey(envID, store)
		if err != nil {
			return nil, err
		}
		defer pk.Destroy()
		return pk.Seal(itemID, version, plaintext)
	}
	sk, err := s.storeKey(ctx, envID, epoch, store)
	if err != nil {
		return nil, err
	}
	defer sk.Destroy()
	return sk.Seal(itemID, version, plaintext)
}

// Serving refuses with Seal's rules (locked, disabled, a locked BYOK
// tenant) and otherwise says nothing: the check of the flows kept on the
// platform partition, whose SealPlatform and OpenPlatform don't check the
// state (see keyhold.EnvironmentSealer).
func (s *Sealer) Serving(ctx context.Context, envID string) error {
	_, err := s.serving(ctx, envID)
	return err
}

// Seal seals an item under the environment's current epoch.
func (s *Sealer) Seal(ctx context.Context, envID, store, itemID string, version uint64, plaintext []byte) ([]byte, uint32, error) {
	if err := checkSealerStore(store); err != nil {
		return nil, 0, err
	}
	env, err := s.serving(ctx, envID)
	if err != nil {
		return nil, 0, err
	}
	sk, err := s.storeKey(ctx, envID, env.Epoch, store)
	if err != nil {
		return nil, 0, err
	}
	defer sk.Destroy()
	ct, err := sk.Seal(itemID, version, plaintext)
	return ct, env.Epoch, err
}

// Open opens an item sealed under epoch, which may be older than the
// environment's current one while its wrapped key is kept.
func (s *Sealer) Open(ctx context.Context, envID, store, itemID string, version uint64, epoch uint32, ciphertext []byte) ([]byte, error) {
	if err := checkSealerStore(store); err != nil {
		return nil, err
	}
	if epoch == keyhold.PlatformEpoch {
		return nil, fmt.Errorf("platform: item %q of store %q is sealed under the platform key's partition: open it with OpenPlatform", itemID, store)
	}
	if _, err := s.serving(ctx, envID); err != nil {
		return nil, err
	}
	return s.openEpoch(ctx, envID, store, itemID, version, epoch, ciphertext)
}

// OpenUnder opens an item sealed under epoch (keyhold.PlatformEpoch: the
// platform key's partition) without reading the environment: the caller
// checked ServingIn in a transaction before (see
// keyhold.EnvironmentSealer). As with SealUnder, the environment key
// still comes from the custody core.
func (s *Sealer) OpenUnder(ctx context.Context, envID, store, itemID string, version uint64, epoch uint32, ciphertext []byte) ([]byte, error) {
	if err := checkSealerStore(store); err != nil {
		return nil, err
	}
	if epoch == keyhold.PlatformEpoch {
		return s.openPartition(envID, store, itemID, version, ciphertext)
	}
	return s.openEpoch(ctx, envID, store, itemID, version, epoch, ciphertext)
}

// openEpoch opens an item under an epoch's store key, checking nothing
// else.
func (s *Sealer) openEpoch(ctx context.Context, envID, store, itemID string, version uint64, epoch uint32, ciphertext []byte) ([]byte, error) {
	sk, err := s.storeKey(ctx, envID, epoch, store)
	if err != nil {
		return nil, err
	}
	defer sk.Destroy()
	pt, err := sk.Open(itemID, version, ciphertext)
	if err != nil {
		s.log.ErrorContext(ctx, "flows item failed to decrypt", "environment", envID, "store", store, "item", itemID, "err", err)
		return nil, keyhold.Errorf(keyhold.CodeInternal, "item %q of store %q failed its integrity check and was not returned: the stored ciphertext was altered; restore it from a backup", itemID, store).WithCause(err)
	}
	return pt, nil
}

// SealPlatform seals an item under the MMK's partition of (envID, store).
// The environment must exist; its state does not matter (see
// keyhold.EnvironmentSealer).
func (s *Sealer) SealPlatform(ctx context.Context, envID, store, itemID string, version uint64, plaintext []byte) ([]byte, error) {
	if err := s.checkPartition(ctx, envID, store); err != nil {
		return nil, err
	}
	pk, err := s.mmk.DerivePartitionKey(envID, store)
	if err != nil {
		return nil, err
	}
	defer pk.Destroy()
	return pk.Seal(itemID, version, plaintext)
}

// OpenPlatform opens an item sealed by SealPlatform.
func (s *Sealer) OpenPlatform(ctx context.Context, envID, store, itemID string, version uint64, ciphertext []byte) ([]byte, error) {
	if err := s.checkPartition(ctx, envID, store); err != nil {
		return nil, err
	}
	return s.openPartition(envID, store, itemID, version, ciphertext)
}

// openPartition opens an item under the MMK's partition of (envID, store),
// checking nothing else.
func (s *Sealer) openPartition(envID, store, itemID string, version uint64, ciphertext []byte) ([]byte, error) {
	pk, err := s.mmk.DerivePartitionKey(envID, store)
	if err != nil {
		return nil, err
	}
	defer pk.Destroy()
	pt, err := pk.Open(itemID, version, ciphertext)
	if err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInternal, "item %q of store %q failed its integrity check and was not returned: the stored ciphertext was altered", itemID, store).WithCause(err)
	}
	return pt, nil
}

func (s *Sealer) checkPartition(ctx context.Context, envID, store string) error {
	if err := checkSealerStore(store); err != nil {
		return err
	}
	return s.store.View(ctx, func(tx keyhold.Tx) error {
		_, err := tx.Environment(ctx, envID)
		return err
	})
}
