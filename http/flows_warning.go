package http

import "github.com/keyhold/keyhold"

// cmkFlowWarning is spec 004's warning on an environment linked to a
// customer key whose flows are not all under it: properties.cmkFlowWarning
// of the environment, and cmkFlowWarning of its environmentsWithPolicies
// row. platformKeyFlows is counted in the store.
type cmkFlowWarning struct {
	Message          string `json:"message"`
	PlatformKeyFlows int    `json:"platformKeyFlows"`
}

// toCMKFlowWarning is e's warning; nil when it has none.
func toCMKFlowWarning(e *keyhold.Environment) *cmkFlowWarning {
	if e.PlatformKeyFlows <= 0 {
		return nil
	}
	return &cmkFlowWarning{Message: keyhold.FlowWarningMessage, PlatformKeyFlows: e.PlatformKeyFlows}
}

// fromCMKFlowWarning is the client's reverse: the count, 0 without one.
func fromCMKFlowWarning(w *cmkFlowWarning) int {
	if w == nil {
		return 0
	}
	return w.PlatformKeyFlows
}
