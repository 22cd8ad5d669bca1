package wdl

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// exprDef is the definition expressions are evaluated in: an action A
// with outputs, a loop with an inner action, variables and parameters.
const exprDef = `{
  "parameters": {"p": {"type": "String", "defaultValue": "pv"}},
  "triggers": {"manual": {"type": "Request", "kind": "Http"}},
  "actions": {
    "v": {"type": "InitializeVariable", "inputs": {"variables": [{"name": "n", "type": "integer", "value": 3}]}},
    "A": {"type": "Compose", "inputs": {"x": 1}},
    "H": {"type": "Http", "inputs": {"method": "GET", "uri": "https://example.com"}},
    "Loop": {"type": "Foreach", "foreach": "@createArray('a', 'b')", "actions": {
      "In": {"type": "Compose", "inputs": "@item()"}
    }}
  }
}`

// evalIn evaluates one template string as if inside Loop's second
// iteration, with a trigger body and recorded actions.
func evalIn(t *testing.T, src string) (any, error) {
	t.Helper()
	d := mustParse(t, exprDef)
	st := NewRun(Outputs{Headers: map[string]string{"Content-Type": "application/json"}, Body: map[string]any{"name": "Ada", "tags": []any{"x", "y"}, "n": 2.0, "nested": map[string]any{"k": "v"}}})
	st.Variables["n"] = 3.0
	st.Actions["A"] = &ActionState{Name: "A", Type: "Compose", Status: StatusSucceeded, Outputs: &Outputs{Body: map[string]any{"x": 1.0}}}
	st.Actions["H"] = &ActionState{Name: "H", Type: "Http", Status: StatusSucceeded, Outputs: &Outputs{StatusCode: 200, Headers: map[string]string{"ETag": "e1"}, Body: map[string]any{"id": "r1"}}}
	st.Actions["Loop[1]/In"] = &ActionState{Name: "In", Type: "Compose", Status: StatusSucceeded, Outputs: &Outputs{Body: "b"}}
	tm, err := compileTemplate(src)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	h := newHost()
	e := &env{d: d, st: st, params: map[string]any{"q": "given"}, host: h, loops: []loopFrame{{name: "Loop", item: "b", index: 1}}, cur: d.byName["In"], path: "Loop[1]/In"}
	return e.evalTemplate(tm)
}

