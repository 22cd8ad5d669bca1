package wdl

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// def is a definition with a manual trigger and the given actions object.
func def(actions string) string {
	return `{"triggers": {"manual": {"type": "Request", "kind": "Http"}}, "actions": ` + actions + `}`
}

// nest returns n Scopes nested in one another around inner.
func nest(n int, inner string) string {
	s := inner
	for i := n; i > 0; i-- {
		s = fmt.Sprintf(`{"S%d": {"type": "Scope", "actions": %s}}`, i, s)
	}
	return s
}

// TestParseRefuses refuses each class of unsupported or malformed
// construct with InvalidFlowDefinition, naming its JSON path.
func TestParseRefuses(t *testing.T) {
	manyActions := "{"
	for i := 0; i <= maxActions; i++ {
		if i > 0 {
			manyActions += ","
		}
		manyActions += fmt.Sprintf(`"C%d": {"type": "Compose", "inputs": 1}`, i)
	}
	manyActions += "}"
	cases := []struct{ name, def, path, msg string }{
		{"not JSON", `{"triggers":`, "", "not a JSON object"},
		{"trailing data", def(`{}`) + `{}`, "", "data after"},
		{"unknown top-level key", `{"staticResults": {}, "triggers": {"m": {"type": "Request"}}}`, "staticResults:", "not supported in a flow definition"},
		{"definition outputs", `{"outputs": {"o": {"type": "String", "value": "x"}}, "triggers": {"m": {"type": "Request"}}}`, "outputs:", "definition outputs are not supported"},
		{"no trigger", `{"triggers": {}, "actions": {}}`, "triggers:", "exactly one trigger"},
		{"two triggers", `{"triggers": {"a": {"type": "Request"}, "b": {"type": "Request"}}}`, "triggers:", "has 2"},
		{"trigger type", `{"triggers": {"t": {"type": "ApiConnection"}}}`, "triggers.t.type:", `"ApiConnection" is not supported`},
		{"request kind", `{"triggers": {"t": {"type": "Request", "kind": "Email"}}}`, "triggers.t.kind:", `"Email" is not supported`},
		{"trigger conditions", `{"triggers": {"t": {"type": "Request", "conditions": []}}}`, "triggers.t.conditions:", "not supported here"},
		{"trigger splitOn", `{"triggers": {"t": {"type": "Request", "splitOn": "@triggerBody()"}}}`, "triggers.t.splitOn:", "not supported here"},
		{"relativePath", `{"triggers": {"t": {"type": "Request", "inputs": {"relativePath": "/x/{id}"}}}}`, "triggers.t.inputs.relativePath:", "not supported"},
		{"recurrence frequency", `{"triggers": {"t": {"type": "Recurrence", "recurrence": {"frequency": "Year", "interval": 1}}}}`, "triggers.t.recurrence.frequency:", `"Year" is not one of`},
		{"recurrence interval", `{"triggers": {"t": {"type": "Recurrence", "recurrence": {"frequency": "Month", "interval": 17}}}}`, "triggers.t.recurrence.interval:", "from 1 to 16"},
		{"recurrence schedule", `{"triggers": {"t": {"type": "Recurrence", "recurrence": {"frequency": "Week", "interval": 1, "schedule": {"weekDays": ["Monday"]}}}}}`, "triggers.t.recurrence.schedule:", "not supported here"},
		{"recurrence time zone", `{"triggers": {"t": {"type": "Recurrence", "recurrence": {"frequency": "Day", "interval": 1, "timeZone": "Mars Standard Time"}}}}`, "triggers.t.recurrence.timeZone:", "not supported"},
		{"recurrence start", `{"triggers": {"t": {"type": "Recurrence", "recurrence": {"frequency": "Day", "interval": 1, "startTime": "soon"}}}}`, "triggers.t.recurrence.startTime:", "not a timestamp"},
		{"evaluatedRecurrence differs", `{"triggers": {"t": {"type": "Recurrence", "recurrence": {"frequency": "Day", "interval": 1}, "evaluatedRecurrence": {"frequency": "Day", "interval": 2}}}}`, "triggers.t.evaluatedRecurrence:", "differs from recurrence"},
		{"webhook not Teams", `{"triggers": {"t": {"type": "OpenApiConnectionWebhook", "inputs": {"host": {"apiId": "/providers/Microsoft.PowerApps/apis/shared_office365", "connectionName": "o", "operationId": "OnNewEmail"}}}}}`, "triggers.t.inputs.host.apiId:", "only Microsoft Teams"},
		{"webhook without operation", `{"triggers": {"t": {"type": "OpenApiConnectionWebhook", "inputs": {"host": {"apiId": "/x/shared_teams", "connectionName": "t"}}}}}`, "triggers.t.inputs.host.operationId:", "is missing"},
		{"action type", def(`{"D": {"type": "Delay", "inputs": {}}}`), "actions.D.type:", `"Delay" is not supported`},
		{"action key", def(`{"C": {"type": "Compose", "inputs": 1, "trackedProperties": {}}}`), "actions.C.trackedProperties:", "not supported here"},
		{"operationOptions", def(`{"C": {"type": "Compose", "inputs": 1, "operationOptions": "DisableAsyncPattern"}}`), "actions.C.operationOptions:", "not supported here"},
		{"secureData", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x"}, "runtimeConfiguration": {"secureData": {}}}}`), "actions.H.runtimeConfiguration:", "not supported here"},
		{"foreach runtimeConfiguration", def(`{"F": {"type": "Foreach", "foreach": "@createArray()", "actions": {}, "runtimeConfiguration": {"paginationPolicy": {}}}}`), "actions.F.runtimeConfiguration.paginationPolicy:", "not supported here"},
		{"nested unknown type", def(`{"S": {"type": "Scope", "actions": {"X": {"type": "Delay"}}}}`), "actions.S.actions.X.type:", `"Delay" is not supported`},
		{"else unknown type", def(`{"I": {"type": "If", "expression": true, "actions": {}, "else": {"actions": {"X": {"type": "Delay"}}}}}`), "actions.I.else.actions.X.type:", "not supported"},
		{"case unknown type", def(`{"W": {"type": "Switch", "expression": "a", "cases": {"c1": {"case": "a", "actions": {"X": {"type": "Delay"}}}}}}`), "actions.W.cases.c1.actions.X.type:", "not supported"},
		{"duplicate case", def(`{"W": {"type": "Switch", "expression": "a", "cases": {"c1": {"case": "a"}, "c2": {"case": "a"}}}}`), "actions.W.cases.c2.case:", "another case"},
		{"runAfter missing action", def(`{"A": {"type": "Compose", "inputs": 1, "runAfter": {"Nope": ["Succeeded"]}}}`), "actions.A.runAfter.Nope:", `no action "Nope"`},
		{"runAfter other scope", def(`{"S": {"type": "Scope", "actions": {"In": {"type": "Compose", "inputs": 1}}}, "A": {"type": "Compose", "inputs": 1, "runAfter": {"In": ["Succeeded"]}}}`), "actions.A.runAfter.In:", "another scope"},
		{"runAfter status", def(`{"A": {"type": "Compose", "inputs": 1}, "B": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Done"]}}}`), "actions.B.runAfter.A:", `"Done" is not one of`},
		{"runAfter empty", def(`{"A": {"type": "Compose", "inputs": 1}, "B": {"type": "Compose", "inputs": 1, "runAfter": {"A": []}}}`), "actions.B.runAfter.A:", "non-empty array"},
		{"runAfter self", def(`{"A": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Succeeded"]}}}`), "actions.A.runAfter.A:", "after itself"},
		{"runAfter cycle", def(`{"A": {"type": "Compose", "inputs": 1, "runAfter": {"C": ["Succeeded"]}}, "B": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Succeeded"]}}, "C": {"type": "Compose", "inputs": 1, "runAfter": {"B": ["Succeeded"]}}, "D": {"type": "Compose", "inputs": 1}}`), "actions:", "cycle through the actions A, B, C"},
		{"nested cycle", def(`{"S": {"type": "Scope", "actions": {"A": {"type": "Compose", "inputs": 1, "runAfter": {"B": ["Failed"]}}, "B": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Succeeded"]}}}}}`), "actions.S.actions:", "cycle through the actions A, B"},
		{"duplicate name", def(`{"A": {"type": "Compose", "inputs": 1}, "S": {"type": "Scope", "actions": {"A": {"type": "Compose", "inputs": 2}}}}`), "actions.S.actions.A:", "already named"},
		{"bad name", def(`{"a/b": {"type": "Compose", "inputs": 1}}`), "actions.a/b:", "not allowed"},
		{"unknown function", def(`{"Apply_to_each": {"type": "Foreach", "foreach": "@createArray(1)", "actions": {"Send": {"type": "Compose", "inputs": {"body": "@foo()"}}}}}`), "actions.Apply_to_each.actions.Send.inputs.body:", `function "foo" is not supported`},
		{"unknown function in interpolation", def(`{"C": {"type": "Compose", "inputs": "x @{bar(1)} y"}}`), "actions.C.inputs:", `function "bar" is not supported`},
		{"unknown function in condition object", def(`{"I": {"type": "If", "expression": {"and": [{"matches": ["a", "b"]}]}, "actions": {}}}`), "actions.I.expression.and[0].matches:", `function "matches" is not supported`},
		{"arity", def(`{"C": {"type": "Compose", "inputs": "@substring('a')"}}`), "actions.C.inputs:", "substring takes 2 to 3 arguments, not 1"},
		{"bad syntax", def(`{"C": {"type": "Compose", "inputs": ["@concat('a',"]}}`), "actions.C.inputs[0]:", "ends early"},
		{"expression too long", def(`{"C": {"type": "Compose", "inputs": "@concat('` + strings.Repeat("x", maxExprLen) + `')"}}`), "actions.C.inputs:", "over the limit of 8192"},
		{"body of missing action", def(`{"C": {"type": "Compose", "inputs": "@body('Nope')"}}`), "actions.C.inputs:", "body('Nope') names no action"},
		{"body of loop action from outside", def(`{"F": {"type": "Foreach", "foreach": "@createArray(1)", "actions": {"In": {"type": "Compose", "inputs": 1}}}, "C": {"type": "Compose", "inputs": "@outputs('In')", "runAfter": {"F": ["Succeeded"]}}}`), "actions.C.inputs:", "inside the loop F"},
		{"action not upstream", def(`{"A": {"type": "Compose", "inputs": 1}, "B": {"type": "Compose", "inputs": "@outputs('A')"}}`), "actions.B.inputs:", "doesn't run before this one"},
		{"action that runs later", def(`{"A": {"type": "Compose", "inputs": "@body('B')"}, "B": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Succeeded"]}}}`), "actions.A.inputs:", "the action B doesn't run before this one"},
		{"other branch", def(`{"I": {"type": "If", "expression": true, "actions": {"T": {"type": "Compose", "inputs": 1}}, "else": {"actions": {"E": {"type": "Compose", "inputs": "@outputs('T')"}}}}}`), "actions.I.else.actions.E.inputs:", "doesn't run before"},
		{"action from the trigger", `{"triggers": {"t": {"type": "OpenApiConnectionWebhook", "inputs": {"host": {"apiId": "/x/shared_teams", "connectionName": "t", "operationId": "Op"}, "parameters": {"x": "@body('A')"}}}}, "actions": {"A": {"type": "Compose", "inputs": 1}}}`, "triggers.t.inputs.parameters.x:", "doesn't run before"},
		{"undeclared variable", def(`{"C": {"type": "Compose", "inputs": "@variables('x')"}}`), "actions.C.inputs:", "variables('x') names no variable"},
		{"set undeclared variable", def(`{"S": {"type": "SetVariable", "inputs": {"name": "x", "value": 1}}}`), "actions.S.inputs.name:", `"x" is not initialized`},
		{"increment a string", def(`{"V": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "s", "type": "string"}]}}, "I": {"type": "IncrementVariable", "inputs": {"name": "s"}, "runAfter": {"V": ["Succeeded"]}}}`), "actions.I.inputs.name:", "needs an integer or a float"},
		{"variable type", def(`{"V": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "s", "type": "decimal"}]}}}`), "actions.V.inputs.variables[0].type:", "must be one of"},
		{"variable twice", def(`{"V": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "s", "type": "string"}]}}, "W": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "s", "type": "string"}]}}}`), "actions.W.inputs.variables[0].name:", "already initialized"},
		{"variable in a scope", def(`{"S": {"type": "Scope", "actions": {"V": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "s", "type": "string"}]}}}}}`), "actions.S.actions.V:", "top level"},
		{"item outside foreach", def(`{"C": {"type": "Compose", "inputs": "@item()"}}`), "actions.C.inputs:", "only available inside a Foreach"},
		{"items of a non-loop", def(`{"S": {"type": "Scope", "actions": {"C": {"type": "Compose", "inputs": "@items('S')"}}}}`), "actions.S.actions.C.inputs:", "names no loop"},
		{"missing parameter", def(`{"C": {"type": "Compose", "inputs": "@parameters('env')"}}`), "actions.C.inputs:", "parameters('env') names no parameter"},
		{"expression in key", def(`{"C": {"type": "Compose", "inputs": {"@{x}": 1}}}`), "actions.C.inputs.@{x}:", "property names"},
		{"http method", def(`{"H": {"type": "Http", "inputs": {"method": "FETCH", "uri": "https://x"}}}`), "actions.H.inputs.method:", "must be one of"},
		{"http uri", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "ftp://x"}}}`), "actions.H.inputs.uri:", "http or https"},
		{"http key", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "cookie": "a"}}}`), "actions.H.inputs.cookie:", "not supported here"},
		{"retry type", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "retryPolicy": {"type": "linear"}}}}`), "actions.H.inputs.retryPolicy.type:", `"linear" is not supported`},
		{"retry count", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "retryPolicy": {"type": "fixed", "count": 91, "interval": "PT5S"}}}}`), "actions.H.inputs.retryPolicy.count:", "from 1 to 90"},
		{"retry fixed interval", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "retryPolicy": {"type": "fixed", "count": 2}}}}`), "actions.H.inputs.retryPolicy.interval:", "is missing"},
		{"retry none count", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "retryPolicy": {"type": "none", "count": 2}}}}`), "actions.H.inputs.retryPolicy.count:", "type none"},
		{"retry duration", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "retryPolicy": {"type": "exponential", "interval": "P1M"}}}}`), "actions.H.inputs.retryPolicy.interval:", "not an ISO 8601 duration"},
		{"retry on Compose", def(`{"C": {"type": "Compose", "inputs": 1, "retryPolicy": {"type": "none"}}}`), "actions.C.retryPolicy:", "not supported here"},
		{"timeout duration", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x"}, "limit": {"timeout": "5 minutes"}}}`), "actions.H.limit.timeout:", "not an ISO 8601 duration"},
		{"limit on Scope", def(`{"S": {"type": "Scope", "actions": {}, "limit": {"timeout": "PT1M"}}}`), "actions.S.limit:", "not supported here"},
		{"limit count on Http", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x"}, "limit": {"count": 3}}}`), "actions.H.limit.count:", "not supported here"},
		{"until count", def(`{"U": {"type": "Until", "expression": "@true", "limit": {"count": 5001}, "actions": {}}}`), "actions.U.limit.count:", "from 1 to 5000"},
		{"workflow expression", def(`{"W": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": "@parameters('$child')"}}}}`), "actions.W.inputs.host.workflowReferenceName:", "written literally"},
		{"connector without connection", def(`{"O": {"type": "OpenApiConnection", "inputs": {"host": {"apiId": "/x/shared_commondataserviceforapps", "operationId": "GetItem"}}}}`), "actions.O.inputs.host:", "names no connection"},
		{"ApiConnection connection", def(`{"O": {"type": "ApiConnection", "inputs": {"host": {"connection": {"name": "shared_x"}}, "method": "get", "path": "/x"}}}`), "actions.O.inputs.host.connection.name:", "must be @parameters"},
		{"http inline basic", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "authentication": {"type": "Basic", "username": "u", "password": "p"}}}}`), "actions.H.inputs.authentication:", "inline credentials are not supported"},
		{"http auth expression", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "authentication": "@parameters('$authentication')"}}}`), "actions.H.inputs.authentication:", "non-OAuth connection"},
		{"http auth type", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "authentication": {"type": "Raw"}}}}`), "actions.H.inputs.authentication.type:", `"Raw" is not supported`},
		{"http auth connection expression", def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x", "authentication": {"type": "Connection", "connectionName": "@variables('c')"}}}}`), "actions.H.inputs.authentication.connectionName:", "written literally"},
		{"wait without interval", def(`{"D": {"type": "Wait", "inputs": {"until": {"timestamp": "2030-01-01T00:00:00Z"}}}}`), "actions.D.inputs.until:", "not supported here"},
		{"wait unit", def(`{"D": {"type": "Wait", "inputs": {"interval": {"count": 1, "unit": "Month"}}}}`), "actions.D.inputs.interval.unit:", `"Month" is not supported`},
		{"wait count", def(`{"D": {"type": "Wait", "inputs": {"interval": {"count": "@variables('n')", "unit": "Second"}}}}`), "actions.D.inputs.interval.count:", "written literally"},
		{"wait too long", def(`{"D": {"type": "Wait", "inputs": {"interval": {"count": 31, "unit": "Day"}}}}`), "actions.D.inputs.interval:", "limit of 30 days"},
		{"terminate status", def(`{"T": {"type": "Terminate", "inputs": {"runStatus": "Aborted"}}}`), "actions.T.inputs.runStatus:", "Succeeded, Failed or Cancelled"},
		{"response kind", def(`{"R": {"type": "Response", "kind": "Email", "inputs": {"statusCode": 200}}}`), "actions.R.kind:", "not supported"},
		{"foreach missing", def(`{"F": {"type": "Foreach", "actions": {}}}`), "actions.F.foreach:", "is missing"},
		{"foreach concurrency", def(`{"F": {"type": "Foreach", "foreach": "@createArray()", "actions": {}, "runtimeConfiguration": {"concurrency": {"repetitions": 51}}}}`), "actions.F.runtimeConfiguration.concurrency.repetitions:", "from 1 to 50"},
		{"nesting depth", def(nest(maxDepth+1, `{}`)), "actions.S1.actions.S2.actions.S3.actions.S4.actions.S5.actions.S6.actions.S7.actions.S8.actions.S9:", "at most 8 deep"},
		{"too many actions", def(manyActions), "actions.C500:", "at most 500 actions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse([]byte(c.def))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if d != nil {
				t.Fatal("Parse returned a definition with its error")
			}
			if keyhold.ErrorCode(err) != keyhold.CodeInvalidFlowDefinition || keyhold.ErrorClass(err) != keyhold.ClassInvalid {
				t.Fatalf("error %v: want code %s", err, keyhold.CodeInvalidFlowDefinition)
			}
			msg := err.(*keyhold.Error).Message
			if !strings.HasPrefix(msg, c.path) || !strings.Contains(msg, c.msg) {
				t.Fatalf("message %q: want it to start with %q and say %q", msg, c.path, c.msg)
			}
		})
	}
}

