// Package wdl is the flows' language: it parses and validates the subset of
// the Workflow Definition Language (the Logic Apps and Power Automate JSON)
// that Keyhold runs, evaluates its expressions, and executes a definition
// step by step against a Host that does everything with outside effects.
// The flows package stores definitions and runs, seals them, and is the
// Host; this package never touches storage, the network or the real clock,
// so the whole language is tested in memory.
//
// What is not supported is refused by Parse with
// keyhold.CodeInvalidFlowDefinition naming the construct and its JSON path:
// nothing in a definition is silently ignored. docs/flows.md lists what is
// supported.
package wdl

import (
	"context"
	"encoding/json"
	"time"
)

// Definition is a parsed, validated flow definition.
type Definition struct {
	Triggers   []Trigger      // exactly one: more is refused at Parse
	Parameters map[string]any // defaultValues of the definition's parameters ($connections comes from the host)

	top      *graph           // the top-level actions
	byName   map[string]*node // every action, nested ones included: names are unique in a definition
	children []string         // workflowReferenceName of Workflow actions, in definition order
	conns    []string         // connection reference names, in definition order
	vars     map[string]bool  // variables declared by InitializeVariable
}

// Trigger is a definition's trigger.
type Trigger struct {
	Name       string
	Type       string // "Request", "Recurrence", "OpenApiConnectionWebhook"
	Kind       string // for Request: "Http", "Button", "PowerApp", "PowerAppV2", "Skills"; "" otherwise
	API        string // for OpenApiConnectionWebhook: the api name, e.g. "shared_teams"
	Recurrence *Recurrence
	Schema     json.RawMessage // inputs.schema of a Request trigger, if any
	// Method is a Request trigger's inputs.method, upper case; "" accepts
	// any method.
	Method string
	// Connection is the connection reference a connector trigger uses
	// (OpenApiConnectionWebhook), "" otherwise.
	Connection string
	// Operation is a connector trigger's operationId, "" otherwise.
	Operation string
}

// Trigger returns the definition's trigger.
func (d *Definition) Trigger() Trigger { return d.Triggers[0] }

// ChildFlows returns the flow ids named by Workflow actions
// (inputs.host.workflowReferenceName), each once, in definition order.
func (d *Definition) ChildFlows() []string { return append([]string(nil), d.children...) }

// ConnectionRefs returns the connection reference names that connector
// actions and triggers use, each once, in definition order.
func (d *Definition) ConnectionRefs() []string { return append([]string(nil), d.conns...) }

// Host does everything with outside effects. Inputs are already evaluated.
type Host interface {
	// Call performs an action of type Http, Workflow (child flow),
	// ApiConnection or OpenApiConnection (connector operations), or
	// Response. It returns the action's outputs. A returned error of type
	// *ActionError fails the action (retried per its retry policy if
	// Retryable); any other error stops the run unfinished, to be resumed
	// later (e.g. the environment is locked).
	Call(ctx context.Context, c Call) (Outputs, error)
	// Now is the host's clock: utcNow(), timeouts and action times.
	Now() time.Time
	// Sleep waits for retry backoff and Until delays; an injected clock in
	// tests.
	Sleep(ctx context.Context, d time.Duration) error
}

// Call is one attempt at an action the host performs.
type Call struct {
	Path    string // action path, unique in the run, with iterations: "Apply_to_each[2]/Send"
	Name    string // action name
	Type    string
	Inputs  any // evaluated inputs: JSON values (map[string]any, []any, string, float64, bool, nil)
	Attempt int // 1-based
}

// Outputs are an action's (or the trigger's) outputs.
type Outputs struct {
	StatusCode int               `json:"statusCode,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       any               `json:"body,omitempty"`
}

// ActionError is why an action failed: the host's answer, a runtime
// expression error (Code "InvalidTemplate", naming the path and the
// expression), a timeout or a Terminate.
type ActionError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Retryable  bool   `json:"retryable,omitempty"`
	StatusCode int    `json:"statusCode,omitempty"`
}

func (e *ActionError) Error() string { return e.Code + ": " + e.Message }

// Run statuses and action statuses.
const (
	StatusRunning   = "Running"
	StatusSucceeded = "Succeeded"
	StatusFailed    = "Failed"
	StatusSkipped   = "Skipped"
	StatusTimedOut  = "TimedOut"
	StatusCancelled = "Cancelled"
)

// RunState is everything a run has done; it is JSON-serialisable and the
// host stores it (sealed) after each step.
type RunState struct {
	Trigger   Outputs                 `json:"trigger"` // triggerOutputs(); triggerBody() is Trigger.Body
	Actions   map[string]*ActionState `json:"actions"` // by path
	Variables map[string]any          `json:"variables"`
	Status    string                  `json:"status"` // "Running", "Succeeded", "Failed", "Cancelled"
	Error     *ActionError            `json:"error,omitempty"`
	Response  *Outputs                `json:"response,omitempty"` // set by a Response action
}

// ActionState is one action's (or one loop iteration's action's) record.
type ActionState struct {
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	Status   string       `json:"status"` // "Running", "Succeeded", "Failed", "Skipped", "TimedOut", "Cancelled"
	Start    time.Time    `json:"start"`
	End      time.Time    `json:"end"`
	Attempts int          `json:"attempts,omitempty"`
	Inputs   any          `json:"inputs,omitempty"`
	Outputs  *Outputs     `json:"outputs,omitempty"`
	Error    *ActionError `json:"error,omitempty"`
}

// NewRun returns the state of a run that has not started, fired with
// trigger's outputs.
func NewRun(trigger Outputs) *RunState {
	return &RunState{Trigger: trigger, Actions: map[string]*ActionState{}, Variables: map[string]any{}, Status: StatusRunning}
}

// terminal reports whether an action or run status is final.
func terminal(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusSkipped, StatusTimedOut, StatusCancelled:
		return true
	}
	return false
}
