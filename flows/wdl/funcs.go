package wdl

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// function is one expression function: its arity (max -1: any number) and
// its implementation, which gets evaluated arguments (fn) or evaluates its
// own (lazy: if, and, or, coalesce evaluate only what they need).
type function struct {
	min, max int
	fn       func(e *env, args []any) (any, error)
	lazy     func(e *env, args []expr) (any, error)
}

// functions is every supported function, by lower-case name. docs/flows.md
// lists the same names (TestFunctionsDocumented keeps them in step).
var functions map[string]function

func init() {
	functions = map[string]function{
		// Workflow.
		"triggerbody":      {0, 0, func(e *env, _ []any) (any, error) { return e.st.Trigger.Body, nil }, nil},
		"triggeroutputs":   {0, 0, func(e *env, _ []any) (any, error) { return triggerOutputs(e), nil }, nil},
		"trigger":          {0, 0, fnTrigger, nil},
		"body":             {1, 1, fnBody, nil},
		"outputs":          {1, 1, fnOutputs, nil},
		"actions":          {1, 1, fnActions, nil},
		"action":           {0, 0, fnAction, nil},
		"variables":        {1, 1, fnVariables, nil},
		"parameters":       {1, 1, fnParameters, nil},
		"item":             {0, 0, fnItem, nil},
		"items":            {1, 1, fnItems, nil},
		"iterationindexes": {1, 1, fnIterationIndexes, nil},
		"result":           {1, 1, fnResult, nil},
		"workflow":         {0, 0, fnWorkflow, nil},
		// Strings.
		"concat":       {1, -1, fnConcat, nil},
		"substring":    {2, 3, fnSubstring, nil},
		"replace":      {3, 3, fnReplace, nil},
		"tolower":      {1, 1, strFn(strings.ToLower), nil},
		"toupper":      {1, 1, strFn(strings.ToUpper), nil},
		"trim":         {1, 1, strFn(strings.TrimSpace), nil},
		"split":        {2, 2, fnSplit, nil},
		"indexof":      {2, 2, fnIndexOf, nil},
		"startswith":   {2, 2, strPred(func(s, p string) bool { return strings.HasPrefix(strings.ToLower(s), strings.ToLower(p)) }), nil},
		"endswith":     {2, 2, strPred(func(s, p string) bool { return strings.HasSuffix(strings.ToLower(s), strings.ToLower(p)) }), nil},
		"guid":         {0, 1, fnGuid, nil},
		"length":       {1, 1, fnLength, nil},
		"formatnumber": {2, 3, fnFormatNumber, nil},
		// Collections.
		"contains":     {2, 2, fnContains, nil},
		"empty":        {1, 1, func(_ *env, a []any) (any, error) { return isEmpty(a[0]), nil }, nil},
		"first":        {1, 1, fnFirst, nil},
		"last":         {1, 1, fnLast, nil},
		"join":         {2, 2, fnJoin, nil},
		"union":        {2, -1, fnUnion, nil},
		"intersection": {2, -1, fnIntersection, nil},
		"skip":         {2, 2, fnSkip, nil},
		"take":         {2, 2, fnTake, nil},
		"createarray":  {0, -1, func(_ *env, a []any) (any, error) { return append([]any{}, a...), nil }, nil},
		"coalesce":     {1, -1, nil, lazyCoalesce},
		// Logic.
		"equals":          {2, 2, func(_ *env, a []any) (any, error) { return deepEqual(a[0], a[1]), nil }, nil},
		"and":             {1, -1, nil, lazyAnd},
		"or":              {1, -1, nil, lazyOr},
		"not":             {1, 1, fnNot, nil},
		"if":              {3, 3, nil, lazyIf},
		"greater":         {2, 2, compareFn(func(c int) bool { return c > 0 }), nil},
		"greaterorequals": {2, 2, compareFn(func(c int) bool { return c >= 0 }), nil},
		"less":            {2, 2, compareFn(func(c int) bool { return c < 0 }), nil},
		"lessorequals":    {2, 2, compareFn(func(c int) bool { return c <= 0 }), nil},
		// Math.
		"add": {2, 2, mathFn(func(a, b float64) (float64, error) { return a + b, nil }), nil},
		"sub": {2, 2, mathFn(func(a, b float64) (float64, error) { return a - b, nil }), nil},
		"mul": {2, 2, mathFn(func(a, b float64) (float64, error) { return a * b, nil }), nil},
		"div": {2, 2, fnDiv, nil},
		"mod": {2, 2, mathFn(func(a, b float64) (float64, error) {
			if b == 0 {
				return 0, errf("division by zero")
			}
			return math.Mod(a, b), nil
		}), nil},
		"min":  {1, -1, minMax(func(a, b float64) bool { return a < b }), nil},
		"max":  {1, -1, minMax(func(a, b float64) bool { return a > b }), nil},
		"rand": {2, 2, fnRand, nil},
		// Conversion.
		"json":                 {1, 1, fnJSON, nil},
		"string":               {1, 1, func(_ *env, a []any) (any, error) { return formatText(a[0]), nil }, nil},
		"int":                  {1, 1, fnInt, nil},
		"float":                {1, 1, fnFloat, nil},
		"bool":                 {1, 1, fnBool, nil},
		"array":                {1, 1, func(_ *env, a []any) (any, error) { return []any{a[0]}, nil }, nil},
		"base64":               {1, 1, strFn(func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }), nil},
		"base64tostring":       {1, 1, fnBase64ToString, nil},
		"decodebase64":         {1, 1, fnBase64ToString, nil},
		"encodeuricomponent":   {1, 1, func(_ *env, a []any) (any, error) { return encodeURIComponent(formatText(a[0])), nil }, nil},
		"uricomponenttostring": {1, 1, fnURIComponentToString, nil},
	}
	for name, f := range dateFunctions {
		functions[name] = f
	}
}

