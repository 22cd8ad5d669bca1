package wdl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// resumeDef touches every kind of step: a variable, a host call with
// retries, a Foreach of host calls inside a Scope, an If, a Until and a
// Response.
const resumeDef = `{
  "triggers": {"manual": {"type": "Request", "kind": "Http"}},
  "actions": {
    "Init": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "n", "type": "integer", "value": 0}]}},
    "Start": {"type": "Http", "inputs": {"method": "POST", "uri": "https://api.example/start", "body": "@triggerBody()"}, "runAfter": {"Init": ["Succeeded"]}},
    "Work": {"type": "Scope", "actions": {
      "Each": {"type": "Foreach", "foreach": "@triggerBody()['items']", "actions": {
        "Send": {"type": "Http", "inputs": {"method": "POST", "uri": "https://api.example/item/@{item()}"}},
        "Count": {"type": "IncrementVariable", "inputs": {"name": "n"}, "runAfter": {"Send": ["Succeeded"]}}
      }}
    }, "runAfter": {"Start": ["Succeeded"]}},
    "Check": {"type": "If", "expression": "@equals(variables('n'), 3)", "actions": {
      "Poll": {"type": "Until", "expression": "@greaterOrEquals(iterationIndexes('Poll'), 1)", "limit": {"count": 5}, "actions": {
        "Ask": {"type": "Http", "inputs": {"method": "GET", "uri": "https://api.example/poll"}}
      }}
    }, "else": {"actions": {"Wrong": {"type": "Terminate", "inputs": {"runStatus": "Failed"}}}}, "runAfter": {"Work": ["Succeeded"]}},
    "Reply": {"type": "Response", "inputs": {"statusCode": 200, "body": {"n": "@variables('n')", "start": "@body('Start')"}}, "runAfter": {"Check": ["Succeeded"]}}
  }
}`

var errCrash = errors.New("crash")