func jsonOf(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// TestFunctions evaluates every function (and the template forms) with
// known answers.
func TestFunctions(t *testing.T) {
	cases := []struct{ name, src, want string }{
		// Templates.
		{"whole", "@triggerBody()['n']", `2`},
		{"interpolation", "Hi @{triggerBody()?['name']}, @{triggerBody()['n']} @{true}", `"Hi Ada, 2 True"`},
		{"escaped @", "@@home", `"@home"`},
		{"escaped @{", "a @@{b}", `"a @{b}"`},
		{"literal @ in text", "mail me@example.com", `"mail me@example.com"`},
		{"member dot", "@triggerBody().nested.k", `"v"`},
		{"optional missing", "@triggerBody()?['missing']?['deeper']", `null`},
		{"index", "@triggerBody()['tags'][1]", `"y"`},
		{"case-insensitive property", "@triggerBody()['NAME']", `"Ada"`},
		{"case-insensitive function", "@TOUPPER('a')", `"A"`},
		{"quote in string", "@concat('it''s')", `"it's"`},
		// Workflow.
		{"triggerOutputs", "@triggerOutputs()['headers']['Content-Type']", `"application/json"`},
		{"trigger", "@trigger()['name']", `"manual"`},
		{"body", "@body('H')['id']", `"r1"`},
		{"outputs", "@outputs('H')['statusCode']", `200`},
		{"outputs headers", "@outputs('H')['headers']['ETag']", `"e1"`},
		{"outputs of Compose", "@outputs('A')['x']", `1`},
		{"actions", "@actions('H')['status']", `"Succeeded"`},
		{"action", "@action()['name']", `"In"`},
		{"body in iteration", "@body('In')", `"b"`},
		{"variables", "@variables('n')", `3`},
		{"parameters default", "@parameters('p')", `"pv"`},
		{"parameters given", "@parameters('q')", `"given"`},
		{"parameters $", "@parameters('$connections')", `null`},
		{"item", "@item()", `"b"`},
		{"items", "@items('Loop')", `"b"`},
		{"iterationIndexes", "@iterationIndexes('Loop')", `1`},
		{"result", "@length(result('Loop'))", `1`},
		{"workflow", "@workflow()", `{}`},
		// Strings.
		{"concat", "@concat('a', 1, true, null)", `"a1True"`},
		{"substring", "@substring('hello', 1, 3)", `"ell"`},
		{"substring to end", "@substring('hello', 3)", `"lo"`},
		{"replace", "@replace('a-b-c', '-', '+')", `"a+b+c"`},
		{"toLower", "@toLower('AbC')", `"abc"`},
		{"toUpper", "@toUpper('AbC')", `"ABC"`},
		{"trim", "@trim('  x ')", `"x"`},
		{"split", "@split('a,b', ',')", `["a","b"]`},
		{"indexOf ignores case", "@indexOf('Hello', 'LL')", `2`},
		{"indexOf missing", "@indexOf('Hello', 'z')", `-1`},
		{"startsWith", "@startsWith('Hello', 'he')", `true`},
		{"endsWith", "@endsWith('Hello', 'LO')", `true`},
		{"guid format N", "@length(guid('N'))", `32`},
		{"length string", "@length('héllo')", `5`},
		{"length array", "@length(createArray(1, 2))", `2`},
		{"formatNumber N2", "@formatNumber(1234.5, 'N2')", `"1,234.50"`},
		{"formatNumber C", "@formatNumber(-3, 'C0')", `"-$3"`},
		{"formatNumber D4", "@formatNumber(42, 'D4')", `"0042"`},
		{"formatNumber P", "@formatNumber(0.256, 'P1')", `"25.6 %"`},
		{"formatNumber pattern", "@formatNumber(1234567.891, '#,##0.00')", `"1,234,567.89"`},
		// Collections.
		{"contains string", "@contains('abc', 'b')", `true`},
		{"contains array", "@contains(createArray(1, 2), 2)", `true`},
		{"contains object", "@contains(triggerBody(), 'name')", `true`},
		{"empty", "@and(empty(''), empty(createArray()), empty(null), not(empty('x')))", `true`},
		{"first", "@first(createArray(7, 8))", `7`},
		{"first string", "@first('xyz')", `"x"`},
		{"last", "@last(createArray(7, 8))", `8`},
		{"join", "@join(createArray('a', 1), '; ')", `"a; 1"`},
		{"union arrays", "@union(createArray(1, 2), createArray(2, 3))", `[1,2,3]`},
		{"union objects", "@union(json('{\"a\":1}'), json('{\"b\":2}'))", `{"a":1,"b":2}`},
		{"intersection", "@intersection(createArray(1, 2, 3), createArray(3, 2))", `[2,3]`},
		{"skip", "@skip(createArray(1, 2, 3), 2)", `[3]`},
		{"take", "@take(createArray(1, 2, 3), 2)", `[1,2]`},
		{"take string", "@take('abc', 2)", `"ab"`},
		{"createArray", "@createArray('a', 1)", `["a",1]`},
		{"coalesce", "@coalesce(null, triggerBody()?['none'], 'x')", `"x"`},
		// Logic.
		{"equals", "@equals(triggerBody()['n'], 2)", `true`},
		{"equals case", "@equals('A', 'a')", `false`},
		{"and", "@and(true, false)", `false`},
		{"or", "@or(false, true)", `true`},
		{"or short-circuits", "@or(true, triggerBody()['missing'])", `true`},
		{"not", "@not(false)", `true`},
		{"if", "@if(equals(1, 1), 'yes', 'no')", `"yes"`},
		{"if evaluates one branch", "@if(false, triggerBody()['missing'], 'no')", `"no"`},
		{"greater", "@greater(2, 1)", `true`},
		{"greaterOrEquals", "@greaterOrEquals(2, 2)", `true`},
		{"less strings", "@less('a', 'b')", `true`},
		{"lessOrEquals", "@lessOrEquals(3, 2)", `false`},
		// Math.
		{"add", "@add(1, 2.5)", `3.5`},
		{"sub", "@sub(1, 3)", `-2`},
		{"mul", "@mul(4, 2.5)", `10`},
		{"div integers", "@div(11, 5)", `2`},
		{"div floats", "@div(5.5, 2)", `2.75`},
		{"mod", "@mod(11, 5)", `1`},
		{"min", "@min(3, 1, 2)", `1`},
		{"max array", "@max(createArray(3, 9, 2))", `9`},
		{"rand", "@and(greaterOrEquals(rand(1, 3), 1), less(rand(1, 3), 3))", `true`},
		// Conversion.
		{"json", "@json('{\"a\":[1,true]}')['a'][1]", `true`},
		{"string number", "@string(1.5)", `"1.5"`},
		{"string object", "@string(json('{\"a\":1}'))", `"{\"a\":1}"`},
		{"int", "@int('42')", `42`},
		{"float", "@float('1.25')", `1.25`},
		{"bool", "@bool('TRUE')", `true`},
		{"array", "@array('a')", `["a"]`},
		{"base64", "@base64('hi')", `"aGk="`},
		{"base64ToString", "@base64ToString('aGk=')", `"hi"`},
		{"decodeBase64", "@decodeBase64('aGk=')", `"hi"`},
		{"encodeUriComponent", "@encodeUriComponent('a b&c/é')", `"a%20b%26c%2F%C3%A9"`},
		{"uriComponentToString", "@uriComponentToString('a%20b%26c')", `"a b&c"`},
		// Dates.
		{"utcNow", "@utcNow()", `"2024-05-01T09:30:00.0000000Z"`},
		{"utcNow format", "@utcNow('yyyy-MM-dd HH:mm')", `"2024-05-01 09:30"`},
		{"addDays", "@addDays('2024-02-28T10:00:00Z', 2)", `"2024-03-01T10:00:00.0000000Z"`},
		{"addHours", "@addHours('2024-05-01T23:00:00Z', 2, 's')", `"2024-05-02T01:00:00"`},
		{"addMinutes", "@addMinutes('2024-05-01T10:00:00Z', -90, 'HH:mm')", `"08:30"`},
		{"addSeconds", "@addSeconds('2024-05-01T10:00:00Z', 30, 'u')", `"2024-05-01 10:00:30Z"`},
		{"formatDateTime custom", "@formatDateTime('2024-05-01T14:05:09.1234567Z', 'dddd d MMMM yyyy h:mm tt fff')", `"Wednesday 1 May 2024 2:05 PM 123"`},
		{"formatDateTime d", "@formatDateTime('2024-05-01T14:05:09Z', 'd')", `"5/1/2024"`},
		{"formatDateTime R", "@formatDateTime('2024-05-01T14:05:09Z', 'R')", `"Wed, 01 May 2024 14:05:09 GMT"`},
		{"formatDateTime quoted", "@formatDateTime('2024-05-01T14:05:09Z', '''Day'' dd')", `"Day 01"`},
		{"parseDateTime", "@parseDateTime('2024-05-01 08:00:00')", `"2024-05-01T08:00:00.0000000Z"`},
		{"parseDateTime format", "@parseDateTime('01/05/2024', 'en-US', 'dd/MM/yyyy')", `"2024-05-01T00:00:00.0000000Z"`},
		{"startOfDay", "@startOfDay('2024-05-01T14:05:09Z')", `"2024-05-01T00:00:00.0000000Z"`},
		{"ticks", "@ticks('2024-05-01T00:00:00Z')", `638501184000000000`},
		{"convertTimeZone", "@convertTimeZone('2024-07-01T12:00:00Z', 'UTC', 'W. Europe Standard Time', 'yyyy-MM-ddTHH:mm:sszzz')", `"2024-07-01T14:00:00+02:00"`},
		{"convertTimeZone winter", "@convertTimeZone('2024-01-01T12:00:00Z', 'UTC', 'Pacific Standard Time', 'HH:mm K')", `"04:00 -08:00"`},
		{"dayOfWeek", "@dayOfWeek('2024-05-05T00:00:00Z')", `0`},
	}
	seen := map[string]bool{}
	call := regexp.MustCompile(`([A-Za-z0-9]+)\(`)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := evalIn(t, c.src)
			if err != nil {
				t.Fatalf("%s: %v", c.src, err)
			}
			if got := jsonOf(v); got != c.want {
				t.Fatalf("%s = %s, want %s", c.src, got, c.want)
			}
		})
		for _, m := range call.FindAllStringSubmatch(c.src, -1) {
			seen[strings.ToLower(m[1])] = true
		}
	}
	for name := range functions {
		if !seen[name] {
			t.Errorf("no case uses %s", spelled[name])
		}
	}
}