// FunctionNames returns the names of the supported expression functions,
// as Logic Apps' documentation spells them, sorted.
func FunctionNames() []string {
	out := make([]string, 0, len(functions))
	for n := range functions {
		out = append(out, spelled[n])
	}
	sort.Strings(out)
	return out
}

// spelled is each function's name as written in Logic Apps' reference.
var spelled = func() map[string]string {
	m := map[string]string{}
	for _, n := range strings.Fields(`triggerBody triggerOutputs trigger body outputs actions action variables
		parameters item items iterationIndexes result workflow concat substring replace toLower toUpper trim
		split indexOf startsWith endsWith guid length formatNumber contains empty first last join union
		intersection skip take createArray coalesce equals and or not if greater greaterOrEquals less
		lessOrEquals add sub mul div mod min max rand json string int float bool array base64 base64ToString
		decodeBase64 encodeUriComponent uriComponentToString utcNow addDays addHours addMinutes addSeconds
		formatDateTime parseDateTime startOfDay ticks convertTimeZone dayOfWeek`) {
		m[strings.ToLower(n)] = n
	}
	return m
}()

func strArg(v any, what string) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", errf("%s must be a string, not %s %s", what, typeName(v), clipRunes(formatText(v), 40))
	}
	return s, nil
}

func numArg(v any, what string) (float64, error) {
	f, ok := v.(float64)
	if !ok {
		return 0, errf("%s must be a number, not %s %s", what, typeName(v), clipRunes(formatText(v), 40))
	}
	return f, nil
}

func intArg(v any, what string) (int, error) {
	f, err := numArg(v, what)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, errf("%s must be an integer, not %v", what, f)
	}
	return int(f), nil
}

func arrArg(v any, what string) ([]any, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, errf("%s must be an array, not %s", what, typeName(v))
	}
	return a, nil
}

func strFn(f func(string) string) func(*env, []any) (any, error) {
	return func(_ *env, a []any) (any, error) {
		s, err := strArg(a[0], "the argument")
		if err != nil {
			return nil, err
		}
		return f(s), nil
	}
}

func strPred(f func(s, p string) bool) func(*env, []any) (any, error) {
	return func(_ *env, a []any) (any, error) {
		s, err := strArg(a[0], "the first argument")
		if err != nil {
			return nil, err
		}
		p, err := strArg(a[1], "the second argument")
		if err != nil {
			return nil, err
		}
		return f(s, p), nil
	}
}

func triggerOutputs(e *env) any {
	return outputsObject("", &e.st.Trigger)
}

func fnTrigger(e *env, _ []any) (any, error) {
	return map[string]any{"name": e.d.Triggers[0].Name, "outputs": triggerOutputs(e)}, nil
}

func fnBody(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the action name")
	if err != nil {
		return nil, err
	}
	s, _, err := e.actionState(name)
	if err != nil {
		return nil, err
	}
	if s.Outputs == nil {
		return nil, nil
	}
	return s.Outputs.Body, nil
}

