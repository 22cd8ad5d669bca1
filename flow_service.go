package keyhold

import (
	"context"
	"encoding/json"
	"time"
)

// AudienceFlow is Power Automate's API (issue 15): flows, runs and
// connections accept tokens for it (and for Power Apps, whose scope the
// CLI signs in with).
const AudienceFlow Audience = "https://service.flow.microsoft.com"

// MaxTriggerBodyBytes is the largest body a flow's trigger accepts (413
// past it).
const MaxTriggerBodyBytes = 1 << 20

// MaxFlowDepth caps a chain of child flows: a run at this depth may not
// call another.
const MaxFlowDepth = 8

// FlowInput is what a caller writes of a flow (PUT or PATCH). On a PATCH,
// nil fields keep their value.
type FlowInput struct {
	DisplayName          *string         `json:"displayName,omitempty"`
	Definition           json.RawMessage `json:"definition,omitempty"`
	ConnectionReferences json.RawMessage `json:"connectionReferences,omitempty"`
	State                *string         `json:"state,omitempty"`
	SolutionID           *string         `json:"solutionId,omitempty"`
}

// Flow is a cloud flow as its API shows it: the properties of Power
// Automate's flow resource.
type Flow struct {
	EnvID                string          `json:"-"`
	ID                   string          `json:"-"`
	DisplayName          string          `json:"displayName"`
	State                string          `json:"state"`
	SolutionID           string          `json:"solutionId,omitempty"`
	Definition           json.RawMessage `json:"definition,omitempty"`
	ConnectionReferences json.RawMessage `json:"connectionReferences,omitempty"`
	TriggerName          string          `json:"triggerName"`
	TriggerType          string          `json:"triggerType"`
	TriggerKind          string          `json:"triggerKind,omitempty"`
	CreatedBy            string          `json:"creator"`
	CreatedTime          time.Time       `json:"createdTime"`
	LastModifiedTime     time.Time       `json:"lastModifiedTime"`
}

// FlowRunError is why a run or an action failed.
type FlowRunError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// FlowRun is one run of a flow.
type FlowRun struct {
	EnvID       string        `json:"-"`
	FlowID      string        `json:"-"`
	ID          string        `json:"-"`
	Status      string        `json:"status"`
	TriggerName string        `json:"triggerName"`
	ParentRunID string        `json:"parentRunId,omitempty"`
	StartTime   time.Time     `json:"startTime"`
	EndTime     time.Time     `json:"endTime,omitzero"`
	Error       *FlowRunError `json:"error,omitempty"`
	// Response is what a Response action answered, for an invoked run.
	Response *FlowResponse `json:"-"`
}

// FlowRunAction is one action (or loop iteration's action) of a run.
type FlowRunAction struct {
	Name      string        `json:"-"`
	Path      string        `json:"path"`
	Type      string        `json:"type"`
	Status    string        `json:"status"`
	StartTime time.Time     `json:"startTime,omitzero"`
	EndTime   time.Time     `json:"endTime,omitzero"`
	Attempts  int           `json:"attempts,omitempty"`
	Inputs    any           `json:"inputs,omitempty"`
	Outputs   any           `json:"outputs,omitempty"`
	Error     *FlowRunError `json:"error,omitempty"`
}

// FlowResponse is the answer of an invoked request trigger: the Response
// action's, or 202 Accepted with the run when the flow has none (or did
// not answer in time).
type FlowResponse struct {
	StatusCode int
	Headers    map[string]string
	Body       any
	RunID      string
}

// FlowCallback is a request trigger's signed invoke URL, as
// listCallbackUrl answers: Value is the path and query, which the HTTP
// layer puts under its public URL.
type FlowCallback struct {
	Value    string            `json:"value"`
	Method   string            `json:"method"`
	BasePath string            `json:"basePath"`
	Queries  map[string]string `json:"queries"`
}

// FlowSignature is the query of an invoke URL.
type FlowSignature struct {
	APIVersion string
	SP         string
	SV         string
	Sig        string
}

