package deploy

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// ARM template expressions: a JSON string that starts with '[' and ends
// with ']' is an expression ("[[" at the start escapes a literal '[').
// Keyhold evaluates the subset that templates like the spec's use:
//
//	parameters('name')                 a parameter's value
//	variables('name')                  a variable's value
//	resourceGroup()                    {id, name, type, location, tags, properties}
//	subscription()                     {id, subscriptionId, tenantId, displayName}
//	concat(a, b, …)                    strings (numbers and booleans as text), or arrays
//	resourceId([sub], [rg], 'Ns/type', 'name', …)
//	toLower(s), toUpper(s)
//	guid(s, …)                         a GUID derived from the strings (stable, not ARM's)
//	true(), false(), true, false       booleans
//
// with string literals in single quotes ('it''s'), integers, property
// access (resourceGroup().location) and indexing (x[0], x['key']).
// Anything else is CodeInvalidTemplate naming the expression.

// Scope is what resourceGroup() and subscription() answer: where a
// template is deployed.
type Scope struct {
	SubscriptionID string
	TenantID       string
	ResourceGroup  *keyhold.ResourceGroup
}

// Evaluator evaluates template expressions against a deployment's
// parameters and variables. It is not safe for concurrent use.
type Evaluator struct {
	scope    Scope
	params   map[string]any // given values, by lower-case name
	defaults map[string]any // raw default values, by lower-case name; evaluated on use
	vars     map[string]any // raw, by lower-case name; evaluated on use
	done     map[string]any // evaluated defaults ("p:name") and variables ("v:name")
	active   map[string]bool
}

// NewEvaluator returns an Evaluator for templates deployed at scope. params
// are the parameter values given with the deployment (literal values, not
// evaluated); defaults are the default values of the parameters declared,
// and vars the template's variables, both raw: they are evaluated on first
// use. Names compare case-insensitively.
func NewEvaluator(scope Scope, params, defaults, vars map[string]any) *Evaluator {
	e := &Evaluator{scope: scope, params: map[string]any{}, defaults: map[string]any{}, vars: map[string]any{},
		done: map[string]any{}, active: map[string]bool{}}
	for k, v := range params {
		e.params[strings.ToLower(k)] = v
	}
	for k, v := range defaults {
		e.defaults[strings.ToLower(k)] = v
	}
	for k, v := range vars {
		e.vars[strings.ToLower(k)] = v
	}
	return e
}

// Parameter returns a parameter's value: the one given, else its default
// value evaluated. A parameter with neither is CodeInvalidTemplate.
func (e *Evaluator) Parameter(name string) (any, error) {
	return e.lazy(nil, "p:", "parameters", name)
}

// invalid is a CodeInvalidTemplate error about the value at path.
func invalid(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = "Deployment template validation failed: " + path + ": " + msg
	} else {
		msg = "Deployment template validation failed: " + msg
	}
	return keyhold.Errorf(keyhold.CodeInvalidTemplate, "%s", msg)
}

// Evaluate returns v with every expression in it evaluated, recursively
// through objects and arrays. path names v in errors, e.g.
// "resources[0].properties".
func (e *Evaluator) Evaluate(path string, v any) (any, error) {
	switch v := v.(type) {
	case string:
		return e.evalString(path, v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			r, err := e.Evaluate(path+"."+k, x)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			r, err := e.Evaluate(fmt.Sprintf("%s[%d]", path, i), x)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// IsExpression reports whether s is a template expression.
func IsExpression(s string) bool {
	return len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' && !strings.HasPrefix(s, "[[")
}

func (e *Evaluator) evalString(path, s string) (any, error) {
	if strings.HasPrefix(s, "[[") {
		return s[1:], nil // an escaped literal '['
	}
	if !IsExpression(s) {
		return s, nil
	}
	p := &parser{src: s[1 : len(s)-1], expr: s, path: path}
	n, err := p.parse()
	if err != nil {
		return nil, err
	}
	return e.eval(p, n)
}

// --- parsing -----------------------------------------------------------------

// node is a parsed expression.
type node struct {
	kind  nodeKind
	str   string // literal string, function or property name
	num   int64
	args  []*node // call arguments
	base  *node   // for property access and index
	index *node   // for index
}

type nodeKind int

const (
	nString nodeKind = iota
	nNumber
	nCall
	nProperty
	nIndex
)

type parser struct {
	src  string // the expression without its brackets
	pos  int
	expr string // as written, for messages
	path string
}

func (p *parser) errorf(format string, args ...any) error {
	return invalid(p.path, "the template expression '%s' is not valid: %s", keyhold.Clip(p.expr), fmt.Sprintf(format, args...))
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
}

func (p *parser) parse() (*node, error) {
	n, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected %q at offset %d", p.src[p.pos:p.pos+1], p.pos+1)
	}
	return n, nil
}

const maxDepth = 32

func (p *parser) parseExpr(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.errorf("it nests more than %d deep", maxDepth)
	}
	n, err := p.parsePrimary(depth)
	if err != nil {
		return nil, err
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.src) {
			return n, nil
		}
		switch p.src[p.pos] {
		case '.':
			p.pos++
			p.skipSpace()
			name := p.ident()
			if name == "" {
				return nil, p.errorf("a property name must follow '.' at offset %d", p.pos+1)
			}
			n = &node{kind: nProperty, base: n, str: name}
		case '[':
			p.pos++
			idx, err := p.parseExpr(depth + 1)
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.pos >= len(p.src) || p.src[p.pos] != ']' {
				return nil, p.errorf("']' expected at offset %d", p.pos+1)
			}
			p.pos++
			n = &node{kind: nIndex, base: n, index: idx}
		default:
			return n, nil
		}
	}
}

func isIdentByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && isIdentByte(p.src[p.pos], p.pos == start) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) parsePrimary(depth int) (*node, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, p.errorf("it ends where a value is expected")
	}
	c := p.src[p.pos]
	switch {
	case c == '\'':
		p.pos++
		var b strings.Builder
		for {
			if p.pos >= len(p.src) {
				return nil, p.errorf("a string literal is not closed with '")
			}
			if p.src[p.pos] == '\'' {
				if p.pos+1 < len(p.src) && p.src[p.pos+1] == '\'' {
					b.WriteByte('\'')
					p.pos += 2
					continue
				}
				p.pos++
				return &node{kind: nString, str: b.String()}, nil
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		}
	case c == '-' || c >= '0' && c <= '9':
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		n, err := strconv.ParseInt(p.src[start:p.pos], 10, 64)
		if err != nil {
			return nil, p.errorf("%q is not an integer", p.src[start:p.pos])
		}
		return &node{kind: nNumber, num: n}, nil
	case isIdentByte(c, true):
		name := p.ident()
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '(' {
			if strings.EqualFold(name, "true") || strings.EqualFold(name, "false") || strings.EqualFold(name, "null") {
				return &node{kind: nCall, str: strings.ToLower(name)}, nil
			}
			return nil, p.errorf("'%s' must be a function call, %s(…)", name, name)
		}
		p.pos++ // (
		call := &node{kind: nCall, str: name}
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == ')' {
			p.pos++
			return call, nil
		}
		for {
			arg, err := p.parseExpr(depth + 1)
			if err != nil {
				return nil, err
			}
			call.args = append(call.args, arg)
			p.skipSpace()
			if p.pos >= len(p.src) {
				return nil, p.errorf("the arguments of %s( are not closed with ')'", name)
			}
			switch p.src[p.pos] {
			case ',':
				p.pos++
			case ')':
				p.pos++
				return call, nil
			default:
				return nil, p.errorf("',' or ')' expected at offset %d", p.pos+1)
			}
		}
	}
	return nil, p.errorf("unexpected %q at offset %d", string(c), p.pos+1)
}

// --- evaluation --------------------------------------------------------------

// functions are the template functions Keyhold evaluates, by lower-case
// name.
var functions = []string{"parameters", "variables", "resourceGroup", "subscription", "concat", "resourceId", "toLower", "toUpper", "guid", "true", "false"}