func fnOutputs(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the action name")
	if err != nil {
		return nil, err
	}
	s, _, err := e.actionState(name)
	if err != nil {
		return nil, err
	}
	return outputsObject(s.Type, s.Outputs), nil
}

func fnActions(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the action name")
	if err != nil {
		return nil, err
	}
	s, _, err := e.actionState(name)
	if err != nil {
		return nil, err
	}
	return actionObject(s), nil
}

func fnAction(e *env, _ []any) (any, error) {
	if e.cur == nil {
		return nil, errf("action() is only available inside an action")
	}
	s := e.st.Actions[e.path]
	if s == nil {
		return map[string]any{"name": e.cur.name}, nil
	}
	return actionObject(s), nil
}

func fnVariables(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the variable name")
	if err != nil {
		return nil, err
	}
	v, ok := e.st.Variables[name]
	if !ok {
		return nil, errf("the variable '%s' is not initialized: add an InitializeVariable action before this one", name)
	}
	return v, nil
}

func fnParameters(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the parameter name")
	if err != nil {
		return nil, err
	}
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	if v, ok := e.d.Parameters[name]; ok {
		return v, nil
	}
	if strings.HasPrefix(name, "$") {
		return nil, nil // $connections, $authentication: the host's, when it gives them
	}
	return nil, errf("the parameter '%s' has no value: give it a defaultValue in the definition", name)
}

func fnItem(e *env, _ []any) (any, error) {
	for i := len(e.loops) - 1; i >= 0; i-- {
		if e.d.byName[e.loops[i].name].typ == "Foreach" {
			return e.loops[i].item, nil
		}
	}
	return nil, errf("item() is only available inside a Foreach")
}

func (e *env) loop(name string) (loopFrame, error) {
	for i := len(e.loops) - 1; i >= 0; i-- {
		if e.loops[i].name == name {
			return e.loops[i], nil
		}
	}
	return loopFrame{}, errf("'%s' is not a loop this action is inside", name)
}

func fnItems(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the loop name")
	if err != nil {
		return nil, err
	}
	l, err := e.loop(name)
	if err != nil {
		return nil, err
	}
	return l.item, nil
}

func fnIterationIndexes(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the loop name")
	if err != nil {
		return nil, err
	}
	l, err := e.loop(name)
	if err != nil {
		return nil, err
	}
	return float64(l.index), nil
}

// fnResult is result('scope'): the scope's top-level actions as
// actions() shows them, for the try/catch pattern.
func fnResult(e *env, a []any) (any, error) {
	name, err := strArg(a[0], "the scope name")
	if err != nil {
		return nil, err
	}
	n, ok := e.d.byName[name]
	if !ok || len(n.graphs()) == 0 {
		return nil, errf("'%s' is not a Scope, If, Switch, Foreach or Until action", name)
	}
	scopePath, _, err := e.actionPath(name)
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(scopePath, name)
	out := []any{}
	for _, g := range n.graphs() {
		for _, c := range g.nodes {
			// Children of a loop are per iteration: result() of a loop is
			// the last iteration's, as Logic Apps gives.
			p := prefix + c.name
			if n.typ == "Foreach" || n.typ == "Until" {
				last := -1
				for k := range e.st.Actions {
					if i, ok := iterationOf(k, prefix+name); ok && i > last {
						last = i
					}
				}
				if last < 0 {
					continue
				}
				p = fmt.Sprintf("%s%s[%d]/%s", prefix, name, last, c.name)
			}
			if s := e.st.Actions[p]; s != nil {
				out = append(out, actionObject(s))
			}
		}
	}
	return out, nil
}

// iterationOf parses "loop[i]/…" paths.
func iterationOf(path, loop string) (int, bool) {
	rest, ok := strings.CutPrefix(path, loop+"[")
	if !ok {
		return 0, false
	}
	i := strings.IndexByte(rest, ']')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:i])
	return n, err == nil
}

func fnWorkflow(e *env, _ []any) (any, error) {
	if w, ok := e.params["$workflow"]; ok {
		return w, nil
	}
	return map[string]any{}, nil
}

func fnConcat(_ *env, a []any) (any, error) {
	var b strings.Builder
	for _, v := range a {
		b.WriteString(formatText(v))
		if b.Len() > maxStrBytes {
			return nil, errf("the result is over the limit of %d bytes", maxStrBytes)
		}
	}
	return b.String(), nil
}

