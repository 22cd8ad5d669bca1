package keyhold

import (
	"strings"
	"time"
)

// Locations are the spec's 17 enterprise-policy and environment regions.
var Locations = []string{
	"unitedstates", "southafrica", "switzerland", "germany", "unitedarabemirates",
	"france", "uk", "japan", "india", "canada", "southamerica", "europe", "asia",
	"australia", "korea", "norway", "singapore",
}

// NormalizeLocation returns a location as ARM stores and compares it:
// trimmed, without spaces, lower case ("West Europe" is "westeurope"). Every
// location a client gives is folded by this one function before it is
// stored or compared.
func NormalizeLocation(loc string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(loc), " ", ""))
}

// ValidLocation reports whether loc is one of Locations.
func ValidLocation(loc string) bool {
	for _, l := range Locations {
		if l == loc {
			return true
		}
	}
	return false
}

// EnvironmentSKU is an environment's type.
type EnvironmentSKU string

// Environment types that can be created.
const (
	SKUProduction           EnvironmentSKU = "Production"
	SKUSandbox              EnvironmentSKU = "Sandbox"
	SKUTrial                EnvironmentSKU = "Trial"
	SKUDeveloper            EnvironmentSKU = "Developer"
	SKUTeams                EnvironmentSKU = "Teams"
	SKUSupportInvestigation EnvironmentSKU = "SupportInvestigation"
)

// SKUs lists the environment types that can be created.
var SKUs = []EnvironmentSKU{SKUProduction, SKUSandbox, SKUTrial, SKUDeveloper, SKUTeams, SKUSupportInvestigation}

// RuntimeState is whether an environment serves data.
type RuntimeState string

// Runtime states. Locked is shown to users as "Environment disabled".
const (
	StateEnabled   RuntimeState = "Enabled"
	StateDisabled  RuntimeState = "Disabled"
	StateAdminMode RuntimeState = "AdminMode"
	StateLocked    RuntimeState = "Locked"
)

// KeyManagedBy says whose key protects an environment's data.
type KeyManagedBy string

// Key custody values, as the spec shows them.
const (
	KeyManagedByMicrosoft            KeyManagedBy = "Microsoft"
	KeyManagedByCustomer             KeyManagedBy = "Customer"
	KeyManagedByCustomerViaMicrosoft KeyManagedBy = "CustomerViaMicrosoft"
)

// EnvironmentGate is the part of an Environment that decides whether it
// serves: its state, whose key protects it (a BYOK tenant's lock applies
// to CustomerViaMicrosoft), its tenant and its current epoch. Tx reads it
// alone where a check runs on a hot path (a flow run's saves); a refusal
// reads the whole Environment for its message.
type EnvironmentGate struct {
	ID           string
	TenantID     string
	State        RuntimeState
	KeyManagedBy KeyManagedBy
	Epoch        uint32
}

