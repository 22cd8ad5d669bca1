package keyhold

import (
	"context"
	"strconv"
	"time"
)

// Events tell a tenant's administrators of every change to the availability
// of their data under a customer-managed key: a policy's key health moving,
// an environment locked or re-enabled, the warnings of a locked
// environment's deletion countdown, its crypto-shred and deletion. A lock
// is never silent: each event is listed by the admin API and, if the tenant
// set a webhook, delivered to it.
//
// Every event is also an audit entry, written in the same transaction (the
// platform derives one from the other), so the two never disagree; the
// events table is the webhook's outbox.

// Event kinds.
const (
	EventPolicyHealthChanged        = "PolicyHealthChanged"
	EventEnvironmentLocked          = "EnvironmentLocked"
	EventEnvironmentEnabled         = "EnvironmentEnabled"
	EventEnvironmentDeletionWarning = "EnvironmentDeletionWarning"
	EventEnvironmentCryptoShredded  = "EnvironmentCryptoShredded"
	EventEnvironmentDeleted         = "EnvironmentDeleted"
	// EventFlowRunFailed: a flow's run failed (issue 16). Its summary says
	// which flow and run, and when; never the run's inputs, outputs or
	// error, and in an environment linked to a customer key nothing of
	// the sealed definition either (the failed action's name is given for
	// a platform-key environment only): spec 004 keeps a customer-key
	// environment's flow-run content out of tenant-wide feeds.
	EventFlowRunFailed = "FlowRunFailed"
	// EventWebhookTest is the event an administrator asks for to try the
	// tenant's webhook (WebhookTester): delivered as any other, it
	// concerns no policy or environment.
	EventWebhookTest = "WebhookTest"
)

// DeliveryState is where an event's webhook delivery stands.
type DeliveryState string

// Delivery states. An event written while the tenant has no webhook is
// DeliveryNone for good; otherwise it is Pending until the webhook answers
// 2xx (Delivered) or the retries run out (Failed).
const (
	DeliveryNone      DeliveryState = "None"
	DeliveryPending   DeliveryState = "Pending"
	DeliveryDelivered DeliveryState = "Delivered"
	DeliveryFailed    DeliveryState = "Failed"
)

