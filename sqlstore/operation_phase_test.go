package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/sqlite"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestOperationPhaseBackfill: operations written before migration 0022,
// their phase encoded the old way (an error code meant rolling back, a
// message beginning "Paused: " without one meant paused, version 1 meant
// never claimed), read back after it with the phase and reason those
// encodings meant, and with the messages the API showed unchanged. On
// both databases: each is taken back to before 0022 (its columns dropped,
// its record removed), given the old rows, and opened again, as an upgrade
// would.
func TestOperationPhaseBackfill(t *testing.T) {
	const locked = "environment e3 is locked: the customer-managed key of enterprise policy p is not accessible"
	type row struct {
		id, state, code, msg string
		version              int64
		phase                keyhold.OperationPhase
		reason               string
	}
	rows := []row{
		{"queued", "Running", "", "", 1, keyhold.OperationQueued, ""},
		{"claimed", "Running", "", "", 5, keyhold.OperationInProgress, ""},
		{"paused", "Running", "", "Paused: " + locked, 4, keyhold.OperationPaused, locked},
		{"rolling-back", "Running", keyhold.CodeForbidden, "Paused: not a pause, a failure's message", 6, keyhold.OperationRollingBack, "Paused: not a pause, a failure's message"},
		{"lower-case", "Running", "", "paused: not the prefix", 3, keyhold.OperationInProgress, ""},
		{"failed", "Failed", keyhold.CodeForbidden, "no access", 7, "", ""},
		{"succeeded", "Succeeded", "", "", 1, "", ""},
	}
	backends := []struct {
		name string
		open func(t *testing.T) (old keyhold.Store, reopen func() (keyhold.Store, error))
	}{
		{"sqlite", func(t *testing.T) (keyhold.Store, func() (keyhold.Store, error)) {
			s, path := storetest.OpenSQLiteAt(t)
			return s, func() (keyhold.Store, error) { return sqlite.Open(path) }
		}},
		{"postgres", func(t *testing.T) (keyhold.Store, func() (keyhold.Store, error)) {
			s, db := storetest.OpenPostgresAt(t)
			return s, func() (keyhold.Store, error) { return postgres.Open(context.Background(), db.DSN) }
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			old, reopen := b.open(t)
			storetest.Exec(t, old, `ALTER TABLE operations DROP COLUMN phase`)
			storetest.Exec(t, old, `ALTER TABLE operations DROP COLUMN phase_reason`)
			if n := storetest.Exec(t, old, `DELETE FROM schema_migrations WHERE version = 22`); n != 1 {
				t.Fatalf("removed %d records of migration 22, want 1", n)
			}
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
			for i, r := range rows {
				var finished int64
				if r.state != "Running" {
					finished = now
				}
				storetest.Exec(t, old, `INSERT INTO operations (id, tenant_id, kind, target, state, step, input, progress, done, total,
					error_code, error_msg, attempts, created_by, created_at, updated_at, finished_at, lease_owner, lease_until, version)
					VALUES (?, 't1', 'link', ?, ?, 'rekey', ?, ?, 0, 0, ?, ?, 0, 'u1', ?, ?, ?, '', ?, ?)`,
					r.id, "e-"+r.id, r.state, []byte{}, []byte{}, r.code, r.msg, now+int64(i), now, finished, int64(0), r.version)
			}
			s, err := reopen()
			if err != nil {
				t.Fatalf("opening the old database: %v", err)
			}
			defer s.Close()
			err = s.View(context.Background(), func(tx keyhold.Tx) error {
				for _, r := range rows {
					op, err := tx.Operation(context.Background(), r.id)
					if err != nil {
						return err
					}
					if op.Phase != r.phase || op.PhaseReason != r.reason {
						t.Errorf("%s: phase %q, reason %q; want %q, %q", r.id, op.Phase, op.PhaseReason, r.phase, r.reason)
					}
					if string(op.State) != r.state || op.ErrorCode != r.code || op.ErrorMsg != r.msg || op.Version != r.version {
						t.Errorf("%s: %s %q %q version %d; want it unchanged: %s %q %q version %d",
							r.id, op.State, op.ErrorCode, op.ErrorMsg, op.Version, r.state, r.code, r.msg, r.version)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