func fnSubstring(_ *env, a []any) (any, error) {
	s, err := strArg(a[0], "the text")
	if err != nil {
		return nil, err
	}
	r := []rune(s)
	start, err := intArg(a[1], "the start index")
	if err != nil {
		return nil, err
	}
	n := len(r) - start
	if len(a) == 3 {
		if n, err = intArg(a[2], "the length"); err != nil {
			return nil, err
		}
	}
	if start < 0 || n < 0 || start+n > len(r) {
		return nil, errf("start %d and length %d are outside the text of %d characters", start, n, len(r))
	}
	return string(r[start : start+n]), nil
}

func fnReplace(_ *env, a []any) (any, error) {
	s, err := strArg(a[0], "the text")
	if err != nil {
		return nil, err
	}
	old, err := strArg(a[1], "the text to replace")
	if err != nil {
		return nil, err
	}
	if old == "" {
		return nil, errf("the text to replace is empty")
	}
	nw, err := strArg(a[2], "the replacement")
	if err != nil {
		return nil, err
	}
	if n := strings.Count(s, old); n > 0 && len(s)+n*(len(nw)-len(old)) > maxStrBytes {
		return nil, errf("the result is over the limit of %d bytes", maxStrBytes)
	}
	return strings.ReplaceAll(s, old, nw), nil
}

func fnSplit(_ *env, a []any) (any, error) {
	s, err := strArg(a[0], "the text")
	if err != nil {
		return nil, err
	}
	d, err := strArg(a[1], "the delimiter")
	if err != nil {
		return nil, err
	}
	if d == "" {
		return nil, errf("the delimiter is empty")
	}
	out := []any{}
	for _, p := range strings.Split(s, d) {
		out = append(out, p)
	}
	return out, nil
}

// fnIndexOf is case-insensitive, as in Logic Apps, and counts characters.
func fnIndexOf(_ *env, a []any) (any, error) {
	s, err := strArg(a[0], "the text")
	if err != nil {
		return nil, err
	}
	sub, err := strArg(a[1], "the text to find")
	if err != nil {
		return nil, err
	}
	i := strings.Index(strings.ToLower(s), strings.ToLower(sub))
	if i < 0 {
		return float64(-1), nil
	}
	return float64(utf8.RuneCountInString(strings.ToLower(s)[:i])), nil
}

func fnGuid(_ *env, a []any) (any, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", b)
	d := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	format := "D"
	if len(a) == 1 {
		f, err := strArg(a[0], "the format")
		if err != nil {
			return nil, err
		}
		format = f
	}
	switch format {
	case "D", "d":
		return d, nil
	case "N", "n":
		return h, nil
	case "B", "b":
		return "{" + d + "}", nil
	case "P", "p":
		return "(" + d + ")", nil
	}
	return nil, errf("the format '%s' is not one of N, D, B, P", format)
}

func fnLength(_ *env, a []any) (any, error) {
	switch v := a[0].(type) {
	case string:
		return float64(utf8.RuneCountInString(v)), nil
	case []any:
		return float64(len(v)), nil
	case map[string]any:
		return float64(len(v)), nil
	}
	return nil, errf("the argument must be a string or an array, not %s", typeName(a[0]))
}