func (e *Evaluator) eval(p *parser, n *node) (any, error) {
	switch n.kind {
	case nString:
		return n.str, nil
	case nNumber:
		return float64(n.num), nil
	case nProperty:
		base, err := e.eval(p, n.base)
		if err != nil {
			return nil, err
		}
		obj, ok := base.(map[string]any)
		if !ok {
			return nil, p.errorf("property '%s' of a %s: only objects have properties", n.str, typeName(base))
		}
		for k, v := range obj {
			if strings.EqualFold(k, n.str) { // ARM's property names are case-insensitive
				return v, nil
			}
		}
		return nil, p.errorf("the object has no property '%s'", n.str)
	case nIndex:
		base, err := e.eval(p, n.base)
		if err != nil {
			return nil, err
		}
		idx, err := e.eval(p, n.index)
		if err != nil {
			return nil, err
		}
		switch b := base.(type) {
		case []any:
			f, ok := idx.(float64)
			if !ok || f != math.Trunc(f) || f < 0 || int(f) >= len(b) {
				return nil, p.errorf("index %v is not in the array of %d items", show(idx), len(b))
			}
			return b[int(f)], nil
		case map[string]any:
			k, ok := idx.(string)
			if !ok {
				return nil, p.errorf("an object is indexed by a string, not %v", show(idx))
			}
			for name, v := range b {
				if strings.EqualFold(name, k) {
					return v, nil
				}
			}
			return nil, p.errorf("the object has no property '%s'", k)
		}
		return nil, p.errorf("a %s can't be indexed", typeName(base))
	}
	args := make([]any, len(n.args))
	for i, a := range n.args {
		v, err := e.eval(p, a)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	return e.call(p, n.str, args)
}

func (e *Evaluator) call(p *parser, name string, args []any) (any, error) {
	want := func(n int) error {
		if len(args) != n {
			return p.errorf("%s() takes %d argument(s), got %d", name, n, len(args))
		}
		return nil
	}
	strArg := func(i int) (string, error) {
		s, ok := args[i].(string)
		if !ok {
			return "", p.errorf("argument %d of %s() must be a string, not %s", i+1, name, typeName(args[i]))
		}
		return s, nil
	}
	switch strings.ToLower(name) {
	case "parameters":
		if err := want(1); err != nil {
			return nil, err
		}
		s, err := strArg(0)
		if err != nil {
			return nil, err
		}
		return e.lazy(p, "p:", "parameters", s)
	case "variables":
		if err := want(1); err != nil {
			return nil, err
		}
		s, err := strArg(0)
		if err != nil {
			return nil, err
		}
		return e.lazy(p, "v:", "variables", s)
	case "resourcegroup":
		if err := want(0); err != nil {
			return nil, err
		}
		g := e.scope.ResourceGroup
		if g == nil {
			return nil, p.errorf("resourceGroup() is not available outside a resource group deployment")
		}
		tags := map[string]any{}
		for k, v := range g.Tags {
			tags[k] = v
		}
		return map[string]any{"id": g.ID(), "name": g.Name, "type": "Microsoft.Resources/resourceGroups", "location": g.Location,
			"tags": tags, "properties": map[string]any{"provisioningState": "Succeeded"}}, nil
	case "subscription":
		if err := want(0); err != nil {
			return nil, err
		}
		return map[string]any{"id": "/subscriptions/" + e.scope.SubscriptionID, "subscriptionId": e.scope.SubscriptionID,
			"tenantId": e.scope.TenantID, "displayName": e.scope.SubscriptionID}, nil
	case "concat":
		return concat(p, args)
	case "resourceid":
		return e.resourceID(p, args)
	case "tolower", "toupper":
		if err := want(1); err != nil {
			return nil, err
		}
		s, err := strArg(0)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(name, "tolower") {
			return strings.ToLower(s), nil
		}
		return strings.ToUpper(s), nil
	case "guid":
		if len(args) == 0 {
			return nil, p.errorf("guid() takes at least one string")
		}
		parts := make([]string, len(args))
		for i := range args {
			s, err := strArg(i)
			if err != nil {
				return nil, err
			}
			parts[i] = s
		}
		return uuid.NewSHA1(uuid.NameSpaceURL, []byte(strings.Join(parts, "-"))).String(), nil
	case "true", "false":
		if err := want(0); err != nil {
			return nil, err
		}
		return strings.EqualFold(name, "true"), nil
	case "null":
		return nil, nil
	}
	return nil, invalid(p.path, "the template expression '%s' uses the function '%s', which Keyhold does not support: it evaluates %s",
		keyhold.Clip(p.expr), name, strings.Join(functions, ", "))
}

// lazy returns a parameter (prefix "p:") or variable ("v:"), evaluating
// its raw value on first use and refusing cycles. p, if not nil, is the
// expression that asks, for messages.
func (e *Evaluator) lazy(p *parser, prefix, section, name string) (any, error) {
	fail := func(format string, args ...any) error {
		if p != nil {
			return p.errorf(format, args...)
		}
		return invalid("", format, args...)
	}
	k := strings.ToLower(name)
	if prefix == "p:" {
		if v, ok := e.params[k]; ok {
			return v, nil
		}
	}
	if v, ok := e.done[prefix+k]; ok {
		return v, nil
	}
	raws := e.vars
	if prefix == "p:" {
		raws = e.defaults
	}
	raw, ok := raws[k]
	if !ok {
		return nil, fail("the template has no %s '%s' with a value: declare it in \"%s\"", strings.TrimSuffix(section, "s"), name, section)
	}
	if e.active[prefix+k] {
		return nil, fail("the %s '%s' refers to itself", strings.TrimSuffix(section, "s"), name)
	}
	e.active[prefix+k] = true
	defer delete(e.active, prefix+k)
	v, err := e.Evaluate(section+"."+name, raw)
	if err != nil {
		return nil, err
	}
	e.done[prefix+k] = v
	return v, nil
}

// Bounds on what expressions may build, so that a small template can't
// make the server build or encode an enormous value: variables are
// evaluated once and shared, so a chain of them could otherwise describe a
// value exponentially larger than the template.
const (
	maxStringBytes = 1 << 20 // a string that concat() builds
	maxArrayItems  = 10000   // an array that concat() builds
	maxValueNodes  = 100000  // the values in one resource, parameter or output, expanded
)

// CheckSize refuses v, the evaluated value at path, if it expands to more
// than maxValueNodes values. It stops counting there, so it is cheap
// whatever v shares.
func CheckSize(path string, v any) error {
	n := 0
	var walk func(v any) bool
	walk = func(v any) bool {
		n++
		if n > maxValueNodes {
			return false
		}
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				if !walk(x) {
					return false
				}
			}
		case []any:
			for _, x := range v {
				if !walk(x) {
					return false
				}
			}
		}
		return true
	}
	if !walk(v) {
		return invalid(path, "the value expands to more than %d values: simplify the template", maxValueNodes)
	}
	return nil
}

