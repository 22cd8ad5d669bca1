package wdl

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyhold/keyhold"
)

// FuzzParse feeds Parse arbitrary definitions: it must refuse with
// InvalidFlowDefinition or accept, never panic; an accepted definition
// must execute without panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(def(`{"C": {"type": "Compose", "inputs": "@{concat('a', triggerBody()?['x'])}"}}`)))
	f.Add([]byte(def(`{"I": {"type": "If", "expression": {"and": [{"equals": [1, 1]}]}, "actions": {"U": {"type": "Until", "expression": "@true", "actions": {}}}}}`)))
	f.Add([]byte(`{"triggers": {"r": {"type": "Recurrence", "recurrence": {"frequency": "Month", "interval": 1}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			if keyhold.ErrorCode(err) != keyhold.CodeInvalidFlowDefinition {
				t.Fatalf("error with code %s: %v", keyhold.ErrorCode(err), err)
			}
			return
		}
		h := newHost()
		h.children = nil
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		saves := 0
		Execute(ctx, d, NewRun(Outputs{Body: map[string]any{"x": "y"}}), nil, h, func(*RunState) error {
			if saves++; saves > 2000 {
				cancel()
			}
			return nil
		})
	})
}

// FuzzExpression feeds the expression parser and evaluator arbitrary
// templates.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{"@concat('a', 'b')", "x @{triggerBody()?['a'][0]} y", "@@x", "@if(true, 1, 2)", "@formatDateTime(utcNow(), 'yyyy')", "@json('[1]')[0]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := compileTemplate(s)
		if err != nil {
			return
		}
		d, _ := Parse([]byte(def(`{}`)))
		e := &env{d: d, st: NewRun(Outputs{Body: map[string]any{"a": []any{1.0}}}), host: newHost()}
		e.evalTemplate(tm)
	})
}
