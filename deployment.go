package keyhold

import (
	"context"
	"encoding/json"
	"time"
)

// Template deployments: the Microsoft.Resources/deployments resource, an
// ARM template deployed into a resource group. The deployment record is
// what ARM answers about it afterwards: its state, the resources it made
// and, when it failed, why.

// Deployment provisioning states, as ARM reports them.
const (
	DeploymentSucceeded = "Succeeded"
	DeploymentFailed    = "Failed"
)

// Deployment is a template deployment in a resource group. Names compare
// case-insensitively, as ARM's do.
type Deployment struct {
	SubscriptionID    string `json:"subscriptionId"`
	ResourceGroup     string `json:"resourceGroup"`
	Name              string `json:"name"`
	TenantID          string `json:"tenantId"`
	Mode              string `json:"mode"`              // Incremental
	ProvisioningState string `json:"provisioningState"` // DeploymentSucceeded or DeploymentFailed
	// OutputResources are the ids of the resources deployed, in order.
	OutputResources []string `json:"outputResources"`
	// Outputs are the template's evaluated outputs, as ARM answers them:
	// {"name":{"type":"String","value":…}}; nil when it has none.
	Outputs json.RawMessage `json:"outputs,omitempty"`
	// ErrorCode and ErrorMessage say why a failed deployment failed.
	ErrorCode    string    `json:"errorCode,omitempty"`
	ErrorMessage string    `json:"errorMessage,omitempty"`
	CreatedBy    string    `json:"createdBy"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"` // the time of the last run
}

// ID returns the deployment's ARM resource id.
func (d *Deployment) ID() string {
	return "/subscriptions/" + d.SubscriptionID + "/resourceGroups/" + d.ResourceGroup +
		"/providers/Microsoft.Resources/deployments/" + d.Name
}

// DeploymentTx is the part of a store transaction that holds template
// deployments. Lookups of a missing deployment return CodeNotFound.
//
// It is not (yet) part of Tx: the policy package, which deploys templates,
// finds it on the store's transactions with a type assertion.
type DeploymentTx interface {
	// PutDeployment inserts d or replaces the deployment of that name
	// (whose creator and creation time stay).
	PutDeployment(ctx context.Context, d *Deployment) error
	Deployment(ctx context.Context, subscriptionID, resourceGroup, name string) (*Deployment, error)
	// ListDeployments returns a resource group's deployments by name.
	ListDeployments(ctx context.Context, subscriptionID, resourceGroup string) ([]*Deployment, error)
	DeleteDeployment(ctx context.Context, subscriptionID, resourceGroup, name string) error
}

// Deployment modes.
const (
	DeploymentModeIncremental = "Incremental"
	DeploymentModeComplete    = "Complete"
)

// DeploymentRequest is what PUT …/deployments/{name} asks for.
type DeploymentRequest struct {
	Mode string
	// Template is the template, inline (templateLink is not supported).
	Template json.RawMessage
	// Parameters are the parameter values: {"name":{"value":…}}; nil for
	// none.
	Parameters json.RawMessage
}

// DeploymentService is the template deployment engine. The deploy package
// implements it, and so does the http package's PolicyClient, over HTTPS.
// Every method takes the caller's identity from ctx; see package deploy
// for the rules.
type DeploymentService interface {
	Deploy(ctx context.Context, sub, rg, name string, req DeploymentRequest) (*Deployment, bool, error)
	Deployment(ctx context.Context, sub, rg, name string) (*Deployment, error)
}
