package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
)

// Page sizes of flows' listings.
const (
	DefaultFlowRunLimit = 100
	MaxFlowRunLimit     = 1000
)

// putVersioned writes a versioned record as PutRow does: version 1 inserts
// (CodeConflict if one exists), a later version replaces exactly its
// predecessor. insert and update are the statements; update's last two
// arguments must be the key's and then the previous version, which this
// appends.
func (t *tx) putVersioned(ctx context.Context, op, what string, envID string, version uint64, insert string, insArgs []any, update string, updArgs []any) error {
	if version == 0 {
		return fmt.Errorf("sqlstore: %s: version 0 is not valid (versions start at 1)", op)
	}
	v, err := u64Arg(version)
	if err != nil {
		return err
	}
	if v == 1 {
		n, err := t.execN(ctx, insert+` ON CONFLICT DO NOTHING`, insArgs...)
		if err != nil {
			if t.class(err) == ErrForeignKey {
				return envNotFound(envID).WithCause(err)
			}
			return t.fail(op, err)
		}
		if n == 0 {
			return keyhold.Errorf(keyhold.CodeConflict, "%s was created by another request: read it again and retry", what)
		}
		return nil
	}
	n, err := t.execN(ctx, update, append(updArgs, v-1)...)
	if err != nil {
		return t.fail(op, err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "%s was changed or deleted by another request since version %d was read: read it again and retry", what, v-1)
	}
	return nil
}

func flowNotFound(envID, id string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeFlowNotFound, "flow %q was not found in environment %q", id, envID)
}

// PutFlow writes a flow's next version.
func (t *tx) PutFlow(ctx context.Context, f *keyhold.FlowRecord) error {
	if err := checkTimes(f.CreatedAt, f.UpdatedAt); err != nil {
		return err
	}
	return t.putVersioned(ctx, "put flow", fmt.Sprintf("flow %q", f.ID), f.EnvID, f.Version,
		`INSERT INTO flows (env_id, id, display_name, state, solution_id, trigger_name, trigger_type, trigger_kind, created_by, epoch, version, sealed, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
		[]any{f.EnvID, f.ID, f.DisplayName, f.State, f.SolutionID, f.TriggerName, f.TriggerType, f.TriggerKind, f.CreatedBy, int64(f.Epoch), blob(f.Sealed), nanos(f.CreatedAt), nanos(f.UpdatedAt)},
		`UPDATE flows SET display_name = ?, state = ?, solution_id = ?, trigger_name = ?, trigger_type = ?, trigger_kind = ?, epoch = ?, version = ?, sealed = ?, updated_at = ?
		WHERE env_id = ? AND id = ? AND version = ?`,
		[]any{f.DisplayName, f.State, f.SolutionID, f.TriggerName, f.TriggerType, f.TriggerKind, int64(f.Epoch), int64(f.Version), blob(f.Sealed), nanos(f.UpdatedAt), f.EnvID, f.ID})
}

const flowCols = `env_id, id, display_name, state, solution_id, trigger_name, trigger_type, trigger_kind, created_by, epoch, version, sealed, created_at, updated_at`

func scanFlow(sc scanner) (*keyhold.FlowRecord, error) {
	f := &keyhold.FlowRecord{}
	err := sc.Scan(&f.EnvID, &f.ID, &f.DisplayName, &f.State, &f.SolutionID, &f.TriggerName, &f.TriggerType, &f.TriggerKind, &f.CreatedBy,
		u32Col{&f.Epoch}, u64Col{&f.Version}, &f.Sealed, timeCol{&f.CreatedAt}, timeCol{&f.UpdatedAt})
	return f, err
}

// Flow returns a flow, or CodeFlowNotFound.
func (t *tx) Flow(ctx context.Context, envID, id string) (*keyhold.FlowRecord, error) {
	f, err := get(t, ctx, "get flow", scanFlow, `SELECT `+flowCols+` FROM flows WHERE env_id = ? AND id = ?`, envID, id)
	if err != nil {
		return nil, notFound(err, flowNotFound(envID, id))
	}
	return f, nil
}

// ListFlows lists an environment's flows by id.
func (t *tx) ListFlows(ctx context.Context, envID string) ([]*keyhold.FlowRecord, error) {
	return list(t, ctx, "list flows", scanFlow, `SELECT `+flowCols+` FROM flows WHERE env_id = ? ORDER BY id`, envID)
}

// DeleteFlow deletes a flow and what hangs off it (explicitly, as well as
// by the foreign keys' cascade).
func (t *tx) DeleteFlow(ctx context.Context, envID, id string) error {
	for _, table := range []string{"flow_runs", "flow_schedules", "flow_keys"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE env_id = ? AND flow_id = ?`, envID, id); err != nil {
			return t.fail("delete flow", err)
		}
	}
	n, err := t.execN(ctx, `DELETE FROM flows WHERE env_id = ? AND id = ?`, envID, id)
	if err != nil {
		return t.fail("delete flow", err)
	}
	if n == 0 {
		return flowNotFound(envID, id)
	}
	return nil
}

