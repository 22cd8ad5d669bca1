package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
)

// Page sizes of ListOperations.
const (
	DefaultOperationLimit = 100
	MaxOperationLimit     = 1000
)

const operationCols = `id, tenant_id, kind, target, state, step, input, progress, done, total, error_code, error_msg,
	phase, phase_reason, attempts, created_by, created_at, updated_at, finished_at, lease_owner, lease_until, version`

func scanOperation(sc scanner) (*keyhold.Operation, error) {
	op := &keyhold.Operation{}
	var state, phase string
	var input, progress []byte
	err := sc.Scan(&op.ID, &op.TenantID, &op.Kind, &op.Target, &state, &op.Step, &input, &progress, &op.Done, &op.Total,
		&op.ErrorCode, &op.ErrorMsg, &phase, &op.PhaseReason, &op.Attempts, &op.CreatedBy, timeCol{&op.CreatedAt}, timeCol{&op.UpdatedAt},
		timeCol{&op.FinishedAt}, &op.LeaseOwner, timeCol{&op.LeaseUntil}, &op.Version)
	op.State, op.Phase = keyhold.OperationState(state), keyhold.OperationPhase(phase)
	// Stored as empty bytes when absent, given back as nil so that the
	// JSON encoding omits them.
	if len(input) > 0 {
		op.Input = json.RawMessage(input)
	}
	if len(progress) > 0 {
		op.Progress = json.RawMessage(progress)
	}
	return op, err
}

func opNotFound(id string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeNotFound, "operation %q not found", id)
}

// checkOperation refuses what the store can't hold faithfully: times out of
// range, Input or Progress that isn't JSON (the API encodes them as
// JSON, so bad bytes would break every read of the operation), and a phase
// no runner knows (it would decide how the operation runs).
func checkOperation(op *keyhold.Operation) error {
	if !op.Phase.Valid() {
		return keyhold.Errorf(keyhold.CodeBadRequest, "operation %q: unknown phase %q: use one of %q, or \"\" once it ended",
			op.ID, op.Phase, keyhold.OperationPhases)
	}
	if err := checkTimes(op.CreatedAt, op.UpdatedAt, op.FinishedAt, op.LeaseUntil); err != nil {
		return err
	}
	for name, b := range map[string]json.RawMessage{"input": op.Input, "progress": op.Progress} {
		if len(b) > 0 && !json.Valid(b) {
			return fmt.Errorf("sqlstore: operation %q: its %s is not valid JSON", op.ID, name)
		}
	}
	return nil
}

// runningConflict returns the CodeConflict error for target, naming the
// operation that is running on it, if the transaction can see one.
func (t *tx) runningConflict(ctx context.Context, target, exceptID string) error {
	var id, kind string
	err := t.queryRow(ctx, `SELECT id, kind FROM operations WHERE target = ? AND state = 'Running' AND id <> ?`,
		target, exceptID).Scan(&id, &kind)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// A concurrent transaction's, not visible in this snapshot.
		return keyhold.Errorf(keyhold.CodeConflict,
			"%q already has a running operation: wait for it to finish and retry", target)
	case err != nil:
		return t.fail("find running operation", err)
	}
	return keyhold.Errorf(keyhold.CodeConflict,
		"%q already has a running operation, %q (%s): wait for it to finish and retry", target, id, kind)
}

// CreateOperation stores a new operation. A zero op.Version is stored, and
// set, as 1. An existing id is CodeConflict, and so is a Running operation
// for a Target (compared exactly; "" is a target like any other) that
// already has one: the message then names the running operation's id.
func (t *tx) CreateOperation(ctx context.Context, op *keyhold.Operation) error {
	if err := checkOperation(op); err != nil {
		return err
	}
	version := op.Version
	if version == 0 {
		version = 1
	}
	// DO NOTHING covers the primary key and the one-running-per-target
	// index alike, so that neither aborts a PostgreSQL transaction.
	n, err := t.execN(ctx, `INSERT INTO operations (`+operationCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		op.ID, op.TenantID, op.Kind, op.Target, string(op.State), op.Step, blob(op.Input), blob(op.Progress),
		op.Done, op.Total, op.ErrorCode, op.ErrorMsg, string(op.Phase), op.PhaseReason, op.Attempts, op.CreatedBy, nanos(op.CreatedAt),
		nanos(op.UpdatedAt), nanos(op.FinishedAt), op.LeaseOwner, nanos(op.LeaseUntil), version)
	if err != nil {
		if t.class(err) == ErrUnique {
			// Not expected (DO NOTHING), and on PostgreSQL the
			// transaction is aborted: no query may follow.
			return keyhold.Errorf(keyhold.CodeConflict,
				"operation %q or a running operation of %q already exists", op.ID, op.Target).WithCause(err)
		}
		return t.fail("create operation", err)
	}
	if n == 0 {
		found, err := t.exists(ctx, `SELECT 1 FROM operations WHERE id = ?`, op.ID)
		if err != nil {
			return t.fail("create operation", err)
		}
		if found {
			return keyhold.Errorf(keyhold.CodeConflict, "operation %q already exists", op.ID)
		}
		return t.runningConflict(ctx, op.Target, op.ID)
	}
	op.Version = version
	return nil
}

