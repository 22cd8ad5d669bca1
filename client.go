package keyhold

import (
	"context"
	"time"
)

// The contracts a remote client of the server adds to the services' own,
// and the groups of contracts that one command group of the cli takes.
// The http package's Client implements every one of them (checked where
// it is declared); the cli's commands name them in their options, so that
// a test can hand a command a fake of just what it calls.

// OperationWaiter follows an operation to its end: it reads the operation
// every `every`, or as the server's Retry-After asks if that is longer,
// until it has finished, calling progress (if not nil) with each reading,
// and returns the last. An operation that Failed comes with its error as
// a *Error; if ctx ends first, the operation as last seen comes with
// ctx's error.
type OperationWaiter interface {
	WaitOperation(ctx context.Context, id string, every time.Duration, progress func(*Operation)) (*Operation, error)
}

// PolicyResolver finds the systemId of the enterprise policy whose ARM
// resource id is policyID, which linking takes.
type PolicyResolver interface {
	PolicySystemID(ctx context.Context, policyID string) (string, error)
}

// EventViewer lists the caller's tenant's events as the admin API renders
// them (EventView), newest first, paged as EventService.ListEvents.
type EventViewer interface {
	ListEventViews(ctx context.Context, beforeID int64, limit int) ([]EventView, error)
}

// TokenSource gets an access token for scope with the client's own
// credentials.
type TokenSource interface {
	Token(ctx context.Context, scope string) (*Token, error)
}

// ARMClient is what the resource manager and directory commands take.
type ARMClient interface {
	ResourceManager
	Directory
}

// EnvironmentClient is what the environment, data and audit commands take.
type EnvironmentClient interface {
	EnvironmentService
	DataService
	AuditService
	CoverageService
}

// APIClient is a connection as "login" checks it: the environment
// services, and the token endpoint that proves the credentials.
type APIClient interface {
	EnvironmentClient
	TokenSource
}

// BackupClient is what the backup, restore, copy and reset commands take.
type BackupClient interface {
	BackupService
	OperationWaiter
}

// CMKClient is what the customer-managed key commands take: environments
// (to find an environment's linked policy), the CMK lifecycle, waiting for
// an operation, and resolving a policy's resource id to its systemId.
type CMKClient interface {
	EnvironmentService
	CMKService
	OperationWaiter
	PolicyResolver
}

// EventClient is what the events and tenant-settings commands take.
type EventClient interface {
	EventViewer
	TenantSettings(ctx context.Context) (*TenantSettings, error)
	UpdateTenantSettings(ctx context.Context, patch TenantSettingsPatch) (*TenantSettings, error)
	// TestWebhook writes a WebhookTest event, as WebhookTester does, and
	// returns it as the API renders it.
	TestWebhook(ctx context.Context) (*EventView, error)
}

// TenantEgressClient is what "keyhold tenant egress" takes.
type TenantEgressClient interface {
	TenantEgressService
}