func fnContains(_ *env, a []any) (any, error) {
	switch c := a[0].(type) {
	case string:
		s, err := strArg(a[1], "the value to find in a string")
		if err != nil {
			return nil, err
		}
		return strings.Contains(c, s), nil
	case []any:
		for _, v := range c {
			if deepEqual(v, a[1]) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		k, err := strArg(a[1], "the key to find in an object")
		if err != nil {
			return nil, err
		}
		_, ok := c[k]
		return ok, nil
	}
	return nil, errf("the collection must be a string, an array or an object, not %s", typeName(a[0]))
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func fnFirst(_ *env, a []any) (any, error) {
	switch v := a[0].(type) {
	case string:
		if v == "" {
			return "", nil
		}
		r, _ := utf8.DecodeRuneInString(v)
		return string(r), nil
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		return v[0], nil
	}
	return nil, errf("the argument must be a string or an array, not %s", typeName(a[0]))
}

func fnLast(_ *env, a []any) (any, error) {
	switch v := a[0].(type) {
	case string:
		if v == "" {
			return "", nil
		}
		r, _ := utf8.DecodeLastRuneInString(v)
		return string(r), nil
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		return v[len(v)-1], nil
	}
	return nil, errf("the argument must be a string or an array, not %s", typeName(a[0]))
}

func fnJoin(_ *env, a []any) (any, error) {
	arr, err := arrArg(a[0], "the first argument")
	if err != nil {
		return nil, err
	}
	d, err := strArg(a[1], "the delimiter")
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(arr))
	n := 0
	for i, v := range arr {
		parts[i] = formatText(v)
		if n += len(parts[i]) + len(d); n > maxStrBytes {
			return nil, errf("the result is over the limit of %d bytes", maxStrBytes)
		}
	}
	return strings.Join(parts, d), nil
}

func fnUnion(_ *env, a []any) (any, error) {
	if m, ok := a[0].(map[string]any); ok {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i, x := range a[1:] {
			o, ok := x.(map[string]any)
			if !ok {
				return nil, errf("argument %d must be an object like the first, not %s", i+2, typeName(x))
			}
			for k, v := range o {
				out[k] = v
			}
		}
		return out, nil
	}
	out := []any{}
	for i, x := range a {
		arr, err := arrArg(x, fmt.Sprintf("argument %d", i+1))
		if err != nil {
			return nil, err
		}
		for _, v := range arr {
			if !containsValue(out, v) {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

func containsValue(arr []any, v any) bool {
	for _, w := range arr {
		if deepEqual(v, w) {
			return true
		}
	}
	return false
}

func fnIntersection(_ *env, a []any) (any, error) {
	if m, ok := a[0].(map[string]any); ok {
		out := map[string]any{}
	keys:
		for k, v := range m {
			for i, x := range a[1:] {
				o, ok := x.(map[string]any)
				if !ok {
					return nil, errf("argument %d must be an object like the first, not %s", i+2, typeName(x))
				}
				if w, ok := o[k]; !ok || !deepEqual(v, w) {
					continue keys
				}
			}
			out[k] = v
		}
		return out, nil
	}
	arrs := make([][]any, len(a))
	for i, x := range a {
		arr, err := arrArg(x, fmt.Sprintf("argument %d", i+1))
		if err != nil {
			return nil, err
		}
		arrs[i] = arr
	}
	out := []any{}
	for _, v := range arrs[0] {
		in := !containsValue(out, v)
		for _, arr := range arrs[1:] {
			in = in && containsValue(arr, v)
		}
		if in {
			out = append(out, v)
		}
	}
	return out, nil
}

func fnSkip(_ *env, a []any) (any, error) {
	arr, err := arrArg(a[0], "the collection")
	if err != nil {
		return nil, err
	}
	n, err := intArg(a[1], "the count")
	if err != nil {
		return nil, err
	}
	n = max(0, min(n, len(arr)))
	return append([]any{}, arr[n:]...), nil
}

func fnTake(_ *env, a []any) (any, error) {
	n, err := intArg(a[1], "the count")
	if err != nil {
		return nil, err
	}
	if s, ok := a[0].(string); ok {
		r := []rune(s)
		return string(r[:max(0, min(n, len(r)))]), nil
	}
	arr, err := arrArg(a[0], "the collection")
	if err != nil {
		return nil, err
	}
	return append([]any{}, arr[:max(0, min(n, len(arr)))]...), nil
}

func lazyCoalesce(e *env, args []expr) (any, error) {
	for _, x := range args {
		v, err := e.eval(x)
		if err != nil {
			return nil, err
		}
		if v != nil {
			return v, nil
		}
	}
	return nil, nil
}

func boolArg(v any, what string) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, errf("%s must be a boolean, not %s %s", what, typeName(v), clipRunes(formatText(v), 40))
	}
	return b, nil
}

func lazyAnd(e *env, args []expr) (any, error) {
	for i, x := range args {
		v, err := e.eval(x)
		if err != nil {
			return nil, err
		}
		b, err := boolArg(v, fmt.Sprintf("and: argument %d", i+1))
		if err != nil {
			return nil, err
		}
		if !b {
			return false, nil
		}
	}
	return true, nil
}

func lazyOr(e *env, args []expr) (any, error) {
	for i, x := range args {
		v, err := e.eval(x)
		if err != nil {
			return nil, err
		}
		b, err := boolArg(v, fmt.Sprintf("or: argument %d", i+1))
		if err != nil {
			return nil, err
		}
		if b {
			return true, nil
		}
	}
	return false, nil
}

func lazyIf(e *env, args []expr) (any, error) {
	v, err := e.eval(args[0])
	if err != nil {
		return nil, err
	}
	b, err := boolArg(v, "if: the condition")
	if err != nil {
		return nil, err
	}
	if b {
		return e.eval(args[1])
	}
	return e.eval(args[2])
}

func fnNot(_ *env, a []any) (any, error) {
	b, err := boolArg(a[0], "the argument")
	if err != nil {
		return nil, err
	}
	return !b, nil
}

// compareFn compares two numbers, or two strings (ordinally), or two
// timestamps written as strings (they order as text in ISO 8601).
func compareFn(ok func(int) bool) func(*env, []any) (any, error) {
	return func(_ *env, a []any) (any, error) {
		switch x := a[0].(type) {
		case float64:
			y, err := numArg(a[1], "the second argument")
			if err != nil {
				return nil, err
			}
			c := 0
			if x < y {
				c = -1
			} else if x > y {
				c = 1
			}
			return ok(c), nil
		case string:
			y, err := strArg(a[1], "the second argument")
			if err != nil {
				return nil, err
			}
			return ok(strings.Compare(x, y)), nil
		}
		return nil, errf("can compare numbers or strings, not %s", typeName(a[0]))
	}
}

func mathFn(f func(a, b float64) (float64, error)) func(*env, []any) (any, error) {
	return func(_ *env, a []any) (any, error) {
		x, err := numArg(a[0], "the first argument")
		if err != nil {
			return nil, err
		}
		y, err := numArg(a[1], "the second argument")
		if err != nil {
			return nil, err
		}
		return f(x, y)
	}
}

// fnDiv divides; two integers give an integer (the quotient, truncated),
// as in Logic Apps.
func fnDiv(e *env, a []any) (any, error) {
	return mathFn(func(x, y float64) (float64, error) {
		if y == 0 {
			return 0, errf("division by zero")
		}
		if x == math.Trunc(x) && y == math.Trunc(y) {
			return math.Trunc(x / y), nil
		}
		return x / y, nil
	})(e, a)
}

func minMax(better func(a, b float64) bool) func(*env, []any) (any, error) {
	return func(_ *env, a []any) (any, error) {
		vals := a
		if len(a) == 1 {
			arr, err := arrArg(a[0], "a single argument")
			if err != nil {
				return nil, err
			}
			vals = arr
		}
		if len(vals) == 0 {
			return nil, errf("there are no numbers")
		}
		var best float64
		for i, v := range vals {
			f, err := numArg(v, fmt.Sprintf("value %d", i+1))
			if err != nil {
				return nil, err
			}
			if i == 0 || better(f, best) {
				best = f
			}
		}
		return best, nil
	}
}

// fnRand is an integer in [min, max), from crypto/rand.
func fnRand(_ *env, a []any) (any, error) {
	lo, err := intArg(a[0], "the minimum")
	if err != nil {
		return nil, err
	}
	hi, err := intArg(a[1], "the maximum")
	if err != nil {
		return nil, err
	}
	if hi <= lo {
		return nil, errf("the maximum %d must be greater than the minimum %d", hi, lo)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(hi-lo)))
	if err != nil {
		return nil, err
	}
	return float64(lo + int(n.Int64())), nil
}

func fnJSON(_ *env, a []any) (any, error) {
	s, err := strArg(a[0], "the argument")
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, errf("'%s' is not JSON: %v", clipRunes(s, 60), err)
	}
	return v, nil
}

func fnInt(_ *env, a []any) (any, error) {
	switch v := a[0].(type) {
	case float64:
		return math.Trunc(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, errf("'%s' is not an integer", clipRunes(v, 60))
		}
		return float64(n), nil
	case bool:
		if v {
			return float64(1), nil
		}
		return float64(0), nil
	}
	return nil, errf("can't convert %s to an integer", typeName(a[0]))
}

func fnFloat(_ *env, a []any) (any, error) {
	switch v := a[0].(type) {
	case float64:
		return v, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errf("'%s' is not a number", clipRunes(v, 60))
		}
		return f, nil
	}
	return nil, errf("can't convert %s to a float", typeName(a[0]))
}

