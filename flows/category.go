package flows

import (
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/placement"
)

// FlowShape is what the classifier needs of a flow (placement.FlowShape).
type FlowShape = placement.FlowShape

// Classify says which of an environment's flows stay on the platform key
// under a customer-managed key, and why (placement.Classify: the re-key
// in platform places flows with the same code).
func Classify(shapes []FlowShape) map[string]*keyhold.PlatformFlow { return placement.Classify(shapes) }
