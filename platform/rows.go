package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// maxCASRetries bounds retries of a row write that lost a race with
// another writer of the same row.
const maxCASRetries = 5

func rowTarget(envID, table, rowID string) string {
	return "/environments/" + envID + "/tables/" + table + "/rows/" + rowID
}

// rowItemID is the item id bound into a row's ciphertext: table and row id,
// so a ciphertext moved to another table or row fails to open.
func rowItemID(table, rowID string) string { return table + "/" + rowID }

func validateRow(table, rowID string) error {
	if err := keyhold.ValidateTableName(table); err != nil {
		return err
	}
	return keyhold.ValidateItemName("row id", rowID)
}

// PutRow encrypts data under the environment's current epoch and stores it
// as the row's next version.
func (p *Environments) PutRow(ctx context.Context, envID, table, rowID string, data json.RawMessage) (*keyhold.Row, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateRow(table, rowID); err != nil {
		return nil, err
	}
	if len(data) > keyhold.MaxRowBytes {
		return nil, keyhold.Errorf(keyhold.CodeRequestTooLarge, "the row is %d bytes: a row holds at most %d bytes of JSON; store large content as a file", len(data), keyhold.MaxRowBytes)
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "a row must be a JSON object, like {\"name\":\"value\"}")
	}
	// One transaction checks access (one query, writeData: a restore is
	// refused there too) and writes. The key is sealed with inside it when
	// the key cache holds it, the common case. Otherwise the transaction
	// ends, the key is loaded outside any transaction (an unwrap may reach
	// the customer's vault), and the write runs again: the access check
	// still comes first, so a caller without access never causes an
	// unwrap. If a re-key moves the environment to a new epoch meanwhile,
	// the transaction sees it and takes that epoch's key.
	var sk *crypt.StoreKey
	defer func() { sk.Destroy() }()
	var needEpoch uint32
	needKey := false
	rec := &keyhold.RowRecord{EnvID: envID, Table: table, ID: rowID}
	for attempt := 0; ; attempt++ {
		if needKey {
			sk.Destroy()
			if sk, err = p.storeKey(ctx, envID, needEpoch, keyhold.StoreRows); err != nil {
				return nil, err
			}
			needKey = false
		}
		denied := false
		err = p.updateData(ctx, func(tx keyhold.Tx) error {
			env, err := p.access(ctx, tx, id, envID, writeData)
			if denied = err != nil; denied {
				return err // a refusal (a restore's 409 too) is final, not a lost race
			}
			if sk == nil || sk.Epoch() != env.Epoch {
				k := p.cachedStoreKey(env.ID, env.Epoch, keyhold.StoreRows)
				if k == nil {
					needKey, needEpoch = true, env.Epoch
					return errNeedKey
				}
				sk.Destroy()
				sk = k
			}
			rec.EnvID, rec.Epoch = env.ID, env.Epoch
			rec.Version = 1
			switch old, err := tx.Row(ctx, env.ID, table, rowID); {
			case err == nil:
				rec.Version = old.Version + 1
			case keyhold.ErrorCode(err) != keyhold.CodeRowNotFound:
				return err
			}
			if rec.Ciphertext, err = sk.Seal(rowItemID(table, rowID), rec.Version, data); err != nil {
				return err
			}
			rec.UpdatedAt = p.clock.Now().UTC()
			if err := tx.PutRow(ctx, rec); err != nil {
				return err
			}
			err = auditData(ctx, p.core, tx, id, "row.put", rowTarget(env.ID, table, rowID), env, "")
			if errors.Is(err, errNeedKey) {
				needKey, needEpoch = true, env.Epoch
			}
			return err
		})
		if needKey && attempt < maxCASRetries {
			continue
		}
		if needKey {
			err = keyhold.Errorf(keyhold.CodeServiceUnavailable, "the key of environment %s could not be kept loaded for the write: retry the request", envID)
		}
		if denied || keyhold.ErrorCode(err) != keyhold.CodeConflict || attempt >= maxCASRetries {
			break
		}
	}
	if err != nil {
		p.auditDataTamper(ctx, id, envID, tamperRowWrite, err)
		return nil, err
	}
	return &keyhold.Row{EnvID: rec.EnvID, Table: table, ID: rowID, Data: data, Version: rec.Version, UpdatedAt: rec.UpdatedAt}, nil
}

