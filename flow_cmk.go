package keyhold

import "context"

// Categories of flows that stay on the platform key (spec 004, "Protect
// flows that continue to be protected by Microsoft Managed Keys") when
// their environment is linked to a customer-managed key. Each is a reason
// the flow cannot move without breaking whoever calls it.
const (
	// FlowCategoryPowerAppsV1: a flow outside any solution with a Power
	// Apps v1 trigger (Request kind "PowerApp"); the apps that call it
	// reference it where it is.
	FlowCategoryPowerAppsV1 = "PowerAppsV1NotInSolution"
	// FlowCategoryRequestURL: a Request trigger of kind "Http" or a
	// Teams webhook trigger; moving the flow would change its URL.
	FlowCategoryRequestURL = "TriggerURL"
	// FlowCategoryParent: a flow that calls (as a child flow, at any
	// depth) a flow that stays; moving only the parent would split a
	// working chain across two keys.
	FlowCategoryParent = "ParentOfUnmigratedFlow"
)

// PlatformFlow is a flow that stays sealed under the platform key's
// partition in a customer-key environment, with why and what to do: the
// equivalent of the spec's PowerShell listing.
type PlatformFlow struct {
	FlowID      string `json:"flowName"`
	DisplayName string `json:"displayName"`
	Category    string `json:"category"`
	Reason      string `json:"reason"`
	Fix         string `json:"fix"`
	// Via is, for FlowCategoryParent, the child flow that keeps it on
	// the platform key (the first found); "" otherwise.
	Via string `json:"via,omitempty"`
}

// FlowCMKService answers, for an environment, which of its flows would
// stay on (or are kept on) the platform key and why. Only a platform
// administrator of the environment's tenant may ask.
type FlowCMKService interface {
	PlatformFlows(ctx context.Context, envID string) ([]*PlatformFlow, error)
}

// Flow stores as FlowEpochCount names them: the stores the coverage
// report lists for flows.
const (
	FlowCountFlows       = "flows"
	FlowCountRuns        = "runs"
	FlowCountConnections = "connections"
)

// FlowEpochCount is how many items of one flow store (FlowCountFlows,
// FlowCountRuns, FlowCountConnections) of an environment are sealed under
// one epoch (PlatformEpoch: the platform key's partition). Counted by the
// store, never estimated: the coverage report's flows rows.
type FlowEpochCount struct {
	Store string `json:"store"`
	Epoch uint32 `json:"epoch"`
	Count int    `json:"count"`
}

// FlowWarningMessage is spec 004's warning, shown on an environment linked
// to a customer key (and on its row of the environments with policies)
// while some of its flows are still sealed under the platform key
// (Environment.PlatformKeyFlows).
const FlowWarningMessage = "Power Automate flows are still protected with the Microsoft Managed Key"
