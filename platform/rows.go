package platform

import (
	"bytes"
	"context"
	"encoding/json"

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
	// The restore check is the writing transaction's (writeAccess): a
	// read pre-check of it would cost every write a query to refuse early
	// only the rare write that meets a restore.
	env, err := p.viewDataAccess(ctx, id, envID)
	if err != nil {
		return nil, err
	}
	epoch := env.Epoch
	var sk *crypt.StoreKey
	defer func() { sk.Destroy() }()
	rec := &keyhold.RowRecord{EnvID: env.ID, Table: table, ID: rowID}
	for attempt := 0; ; attempt++ {
		// The key is fetched outside the writing transaction (an unwrap may
		// reach the customer's vault); if a re-key moves the environment to a
		// new epoch meanwhile, the transaction sees it and the write is
		// retried under the new epoch's key.
		if sk == nil || sk.Epoch() != epoch {
			sk.Destroy()
			if sk, err = p.storeKey(ctx, env.ID, epoch, keyhold.StoreRows); err != nil {
				return nil, err
			}
		}
		rec.Epoch = epoch
		denied := false
		err = p.store.Update(ctx, func(tx keyhold.Tx) error {
			// Re-check in the writing transaction: the environment may have
			// been disabled or re-keyed since the key was fetched.
			cur, err := writeAccess(ctx, tx, id, envID)
			if denied = err != nil; denied {
				return err // a refusal (a restore's 409 too) is final, not a lost race
			}
			if cur.Epoch != rec.Epoch {
				epoch = cur.Epoch
				return keyhold.Errorf(keyhold.CodeConflict, "environment %s moved to key epoch %d during the write: retry", envID, cur.Epoch)
			}
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
			return p.audit(ctx, tx, id, "row.put", rowTarget(env.ID, table, rowID), env.ID, "")
		})
		if denied || keyhold.ErrorCode(err) != keyhold.CodeConflict || attempt >= maxCASRetries {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return &keyhold.Row{EnvID: env.ID, Table: table, ID: rowID, Data: data, Version: rec.Version, UpdatedAt: rec.UpdatedAt}, nil
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
	var rec *keyhold.RowRecord
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		if _, err := dataAccess(ctx, tx, id, envID); err != nil {
			return err
		}
		rec, err = tx.Row(ctx, envID, table, rowID)
		return err
	})
	if keyhold.ErrorCode(err) == keyhold.CodeRowNotFound {
		return nil, keyhold.Errorf(keyhold.CodeRowNotFound, "row %q was not found in table %q of environment %s", rowID, table, envID)
	} else if err != nil {
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
	err = p.store.Update(ctx, func(tx keyhold.Tx) error {
		if _, err := writeAccess(ctx, tx, id, envID); err != nil {
			return err
		}
		if err := tx.DeleteRow(ctx, envID, table, rowID); err != nil {
			return err
		}
		return p.audit(ctx, tx, id, "row.delete", rowTarget(envID, table, rowID), envID, "")
	})
	if keyhold.ErrorCode(err) == keyhold.CodeRowNotFound || keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return keyhold.Errorf(keyhold.CodeRowNotFound, "row %q was not found in table %q of environment %s", rowID, table, envID)
	}
	return err
}

// viewDataAccess runs dataAccess in its own read transaction.
func (p *Environments) viewDataAccess(ctx context.Context, id *keyhold.Identity, envID string) (*keyhold.Environment, error) {
	var env *keyhold.Environment
	err := p.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		env, err = dataAccess(ctx, tx, id, envID)
		return err
	})
	return env, err
}
