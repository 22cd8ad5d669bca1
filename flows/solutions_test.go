package flows_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// setFlowsInSolutions sets the environment's "create new flows in
// solutions" as an admin does.
func (w *world) setFlowsInSolutions(t *testing.T, on bool) {
	t.Helper()
	e, err := w.p.UpdateEnvironment(w.ctx, w.env.ID, keyhold.EnvironmentUpdate{CreateFlowsInSolutions: &on})
	if err != nil || e.FlowsInSolutions() != on {
		t.Fatalf("set createFlowsInSolutions %v: %+v, %v", on, e, err)
	}
}

// flowsInSolutions reads the environment's setting from the store.
func (w *world) flowsInSolutions(t *testing.T) bool {
	t.Helper()
	e, err := w.p.FindEnvironment(w.ctx, w.env.ID)
	if err != nil {
		t.Fatal(err)
	}
	return e.FlowsInSolutions()
}

// TestCreateFlowsInSolutions: the setting is off on the platform key (a
// flow created without a solution stays outside any); once the
// environment is linked it is on, and a new Power Apps v1 flow without a
// solutionId is created in the default solution, so it is not refused and
// stays off the platform-key list; turned off explicitly, that holds
// across reads and the same create is refused, with nothing stored.
func TestCreateFlowsInSolutions(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		if w.flowsInSolutions(t) {
			t.Fatal("on before the link")
		}
		name := "App flow"
		put := func(id, kind string) (*keyhold.Flow, error) {
			return w.fl.PutFlow(w.ctx, w.env.ID, id, &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(reqDef(kind, ""))})
		}
		f, err := put("before", "Button")
		if err != nil || f.SolutionID != "" {
			t.Fatalf("before the link: %+v, %v", f, err)
		}
		w.markLinked(t)
		if !w.flowsInSolutions(t) {
			t.Fatal("off after the link")
		}
		f, err = put("app", "PowerApp")
		if err != nil || f.SolutionID != keyhold.DefaultSolutionID {
			t.Fatalf("after the link: %+v, %v", f, err)
		}
		if got, err := w.fl.GetFlow(w.ctx, w.env.ID, "app"); err != nil || got.SolutionID != keyhold.DefaultSolutionID {
			t.Fatalf("stored: %+v, %v", got, err)
		}
		if ps, err := w.fl.PlatformFlows(w.ctx, w.env.ID); err != nil || len(ps) != 0 {
			t.Fatalf("a flow in the default solution is in a category: %+v, %v", ps, err)
		}
		// An existing flow keeps having no solution when saved again.
		if f, err := w.fl.PatchFlow(w.ctx, w.env.ID, "before", &keyhold.FlowInput{DisplayName: &name}); err != nil || f.SolutionID != "" {
			t.Fatalf("existing flow saved: %+v, %v", f, err)
		}
		w.setFlowsInSolutions(t, false)
		if w.flowsInSolutions(t) {
			t.Fatal("explicit off not honoured")
		}
		if _, err := put("app2", "PowerApp"); keyhold.ErrorCode(err) != keyhold.CodeNotSupported || !strings.Contains(err.Error(), "createFlowsInSolutions") {
			t.Fatalf("setting off: %v", err)
		}
		if _, err := w.fl.GetFlow(w.ctx, w.env.ID, "app2"); keyhold.ErrorCode(err) != keyhold.CodeFlowNotFound {
			t.Fatalf("refused flow stored: %v", err)
		}
		w.setFlowsInSolutions(t, true)
		f, err = put("app3", "PowerApp")
		if err != nil || f.SolutionID != keyhold.DefaultSolutionID {
			t.Fatalf("turned on again: %+v, %v", f, err)
		}
	})
}

// TestFlowsInSolutionsDefault: unset, the setting follows the link; set,
// it is what was set either way.
func TestFlowsInSolutionsDefault(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		policy string
		set    *bool
		want   bool
	}{{"", nil, false}, {"p", nil, true}, {"p", &off, false}, {"", &on, true}} {
		e := &keyhold.Environment{PolicyID: c.policy, CreateFlowsInSolutions: c.set}
		if got := e.FlowsInSolutions(); got != c.want {
			t.Errorf("policy %q set %v: %v, want %v", c.policy, c.set, got, c.want)
		}
	}
}
