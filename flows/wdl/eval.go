package wdl

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// env is what expressions see while an action runs.
type env struct {
	d      *Definition
	st     *RunState
	params map[string]any
	host   Host
	loops  []loopFrame // active loops, innermost last
	cur    *node       // the action being evaluated, nil for the trigger
	path   string      // its path
}

// loopFrame is one active loop's iteration.
type loopFrame struct {
	name  string
	item  any // Foreach's current item; nil for Until
	index int
}

// evalError is a runtime expression error.
type evalError struct{ msg string }

func (e *evalError) Error() string { return e.msg }

func errf(format string, args ...any) error { return &evalError{fmt.Sprintf(format, args...)} }

// evalTemplate evaluates a compiled template.
func (e *env) evalTemplate(t *template) (any, error) {
	if t.whole != nil {
		v, err := e.eval(t.whole)
		if err != nil {
			return nil, err
		}
		if s, ok := v.(string); ok && len(s) > maxStrBytes {
			return nil, errf("the value is %d bytes, over the limit of %d", len(s), maxStrBytes)
		}
		return v, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.x == nil {
			b.WriteString(p.lit)
		} else {
			v, err := e.eval(p.x)
			if err != nil {
				return nil, err
			}
			b.WriteString(formatText(v))
		}
		if b.Len() > maxStrBytes {
			return nil, errf("the string is over the limit of %d bytes", maxStrBytes)
		}
	}
	return b.String(), nil
}

func (e *env) eval(x expr) (any, error) {
	switch x := x.(type) {
	case *litExpr:
		return x.v, nil
	case *tmplExpr:
		return e.evalTemplate(x.t)
	case *memberExpr:
		v, err := e.eval(x.x)
		if err != nil {
			return nil, err
		}
		k, err := e.eval(x.key)
		if err != nil {
			return nil, err
		}
		return member(v, k, x.optional)
	case *callExpr:
		f := functions[x.name]
		if f.lazy != nil {
			return f.lazy(e, x.args)
		}
		args := make([]any, len(x.args))
		for i, a := range x.args {
			v, err := e.eval(a)
			if err != nil {
				return nil, err
			}
			args[i] = v
		}
		v, err := f.fn(e, args)
		if err != nil {
			if _, ok := err.(*evalError); ok {
				return nil, errf("%s: %v", x.src, err)
			}
			return nil, err
		}
		if s, ok := v.(string); ok && len(s) > maxStrBytes {
			return nil, errf("%s: the result is %d bytes, over the limit of %d", x.src, len(s), maxStrBytes)
		}
		return v, nil
	}
	return nil, errf("unknown expression %T", x)
}

// member is v.k (v[k]); optional answers null where the plain access fails
// on a missing property or a null value.
func member(v, k any, optional bool) (any, error) {
	switch v := v.(type) {
	case nil:
		if optional {
			return nil, nil
		}
		return nil, errf("can't read %s of null: use ?[%s] if it may be missing", formatKey(k), formatKey(k))
	case map[string]any:
		name, ok := k.(string)
		if !ok {
			return nil, errf("an object's property is named by a string, not %s", formatKey(k))
		}
		if got, ok := v[name]; ok {
			return got, nil
		}
		// Header and property names often differ in case between systems:
		// Logic Apps looks properties up case-insensitively too.
		for key, got := range v {
			if strings.EqualFold(key, name) {
				return got, nil
			}
		}
		if optional {
			return nil, nil
		}
		return nil, errf("the property %s doesn't exist; properties: %s: use ?[%s] if it may be missing", formatKey(k), keysOf(v), formatKey(k))
	case []any:
		f, ok := k.(float64)
		if !ok || f != math.Trunc(f) {
			return nil, errf("an array is indexed by an integer, not %s", formatKey(k))
		}
		i := int(f)
		if i < 0 || i >= len(v) {
			if optional {
				return nil, nil
			}
			return nil, errf("index %d is out of range: the array has %d items", i, len(v))
		}
		return v[i], nil
	}
	return nil, errf("can't read %s of %s", formatKey(k), typeName(v))
}

func formatKey(k any) string {
	if s, ok := k.(string); ok {
		return "'" + s + "'"
	}
	return formatText(k)
}

func keysOf(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) > 10 {
		ks = append(ks[:10], "…")
	}
	return "[" + strings.Join(ks, ", ") + "]"
}

// typeName names a JSON value's type as Logic Apps' messages do.
func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// formatText is a value as text in an interpolated string and in
// string(): strings as they are, numbers in their shortest form, booleans
// as True and False (as Logic Apps, a .NET service, writes them), null as
// nothing, arrays and objects as JSON.
func formatText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		if v {
			return "True"
		}
		return "False"
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// normalize turns Go values from the host (ints, []string, structs) into
// the JSON values expressions work on, by a JSON round trip where needed.
func normalize(v any) any {
	switch v := v.(type) {
	case nil, string, bool, float64:
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case []any:
		for i := range v {
			v[i] = normalize(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = normalize(v[k])
		}
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return string(b)
	}
	return out
}

// deepEqual compares JSON values.
func deepEqual(a, b any) bool {
	switch a := a.(type) {
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !deepEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !deepEqual(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}

// actionPath is the path of the action named name as seen from the
// current iteration: its loop ancestors with their current indexes.
func (e *env) actionPath(name string) (string, *node, error) {
	n, ok := e.d.byName[name]
	if !ok {
		return "", nil, errf("there is no action named '%s'", name)
	}
	var b strings.Builder
	for _, l := range n.loops {
		found := false
		for i := len(e.loops) - 1; i >= 0; i-- {
			if e.loops[i].name == l {
				fmt.Fprintf(&b, "%s[%d]/", l, e.loops[i].index)
				found = true
				break
			}
		}
		if !found {
			return "", nil, errf("action '%s' is inside the loop '%s' and can only be referenced from inside it", name, l)
		}
	}
	b.WriteString(name)
	return b.String(), n, nil
}

// actionState returns the recorded state of the action named name.
func (e *env) actionState(name string) (*ActionState, *node, error) {
	p, n, err := e.actionPath(name)
	if err != nil {
		return nil, nil, err
	}
	a := e.st.Actions[p]
	if a == nil {
		return nil, nil, errf("action '%s' has not run yet: add it to runAfter", name)
	}
	return a, n, nil
}

// actionObject is an action as actions('x') shows it.
func actionObject(a *ActionState) map[string]any {
	m := map[string]any{"name": a.Name, "type": a.Type, "status": a.Status,
		"startTime": formatTime(a.Start, "o"), "inputs": a.Inputs}
	if !a.End.IsZero() {
		m["endTime"] = formatTime(a.End, "o")
	}
	if a.Outputs != nil {
		m["outputs"] = outputsObject(a.Type, a.Outputs)
	}
	if a.Error != nil {
		m["error"] = map[string]any{"code": a.Error.Code, "message": a.Error.Message}
		m["code"] = a.Error.Code
	}
	return m
}

// outputsObject is outputs('x'): a Compose's value, or statusCode,
// headers and body.
func outputsObject(typ string, o *Outputs) any {
	if o == nil {
		return nil
	}
	if typ == "Compose" {
		return o.Body
	}
	m := map[string]any{"body": o.Body}
	if o.StatusCode != 0 {
		m["statusCode"] = float64(o.StatusCode)
	}
	if o.Headers != nil {
		h := map[string]any{}
		for k, v := range o.Headers {
			h[k] = v
		}
		m["headers"] = h
	}
	return m
}