func concat(p *parser, args []any) (any, error) {
	if len(args) == 0 {
		return "", nil
	}
	if _, ok := args[0].([]any); ok {
		var out []any
		for i, a := range args {
			arr, ok := a.([]any)
			if !ok {
				return nil, p.errorf("concat() of arrays: argument %d is a %s", i+1, typeName(a))
			}
			if len(out)+len(arr) > maxArrayItems {
				return nil, p.errorf("concat() would build an array of more than %d items", maxArrayItems)
			}
			out = append(out, arr...)
		}
		return out, nil
	}
	var b strings.Builder
	for i, a := range args {
		switch a := a.(type) {
		case string:
			b.WriteString(a)
		case float64:
			b.WriteString(strconv.FormatFloat(a, 'f', -1, 64))
		case bool:
			b.WriteString(strconv.FormatBool(a))
		default:
			return nil, p.errorf("concat() of strings: argument %d is a %s", i+1, typeName(a))
		}
		if b.Len() > maxStringBytes {
			return nil, p.errorf("concat() would build a string of more than %d bytes", maxStringBytes)
		}
	}
	return b.String(), nil
}

// resourceID builds a resource id, as ARM's resourceId(): optional
// subscription id and resource group name, then the resource type
// ("Namespace/type[/child]") and one name per type segment.
func (e *Evaluator) resourceID(p *parser, args []any) (any, error) {
	strs := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, p.errorf("argument %d of resourceId() must be a string, not %s", i+1, typeName(a))
		}
		strs[i] = s
	}
	ti := slices.IndexFunc(strs, func(s string) bool { return strings.Contains(s, "/") })
	if ti < 0 || ti > 2 {
		return nil, p.errorf("resourceId() needs a resource type such as 'Microsoft.KeyVault/vaults' as its first, second or third argument")
	}
	sub := e.scope.SubscriptionID
	var rg string
	if e.scope.ResourceGroup != nil {
		rg = e.scope.ResourceGroup.Name
	}
	switch ti {
	case 1:
		rg = strs[0]
	case 2:
		sub, rg = strs[0], strs[1]
	}
	segs := strings.Split(strs[ti], "/")
	names := strs[ti+1:]
	if len(segs) < 2 || len(names) != len(segs)-1 || slices.Contains(segs, "") {
		return nil, p.errorf("resourceId() of type '%s' takes %d name(s), got %d", strs[ti], max(len(segs)-1, 1), len(names))
	}
	if rg == "" {
		return nil, p.errorf("resourceId() needs a resource group outside a resource group deployment")
	}
	id := "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/" + segs[0]
	for i, t := range segs[1:] {
		id += "/" + t + "/" + names[i]
	}
	return id, nil
}

// typeName names a JSON value's type for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// show renders a value for a message.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return keyhold.Clip(string(b))
}