// Operation returns an operation, or CodeNotFound.
func (t *tx) Operation(ctx context.Context, id string) (*keyhold.Operation, error) {
	op, err := get(t, ctx, "get operation", scanOperation, `SELECT `+operationCols+` FROM operations WHERE id = ?`, id)
	if err != nil {
		return nil, notFound(err, opNotFound(id))
	}
	return op, nil
}

// UpdateOperation writes op if the stored version is op.Version, and then
// increments op.Version. The id, tenant, kind, target, input, creator and
// creation time never change. A stale version is CodeConflict, and so is
// making an operation Running when its target has another Running one
// (the message names it); a missing operation is CodeNotFound.
func (t *tx) UpdateOperation(ctx context.Context, op *keyhold.Operation) error {
	if err := checkOperation(op); err != nil {
		return err
	}
	// The NOT EXISTS keeps a revived operation from breaking the
	// one-running-per-target index in the common case without an error
	// that would abort a PostgreSQL transaction; only two transactions
	// reviving operations of one target at once still meet the index.
	n, err := t.execN(ctx, `UPDATE operations SET state = ?, step = ?, progress = ?, done = ?, total = ?,
		error_code = ?, error_msg = ?, phase = ?, phase_reason = ?, attempts = ?, updated_at = ?, finished_at = ?, lease_owner = ?, lease_until = ?,
		version = version + 1
		WHERE id = ? AND version = ? AND (? <> 'Running' OR state = 'Running' OR NOT EXISTS (
			SELECT 1 FROM operations o WHERE o.target = operations.target AND o.state = 'Running' AND o.id <> operations.id))`,
		string(op.State), op.Step, blob(op.Progress), op.Done, op.Total, op.ErrorCode, op.ErrorMsg, string(op.Phase), op.PhaseReason, op.Attempts,
		nanos(op.UpdatedAt), nanos(op.FinishedAt), op.LeaseOwner, nanos(op.LeaseUntil),
		op.ID, op.Version, string(op.State))
	if err != nil {
		if t.class(err) == ErrUnique {
			return keyhold.Errorf(keyhold.CodeConflict,
				"operation %q can't run: its target has another running operation", op.ID).WithCause(err)
		}
		return t.fail("update operation", err)
	}
	if n == 0 {
		var version int64
		var target string
		err := t.queryRow(ctx, `SELECT version, target FROM operations WHERE id = ?`, op.ID).Scan(&version, &target)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return opNotFound(op.ID)
		case err != nil:
			return t.fail("update operation", err)
		case version != op.Version:
			return keyhold.Errorf(keyhold.CodeConflict,
				"operation %q was changed by another writer since version %d was read: read it again and retry", op.ID, op.Version)
		}
		return t.runningConflict(ctx, target, op.ID)
	}
	op.Version++
	return nil
}

// ListOperations returns the operations that match f, newest first (by
// creation time, then id), at most f.Limit of them (DefaultOperationLimit
// if 0, never more than MaxOperationLimit).
func (t *tx) ListOperations(ctx context.Context, f keyhold.OperationFilter) ([]*keyhold.Operation, error) {
	var conds []string
	var args []any
	if f.TenantID != "" {
		conds, args = append(conds, "tenant_id = ?"), append(args, f.TenantID)
	}
	if f.Target != "" {
		conds, args = append(conds, "target = ?"), append(args, f.Target)
	}
	if f.Kind != "" {
		conds, args = append(conds, "kind = ?"), append(args, f.Kind)
	}
	if f.State != "" {
		conds, args = append(conds, "state = ?"), append(args, string(f.State))
	}
	args = append(args, clampLimit(f.Limit, DefaultOperationLimit, MaxOperationLimit))
	return list(t, ctx, "list operations", scanOperation,
		`SELECT `+operationCols+` FROM operations`+where(conds)+` ORDER BY created_at DESC, id DESC LIMIT ?`, args...)
}

// ClaimOperation leases the oldest (by creation time, then id) Running
// operation whose lease is free (no owner) or ended before now to owner
// until leaseUntil, increments its version, and returns it; CodeNotFound if
// there is none. An operation whose owner is set and whose lease ends at or
// after now is not claimed, whoever asks: that is also how a worker keeps an
// operation to itself until a retry is due.
//
// It is one UPDATE whose WHERE re-checks the lease, so two claimers never
// both get one operation. On PostgreSQL the subquery locks the row it picks
// and skips rows that concurrent claimers have locked, so they take the
// next operation instead of queueing behind each other; one that picked a
// row changed after its snapshot gets a serialization failure, which
// Update retries.
func (t *tx) ClaimOperation(ctx context.Context, owner string, now, leaseUntil time.Time) (*keyhold.Operation, error) {
	if err := checkTimes(now, leaseUntil); err != nil {
		return nil, err
	}
	if owner == "" {
		return nil, errors.New("sqlstore: claim operation: the owner is empty; name the worker")
	}
	op, err := get(t, ctx, "claim operation", scanOperation, `UPDATE operations SET lease_owner = ?, lease_until = ?, version = version + 1
		WHERE id = (SELECT id FROM operations WHERE state = 'Running' AND (lease_owner = '' OR lease_until < ?)
			ORDER BY created_at, id LIMIT 1`+t.s.d.SkipLocked+`)
		AND state = 'Running' AND (lease_owner = '' OR lease_until < ?)
		RETURNING `+operationCols,
		owner, nanos(leaseUntil), nanos(now), nanos(now))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "no operation is waiting to run"))
	}
	return op, nil
}