func fnBool(_ *env, a []any) (any, error) {
	switch v := a[0].(type) {
	case bool:
		return v, nil
	case float64:
		return v != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, errf("'%s' is not true or false", clipRunes(v, 60))
	}
	return nil, errf("can't convert %s to a boolean", typeName(a[0]))
}

func fnBase64ToString(_ *env, a []any) (any, error) {
	s, err := strArg(a[0], "the argument")
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errf("'%s' is not base64", clipRunes(s, 60))
	}
	return string(b), nil
}

// encodeURIComponent percent-encodes everything but the unreserved
// characters (RFC 3986), spaces as %20.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func fnURIComponentToString(_ *env, a []any) (any, error) {
	s, err := strArg(a[0], "the argument")
	if err != nil {
		return nil, err
	}
	out, err := url.PathUnescape(s)
	if err != nil {
		return nil, errf("'%s' is not percent-encoded text: %v", clipRunes(s, 60), err)
	}
	return out, nil
}

// fnFormatNumber formats with the .NET standard formats N, F, D, C, P
// (with a precision, e.g. N2) or a custom pattern of 0, #, "," and "." (e.g.
// "#,##0.00"), in the invariant culture (the locale argument, en-US or
// empty, is accepted; others are refused).
func fnFormatNumber(_ *env, a []any) (any, error) {
	f, err := numArg(a[0], "the number")
	if err != nil {
		return nil, err
	}
	format, err := strArg(a[1], "the format")
	if err != nil {
		return nil, err
	}
	if len(a) == 3 {
		loc, err := strArg(a[2], "the locale")
		if err != nil {
			return nil, err
		}
		if loc != "" && !strings.EqualFold(loc, "en-US") && !strings.EqualFold(loc, "en") {
			return nil, errf("the locale '%s' is not supported: use en-US", loc)
		}
	}
	return formatNumber(f, format)
}

