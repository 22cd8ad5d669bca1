package keyhold

import "context"

// FlowSaveAs is what Save as takes (issue 16, spec 004's fix for the flows
// a customer key leaves on the platform key): the copy's display name and,
// optionally, the solution it goes in (nil: the original's).
type FlowSaveAs struct {
	DisplayName string  `json:"displayName"`
	SolutionID  *string `json:"solutionId,omitempty"`
}

// FlowSaveAsService copies a flow under a new id. The copy is a new flow
// in every way that matters to custody: sealed under the environment's
// current epoch (the customer key in a linked environment) whatever the
// original is sealed under, with no callback key of its own until one is
// asked for (so a request trigger gets a new signed URL, and the
// original's keeps working until the original is deleted). Connection
// references are copied; runs are not. The caller needs the rights to
// create a flow in the environment, and the copy is checked as a
// creation.
type FlowSaveAsService interface {
	SaveFlowAs(ctx context.Context, envID, flowID string, in *FlowSaveAs) (*Flow, error)
}