// Environment is a Dataverse-like environment: a container of tables, rows
// and files, always encrypted at rest under its environment key (EK).
//
// Epoch is the EK epoch that new writes use. Older epochs stay readable until
// a re-key has moved every item off them.
type Environment struct {
	ID          string         `json:"id"`
	TenantID    string         `json:"tenantId"`
	DisplayName string         `json:"displayName"`
	Location    string         `json:"location"`
	SKU         EnvironmentSKU `json:"environmentSku"`
	Managed     bool           `json:"managed"`
	// FinOps says the environment has finance and operations apps, and
	// PowerPlatformIntegration whether Power Platform integration is
	// enabled on it (meaningful only with FinOps). Both are set at
	// creation; integration can be turned on later, never off. The spec
	// keeps a finance and operations environment without integration
	// under the Microsoft-managed key: it can't be linked to a policy.
	FinOps                   bool         `json:"financeAndOperations"`
	PowerPlatformIntegration bool         `json:"powerPlatformIntegration"`
	State                    RuntimeState `json:"state"`
	KeyManagedBy             KeyManagedBy `json:"keyManagedBy"`
	Epoch                    uint32       `json:"epoch"`
	// PolicyID is the ARM resource id of the enterprise policy the
	// environment is linked to ("" when none), PolicySystemID its systemId;
	// LinkStatus is "Linked" while
	// it is. EncryptionStatus is the state of the last encryption operation
	// (link, unlink, swap, re-key), LastOperationID its id.
	PolicyID         string           `json:"policyId,omitempty"`
	PolicySystemID   string           `json:"policySystemId,omitempty"`
	LinkStatus       string           `json:"linkStatus,omitempty"`
	EncryptionStatus EncryptionStatus `json:"encryptionStatus,omitempty"`
	LastOperationID  string           `json:"lastOperationId,omitempty"`
	// LockedAt is when the environment was last Locked (its customer-managed
	// key found inaccessible); zero unless it is Locked. The deletion
	// countdown of a Locked environment runs from it.
	LockedAt time.Time `json:"lockedAt,omitzero"`
	// RestoreOperationID is the id of the restore, copy or reset that is
	// replacing the environment's data, running or paused ("" when none
	// is): while it is set, writes of the environment's data are refused
	// (409) and reads go on. It is not stored: the platform fills it in
	// from the running operation, so it ends with the operation, also
	// after a restart.
	RestoreOperationID string `json:"restoreOperationId,omitempty"`
	// PlatformKeyFlows is, in an environment linked to a customer key,
	// how many of its flows are still sealed under the platform key's
	// partition (epoch PlatformEpoch), counted in the store: spec 004's
	// warning (FlowWarningMessage) shows while it is above 0. Always 0
	// for an environment without a policy. Not stored: the platform
	// fills it in when it answers an environment.
	PlatformKeyFlows int `json:"platformKeyFlows,omitempty"`
	// CreateFlowsInSolutions is the environment setting "create new flows
	// in solutions" as an admin set it (spec 004), nil while never set:
	// FlowsInSolutions says what it is then.
	CreateFlowsInSolutions *bool `json:"createFlowsInSolutions,omitempty"`
	// Version grows by one with each update; UpdateEnvironment refuses a
	// write whose Version is not the stored one (optimistic concurrency
	// across replicas).
	Version   int64     `json:"version"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// DefaultSolutionID is the solution a flow created without a solutionId
// goes into while its environment creates new flows in solutions
// (FlowsInSolutions): a flow there is a solution flow, so it never falls
// into spec 004's non-solution categories.
const DefaultSolutionID = "Default"

// FlowsInSolutions says whether a flow created in the environment without
// a solution goes into DefaultSolutionID. Spec 004 has the setting on in
// an environment protected by a customer-managed key, so unless an admin
// set it (CreateFlowsInSolutions), it is on exactly while the environment
// is linked to an enterprise policy.
func (e *Environment) FlowsInSolutions() bool {
	if e.CreateFlowsInSolutions != nil {
		return *e.CreateFlowsInSolutions
	}
	return e.PolicyID != ""
}

// MaxDisplayName is the longest display name accepted, in bytes.
const MaxDisplayName = 200

// Validate checks the fields a caller supplies when creating an environment.
// Its errors quote the bad value and list the accepted ones.
func (e *Environment) Validate() error {
	name := strings.TrimSpace(e.DisplayName)
	switch {
	case name == "":
		return Errorf(CodeBadRequest, "properties.displayName is required: give the environment a name")
	case len(name) > MaxDisplayName:
		return Errorf(CodeBadRequest, "properties.displayName is %d bytes long: use at most %d", len(name), MaxDisplayName)
	case CheckText(CodeBadRequest, "properties.displayName", name) != nil:
		return CheckText(CodeBadRequest, "properties.displayName", name)
	case !ValidLocation(e.Location):
		return Errorf(CodeInvalidLocation, "location %q is not supported: use one of %s", e.Location, strings.Join(Locations, ", "))
	case e.PowerPlatformIntegration && !e.FinOps:
		return Errorf(CodeBadRequest, "Power Platform integration is asked for an environment without finance and operations apps: "+
			"it is an option of finance and operations environments only; set properties.financeAndOperations, or leave the integration out")
	}
	for _, s := range SKUs {
		if e.SKU == s {
			return nil
		}
	}
	names := make([]string, len(SKUs))
	for i, s := range SKUs {
		names[i] = string(s)
	}
	return Errorf(CodeInvalidSKU, "properties.environmentSku %q is not supported: use one of %s", e.SKU, strings.Join(names, ", "))
}

// EncryptionStatus is the state of an environment's last encryption
// operation, as "Environments with policies" shows it.
type EncryptionStatus string

// Encryption statuses.
const (
	EncryptionNotStarted EncryptionStatus = "NotStarted"
	EncryptionRunning    EncryptionStatus = "Running"
	EncryptionSucceeded  EncryptionStatus = "Succeeded"
	EncryptionFailed     EncryptionStatus = "Failed"
)

// LinkStatusLinked is Environment.LinkStatus while a policy is linked.
const LinkStatusLinked = "Linked"

// EnvironmentFilter selects environments. Empty fields match all.
type EnvironmentFilter struct {
	TenantID string
	ID       string
	// PolicyID selects the environments linked to an enterprise policy
	// (its ARM resource id, compared case-insensitively).
	PolicyID string
}