func formatNumber(f float64, format string) (any, error) {
	if len(format) >= 1 && strings.ContainsRune("NnFfDdCcPp", rune(format[0])) {
		prec := -1
		if len(format) > 1 {
			p, err := strconv.Atoi(format[1:])
			if err != nil || p < 0 || p > 20 {
				return nil, errf("the format '%s' is not a standard numeric format", format)
			}
			prec = p
		}
		switch format[0] {
		case 'N', 'n':
			return groupDigits(strconv.FormatFloat(f, 'f', orDefault(prec, 2), 64)), nil
		case 'F', 'f':
			return strconv.FormatFloat(f, 'f', orDefault(prec, 2), 64), nil
		case 'D', 'd':
			if f != math.Trunc(f) {
				return nil, errf("the format D needs an integer, not %v", f)
			}
			s := strconv.FormatInt(int64(math.Abs(f)), 10)
			for len(s) < prec {
				s = "0" + s
			}
			if f < 0 {
				s = "-" + s
			}
			return s, nil
		case 'C', 'c':
			s := groupDigits(strconv.FormatFloat(math.Abs(f), 'f', orDefault(prec, 2), 64))
			if f < 0 {
				return "-$" + s, nil
			}
			return "$" + s, nil
		case 'P', 'p':
			return groupDigits(strconv.FormatFloat(f*100, 'f', orDefault(prec, 2), 64)) + " %", nil
		}
	}
	// A custom pattern: digits after the point, grouping if it has a comma.
	if strings.Trim(format, "0#,.") != "" || strings.Count(format, ".") > 1 || format == "" {
		return nil, errf("the format '%s' is not supported: use N2, F2, D, C, P or a pattern of 0, #, ',' and '.'", format)
	}
	intPart, frac, _ := strings.Cut(format, ".")
	prec := len(frac)
	s := strconv.FormatFloat(f, 'f', prec, 64)
	if optional := strings.Count(frac, "#"); optional > 0 && strings.Contains(s, ".") {
		// Trailing optional digits are dropped when zero.
		for i := 0; i < optional && strings.HasSuffix(s, "0"); i++ {
			s = s[:len(s)-1]
		}
		s = strings.TrimSuffix(s, ".")
	}
	if strings.HasPrefix(s, "0.") && !strings.Contains(intPart, "0") {
		s = s[1:]
	}
	if strings.Contains(intPart, ",") {
		s = groupDigits(s)
	}
	return s, nil
}

func orDefault(p, d int) int {
	if p < 0 {
		return d
	}
	return p
}

// groupDigits puts commas between thousands of the integer part of a
// formatted number.
func groupDigits(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	ip, fp, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range ip {
		if i > 0 && (len(ip)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if hasFrac {
		out += "." + fp
	}
	if neg {
		out = "-" + out
	}
	return out
}