// PutFlowRun writes a run's next version; an unknown flow is
// CodeFlowNotFound.
func (t *tx) PutFlowRun(ctx context.Context, r *keyhold.FlowRunRecord) error {
	if err := checkTimes(r.StartedAt, r.EndedAt, r.LeaseUntil, r.UpdatedAt); err != nil {
		return err
	}
	err := t.putVersioned(ctx, "put flow run", fmt.Sprintf("run %q of flow %q", r.ID, r.FlowID), r.EnvID, r.Version,
		`INSERT INTO flow_runs (env_id, flow_id, id, status, trigger_name, parent_run_id, depth, started_at, ended_at, lease_owner, lease_until, epoch, version, state_version, sealed, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
		[]any{r.EnvID, r.FlowID, r.ID, r.Status, r.TriggerName, r.ParentRunID, int64(r.Depth), nanos(r.StartedAt), nanos(r.EndedAt), r.LeaseOwner, nanos(r.LeaseUntil), int64(r.Epoch), int64(r.StateVersion), blob(r.Sealed), nanos(r.UpdatedAt)},
		`UPDATE flow_runs SET status = ?, ended_at = ?, lease_owner = ?, lease_until = ?, epoch = ?, version = ?, state_version = ?, sealed = ?, updated_at = ?
		WHERE env_id = ? AND flow_id = ? AND id = ? AND version = ?`,
		[]any{r.Status, nanos(r.EndedAt), r.LeaseOwner, nanos(r.LeaseUntil), int64(r.Epoch), int64(r.Version), int64(r.StateVersion), blob(r.Sealed), nanos(r.UpdatedAt), r.EnvID, r.FlowID, r.ID})
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
		return flowNotFound(r.EnvID, r.FlowID).WithCause(err)
	}
	return err
}

const runCols = `env_id, flow_id, id, status, trigger_name, parent_run_id, depth, started_at, ended_at, lease_owner, lease_until, epoch, version, state_version, sealed, updated_at`

func scanRun(sc scanner) (*keyhold.FlowRunRecord, error) {
	r := &keyhold.FlowRunRecord{}
	var depth int64
	err := sc.Scan(&r.EnvID, &r.FlowID, &r.ID, &r.Status, &r.TriggerName, &r.ParentRunID, &depth, timeCol{&r.StartedAt}, timeCol{&r.EndedAt},
		&r.LeaseOwner, timeCol{&r.LeaseUntil}, u32Col{&r.Epoch}, u64Col{&r.Version}, u64Col{&r.StateVersion}, &r.Sealed, timeCol{&r.UpdatedAt})
	r.Depth = int(depth)
	return r, err
}

// FlowRun returns a run, or CodeFlowRunNotFound.
func (t *tx) FlowRun(ctx context.Context, envID, flowID, id string) (*keyhold.FlowRunRecord, error) {
	r, err := get(t, ctx, "get flow run", scanRun, `SELECT `+runCols+` FROM flow_runs WHERE env_id = ? AND flow_id = ? AND id = ?`, envID, flowID, id)
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeFlowRunNotFound, "run %q of flow %q was not found in environment %q", id, flowID, envID))
	}
	return r, nil
}

// ListFlowRuns lists runs newest first.
func (t *tx) ListFlowRuns(ctx context.Context, f keyhold.FlowRunFilter) ([]*keyhold.FlowRunRecord, error) {
	conds := []string{"env_id = ?"}
	args := []any{f.EnvID}
	if f.FlowID != "" {
		conds, args = append(conds, "flow_id = ?"), append(args, f.FlowID)
	}
	args = append(args, clampLimit(f.Limit, DefaultFlowRunLimit, MaxFlowRunLimit))
	return list(t, ctx, "list flow runs", scanRun, `SELECT `+runCols+` FROM flow_runs`+where(conds)+` ORDER BY started_at DESC, id DESC LIMIT ?`, args...)
}

// RunnableFlowRuns lists the runs an engine may claim, oldest first.
func (t *tx) RunnableFlowRuns(ctx context.Context, now time.Time, limit int) ([]*keyhold.FlowRunRecord, error) {
	return list(t, ctx, "list runnable flow runs", scanRun, `SELECT `+runCols+` FROM flow_runs
		WHERE status IN (?, ?) AND lease_until <= ? ORDER BY started_at, id LIMIT ?`,
		keyhold.RunWaiting, keyhold.RunRunning, nanos(now), clampLimit(limit, DefaultFlowRunLimit, MaxFlowRunLimit))
}

// ActiveFlowRuns counts runs whose lease holds at now.
func (t *tx) ActiveFlowRuns(ctx context.Context, envID, flowID string, now time.Time) (int, error) {
	conds := []string{"env_id = ?", "status = ?", "lease_until > ?"}
	args := []any{envID, keyhold.RunRunning, nanos(now)}
	if flowID != "" {
		conds, args = append(conds, "flow_id = ?"), append(args, flowID)
	}
	var n int64
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM flow_runs`+where(conds), args...).Scan(&n); err != nil {
		return 0, t.fail("count active flow runs", err)
	}
	return int(n), nil
}