// TestGuidIsRandomV4 checks guid() is a version 4 UUID, different each
// time.
func TestGuidIsRandomV4(t *testing.T) {
	a, _ := evalIn(t, "@guid()")
	b, _ := evalIn(t, "@guid()")
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !re.MatchString(a.(string)) || a == b {
		t.Fatalf("guid() = %v, %v", a, b)
	}
}

// TestFunctionErrors checks that runtime errors say what is wrong.
func TestFunctionErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"missing property", "@triggerBody()['nope']", "the property 'nope' doesn't exist"},
		{"null member", "@triggerBody()['nested']['k']['x']", "can't read 'x' of string"},
		{"index out of range", "@triggerBody()['tags'][5]", "index 5 is out of range"},
		{"not a string", "@toLower(1)", "must be a string"},
		{"substring range", "@substring('abc', 2, 5)", "outside the text"},
		{"division by zero", "@div(1, 0)", "division by zero"},
		{"mod by zero", "@mod(1, 0)", "division by zero"},
		{"bad json", "@json('{')", "is not JSON"},
		{"bad int", "@int('x1')", "is not an integer"},
		{"bad float", "@float('abc')", "is not a number"},
		{"bad bool", "@bool('maybe')", "is not true or false"},
		{"bad base64", "@base64ToString('***')", "is not base64"},
		{"bad timestamp", "@addDays('yesterday', 1)", "is not a timestamp"},
		{"bad date format", "@formatDateTime('2024-05-01T00:00:00Z', 'q')", "not a supported date format"},
		{"bad time zone", "@convertTimeZone('2024-05-01T00:00:00Z', 'UTC', 'Mars Standard Time')", "not supported"},
		{"bad locale", "@formatDateTime('2024-05-01T00:00:00Z', 'd', 'fr-FR')", "locale 'fr-FR' is not supported"},
		{"and of a string", "@and('yes', true)", "must be a boolean"},
		{"if of a number", "@if(1, 'a', 'b')", "must be a boolean"},
		{"compare mixed", "@greater('a', 1)", "must be a string"},
		{"rand range", "@rand(5, 5)", "must be greater"},
		{"guid format", "@guid('X')", "not one of N, D, B, P"},
		{"length of a number", "@length(1)", "must be a string or an array"},
		{"formatNumber pattern", "@formatNumber(1, 'E3')", "is not supported"},
		{"replace empty", "@replace('a', '', 'b')", "is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := evalIn(t, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: error %v, want %q", c.src, err, c.want)
			}
		})
	}
}

