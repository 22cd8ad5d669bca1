package platform

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// rowScanBatch is how many rows ListRows reads from the store at a time.
const rowScanBatch = 200

// ListRows returns a page of a table's rows in id order, decrypted, those
// that q.Filter matches. The filter runs on the plaintext (rows are
// sealed: the store can't filter them), so a page reads at most
// keyhold.MaxRowScan rows and then answers what it found with a skip
// token, instead of reading a whole table for a filter that matches
// little. The access check is GetRow's.
func (p *Environments) ListRows(ctx context.Context, envID, table string, q keyhold.RowQuery) (*keyhold.RowPage, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := keyhold.ValidateTableName(table); err != nil {
		return nil, err
	}
	top := q.Top
	if top == 0 {
		top = keyhold.DefaultRowPage
	}
	if top < 1 || top > keyhold.MaxRowPage {
		return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "$top %d is not valid: ask for 1 to %d rows, and follow the skip token for more", q.Top, keyhold.MaxRowPage)
	}
	if q.SkipToken != "" {
		if err := keyhold.ValidateItemName("skip token", q.SkipToken); err != nil {
			return nil, keyhold.Errorf(keyhold.CodeInvalidRequestContent, "the skip token %q is not one a page gave: start again without it", keyhold.Clip(q.SkipToken))
		}
	}
	match, err := keyhold.ParseRowFilter(q.Filter)
	if err != nil {
		return nil, err
	}
	keys := map[uint32]*crypt.StoreKey{}
	defer func() {
		for _, k := range keys {
			k.Destroy()
		}
	}()
	page := &keyhold.RowPage{Rows: []*keyhold.Row{}}
	after, scanned := q.SkipToken, 0
	for {
		var recs []*keyhold.RowRecord
		err := p.store.View(ctx, func(tx keyhold.Tx) error {
			if _, err := p.access(ctx, tx, id, envID, readData); err != nil {
				return err
			}
			recs, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: envID, Table: table, AfterTable: table, AfterID: after, Limit: rowScanBatch})
			return err
		})
		if err != nil {
			p.auditDataTamper(ctx, id, envID, tamperRowList, err)
			return nil, err
		}
		for i, rec := range recs {
			scanned++
			sk := keys[rec.Epoch]
			if sk == nil {
				if sk, err = p.storeKey(ctx, envID, rec.Epoch, keyhold.StoreRows); err != nil {
					return nil, err
				}
				keys[rec.Epoch] = sk
			}
			data, err := sk.Open(rowItemID(table, rec.ID), rec.Version, rec.Ciphertext)
			if err != nil {
				p.log.ErrorContext(ctx, "row failed to decrypt", "environment", envID, "table", table, "row", rec.ID, "err", err)
				return nil, keyhold.Errorf(keyhold.CodeInternal, "row %q of table %q failed its integrity check and was not returned: the stored ciphertext was altered; restore it from a backup", rec.ID, table).WithCause(err)
			}
			if match.Matches(data) {
				page.Rows = append(page.Rows, &keyhold.Row{EnvID: envID, Table: table, ID: rec.ID, Data: data, Version: rec.Version, UpdatedAt: rec.UpdatedAt})
			}
			more := i < len(recs)-1 || len(recs) == rowScanBatch
			if len(page.Rows) == top || scanned >= keyhold.MaxRowScan {
				if more {
					page.SkipToken = rec.ID
				}
				return page, nil
			}
		}
		if len(recs) < rowScanBatch {
			return page, nil
		}
		after = recs[len(recs)-1].ID
	}
}
