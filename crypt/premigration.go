package crypt

import (
	"errors"
)

// premigrationPurpose starts the purpose under which a pre-migration
// partition's key is sealed by the platform key (issue 16); lp(envID) and
// lp(partitionID) follow, so a wrapped key moved to another environment
// or partition fails to unwrap. The "v1" and Seal's own version byte
// version the format.
const premigrationPurpose = "keyhold pre-migration partition v1\x00"

func premigrationBinding(envID, partitionID string) (string, error) {
	if envID == "" || partitionID == "" {
		return "", errors.New("crypt: a pre-migration partition needs an environment id and a partition id")
	}
	return string(appendLP(appendLP([]byte(premigrationPurpose), envID), partitionID)), nil
}

// WrapPartitionKey seals k, the fresh random key of the pre-migration
// partition partitionID of envID, under the wrapper's root key (the MMK),
// in Seal's format v1 with the environment and partition bound in the
// additional data.
func (w *AESWrapper) WrapPartitionKey(envID, partitionID string, k *Key) ([]byte, error) {
	purpose, err := premigrationBinding(envID, partitionID)
	if err != nil {
		return nil, err
	}
	return SealKey(w.key, purpose, k)
}

// UnwrapPartitionKey opens what WrapPartitionKey sealed for exactly envID
// and partitionID (ErrDecrypt otherwise).
func (w *AESWrapper) UnwrapPartitionKey(envID, partitionID string, wrapped []byte) (*Key, error) {
	purpose, err := premigrationBinding(envID, partitionID)
	if err != nil {
		return nil, err
	}
	return OpenKey(w.key, purpose, wrapped)
}

// DerivePreMigrationKey derives the item key that seals a pre-migration
// partition's runs from the partition's key: DeriveStoreKey's derivation
// (HKDF binding the environment and store), epoch 0, so the runs keep the
// item format (and its item id and version binding) they had.
func DerivePreMigrationKey(k *Key, envID, store string) (*StoreKey, error) {
	return DeriveStoreKey(k, envID, 0, store)
}