// ConnectionInput creates a connection. An OAuth connection acts as the
// principal whose token it holds (the caller's own token, so a caller can
// only make a connection that acts as itself); a non-OAuth one holds
// parameters (an API key, basic credentials) for the HTTP action.
type ConnectionInput struct {
	DisplayName string            `json:"displayName,omitempty"`
	Kind        string            `json:"kind"` // ConnectionOAuth or ConnectionNonOAuth
	Parameters  map[string]string `json:"parameterValues,omitempty"`
}

// Connection is a connection as its API shows it: never its secrets.
type Connection struct {
	EnvID       string    `json:"environment"`
	API         string    `json:"apiId"`
	Name        string    `json:"-"`
	DisplayName string    `json:"displayName"`
	Kind        string    `json:"kind"`
	PrincipalID string    `json:"principalId,omitempty"`
	CreatedBy   string    `json:"createdBy"`
	CreatedTime time.Time `json:"createdTime"`
	// Root is the key its credentials are sealed under: "environment" or
	// "platform" (the MMK partition, for non-OAuth connections).
	Root string `json:"encryptedWith"`
	// Statuses is the connection's health, as Power Platform shows it: one
	// Connected, or one Error when an OAuth connection's grant no longer
	// redeems (CodeConnectionUnauthenticated: its owner must
	// re-authenticate it) or its seal can't be opened (a locked
	// environment).
	Statuses []ConnectionStatus `json:"statuses,omitempty"`
}

// Connection statuses.
const (
	ConnectionConnected = "Connected"
	ConnectionError     = "Error"
)

// ConnectionStatus is one of a connection's statuses.
type ConnectionStatus struct {
	Status string `json:"status"` // ConnectionConnected or ConnectionError
	// Target is what failed: "token" (an OAuth connection's grant).
	Target string                 `json:"target,omitempty"`
	Error  *ConnectionStatusError `json:"error,omitempty"`
}

// ConnectionStatusError says why a connection's status is Error.
type ConnectionStatusError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// FlowService is Power Automate's flow management (flows package, served
// by http, and the http Client over HTTPS). Every method but InvokeTrigger
// takes the caller from ctx and needs it to be a member of the
// environment or a platform administrator.
type FlowService interface {
	PutFlow(ctx context.Context, envID, flowID string, in *FlowInput) (*Flow, error)
	PatchFlow(ctx context.Context, envID, flowID string, in *FlowInput) (*Flow, error)
	GetFlow(ctx context.Context, envID, flowID string) (*Flow, error)
	ListFlows(ctx context.Context, envID string) ([]*Flow, error)
	DeleteFlow(ctx context.Context, envID, flowID string) error
	// SetFlowState starts (FlowStarted) or stops (FlowStopped) a flow.
	SetFlowState(ctx context.Context, envID, flowID, state string) (*Flow, error)
	// RunTrigger runs a flow's manual (Request) trigger with body.
	RunTrigger(ctx context.Context, envID, flowID, trigger string, body json.RawMessage) (*FlowRun, error)
	// CallbackURL signs a request trigger's invoke URL; regenerate first
	// replaces the flow's signing key, so every earlier URL stops working.
	CallbackURL(ctx context.Context, envID, flowID, trigger string, regenerate bool) (*FlowCallback, error)
	// InvokeTrigger runs a request trigger called at its signed URL: no
	// caller, the signature is the authorization (CodeUnauthorized when it
	// is wrong or missing).
	InvokeTrigger(ctx context.Context, envID, flowID, trigger string, sig FlowSignature, body json.RawMessage) (*FlowResponse, error)
	ListRuns(ctx context.Context, envID, flowID string) ([]*FlowRun, error)
	GetRun(ctx context.Context, envID, flowID, runID string) (*FlowRun, error)
	RunActions(ctx context.Context, envID, flowID, runID string) ([]*FlowRunAction, error)
	CancelRun(ctx context.Context, envID, flowID, runID string) (*FlowRun, error)
	// ResubmitRun starts a new run with the trigger outputs of runID.
	ResubmitRun(ctx context.Context, envID, flowID, runID string) (*FlowRun, error)

	PutConnection(ctx context.Context, envID, api, name string, in *ConnectionInput) (*Connection, error)
	GetConnection(ctx context.Context, envID, api, name string) (*Connection, error)
	ListConnections(ctx context.Context, envID string) ([]*Connection, error)
	DeleteConnection(ctx context.Context, envID, api, name string) error
}