// DeleteFlowRunsBefore deletes up to limit terminal runs that ended before
// before.
func (t *tx) DeleteFlowRunsBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	n, err := t.execN(ctx, `DELETE FROM flow_runs WHERE (env_id, flow_id, id) IN
		(SELECT env_id, flow_id, id FROM flow_runs WHERE ended_at <> ? AND ended_at < ? LIMIT ?)`,
		zeroNanos, nanos(before), clampLimit(limit, DefaultFlowRunLimit, MaxFlowRunLimit))
	if err != nil {
		return 0, t.fail("delete old flow runs", err)
	}
	return int(n), nil
}

// FlowRunsOffEpoch lists runs with sealed state under another epoch.
func (t *tx) FlowRunsOffEpoch(ctx context.Context, envID string, epoch uint32, limit int) ([]*keyhold.FlowRunRecord, error) {
	return list(t, ctx, "list flow runs off an epoch", scanRun, `SELECT `+runCols+` FROM flow_runs
		WHERE env_id = ? AND epoch <> ? AND state_version > 0 ORDER BY flow_id, id LIMIT ?`,
		envID, int64(epoch), clampLimit(limit, DefaultFlowRunLimit, MaxFlowRunLimit))
}

// PutFlowSchedule inserts or replaces a schedule; an unknown flow is
// CodeFlowNotFound.
func (t *tx) PutFlowSchedule(ctx context.Context, s *keyhold.FlowSchedule) error {
	if err := checkTimes(s.NextSlot, s.LastSlot); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO flow_schedules (env_id, flow_id, next_slot, last_slot) VALUES (?, ?, ?, ?)
		ON CONFLICT (env_id, flow_id) DO UPDATE SET next_slot = excluded.next_slot, last_slot = excluded.last_slot`,
		s.EnvID, s.FlowID, nanos(s.NextSlot), nanos(s.LastSlot))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return flowNotFound(s.EnvID, s.FlowID).WithCause(err)
		}
		return t.fail("put flow schedule", err)
	}
	return nil
}

// ClaimFlowSlot moves a schedule from s.NextSlot (which becomes its last
// slot) to next, if s.NextSlot is still the stored one.
func (t *tx) ClaimFlowSlot(ctx context.Context, s *keyhold.FlowSchedule, next time.Time) error {
	if err := checkTimes(s.NextSlot, next); err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE flow_schedules SET last_slot = next_slot, next_slot = ? WHERE env_id = ? AND flow_id = ? AND next_slot = ?`,
		nanos(next), s.EnvID, s.FlowID, nanos(s.NextSlot))
	if err != nil {
		return t.fail("claim flow slot", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "slot %s of flow %q was claimed by another engine", s.NextSlot.UTC().Format(time.RFC3339), s.FlowID)
	}
	return nil
}

// DueFlowSchedules lists schedules due at now, earliest first.
func (t *tx) DueFlowSchedules(ctx context.Context, now time.Time, limit int) ([]*keyhold.FlowSchedule, error) {
	return list(t, ctx, "list due flow schedules", func(sc scanner) (*keyhold.FlowSchedule, error) {
		s := &keyhold.FlowSchedule{}
		err := sc.Scan(&s.EnvID, &s.FlowID, timeCol{&s.NextSlot}, timeCol{&s.LastSlot})
		return s, err
	}, `SELECT env_id, flow_id, next_slot, last_slot FROM flow_schedules WHERE next_slot <= ? ORDER BY next_slot, env_id, flow_id LIMIT ?`,
		nanos(now), clampLimit(limit, DefaultFlowRunLimit, MaxFlowRunLimit))
}

// DeleteFlowSchedule removes a flow's schedule, if it has one.
func (t *tx) DeleteFlowSchedule(ctx context.Context, envID, flowID string) error {
	if _, err := t.exec(ctx, `DELETE FROM flow_schedules WHERE env_id = ? AND flow_id = ?`, envID, flowID); err != nil {
		return t.fail("delete flow schedule", err)
	}
	return nil
}

