package flows_test

import (
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/flows/wdl"
)

// TestClassify is spec 004's table, one row per case: each flow's own
// category, and parents kept with their children, transitively and
// through cycles. A flow not in the answer moves to the customer key.
func TestClassify(t *testing.T) {
	req := func(kind string) wdl.Trigger { return wdl.Trigger{Name: "manual", Type: "Request", Kind: kind} }
	teams := wdl.Trigger{Name: "t", Type: "OpenApiConnectionWebhook", API: "shared_teams"}
	rec := wdl.Trigger{Name: "r", Type: "Recurrence"}
	type want map[string]string // flow → category ("" : moves)
	cases := []struct {
		name   string
		shapes []flows.FlowShape
		want   want
	}{
		{"v1 outside a solution stays", []flows.FlowShape{{ID: "a", Trigger: req("PowerApp")}}, want{"a": keyhold.FlowCategoryPowerAppsV1}},
		{"v1 in a solution moves", []flows.FlowShape{{ID: "a", SolutionID: "sol", Trigger: req("PowerApp")}}, want{"a": ""}},
		{"v2 outside a solution moves", []flows.FlowShape{{ID: "a", Trigger: req("PowerAppV2")}}, want{"a": ""}},
		{"http request stays", []flows.FlowShape{{ID: "a", Trigger: req("Http")}}, want{"a": keyhold.FlowCategoryRequestURL}},
		{"http request in a solution stays", []flows.FlowShape{{ID: "a", SolutionID: "s", Trigger: req("Http")}}, want{"a": keyhold.FlowCategoryRequestURL}},
		{"teams trigger stays", []flows.FlowShape{{ID: "a", Trigger: teams}}, want{"a": keyhold.FlowCategoryRequestURL}},
		{"button and recurrence move", []flows.FlowShape{{ID: "a", Trigger: req("Button")}, {ID: "b", Trigger: rec}, {ID: "c", Trigger: req("Skills")}}, want{"a": "", "b": "", "c": ""}},
		{"parents transitively", []flows.FlowShape{
			{ID: "top", Trigger: rec, Children: []string{"mid"}},
			{ID: "mid", Trigger: req("Button"), Children: []string{"leaf"}},
			{ID: "leaf", Trigger: req("Http")},
			{ID: "other", Trigger: rec, Children: []string{"free"}},
			{ID: "free", Trigger: req("PowerAppV2")},
		}, want{"top": keyhold.FlowCategoryParent, "mid": keyhold.FlowCategoryParent, "leaf": keyhold.FlowCategoryRequestURL, "other": "", "free": ""}},
		{"a cycle without a stayer moves", []flows.FlowShape{{ID: "a", Trigger: rec, Children: []string{"b"}}, {ID: "b", Trigger: rec, Children: []string{"a"}}}, want{"a": "", "b": ""}},
		{"a cycle with a stayer stays", []flows.FlowShape{
			{ID: "a", Trigger: rec, Children: []string{"b"}}, {ID: "b", Trigger: rec, Children: []string{"a", "c"}}, {ID: "c", Trigger: teams},
		}, want{"a": keyhold.FlowCategoryParent, "b": keyhold.FlowCategoryParent, "c": keyhold.FlowCategoryRequestURL}},
		{"an unknown child is no reason to stay", []flows.FlowShape{{ID: "a", Trigger: rec, Children: []string{"gone"}}}, want{"a": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := flows.Classify(c.shapes)
			for id, cat := range c.want {
				p := got[id]
				switch {
				case cat == "" && p != nil:
					t.Errorf("%s stays (%s), want it to move", id, p.Category)
				case cat != "" && p == nil:
					t.Errorf("%s moves, want it to stay as %s", id, cat)
				case cat != "" && p.Category != cat:
					t.Errorf("%s is %s, want %s", id, p.Category, cat)
				case p != nil && (p.Reason == "" || p.Fix == "" || p.FlowID != id):
					t.Errorf("%s: %+v lacks its reason, fix or id", id, p)
				case p != nil && cat == keyhold.FlowCategoryParent && got[p.Via] == nil:
					t.Errorf("%s: via %q does not stay", id, p.Via)
				}
			}
			if len(got) > len(c.want) {
				t.Errorf("more flows stay than given: %v", got)
			}
		})
	}
}