// updateData runs a write of an environment's data (a row put or delete,
// a file's commit) grouped with the concurrent ones into one durable
// commit when the store offers it (keyhold.GroupCommitter), and in a
// transaction of its own otherwise. Either way fn sees an all-or-nothing
// transaction of its own.
func (p *Environments) updateData(ctx context.Context, fn func(keyhold.Tx) error) error {
	if g, ok := p.store.(keyhold.GroupCommitter); ok {
		return g.UpdateGrouped(ctx, fn)
	}
	return p.store.Update(ctx, fn)
}

// errNeedKey ends a writing transaction that found its store key missing
// from the cache: the caller loads it outside the transaction and runs
// the write again.
var errNeedKey = errors.New("platform: the store key is not cached")

// cachedStoreKey returns the store key of (envID, epoch) if the key cache
// holds its EK, and nil otherwise; it never unwraps, so a writing
// transaction may call it. The caller destroys the key.
func (p *Environments) cachedStoreKey(envID string, epoch uint32, store string) *crypt.StoreKey {
	sk, ok, err := p.cache.StoreKey(cacheID(envID, epoch), envID, epoch, store)
	if !ok || err != nil {
		return nil
	}
	return sk
}

// GetRow reads and decrypts a row.
func (p *Environments) GetRow(ctx context.Context, envID, table, rowID string) (*keyhold.Row, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateRow(table, rowID); err != nil {
		return nil, err
	}
	// With the caller's access cached, the row is the only read: one
	// statement, no transaction (accessCache.pointRow). Otherwise access
	// is checked, and the cache filled, in the transaction that reads it.
	rec, cached, err := p.readAccess.pointRow(ctx, p.store, id, envID, table, rowID, p.clock.Now())
	if !cached {
		err = p.store.View(ctx, func(tx keyhold.Tx) error {
			if _, err := p.access(ctx, tx, id, envID, readData); err != nil {
				return err
			}
			rec, err = tx.Row(ctx, envID, table, rowID)
			return err
		})
	}
	if keyhold.ErrorCode(err) == keyhold.CodeRowNotFound {
		return nil, keyhold.Errorf(keyhold.CodeRowNotFound, "row %q was not found in table %q of environment %s", rowID, table, envID)
	} else if err != nil {
		p.auditDataTamper(ctx, id, envID, tamperRowRead, err)
		return nil, err
	}
	sk, err := p.storeKey(ctx, envID, rec.Epoch, keyhold.StoreRows)
	if err != nil {
		return nil, err
	}
	defer sk.Destroy()
	data, err := sk.Open(rowItemID(table, rowID), rec.Version, rec.Ciphertext)
	if err != nil {
		p.log.ErrorContext(ctx, "row failed to decrypt", "environment", envID, "table", table, "row", rowID, "err", err)
		return nil, keyhold.Errorf(keyhold.CodeInternal, "row %q of table %q failed its integrity check and was not returned: the stored ciphertext was altered; restore it from a backup", rowID, table).WithCause(err)
	}
	return &keyhold.Row{EnvID: envID, Table: table, ID: rowID, Data: data, Version: rec.Version, UpdatedAt: rec.UpdatedAt}, nil
}

// DeleteRow deletes a row.
func (p *Environments) DeleteRow(ctx context.Context, envID, table, rowID string) error {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return err
	}
	if err := validateRow(table, rowID); err != nil {
		return err
	}
	err = p.writeWithAudit(ctx, envID, func(tx keyhold.Tx, need *uint32) error {
		env, err := p.access(ctx, tx, id, envID, writeData)
		if err != nil {
			return err
		}
		if err := tx.DeleteRow(ctx, envID, table, rowID); err != nil {
			return err
		}
		*need = env.Epoch
		return auditData(ctx, p.core, tx, id, "row.delete", rowTarget(envID, table, rowID), env, "")
	})
	if keyhold.ErrorCode(err) == keyhold.CodeRowNotFound || keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return keyhold.Errorf(keyhold.CodeRowNotFound, "row %q was not found in table %q of environment %s", rowID, table, envID)
	}
	p.auditDataTamper(ctx, id, envID, tamperRowDelete, err)
	return err
}