// PutFlowKey writes a flow's callback key's next version.
func (t *tx) PutFlowKey(ctx context.Context, k *keyhold.FlowKeyRecord) error {
	if err := checkTimes(k.CreatedAt); err != nil {
		return err
	}
	err := t.putVersioned(ctx, "put flow key", fmt.Sprintf("the callback key of flow %q", k.FlowID), k.EnvID, k.Version,
		`INSERT INTO flow_keys (env_id, flow_id, epoch, version, sealed, created_at) VALUES (?, ?, ?, 1, ?, ?)`,
		[]any{k.EnvID, k.FlowID, int64(k.Epoch), blob(k.Sealed), nanos(k.CreatedAt)},
		`UPDATE flow_keys SET epoch = ?, version = ?, sealed = ?, created_at = ? WHERE env_id = ? AND flow_id = ? AND version = ?`,
		[]any{int64(k.Epoch), int64(k.Version), blob(k.Sealed), nanos(k.CreatedAt), k.EnvID, k.FlowID})
	if keyhold.ErrorCode(err) == keyhold.CodeEnvironmentNotFound {
		return flowNotFound(k.EnvID, k.FlowID).WithCause(err)
	}
	return err
}

// FlowKey returns a flow's callback key, or CodeNotFound.
func (t *tx) FlowKey(ctx context.Context, envID, flowID string) (*keyhold.FlowKeyRecord, error) {
	k, err := get(t, ctx, "get flow key", func(sc scanner) (*keyhold.FlowKeyRecord, error) {
		k := &keyhold.FlowKeyRecord{}
		err := sc.Scan(&k.EnvID, &k.FlowID, u32Col{&k.Epoch}, u64Col{&k.Version}, &k.Sealed, timeCol{&k.CreatedAt})
		return k, err
	}, `SELECT env_id, flow_id, epoch, version, sealed, created_at FROM flow_keys WHERE env_id = ? AND flow_id = ?`, envID, flowID)
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "flow %q of environment %q has no callback key", flowID, envID))
	}
	return k, nil
}

func connNotFound(envID, api, name string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeConnectionNotFound, "connection %q of api %q was not found in environment %q", name, api, envID)
}

// PutConnection writes a connection's next version.
func (t *tx) PutConnection(ctx context.Context, c *keyhold.ConnectionRecord) error {
	if err := checkTimes(c.CreatedAt); err != nil {
		return err
	}
	return t.putVersioned(ctx, "put connection", fmt.Sprintf("connection %q", c.Name), c.EnvID, c.Version,
		`INSERT INTO flow_connections (env_id, api, name, display_name, kind, principal_id, created_by, epoch, version, sealed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		[]any{c.EnvID, c.API, c.Name, c.DisplayName, c.Kind, c.PrincipalID, c.CreatedBy, int64(c.Epoch), blob(c.Sealed), nanos(c.CreatedAt)},
		`UPDATE flow_connections SET display_name = ?, kind = ?, principal_id = ?, epoch = ?, version = ?, sealed = ? WHERE env_id = ? AND api = ? AND name = ? AND version = ?`,
		[]any{c.DisplayName, c.Kind, c.PrincipalID, int64(c.Epoch), int64(c.Version), blob(c.Sealed), c.EnvID, c.API, c.Name})
}

const connCols = `env_id, api, name, display_name, kind, principal_id, created_by, epoch, version, sealed, created_at`

func scanConn(sc scanner) (*keyhold.ConnectionRecord, error) {
	c := &keyhold.ConnectionRecord{}
	err := sc.Scan(&c.EnvID, &c.API, &c.Name, &c.DisplayName, &c.Kind, &c.PrincipalID, &c.CreatedBy, u32Col{&c.Epoch}, u64Col{&c.Version}, &c.Sealed, timeCol{&c.CreatedAt})
	return c, err
}

// Connection returns a connection, or CodeConnectionNotFound.
func (t *tx) Connection(ctx context.Context, envID, api, name string) (*keyhold.ConnectionRecord, error) {
	c, err := get(t, ctx, "get connection", scanConn, `SELECT `+connCols+` FROM flow_connections WHERE env_id = ? AND api = ? AND name = ?`, envID, api, name)
	if err != nil {
		return nil, notFound(err, connNotFound(envID, api, name))
	}
	return c, nil
}

// ListConnections lists an environment's connections by api and name.
func (t *tx) ListConnections(ctx context.Context, envID string) ([]*keyhold.ConnectionRecord, error) {
	return list(t, ctx, "list connections", scanConn, `SELECT `+connCols+` FROM flow_connections WHERE env_id = ? ORDER BY api, name`, envID)
}

// DeleteConnection removes a connection, or answers CodeConnectionNotFound.
func (t *tx) DeleteConnection(ctx context.Context, envID, api, name string) error {
	n, err := t.execN(ctx, `DELETE FROM flow_connections WHERE env_id = ? AND api = ? AND name = ?`, envID, api, name)
	if err != nil {
		return t.fail("delete connection", err)
	}
	if n == 0 {
		return connNotFound(envID, api, name)
	}
	return nil
}