// VaultChange is one change in a key vault that Keyhold runs, found in its
// audit log: what changed (Action on Target, with Detail) and who changed
// it (ActorID, and ActorName when the directory knows it). An event about a
// revocation carries the changes that explain it.
type VaultChange struct {
	At        time.Time `json:"time"`
	ActorID   string    `json:"actorId"`
	ActorName string    `json:"actorName,omitempty"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Detail    string    `json:"detail,omitempty"`
}

// Event is one notice to a tenant's administrators.
type Event struct {
	ID       int64     // grows with each event
	TenantID string    // whose administrators it is for
	At       time.Time // when it happened
	Kind     string    // one of the Event* kinds
	PolicyID string    // the enterprise policy concerned, if any
	EnvID    string    // the environment concerned, if any
	AuditID  int64     // the audit entry it was derived from
	Summary  string    // one line for a human
	// Changes are the key vault changes that explain a revocation, newest
	// first (empty when the vault is not Keyhold's or nothing was found).
	Changes []VaultChange

	// Webhook delivery.
	Delivery      DeliveryState
	Attempts      int
	NextAttemptAt time.Time // when a Pending event is tried next
	DeliveredAt   time.Time
	LastError     string // the last failed attempt's cause
}

// EventFilter selects a tenant's events, newest first.
type EventFilter struct {
	TenantID string
	BeforeID int64 // page: events with a smaller ID
	Limit    int
}

// TenantSettings are a tenant's choices about customer-managed keys. The
// zero value is the default: no automatic re-enable, no webhook.
type TenantSettings struct {
	TenantID string
	// AutoReenable, when set, re-enables a Locked environment as soon as a
	// health probe proves its key accessible again, instead of waiting for
	// an administrator. Off by default: the customer decides.
	AutoReenable bool
	// WebhookURL receives every event as a signed POST ("" for none).
	WebhookURL string
	UpdatedAt  time.Time
	UpdatedBy  string // principal id
}

// EventTx is the part of a store transaction that holds events and tenant
// settings.
type EventTx interface {
	// AppendEvent appends e and sets e.ID.
	AppendEvent(ctx context.Context, e *Event) error
	// ListEvents lists the events that match f, newest first.
	ListEvents(ctx context.Context, f EventFilter) ([]*Event, error)
	// ClaimEventDelivery takes the oldest Pending event whose NextAttemptAt
	// is at or before now: it counts an attempt and moves NextAttemptAt to
	// leaseUntil, so no other replica takes it meanwhile, and returns it.
	// CodeNotFound if none is due.
	ClaimEventDelivery(ctx context.Context, now, leaseUntil time.Time) (*Event, error)
	// UpdateEventDelivery stores e's delivery fields (Delivery, Attempts,
	// NextAttemptAt, DeliveredAt, LastError); CodeNotFound if e is gone.
	UpdateEventDelivery(ctx context.Context, e *Event) error
	// TenantSettings returns a tenant's settings: the defaults (with
	// TenantID set) if none were stored.
	TenantSettings(ctx context.Context, tenantID string) (*TenantSettings, error)
	// PutTenantSettings stores a tenant's settings, replacing any.
	PutTenantSettings(ctx context.Context, s *TenantSettings) error
}

// EventView is an event as the admin API lists it and a webhook receives
// it.
type EventView struct {
	ID            string             `json:"id"`
	TenantID      string             `json:"tenantId"`
	Time          time.Time          `json:"time"`
	Kind          string             `json:"kind"`
	PolicyID      string             `json:"enterprisePolicyId,omitempty"`
	EnvironmentID string             `json:"environmentId,omitempty"`
	AuditID       string             `json:"auditLogId"`
	Summary       string             `json:"summary"`
	Changes       []VaultChange      `json:"keyVaultChanges"`
	Delivery      *EventDeliveryView `json:"webhookDelivery,omitempty"`
}

// EventDeliveryView is where an event's webhook delivery stands.
type EventDeliveryView struct {
	State         DeliveryState `json:"state"`
	Attempts      int           `json:"attempts"`
	NextAttemptAt *time.Time    `json:"nextAttemptAt,omitempty"`
	DeliveredAt   *time.Time    `json:"deliveredAt,omitempty"`
	LastError     string        `json:"lastError,omitempty"`
}

// View renders e as the admin API lists it; withDelivery adds its webhook
// delivery state (a webhook body leaves it out).
func (e *Event) View(withDelivery bool) EventView {
	j := EventView{ID: strconv.FormatInt(e.ID, 10), TenantID: e.TenantID, Time: e.At.UTC(), Kind: e.Kind, PolicyID: e.PolicyID,
		EnvironmentID: e.EnvID, AuditID: strconv.FormatInt(e.AuditID, 10), Summary: e.Summary, Changes: e.Changes}
	if j.Changes == nil {
		j.Changes = []VaultChange{}
	}
	if withDelivery && e.Delivery != DeliveryNone && e.Delivery != "" {
		d := &EventDeliveryView{State: e.Delivery, Attempts: e.Attempts, LastError: e.LastError}
		if e.Delivery == DeliveryPending {
			t := e.NextAttemptAt.UTC()
			d.NextAttemptAt = &t
		}
		if e.Delivery == DeliveryDelivered {
			t := e.DeliveredAt.UTC()
			d.DeliveredAt = &t
		}
		j.Delivery = d
	}
	return j
}

// TenantSettingsPatch holds the changes to a tenant's settings; nil means
// unchanged.
type TenantSettingsPatch struct {
	AutoReenable *bool
	WebhookURL   *string // "" removes the webhook
}

// WebhookTester is the optional ability of an EventService to write a
// WebhookTest event for the caller's tenant, to try its webhook: the event
// is delivered, retried and listed as any other, so its delivery state
// says whether the webhook works. It needs a platform administrator and a
// webhook set (CodeBadRequest otherwise, nothing written).
type WebhookTester interface {
	TestWebhook(ctx context.Context) (*Event, error)
}

// EventService lists a tenant's events and keeps its settings; every
// method needs a platform administrator of the caller's tenant.
type EventService interface {
	// ListEvents lists the caller's tenant's events, newest first, paged
	// as EventFilter is.
	ListEvents(ctx context.Context, beforeID int64, limit int) ([]*Event, error)
	TenantSettings(ctx context.Context) (*TenantSettings, error)
	UpdateTenantSettings(ctx context.Context, patch TenantSettingsPatch) (*TenantSettings, error)
}
