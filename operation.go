package keyhold

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Durable operations: long-running work (link, unlink, swap, re-key,
// rotation pickup, migration, restore, copy, reset) kept in the store and
// run by a worker that leases it, so that two replicas never run the same
// step and a crash at any point leaves work that a restart finishes or rolls
// back. The API answers 202 with an operation-location to poll, as the real
// service does.

// OperationState is where an operation stands.
type OperationState string

// Operation states, as the BAP operation's state.id shows them.
const (
	OperationRunning   OperationState = "Running"
	OperationSucceeded OperationState = "Succeeded"
	OperationFailed    OperationState = "Failed"
)

// OperationPhase is what a Running operation is doing: State says whether
// it has ended, Phase what the runner does with it until then. It is kept
// in its own column, so that no rule reads an operation's state out of its
// messages or its version.
type OperationPhase string

// Operation phases. A finished (Succeeded or Failed) operation has none
// ("").
const (
	// OperationQueued: stored, never claimed by a runner (the runner's
	// first claim counts the operation as started and makes it Running).
	OperationQueued OperationPhase = "Queued"
	// OperationInProgress: running its steps, Step the next one.
	OperationInProgress OperationPhase = "Running"
	// OperationPaused: waiting at its Step, without failing or using up
	// attempts, for something outside it (its environment to be served
	// again: ops.Paused; a Locked environment's operations pause rather
	// than fail). PhaseReason says what it waits for.
	OperationPaused OperationPhase = "Paused"
	// OperationRollingBack: its Step failed for good (ErrorCode and
	// ErrorMsg say how); the kind's rollback runs, then it ends Failed.
	// PhaseReason is the failure's message as it was recorded.
	OperationRollingBack OperationPhase = "RollingBack"
)

// OperationPhases lists every phase but the finished operations' "".
var OperationPhases = []OperationPhase{OperationQueued, OperationInProgress, OperationPaused, OperationRollingBack}

// Valid reports whether p is a known phase, or "" (finished).
func (p OperationPhase) Valid() bool {
	return p == "" || slices.Contains(OperationPhases, p)
}

// PausedPrefix begins the ErrorMsg that a paused operation shows: the API
// has shown a pause that way since before Phase existed, and still does
// (ErrorMsg is PausedPrefix + PhaseReason while Paused: ShowPause), but
// nothing decides on that text.
const PausedPrefix = "Paused: "

// ShowPause sets the ErrorMsg of a paused operation (Running, in phase
// Paused) to the message a pause has always shown: PausedPrefix +
// PhaseReason. The reason is stored once, as PhaseReason, and a paused
// operation's stored ErrorMsg is empty (a row paused before that rule
// holds the same text in both, so it reads the same), so whoever hands an
// operation read from the store to a caller calls ShowPause. Any other
// operation is left as it is.
func (op *Operation) ShowPause() {
	if op != nil && op.State == OperationRunning && op.Phase == OperationPaused {
		op.ErrorMsg = PausedPrefix + op.PhaseReason
	}
}

// Operation is one durable operation. Step names the next step to run (""
// once finished); every step is idempotent, so running a step again after a
// crash is harmless. Input holds the kind's parameters and never changes
// after creation; Progress holds its private progress (e.g. a re-key's
// resume cursor), both as JSON. While Running, Phase says whether it is
// queued, in progress, paused at its Step, or rolling back after its Step
// failed; PhaseReason says why it is paused or rolling back, apart from
// the client-facing ErrorCode and ErrorMsg.
type Operation struct {
	ID        string          `json:"id"`
	TenantID  string          `json:"tenantId"`
	Kind      string          `json:"kind"`
	Target    string          `json:"target"` // e.g. the environment id
	State     OperationState  `json:"state"`
	Step      string          `json:"step"`
	Input     json.RawMessage `json:"input,omitempty"`
	Progress  json.RawMessage `json:"progress,omitempty"`
	Done      int64           `json:"done"`  // units of work done (items re-encrypted, …)
	Total     int64           `json:"total"` // units expected, 0 if unknown
	ErrorCode string          `json:"errorCode,omitempty"`
	ErrorMsg  string          `json:"errorMessage,omitempty"`
	// Phase is what a Running operation is doing ("" once finished).
	Phase OperationPhase `json:"phase,omitempty"`
	// PhaseReason is why it is Paused (what it waits for and what ends
	// the wait) or RollingBack (the failure's message), "" otherwise.
	PhaseReason string    `json:"phaseReason,omitempty"`
	Attempts    int       `json:"attempts"` // times a step failed transiently
	CreatedBy   string    `json:"createdBy"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	FinishedAt  time.Time `json:"finishedAt"` // zero while running
	// Warnings are what the caller must know about the operation it just
	// started (an unlink: keep the key 30 days). They are said once, in
	// the answer that starts it, and not stored.
	Warnings   []string  `json:"warnings,omitempty"`
	LeaseOwner string    `json:"-"`
	LeaseUntil time.Time `json:"-"`
	Version    int64     `json:"-"` // optimistic concurrency, as Environment
}

// OperationFilter selects operations, newest first. Empty fields match all.
type OperationFilter struct {
	TenantID string
	Target   string
	Kind     string
	State    OperationState
	Limit    int
}

// OperationTx is the part of a store transaction that holds operations.
type OperationTx interface {
	// CreateOperation stores a new operation. It refuses (CodeConflict) a
	// second Running operation for the same Target.
	CreateOperation(ctx context.Context, op *Operation) error
	Operation(ctx context.Context, id string) (*Operation, error) // CodeNotFound
	// UpdateOperation writes op only if the stored Version equals op.Version,
	// then increments op.Version (CodeConflict otherwise).
	UpdateOperation(ctx context.Context, op *Operation) error
	ListOperations(ctx context.Context, f OperationFilter) ([]*Operation, error)
	// ClaimOperation leases, to owner until leaseUntil, the oldest Running
	// operation whose lease is free (no owner, or a lease that ended before
	// now). CodeNotFound if none. A claim increments Version, so a runner
	// that lost its lease can no longer write the operation.
	ClaimOperation(ctx context.Context, owner string, now, leaseUntil time.Time) (*Operation, error)
}
