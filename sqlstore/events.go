package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
)

// Page sizes of ListEvents.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

const eventCols = `id, tenant_id, occurred_at, kind, policy_id, env_id, audit_id, summary, changes, delivery, attempts, next_attempt_at, delivered_at, last_error`

func scanEvent(sc scanner) (*keyhold.Event, error) {
	e := &keyhold.Event{}
	var changes, delivery string
	err := sc.Scan(&e.ID, &e.TenantID, timeCol{&e.At}, &e.Kind, &e.PolicyID, &e.EnvID, &e.AuditID, &e.Summary, &changes,
		&delivery, &e.Attempts, timeCol{&e.NextAttemptAt}, timeCol{&e.DeliveredAt}, &e.LastError)
	if err != nil {
		return nil, err
	}
	e.Delivery = keyhold.DeliveryState(delivery)
	if err := json.Unmarshal([]byte(changes), &e.Changes); err != nil {
		return nil, err
	}
	return e, nil
}

// AppendEvent appends e and sets e.ID, which grows with each event. An
// empty Delivery is stored as DeliveryNone.
func (t *tx) AppendEvent(ctx context.Context, e *keyhold.Event) error {
	if err := checkTimes(e.At, e.NextAttemptAt, e.DeliveredAt); err != nil {
		return err
	}
	if e.Delivery == "" {
		e.Delivery = keyhold.DeliveryNone
	}
	if e.Changes == nil {
		e.Changes = []keyhold.VaultChange{}
	}
	changes, err := json.Marshal(e.Changes)
	if err != nil {
		return err
	}
	err = t.queryRow(ctx, `INSERT INTO events (tenant_id, occurred_at, kind, policy_id, env_id, audit_id, summary, changes, delivery, attempts, next_attempt_at, delivered_at, last_error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.TenantID, nanos(e.At), e.Kind, e.PolicyID, e.EnvID, e.AuditID, e.Summary, string(changes), string(e.Delivery), e.Attempts,
		nanos(e.NextAttemptAt), nanos(e.DeliveredAt), e.LastError).Scan(&e.ID)
	if err != nil {
		return t.fail("append event", err)
	}
	return nil
}

// ListEvents returns f.TenantID's events, newest first, with an id below
// f.BeforeID if set, at most f.Limit (DefaultEventLimit if 0, never more
// than MaxEventLimit).
func (t *tx) ListEvents(ctx context.Context, f keyhold.EventFilter) ([]*keyhold.Event, error) {
	conds, args := []string{"tenant_id = ?"}, []any{f.TenantID}
	if f.BeforeID > 0 {
		conds, args = append(conds, "id < ?"), append(args, f.BeforeID)
	}
	args = append(args, clampLimit(f.Limit, DefaultEventLimit, MaxEventLimit))
	return list(t, ctx, "list events", scanEvent, `SELECT `+eventCols+` FROM events`+where(conds)+` ORDER BY id DESC LIMIT ?`, args...)
}

// ClaimEventDelivery takes the oldest due Pending event (see
// keyhold.EventTx). Like ClaimOperation it is one UPDATE that re-checks
// its condition, and on PostgreSQL skips rows other claimers hold.
func (t *tx) ClaimEventDelivery(ctx context.Context, now, leaseUntil time.Time) (*keyhold.Event, error) {
	if err := checkTimes(now, leaseUntil); err != nil {
		return nil, err
	}
	e, err := get(t, ctx, "claim event delivery", scanEvent, `UPDATE events SET attempts = attempts + 1, next_attempt_at = ?
		WHERE id = (SELECT id FROM events WHERE delivery = 'Pending' AND next_attempt_at <= ?
			ORDER BY next_attempt_at, id LIMIT 1`+t.s.d.SkipLocked+`)
		AND delivery = 'Pending' AND next_attempt_at <= ?
		RETURNING `+eventCols, nanos(leaseUntil), nanos(now), nanos(now))
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "no event is due for delivery"))
	}
	return e, nil
}

// UpdateEventDelivery stores e's delivery fields.
func (t *tx) UpdateEventDelivery(ctx context.Context, e *keyhold.Event) error {
	if err := checkTimes(e.NextAttemptAt, e.DeliveredAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE events SET delivery = ?, attempts = ?, next_attempt_at = ?, delivered_at = ?, last_error = ? WHERE id = ?`,
		string(e.Delivery), e.Attempts, nanos(e.NextAttemptAt), nanos(e.DeliveredAt), e.LastError, e.ID)
	if err != nil {
		return t.fail("update event delivery", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "event %d was not found", e.ID)
	}
	return nil
}

// TenantSettings returns the stored settings of a tenant, or the defaults.
func (t *tx) TenantSettings(ctx context.Context, tenantID string) (*keyhold.TenantSettings, error) {
	s, err := get(t, ctx, "get tenant settings", func(sc scanner) (*keyhold.TenantSettings, error) {
		s := &keyhold.TenantSettings{}
		err := sc.Scan(&s.TenantID, boolCol{&s.AutoReenable}, &s.WebhookURL, timeCol{&s.UpdatedAt}, &s.UpdatedBy)
		return s, err
	}, `SELECT tenant_id, auto_reenable, webhook_url, updated_at, updated_by FROM tenant_settings WHERE tenant_id = ?`, tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return &keyhold.TenantSettings{TenantID: tenantID}, nil
	} else if err != nil {
		return nil, err
	}
	return s, nil
}

// PutTenantSettings stores s, replacing the tenant's settings.
func (t *tx) PutTenantSettings(ctx context.Context, s *keyhold.TenantSettings) error {
	if err := checkTimes(s.UpdatedAt); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO tenant_settings (tenant_id, auto_reenable, webhook_url, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET auto_reenable = excluded.auto_reenable, webhook_url = excluded.webhook_url,
			updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		s.TenantID, s.AutoReenable, s.WebhookURL, nanos(s.UpdatedAt), s.UpdatedBy)
	if err != nil {
		return t.fail("put tenant settings", err)
	}
	return nil
}
