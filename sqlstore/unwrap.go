package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
)

var _ keyhold.UnwrapTx = (*tx)(nil)

// RecordUnwrap stores at as principalID's last successful unwrap with a
// key of vault, in one statement that keeps a later stored time: replicas
// that record out of order never move it back.
func (t *tx) RecordUnwrap(ctx context.Context, principalID, vault string, at time.Time) error {
	if err := checkTimes(at); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `INSERT INTO policy_unwraps (principal_id, vault, unwrapped_at) VALUES (?, ?, ?)
		ON CONFLICT (principal_id, vault) DO UPDATE SET unwrapped_at = excluded.unwrapped_at
		WHERE policy_unwraps.unwrapped_at < excluded.unwrapped_at`, principalID, vault, nanos(at)); err != nil {
		return t.fail("record the last unwrap", err)
	}
	return nil
}

// LastUnwrap returns principalID's last successful unwrap with a key of
// vault, or the zero time.
func (t *tx) LastUnwrap(ctx context.Context, principalID, vault string) (time.Time, error) {
	var at time.Time
	err := t.queryRow(ctx, `SELECT unwrapped_at FROM policy_unwraps WHERE principal_id = ? AND vault = ?`, principalID, vault).Scan(timeCol{&at})
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, t.fail("read the last unwrap", err)
	}
	return at, nil
}