func clone(t *testing.T, st *RunState) *RunState {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out RunState
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestResumeAfterCrash crashes a run after each possible number of saves,
// then executes the saved state again: no host call is repeated for an
// action that had finished, and the run ends as an uninterrupted one does.
func TestResumeAfterCrash(t *testing.T) {
	d := mustParse(t, resumeDef)
	trigger := map[string]any{"items": []any{"a", "b", "c"}}
	ref := newHost()
	saves := 0
	want := NewRun(Outputs{Body: trigger})
	if err := Execute(context.Background(), d, want, nil, ref, func(*RunState) error { saves++; return nil }); err != nil {
		t.Fatal(err)
	}
	if want.Status != StatusSucceeded || want.Variables["n"] != 3.0 || len(ref.calls) != 7 {
		t.Fatalf("reference run: %s, n=%v, %d calls, %v", want.Status, want.Variables["n"], len(ref.calls), want.Error)
	}
	if saves < 30 {
		t.Fatalf("only %d saves", saves)
	}
	for n := 1; n < saves; n++ {
		t.Run(fmt.Sprint("after ", n, " saves"), func(t *testing.T) {
			first := newHost()
			var saved *RunState
			count := 0
			err := Execute(context.Background(), d, NewRun(Outputs{Body: trigger}), nil, first, func(s *RunState) error {
				if count++; count > n {
					return errCrash
				}
				saved = clone(t, s)
				return nil
			})
			if !errors.Is(err, errCrash) {
				t.Fatalf("Execute = %v, want the crash", err)
			}
			second := newHost()
			done := map[string]bool{}
			for p, a := range saved.Actions {
				if terminal(a.Status) {
					done[p] = true
				}
			}
			if err := Execute(context.Background(), d, saved, nil, second, func(*RunState) error { return nil }); err != nil {
				t.Fatal(err)
			}
			for _, c := range second.calls {
				if done[c.Path] {
					t.Fatalf("%s was called again after it had finished", c.Path)
				}
			}
			if len(first.calls)+len(second.calls) > len(ref.calls)+1 {
				t.Fatalf("%d + %d calls; an uninterrupted run makes %d (and at most one in flight is repeated)", len(first.calls), len(second.calls), len(ref.calls))
			}
			if saved.Status != want.Status || !reflect.DeepEqual(saved.Variables, want.Variables) || !reflect.DeepEqual(saved.Response, want.Response) {
				t.Fatalf("resumed: %s %v %+v; want %s %v %+v", saved.Status, saved.Variables, saved.Response, want.Status, want.Variables, want.Response)
			}
			if len(saved.Actions) != len(want.Actions) {
				t.Fatalf("resumed run has %d actions, want %d: %s", len(saved.Actions), len(want.Actions), keys(saved.Actions))
			}
		})
	}
}

// TestHostErrorLeavesRunUnfinished: an error that isn't an *ActionError
// (e.g. the environment is locked) stops the run unfinished; running it
// again continues where it stopped.
func TestHostErrorLeavesRunUnfinished(t *testing.T) {
	d := mustParse(t, resumeDef)
	h := newHost()
	locked := errors.New("environment locked")
	h.hook = func(c Call) error {
		if c.Path == "Each[1]/Send" {
			return locked
		}
		return nil
	}
	st := NewRun(Outputs{Body: map[string]any{"items": []any{"a", "b", "c"}}})
	if err := Execute(context.Background(), d, st, nil, h, func(*RunState) error { return nil }); !errors.Is(err, locked) {
		t.Fatalf("Execute = %v", err)
	}
	if st.Status != StatusRunning || st.Actions["Each[1]/Send"].Status != StatusRunning || st.Actions["Each[0]/Count"].Status != StatusSucceeded {
		t.Fatalf("state: %s %s", st.Status, keys(st.Actions))
	}
	h.hook = nil
	before := len(h.calls)
	if err := Execute(context.Background(), d, st, nil, h, func(*RunState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusSucceeded || st.Variables["n"] != 3.0 {
		t.Fatalf("resumed: %s n=%v", st.Status, st.Variables["n"])
	}
	for _, c := range h.calls[before:] {
		if c.Path == "Start" || c.Path == "Each[0]/Send" {
			t.Fatalf("%s repeated", c.Path)
		}
	}
	// A finished run is left alone.
	n := len(h.calls)
	if err := Execute(context.Background(), d, st, nil, h, func(*RunState) error { t.Fatal("saved a finished run"); return nil }); err != nil || len(h.calls) != n {
		t.Fatalf("re-executing a finished run: %v, %d calls", err, len(h.calls)-n)
	}
}

func TestCancelledContext(t *testing.T) {
	d := mustParse(t, resumeDef)
	ctx, cancel := context.WithCancel(context.Background())
	h := newHost()
	h.hook = func(c Call) error {
		if c.Path == "Start" {
			cancel()
		}
		return nil
	}
	st := NewRun(Outputs{Body: map[string]any{"items": []any{"a"}}})
	if err := Execute(ctx, d, st, nil, h, func(*RunState) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute = %v", err)
	}
	if st.Status != StatusRunning || st.Actions["Work"] != nil {
		t.Fatalf("state %s: %s", st.Status, keys(st.Actions))
	}
}

// execute runs src with trigger body on a new host.
func execute(t *testing.T, src string, trigger any) (*RunState, *testHost) {
	t.Helper()
	h := newHost()
	return run(t, mustParse(t, src), h, trigger), h
}

func TestStatusRules(t *testing.T) {
	fail := `"F": {"type": "Compose", "inputs": "@triggerBody()['missing']"}`
	cases := []struct {
		name, actions, status string
		skipped               []string
	}{
		{"a failure fails the run", `{` + fail + `}`, StatusFailed, nil},
		{"skipped after a failure fails the run", `{` + fail + `, "B": {"type": "Compose", "inputs": 1, "runAfter": {"F": ["Succeeded"]}}, "C": {"type": "Compose", "inputs": 1, "runAfter": {"B": ["Succeeded"]}}}`, StatusFailed, []string{"B", "C"}},
		{"a handled failure doesn't", `{` + fail + `, "H": {"type": "Compose", "inputs": "@actions('F')['status']", "runAfter": {"F": ["Failed"]}}}`, StatusSucceeded, nil},
		{"a handler skipped on success", `{"A": {"type": "Compose", "inputs": 1}, "H": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Failed"]}}}`, StatusSucceeded, []string{"H"}},
		{"try/catch", `{"Try": {"type": "Scope", "actions": {` + fail + `, "After": {"type": "Compose", "inputs": 1, "runAfter": {"F": ["Succeeded"]}}}},
			"Catch": {"type": "Compose", "inputs": "@result('Try')[0]['status']", "runAfter": {"Try": ["Failed", "TimedOut"]}}}`, StatusSucceeded, []string{"After"}},
		{"skipped runs after skipped", `{` + fail + `, "B": {"type": "Compose", "inputs": 1, "runAfter": {"F": ["Succeeded"]}}, "C": {"type": "Compose", "inputs": 1, "runAfter": {"B": ["Skipped"]}}}`, StatusSucceeded, []string{"B"}},
		{"a skipped scope skips its actions", `{` + fail + `, "S": {"type": "Scope", "actions": {"In": {"type": "Compose", "inputs": 1}}, "runAfter": {"F": ["Succeeded"]}}, "H": {"type": "Compose", "inputs": 1, "runAfter": {"S": ["Skipped"]}}}`, StatusSucceeded, []string{"S", "In"}},
		{"a failure in an iteration fails the loop", `{"L": {"type": "Foreach", "foreach": "@createArray(1, 0)", "actions": {"D": {"type": "Compose", "inputs": "@div(1, item())"}}}}`, StatusFailed, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _ := execute(t, def(c.actions), map[string]any{})
			if st.Status != c.status {
				t.Fatalf("run %s, want %s: %s %+v", st.Status, c.status, keys(st.Actions), st.Error)
			}
			for _, s := range c.skipped {
				if a := st.Actions[s]; a == nil || a.Status != StatusSkipped {
					t.Fatalf("%s: %+v, want Skipped", s, a)
				}
			}
			if c.status == StatusFailed && (st.Error == nil || st.Error.Message == "") {
				t.Fatalf("a failed run without an error")
			}
		})
	}
}

// TestExpressionFailureNamesPath: a runtime expression error fails the
// action with InvalidTemplate naming the JSON path and the expression.
func TestExpressionFailureNamesPath(t *testing.T) {
	st, _ := execute(t, def(`{"L": {"type": "Foreach", "foreach": "@createArray(1)", "actions": {"C": {"type": "Compose", "inputs": {"a": {"b": "x @{triggerBody()['nope']} y"}}}}}}`), map[string]any{"yes": 1})
	a := st.Actions["L[0]/C"]
	if a.Status != StatusFailed || a.Error.Code != "InvalidTemplate" {
		t.Fatalf("%+v", a)
	}
	for _, want := range []string{"actions.L.actions.C.inputs.a.b", `"x @{triggerBody()['nope']} y"`, "the property 'nope' doesn't exist"} {
		if !strings.Contains(a.Error.Message, want) {
			t.Fatalf("message %q doesn't say %q", a.Error.Message, want)
		}
	}
	if st.Status != StatusFailed || !strings.Contains(st.Error.Message, "L") {
		t.Fatalf("run %s %+v", st.Status, st.Error)
	}
}

func TestTerminate(t *testing.T) {
	for _, status := range []string{StatusSucceeded, StatusFailed, StatusCancelled} {
		t.Run(status, func(t *testing.T) {
			st, h := execute(t, def(`{
				"L": {"type": "Foreach", "foreach": "@createArray(1, 2, 3)", "actions": {
					"Call": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x/@{item()}"}},
					"Stop": {"type": "If", "expression": "@equals(item(), 2)", "actions": {
						"End": {"type": "Terminate", "inputs": {"runStatus": "`+status+`", "runError": {"code": "Enough", "message": "stopped at @{item()}"}}}
					}, "runAfter": {"Call": ["Succeeded"]}}
				}},
				"After": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x/after"}, "runAfter": {"L": ["Succeeded", "Failed"]}}
			}`), nil)
			if st.Status != status || len(h.calls) != 2 || st.Actions["After"] != nil || st.Actions["L[2]/Call"] != nil {
				t.Fatalf("run %s, %d calls: %s", st.Status, len(h.calls), keys(st.Actions))
			}
			if st.Actions["L[1]/End"].Status != StatusSucceeded || st.Actions["L"].Status != StatusCancelled {
				t.Fatalf("%s", keys(st.Actions))
			}
			if status == StatusSucceeded {
				if st.Error != nil {
					t.Fatalf("error %+v", st.Error)
				}
			} else if st.Error == nil || st.Error.Code != "Enough" || st.Error.Message != "stopped at 2" {
				t.Fatalf("error %+v", st.Error)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	const flow = `{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x/flaky", "retryPolicy": %s}},
		"OnFail": {"type": "Compose", "inputs": "@outputs('H')['statusCode']", "runAfter": {"H": ["Failed"]}}}`
	cases := []struct {
		name, policy string
		fails        int
		calls        int
		status       string
		slept        string
	}{
		{"fixed recovers", `{"type": "fixed", "count": 3, "interval": "PT20S"}`, 2, 3, StatusSucceeded, "[20s 20s]"},
		{"fixed gives up", `{"type": "fixed", "count": 2, "interval": "PT20S"}`, -1, 3, StatusFailed, "[20s 20s]"},
		{"exponential", `{"type": "exponential", "count": 3, "interval": "PT10S", "maximumInterval": "PT25S"}`, -1, 4, StatusFailed, "[10s 20s 25s]"},
		{"none", `{"type": "none"}`, -1, 1, StatusFailed, "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHost()
			h.httpFail["flaky"] = c.fails
			st := run(t, mustParse(t, def(fmt.Sprintf(flow, c.policy))), h, nil)
			a := st.Actions["H"]
			if len(h.calls) != c.calls || a.Status != c.status || a.Attempts != c.calls || fmt.Sprint(h.slept) != c.slept {
				t.Fatalf("%d calls, %s, %d attempts, slept %v", len(h.calls), a.Status, a.Attempts, h.slept)
			}
			for i, call := range h.calls {
				if call.Attempt != i+1 {
					t.Fatalf("call %d has Attempt %d", i, call.Attempt)
				}
			}
			if c.status == StatusFailed && st.Actions["OnFail"].Outputs.Body != 503.0 {
				t.Fatalf("OnFail saw %v", st.Actions["OnFail"].Outputs.Body)
			}
		})
	}
	t.Run("not retryable", func(t *testing.T) {
		h := newHost()
		h.hook = func(Call) error { return &ActionError{Code: "BadRequest", Message: "no", StatusCode: 400} }
		st := run(t, mustParse(t, def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x"}}}`)), h, nil)
		if len(h.calls) != 1 || st.Status != StatusFailed || st.Error.Code != "BadRequest" {
			t.Fatalf("%d calls, %s %+v", len(h.calls), st.Status, st.Error)
		}
	})
}

// TestTimeout: retries stop at limit.timeout, by the host's clock, and
// the action is TimedOut.
func TestTimeout(t *testing.T) {
	h := newHost()
	h.hook = func(Call) error {
		h.mu.Lock()
		h.now = h.now.Add(40 * time.Second) // each attempt takes 40s
		h.mu.Unlock()
		return &ActionError{Code: "ServiceUnavailable", Message: "busy", Retryable: true, StatusCode: 503}
	}
	st := run(t, mustParse(t, def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "retryPolicy": {"type": "fixed", "count": 10, "interval": "PT10S"}}, "limit": {"timeout": "PT2M"}},
		"OnTimeout": {"type": "Compose", "inputs": "late", "runAfter": {"H": ["TimedOut"]}}}`)), h, nil)
	a := st.Actions["H"]
	if a.Status != StatusTimedOut || len(h.calls) != 3 || st.Actions["OnTimeout"].Status != StatusSucceeded {
		t.Fatalf("%s after %d calls: %s", a.Status, len(h.calls), keys(st.Actions))
	}
	if st.Status != StatusSucceeded {
		t.Fatalf("run %s", st.Status)
	}
}

func TestUntil(t *testing.T) {
	const flow = `{"V": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "i", "type": "integer", "value": 0}]}},
		"U": {"type": "Until", "expression": "@equals(variables('i'), %d)", "limit": {"count": %d, "timeout": "PT1H"}, "actions": {
			"Inc": {"type": "IncrementVariable", "inputs": {"name": "i", "value": 1}},
			"Ask": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x/@{iterationIndexes('U')}"}, "runAfter": {"Inc": ["Succeeded"]}}
		}, "runAfter": {"V": ["Succeeded"]}}}`
	st, h := execute(t, def(fmt.Sprintf(flow, 3, 10)), nil)
	if st.Status != StatusSucceeded || st.Variables["i"] != 3.0 || len(h.calls) != 3 || h.calls[2].Path != "U[2]/Ask" {
		t.Fatalf("%s i=%v %d calls", st.Status, st.Variables["i"], len(h.calls))
	}
	st, _ = execute(t, def(fmt.Sprintf(flow, 100, 4)), nil)
	if st.Status != StatusSucceeded || st.Variables["i"] != 4.0 {
		t.Fatalf("count limit: %s i=%v", st.Status, st.Variables["i"])
	}
	h = newHost()
	h.hook = func(Call) error { h.now = h.now.Add(25 * time.Minute); return nil }
	st = run(t, mustParse(t, def(fmt.Sprintf(flow, 100, 50))), h, nil)
	if st.Actions["U"].Status != StatusTimedOut || len(h.calls) != 3 {
		t.Fatalf("timeout: %s after %d calls", st.Actions["U"].Status, len(h.calls))
	}
}

func TestSwitchAndVariables(t *testing.T) {
	const flow = `{
		"S": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "s", "type": "string", "value": "a"}]}},
		"A": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "arr", "type": "array"}]}, "runAfter": {"S": ["Succeeded"]}},
		"F": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "f", "type": "float", "value": 0.5}]}, "runAfter": {"A": ["Succeeded"]}},
		"W": {"type": "Switch", "expression": "@triggerBody()['kind']", "cases": {
			"One": {"case": 1, "actions": {"App1": {"type": "AppendToStringVariable", "inputs": {"name": "s", "value": "-one"}}}},
			"Two": {"case": "two", "actions": {"App2": {"type": "AppendToArrayVariable", "inputs": {"name": "arr", "value": {"k": 2}}}}}
		}, "default": {"actions": {"Set": {"type": "SetVariable", "inputs": {"name": "s", "value": "other"}}}}, "runAfter": {"F": ["Succeeded"]}},
		"Inc": {"type": "IncrementVariable", "inputs": {"name": "f", "value": 0.25}, "runAfter": {"W": ["Succeeded"]}}
	}`
	for kind, want := range map[any]string{1.0: `a-one [] 0.75`, "two": `a [{"k":2}] 0.75`, "x": `other [] 0.75`} {
		st, _ := execute(t, def(flow), map[string]any{"kind": kind})
		if st.Status != StatusSucceeded {
			t.Fatalf("%v: %s %+v", kind, st.Status, st.Error)
		}
		if got := fmt.Sprintf("%v %s %v", st.Variables["s"], jsonOf(st.Variables["arr"]), st.Variables["f"]); got != want {
			t.Fatalf("%v: %s, want %s", kind, got, want)
		}
	}
	// A value of the wrong type fails the action and leaves the variable.
	st, _ := execute(t, def(`{"S": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "n", "type": "integer", "value": 1}]}},
		"Set": {"type": "SetVariable", "inputs": {"name": "n", "value": "@triggerBody()"}, "runAfter": {"S": ["Succeeded"]}}}`), "text")
	if st.Actions["Set"].Status != StatusFailed || st.Variables["n"] != 1.0 || !strings.Contains(st.Actions["Set"].Error.Message, "integer") {
		t.Fatalf("%+v n=%v", st.Actions["Set"], st.Variables["n"])
	}
}

// TestForeachLimit refuses an array over 5,000 items without running an
// iteration.
func TestForeachLimit(t *testing.T) {
	items := make([]any, maxForeachItems+1)
	st, h := execute(t, def(`{"L": {"type": "Foreach", "foreach": "@triggerBody()", "actions": {"C": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x"}}}}}`), items)
	if a := st.Actions["L"]; a.Status != StatusFailed || a.Error.Code != "ForeachTooManyItems" || len(h.calls) != 0 || len(st.Actions) != 1 {
		t.Fatalf("%+v, %d calls", a, len(h.calls))
	}
	st, _ = execute(t, def(`{"L": {"type": "Foreach", "foreach": "@triggerBody()", "actions": {}}}`), "not an array")
	if a := st.Actions["L"]; a.Status != StatusFailed || !strings.Contains(a.Error.Message, "not an array") {
		t.Fatalf("%+v", a)
	}
}

func TestSaveFailureStops(t *testing.T) {
	d := mustParse(t, resumeDef)
	h := newHost()
	boom := errors.New("disk full")
	err := Execute(context.Background(), d, NewRun(Outputs{Body: map[string]any{"items": []any{}}}), nil, h, func(*RunState) error { return boom })
	if !errors.Is(err, boom) || len(h.calls) != 0 {
		t.Fatalf("Execute = %v, %d calls", err, len(h.calls))
	}
}

// TestResponse records the response and gives the host the inputs.
func TestResponse(t *testing.T) {
	st, h := execute(t, def(`{"R": {"type": "Response", "inputs": {"statusCode": "@triggerBody()['code']", "headers": {"X-N": 1}, "body": "@triggerBody()"}}}`), map[string]any{"code": 418})
	if st.Response == nil || st.Response.StatusCode != 418 || st.Response.Headers["X-N"] != "1" || len(h.calls) != 1 || h.calls[0].Type != "Response" {
		t.Fatalf("%+v, calls %v", st.Response, h.calls)
	}
	st, _ = execute(t, def(`{"R": {"type": "Response", "inputs": {"statusCode": "@triggerBody()"}}}`), 99)
	if st.Response != nil || st.Actions["R"].Status != StatusFailed {
		t.Fatalf("status 99: %+v", st.Actions["R"])
	}
}

// BenchmarkExecute evaluates a 5-action flow (variables, a connector
// call, a condition and a response) with the test host.
func BenchmarkExecute(b *testing.B) {
	d, err := Parse([]byte(def(`{
		"V": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "total", "type": "float", "value": 0}]}},
		"C": {"type": "Compose", "inputs": {"name": "@{toUpper(triggerBody()['name'])}", "at": "@utcNow()"}, "runAfter": {"V": ["Succeeded"]}},
		"Row": {"type": "OpenApiConnection", "inputs": {"host": {"apiId": "/x/shared_commondataserviceforapps", "connectionName": "cds", "operationId": "CreateRecord"}, "parameters": {"entityName": "orders", "item/name": "@outputs('C')['name']"}}, "runAfter": {"C": ["Succeeded"]}},
		"Add": {"type": "IncrementVariable", "inputs": {"name": "total", "value": "@triggerBody()['amount']"}, "runAfter": {"Row": ["Succeeded"]}},
		"R": {"type": "Response", "inputs": {"statusCode": 201, "body": {"id": "@body('Row')['id']", "total": "@variables('total')"}}, "runAfter": {"Add": ["Succeeded"]}}
	}`)))
	if err != nil {
		b.Fatal(err)
	}
	h := newHost()
	save := func(*RunState) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		st := NewRun(Outputs{Body: map[string]any{"name": "ada", "amount": 12.5}})
		if err := Execute(context.Background(), d, st, nil, h, save); err != nil || st.Status != StatusSucceeded {
			b.Fatal(err, st.Status)
		}
		h.calls = h.calls[:0]
		h.rows = map[string]map[string]map[string]any{}
	}
}

// TestDefinitionNotChangedByRuns: a host that changes the inputs it gets
// doesn't change the definition another run reads.
func TestDefinitionNotChangedByRuns(t *testing.T) {
	d := mustParse(t, def(`{"H": {"type": "Http", "inputs": {"method": "POST", "uri": "https://x", "body": {"list": [1, 2], "secret": "s"}}}}`))
	for i := 0; i < 2; i++ {
		h := newHost()
		var got any
		h.hook = func(c Call) error {
			body := c.Inputs.(map[string]any)["body"].(map[string]any)
			got = jsonOf(body)
			delete(body, "secret")
			body["list"].([]any)[0] = "changed"
			return nil
		}
		run(t, d, h, nil)
		if got != `{"list":[1,2],"secret":"s"}` {
			t.Fatalf("run %d got %s", i, got)
		}
	}
}

// BenchmarkExecuteBaseline is BenchmarkExecute's host work without the
// language: the same two host calls with inputs built in Go, and the same
// number of saves. BenchmarkExecute / this is the language's cost.
func BenchmarkExecuteBaseline(b *testing.B) {
	h := newHost()
	ctx := context.Background()
	saves := 0
	save := func(*RunState) error { saves++; return nil }
	b.ReportAllocs()
	for b.Loop() {
		st := NewRun(Outputs{Body: map[string]any{"name": "ada", "amount": 12.5}})
		body := st.Trigger.Body.(map[string]any)
		name := strings.ToUpper(body["name"].(string))
		out, err := h.Call(ctx, Call{Path: "Row", Name: "Row", Type: "OpenApiConnection", Attempt: 1, Inputs: map[string]any{
			"host":       map[string]any{"apiId": "/x/shared_commondataserviceforapps", "connectionName": "cds", "operationId": "CreateRecord"},
			"parameters": map[string]any{"entityName": "orders", "item/name": name}}})
		if err != nil {
			b.Fatal(err)
		}
		total := body["amount"].(float64)
		if _, err := h.Call(ctx, Call{Path: "R", Name: "R", Type: "Response", Attempt: 1, Inputs: map[string]any{"statusCode": 201.0,
			"body": map[string]any{"id": out.Body.(map[string]any)["id"], "total": total}}}); err != nil {
			b.Fatal(err)
		}
		for range 11 { // Execute saves twice per action and once at the end
			save(st)
		}
		h.calls = h.calls[:0]
		h.rows = map[string]map[string]map[string]any{}
	}
}

// TestDeclaredParameterFromHost: a parameter declared without a default
// takes the value the host passes.
func TestDeclaredParameterFromHost(t *testing.T) {
	d := mustParse(t, `{"parameters": {"Region": {"type": "String"}}, "triggers": {"m": {"type": "Request"}}, "actions": {"C": {"type": "Compose", "inputs": "@parameters('Region')"}}}`)
	st := NewRun(Outputs{})
	if err := Execute(context.Background(), d, st, map[string]any{"Region": "eu"}, newHost(), func(*RunState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st.Actions["C"].Outputs.Body != "eu" {
		t.Fatalf("C = %v", st.Actions["C"].Outputs.Body)
	}
	st = run(t, d, newHost(), nil)
	if st.Actions["C"].Status != StatusFailed || !strings.Contains(st.Actions["C"].Error.Message, "has no value") {
		t.Fatalf("without a value: %+v", st.Actions["C"])
	}
}

// TestResumeTakesTheSamePath: a resumed run takes the branch and the
// items recorded before the crash, even if evaluating them again would
// now give another answer.
func TestResumeTakesTheSamePath(t *testing.T) {
	d := mustParse(t, def(`{
		"I": {"type": "If", "expression": "@less(utcNow(), '2024-05-01T10:00:00Z')", "actions": {
			"L": {"type": "Foreach", "foreach": "@createArray(utcNow(), 'x')", "actions": {
				"Call": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x/@{item()}"}}
			}}
		}, "else": {"actions": {"Late": {"type": "Compose", "inputs": "late"}}}}
	}`))
	h := newHost()
	h.hook = func(c Call) error {
		if c.Path == "L[1]/Call" {
			return errCrash // a host error: the run stops unfinished
		}
		return nil
	}
	st := NewRun(Outputs{})
	if err := Execute(context.Background(), d, st, nil, h, func(*RunState) error { return nil }); !errors.Is(err, errCrash) {
		t.Fatalf("Execute = %v", err)
	}
	saved := clone(t, st)
	h.hook = nil
	h.now = h.now.Add(2 * time.Hour) // now the condition is false and utcNow() differs
	if err := Execute(context.Background(), d, saved, nil, h, func(*RunState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if saved.Status != StatusSucceeded || saved.Actions["Late"].Status != StatusSkipped || saved.Actions["L[1]/Call"].Status != StatusSucceeded {
		t.Fatalf("%s: %s", saved.Status, keys(saved.Actions))
	}
	if got := saved.Actions["L[0]/Call"].Inputs.(map[string]any)["uri"]; got != "https://x/2024-05-01T09:30:00.0000000Z" {
		t.Fatalf("first item %v", got)
	}
	if n := len(h.calls); n != 3 || h.calls[2].Path != "L[1]/Call" {
		t.Fatalf("%d calls", n)
	}
}

// TestApiConnection: the host gets an ApiConnection's inputs with the
// connection it passes in $connections resolved.
func TestApiConnection(t *testing.T) {
	d := mustParse(t, def(`{"Get": {"type": "ApiConnection", "inputs": {"host": {"connection": {"name": "@parameters('$connections')['shared_sql']['connectionId']"}}, "method": "get", "path": "/rows/@{encodeUriComponent(triggerBody())}"}}}`))
	if got := d.ConnectionRefs(); len(got) != 1 || got[0] != "shared_sql" {
		t.Fatalf("ConnectionRefs = %v", got)
	}
	h := newHost()
	st := NewRun(Outputs{Body: "a b"})
	params := map[string]any{"$connections": map[string]any{"shared_sql": map[string]any{"connectionId": "/connections/c1"}}}
	if err := Execute(context.Background(), d, st, params, h, func(*RunState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusSucceeded || len(h.calls) != 1 {
		t.Fatalf("%s %+v", st.Status, st.Error)
	}
	if got := jsonOf(h.calls[0].Inputs); got != `{"host":{"connection":{"name":"/connections/c1"}},"method":"get","path":"/rows/a%20b"}` {
		t.Fatalf("inputs %s", got)
	}
}

// TestConcurrentRuns runs one definition from several goroutines (the
// engine shares a parsed definition between runs); run with -race.
func TestConcurrentRuns(t *testing.T) {
	d := mustParse(t, resumeDef)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			st := NewRun(Outputs{Body: map[string]any{"items": []any{"a", "b"}}})
			err := Execute(context.Background(), d, st, nil, newHost(), func(*RunState) error { return nil })
			if err == nil && st.Status != StatusFailed { // n is 2, not 3: the else branch terminates Failed
				err = fmt.Errorf("status %s", st.Status)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestWaitResumesWithWhatIsLeft: a Wait (Delay) sleeps its interval
// through the host; a run stopped while it waits and resumed later waits
// only the rest, counted from the action's saved start, then goes on.
func TestWaitResumesWithWhatIsLeft(t *testing.T) {
	d := mustParse(t, def(`{
		"Delay": {"type": "Wait", "inputs": {"interval": {"count": 10, "unit": "Minute"}}},
		"After": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x/after"}, "runAfter": {"Delay": ["Succeeded"]}}
	}`))
	h := newHost()
	st := NewRun(Outputs{})
	if err := Execute(context.Background(), d, st, nil, h, func(*RunState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusSucceeded || len(h.slept) != 1 || h.slept[0] != 10*time.Minute || h.callsTo("After") != 1 {
		t.Fatalf("run %s, slept %v, %d calls", st.Status, h.slept, len(h.calls))
	}
	if in, _ := st.Actions["Delay"].Inputs.(map[string]any); in["interval"] == nil {
		t.Fatalf("the Wait's inputs aren't recorded: %v", st.Actions["Delay"].Inputs)
	}

	// Crash right after the Wait's start is saved; resume 4 minutes on.
	h = newHost()
	st = NewRun(Outputs{})
	err := Execute(context.Background(), d, st, nil, h, func(s *RunState) error {
		if a := s.Actions["Delay"]; a != nil && a.Status == StatusRunning {
			return errCrash
		}
		return nil
	})
	if !errors.Is(err, errCrash) || len(h.slept) != 0 {
		t.Fatalf("Execute = %v, slept %v", err, h.slept)
	}
	h.now = h.now.Add(4 * time.Minute)
	if err := Execute(context.Background(), d, st, nil, h, func(*RunState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusSucceeded || len(h.slept) != 1 || h.slept[0] != 6*time.Minute || h.callsTo("After") != 1 {
		t.Fatalf("resumed run %s, slept %v, %d calls", st.Status, h.slept, len(h.calls))
	}
}