// TestParseAccepts checks constructs at the edges of what is supported.
func TestParseAccepts(t *testing.T) {
	cases := map[string]string{
		"nesting depth 8":  def(nest(maxDepth, `{"C": {"type": "Compose", "inputs": 1}}`)),
		"all statuses":     def(`{"A": {"type": "Compose", "inputs": 1}, "B": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["succeeded", "Failed", "Skipped", "TimedOut"]}}}`),
		"condition object": def(`{"I": {"type": "If", "expression": {"or": [{"not": {"equals": ["@triggerBody()", null]}}, {"greater": [1, 0]}]}, "actions": {}}}`),
		"retry policies": def(`{"H": {"type": "Http", "inputs": {"method": "get", "uri": "@{triggerBody()}", "retryPolicy": {"type": "fixed", "count": 2, "interval": "PT1M"}}},
			"G": {"type": "Http", "inputs": {"method": "POST", "uri": "https://x", "retryPolicy": {"type": "none"}}},
			"E": {"type": "Http", "inputs": {"method": "POST", "uri": "https://x", "retryPolicy": {"type": "exponential", "count": 2, "interval": "PT10S", "minimumInterval": "PT5S", "maximumInterval": "PT1H"}}, "limit": {"timeout": "P1DT2H30M"}}}`),
		"upstream through containers": def(`{"A": {"type": "Compose", "inputs": 1}, "B": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Succeeded"]}},
			"S": {"type": "Scope", "actions": {"In": {"type": "Compose", "inputs": "@outputs('A')"}, "In2": {"type": "Compose", "inputs": "@outputs('In')", "runAfter": {"In": ["Succeeded"]}}}, "runAfter": {"B": ["Succeeded"]}},
			"After": {"type": "Compose", "inputs": "@concat(outputs('In2'), result('S'))", "runAfter": {"S": ["Succeeded"]}}}`),
		"ApiConnection":     def(`{"O": {"type": "ApiConnection", "inputs": {"host": {"connection": {"name": "@parameters('$connections')['shared_x']['connectionId']"}}, "method": "get", "path": "/x"}}}`),
		"connection object": def(`{"O": {"type": "OpenApiConnection", "inputs": {"host": {"apiId": "/x/shared_y", "connection": {"referenceName": "ref_y"}, "operationId": "Op"}, "parameters": {}}}}`),
	}
	for name, src := range cases {
		if _, err := Parse([]byte(src)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	d := mustParse(t, cases["retry policies"])
	if p := d.byName["H"].retry; p.typ != "fixed" || p.count != 2 || p.interval != time.Minute {
		t.Errorf("fixed policy = %+v", p)
	}
	if p := d.byName["G"].retry; p.count != 0 {
		t.Errorf("none policy = %+v", p)
	}
	if n := d.byName["E"]; n.timeout != 26*time.Hour+30*time.Minute || n.retry.delay(1) != 10*time.Second || n.retry.delay(3) != 40*time.Second {
		t.Errorf("exponential = %+v, timeout %v", n.retry, n.timeout)
	}
	d = mustParse(t, cases["connection object"])
	if got := d.ConnectionRefs(); len(got) != 1 || got[0] != "ref_y" {
		t.Errorf("ConnectionRefs = %v", got)
	}
	d = mustParse(t, cases["ApiConnection"])
	if got := d.ConnectionRefs(); len(got) != 1 || got[0] != "shared_x" {
		t.Errorf("ConnectionRefs = %v", got)
	}
}

// TestDefaultRetry is Logic Apps' default: exponential, 4 retries.
func TestDefaultRetry(t *testing.T) {
	d := mustParse(t, def(`{"H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://x"}}, "W": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": "c"}}}}`))
	for _, name := range []string{"H", "W"} {
		p := d.byName[name].retry
		if p.typ != "exponential" || p.count != 4 {
			t.Fatalf("%s: %+v", name, p)
		}
		var waits []time.Duration
		for i := 1; i <= 4; i++ {
			waits = append(waits, p.delay(i))
		}
		if fmt.Sprint(waits) != "[7s 14s 28s 56s]" {
			t.Fatalf("%s: waits %v", name, waits)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"PT30S": 30 * time.Second, "PT1.5S": 1500 * time.Millisecond, "PT5M": 5 * time.Minute, "PT1H": time.Hour, "P1D": 24 * time.Hour, "P1W": 7 * 24 * time.Hour, "P1DT1H1M1S": 25*time.Hour + time.Minute + time.Second} {
		if got, err := parseDuration(s); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "P", "PT", "30S", "P1Y", "P1M", "PT1D", "P1H", "PT1S1M", "P2W1W", "PT-5S", "P400D"} {
		if _, err := parseDuration(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
}

// TestParseOrder: runAfter order, ties in definition order.
func TestParseOrder(t *testing.T) {
	d := mustParse(t, def(`{
		"Z": {"type": "Compose", "inputs": 1, "runAfter": {"B": ["Succeeded"]}},
		"B": {"type": "Compose", "inputs": 1},
		"A": {"type": "Compose", "inputs": 1},
		"Y": {"type": "Compose", "inputs": 1, "runAfter": {"A": ["Succeeded"], "B": ["Succeeded"]}}
	}`))
	var got []string
	for _, n := range d.top.order {
		got = append(got, n.name)
	}
	if strings.Join(got, " ") != "B Z A Y" {
		t.Fatalf("order %v, want B Z A Y", got)
	}
	var leaves []string
	for _, n := range d.top.leaves {
		leaves = append(leaves, n.name)
	}
	if strings.Join(leaves, " ") != "Z Y" {
		t.Fatalf("leaves %v", leaves)
	}
}