// TestStringLimit: no expression builds a string over 1 MiB.
func TestStringLimit(t *testing.T) {
	d := mustParse(t, exprDef)
	big := strings.Repeat("x", 600<<10)
	st := NewRun(Outputs{Body: big})
	e := &env{d: d, st: st, host: newHost()}
	for _, src := range []string{"@concat(triggerBody(), triggerBody())", "@{triggerBody()}@{triggerBody()}", "@replace(triggerBody(), 'x', 'yy')", "@join(createArray(triggerBody(), triggerBody()), '')"} {
		tm, err := compileTemplate(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.evalTemplate(tm); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("%s: error %v, want the 1 MiB limit", src, err)
		}
	}
	tm, _ := compileTemplate("@concat(triggerBody(), 'x')")
	if _, err := e.evalTemplate(tm); err != nil {
		t.Fatalf("600 KiB: %v", err)
	}
}

// TestExpressionSyntaxErrors: malformed expressions are refused when
// compiled, saying where.
func TestExpressionSyntaxErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"@", "empty"},
		{"@concat('a'", "expected ',' or ')'"},
		{"@concat('a)", "not closed"},
		{"@foo()", `function "foo" is not supported`},
		{"@concat()", "concat takes at least 1 arguments, not 0"},
		{"@utcNow(1, 2)", "utcNow takes 0 to 1 arguments, not 2"},
		{"@body", `"body" is not a function call`},
		{"@body('a').", "expected a property name"},
		{"@body('a')[0", "expected ']'"},
		{"@body('a') x", `unexpected "x"`},
		{"a @{concat('x') b", "@{ is not closed"},
		{"@1.2.3", "is not a number"},
		{"@" + strings.Repeat("x", maxExprLen), "over the limit"},
		{"@" + strings.Repeat("not(", 100) + "true" + strings.Repeat(")", 100), "deeper than"},
	}
	for _, c := range cases {
		_, err := compileTemplate(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", clipRunes(c.src, 40), err, c.want)
		}
	}
}

// TestFormatTimeTokens pins the .NET specifiers on one instant.
func TestFormatTimeTokens(t *testing.T) {
	tm := time.Date(2024, 1, 9, 0, 7, 3, 45_000_000, time.UTC)
	for f, want := range map[string]string{
		"yy-M-d H:m:s":         "24-1-9 0:7:3",
		"hh tt t":              "12 AM A",
		"ffff":                 "0450",
		"ddd MMM":              "Tue Jan",
		"\\y yyyy":             "y 2024",
		"o":                    "2024-01-09T00:07:03.0450000Z",
		"T":                    "12:07:03 AM",
		"yyyy-MM-ddTHH:mm:ssK": "2024-01-09T00:07:03Z",
	} {
		if got := formatTime(tm, f); got != want {
			t.Errorf("%q: %q, want %q", f, got, want)
		}
	}
}
