// Package placement decides where a cloud flow's items are sealed when its
// environment is linked to a customer-managed key (spec 004, issue 16):
// the flows that stay on the platform key's partition and why. It is its
// own small package so that both the flows service (its admin listing,
// the save that moves a fixed flow) and platform's re-key (which places
// every flow at a link, opening each definition itself, since flows never
// holds a key) classify with the same code, without platform importing
// the flows service.
package placement

import (
	"encoding/json"
	"slices"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows/wdl"
)

// FlowShape is what the classifier needs of a flow: nothing sealed beyond
// its parsed trigger and child flows.
type FlowShape struct {
	ID          string
	DisplayName string
	SolutionID  string // "" outside any solution
	Trigger     wdl.Trigger
	Children    []string // flow ids its Workflow actions call
}

// The reason and fix of each category, in spec 004's words, said so that
// an administrator can act on them.
var categoryText = map[string][2]string{
	keyhold.FlowCategoryPowerAppsV1: {
		"a flow outside any solution with a Power Apps v1 trigger: the apps that call it reference it where it is",
		"switch its trigger to Power Apps (V2) and save it (recommended), or add it to a solution; or use Save as and point the calling apps at the copy",
	},
	keyhold.FlowCategoryRequestURL: {
		"its trigger is called at a URL (an HTTP request or a Teams trigger) that would change if the flow moved",
		"use Save as to create a copy under the customer-managed key, update the calling system to the copy's new URL, then delete the original",
	},
	keyhold.FlowCategoryParent: {
		"it calls a child flow that stays on the platform key, and a chain is not split across two keys",
		"fix the child flow named in via first; this flow then moves with it",
	},
}

// Classify says which of an environment's flows stay on the platform key
// when it is linked to a customer-managed key, and why: the categories of
// spec 004's table, parents transitively. Flows not in the answer move.
// It is pure: the same shapes always give the same answer.
func Classify(shapes []FlowShape) map[string]*keyhold.PlatformFlow {
	out := map[string]*keyhold.PlatformFlow{}
	byID := map[string]FlowShape{}
	for _, s := range shapes {
		byID[s.ID] = s
		if c := ownCategory(s); c != "" {
			out[s.ID] = placement(s, c, "")
		}
	}
	// Parents, to a fixed point: each pass adds at least one flow or
	// ends, so it stops after at most len(shapes) passes, cycles included.
	ids := make([]string, 0, len(shapes))
	for _, s := range shapes {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	for changed := true; changed; {
		changed = false
		for _, id := range ids {
			if out[id] != nil {
				continue
			}
			s := byID[id]
			for _, child := range s.Children {
				if out[child] != nil {
					out[id] = placement(s, keyhold.FlowCategoryParent, child)
					changed = true
					break
				}
			}
		}
	}
	return out
}

// ownCategory is the category a flow is in by itself, "" if none.
func ownCategory(s FlowShape) string {
	t := s.Trigger
	switch {
	case t.Type == "Request" && t.Kind == "PowerApp" && s.SolutionID == "":
		return keyhold.FlowCategoryPowerAppsV1
	case t.Type == "Request" && t.Kind == "Http":
		return keyhold.FlowCategoryRequestURL
	case t.Type == "OpenApiConnectionWebhook" && t.API == "shared_teams":
		return keyhold.FlowCategoryRequestURL
	}
	return ""
}

func placement(s FlowShape, category, via string) *keyhold.PlatformFlow {
	txt := categoryText[category]
	return &keyhold.PlatformFlow{FlowID: s.ID, DisplayName: s.DisplayName, Category: category, Reason: txt[0], Fix: txt[1], Via: via}
}

// Shape reads a flow's shape from its record and its opened content (the
// JSON the flows package seals: {"definition": …, …}), parsing the
// definition for its trigger and child flows.
func Shape(rec *keyhold.FlowRecord, content []byte) (FlowShape, error) {
	var body struct {
		Definition json.RawMessage `json:"definition"`
	}
	if err := json.Unmarshal(content, &body); err != nil {
		return FlowShape{}, keyhold.Errorf(keyhold.CodeInternal, "flow %s: its stored content is not valid", rec.ID).WithCause(err)
	}
	def, err := wdl.Parse(body.Definition)
	if err != nil {
		return FlowShape{}, err
	}
	return Of(rec, def), nil
}

// Of is the shape of a flow whose definition is parsed already.
func Of(rec *keyhold.FlowRecord, def *wdl.Definition) FlowShape {
	return FlowShape{ID: rec.ID, DisplayName: rec.DisplayName, SolutionID: rec.SolutionID, Trigger: def.Trigger(), Children: def.ChildFlows()}
}
