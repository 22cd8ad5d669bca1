package wdl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Limits Parse enforces.
const (
	maxDepth        = 8    // containers (Scope, If, Switch, Foreach, Until) nested in one another
	maxActions      = 500  // actions in a definition, nested ones included
	maxForeachItems = 5000 // items a Foreach iterates over (checked when it runs)
	maxUntilCount   = 5000 // limit.count of an Until
	defaultUntil    = 60   // Until's count when limit.count is not given
	maxRetries      = 90   // retryPolicy.count
)

// node is one parsed action.
type node struct {
	name, typ, kind string
	path            string   // JSON path: actions.Loop.actions.Send
	index           int      // position among its siblings, in definition order
	preds           []pred   // runAfter
	loops           []string // the Foreach and Until actions it is inside, outermost first
	depth           int      // containers it is inside
	parent          *node    // the container it is in; nil at the top

	inputs  cval // evaluated into the action's inputs (nil: none)
	cond    cval // If and Until: the condition; Foreach: the items; Switch: the value
	retry   retryPolicy
	timeout time.Duration // limit.timeout; 0: none
	count   int           // Until's limit.count

	body    *graph // Scope, Foreach, Until, If's true branch
	elseG   *graph // If's false branch
	cases   []switchCase
	defaulG *graph // Switch's default

	wait time.Duration // Wait: its interval

	varName string // the variable a variable action names
	varType string // InitializeVariable: the declared types, by name in d.varTypes
}

type pred struct {
	name     string
	statuses []string
}

type switchCase struct {
	name  string
	value any
	g     *graph
}

// graph is the actions of one level (the top, or a container's branch).
type graph struct {
	nodes  []*node // definition order
	order  []*node // runAfter topological order, ties by definition order
	leaves []*node // actions no sibling runs after
}

// graphs returns a container's graphs: body, else, cases, default.
func (n *node) graphs() []*graph {
	var out []*graph
	if n.body != nil {
		out = append(out, n.body)
	}
	if n.elseG != nil {
		out = append(out, n.elseG)
	}
	for _, c := range n.cases {
		out = append(out, c.g)
	}
	if n.defaulG != nil {
		out = append(out, n.defaulG)
	}
	return out
}

// retryPolicy is an action's retry policy; count 0 means no retries.
type retryPolicy struct {
	typ                string // "none", "fixed", "exponential"
	count              int
	interval, min, max time.Duration
}

// delay is the wait before retry n (1-based). Exponential waits double
// from interval, kept within [min, max]; there is no random jitter so that
// runs are reproducible.
func (p retryPolicy) delay(n int) time.Duration {
	if p.typ == "fixed" {
		return p.interval
	}
	d := p.interval
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	return min(max(d, p.min), p.max)
}

var defaultRetry = retryPolicy{typ: "exponential", count: 4, interval: 7 * time.Second, min: 5 * time.Second, max: time.Hour}

// cval is a compiled JSON value: clit (no expressions), *template, cmap,
// carr.
type cval any

type clit struct{ v any }
type cmap map[string]cval
type carr []cval

// parser state for one definition.
type defParser struct {
	d        *Definition
	varTypes map[string]string
	declared map[string]bool // parameters declared, with or without a defaultValue
	refs     []exprRef       // expressions to check once every action is known
	count    int
}

// exprRef is a call naming an action, variable or loop, to check after
// all actions are parsed.
type exprRef struct {
	path string
	n    *node // the action it is in, nil in the trigger
	call *callExpr
}

// invalid is a refusal of the definition naming the JSON path.
func invalid(path, format string, args ...any) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeInvalidFlowDefinition, "%s: %s", path, fmt.Sprintf(format, args...))
}

// Parse validates a definition (the Workflow Definition Language JSON:
// $schema, contentVersion, parameters, triggers, actions, outputs).
// Unsupported constructs, unknown functions, bad expressions, runAfter
// cycles or runAfter naming missing actions are refused with
// keyhold.CodeInvalidFlowDefinition, naming the construct and its JSON
// path.
func Parse(definition []byte) (*Definition, error) {
	var top map[string]json.RawMessage
	if err := strictJSON(definition, &top); err != nil {
		return nil, keyhold.Errorf(keyhold.CodeInvalidFlowDefinition, "the definition is not a JSON object: %v", err)
	}
	p := &defParser{d: &Definition{Parameters: map[string]any{}, byName: map[string]*node{}, vars: map[string]bool{}}, varTypes: map[string]string{}, declared: map[string]bool{}}
	for _, k := range sortedKeys(top) {
		switch k {
		case "$schema", "contentVersion", "description":
		case "parameters", "triggers", "actions":
		case "outputs":
			var o map[string]any
			if err := json.Unmarshal(top[k], &o); err != nil || len(o) > 0 {
				return nil, invalid("outputs", "definition outputs are not supported: leave outputs empty ({}) and return data with a Response action")
			}
		default:
			return nil, invalid(k, "%q is not supported in a flow definition (supported: $schema, contentVersion, parameters, triggers, actions, outputs)", keyhold.Clip(k))
		}
	}
	if err := p.parameters(top["parameters"]); err != nil {
		return nil, err
	}
	if err := p.triggers(top["triggers"]); err != nil {
		return nil, err
	}
	g, err := p.graph(top["actions"], "actions", nil, 0, true)
	if err != nil {
		return nil, err
	}
	p.d.top = g
	for _, n := range p.d.byName {
		for _, cg := range n.graphs() {
			for _, c := range cg.nodes {
				c.parent = n
			}
		}
	}
	if err := p.checkRefs(); err != nil {
		return nil, err
	}
	return p.d, nil
}

// strictJSON decodes one JSON value and refuses trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// plain decodes raw JSON into plain values (numbers as float64).
func plain(raw json.RawMessage) (any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// objectKeys returns the keys of a JSON object in the order written, for
// definition order.
func objectKeys(raw json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected an object")
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// object decodes raw as a JSON object and refuses keys outside allowed.
func object(raw json.RawMessage, path string, allowed ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if len(raw) == 0 || string(raw) == "null" {
		return map[string]json.RawMessage{}, nil
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid(path, "must be a JSON object, not %s", keyhold.Clip(string(raw)))
	}
	for _, k := range sortedKeys(m) {
		if !slices.Contains(allowed, k) {
			return nil, invalid(path+"."+k, "%q is not supported here (supported: %s)", keyhold.Clip(k), strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

func str(raw json.RawMessage, path string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid(path, "must be a string, not %s", keyhold.Clip(string(raw)))
	}
	return s, nil
}

func (p *defParser) parameters(raw json.RawMessage) error {
	keys, err := objectKeysOrEmpty(raw, "parameters")
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	for _, k := range keys {
		path := "parameters." + k
		o, err := object(m[k], path, "type", "defaultValue", "metadata", "allowedValues")
		if err != nil {
			return err
		}
		p.declared[k] = true
		if dv, ok := o["defaultValue"]; ok {
			v, err := plain(dv)
			if err != nil {
				return invalid(path+".defaultValue", "%v", err)
			}
			p.d.Parameters[k] = v
		}
	}
	return nil
}

func objectKeysOrEmpty(raw json.RawMessage, path string) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	keys, err := objectKeys(raw)
	if err != nil {
		return nil, invalid(path, "must be a JSON object: %v", err)
	}
	return keys, nil
}

var requestKinds = []string{"Http", "Button", "PowerApp", "PowerAppV2", "Skills"}

func (p *defParser) triggers(raw json.RawMessage) error {
	keys, err := objectKeysOrEmpty(raw, "triggers")
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return invalid("triggers", "a flow has exactly one trigger; this definition has %d", len(keys))
	}
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	name := keys[0]
	path := "triggers." + name
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(m[name], &head); err != nil {
		return invalid(path, "must be a JSON object with a type")
	}
	t := Trigger{Name: name, Type: head.Type}
	switch head.Type {
	case "Request":
		o, err := object(m[name], path, "type", "kind", "inputs", "metadata", "description")
		if err != nil {
			return err
		}
		t.Kind = "Http"
		if k, ok := o["kind"]; ok {
			if t.Kind, err = str(k, path+".kind"); err != nil {
				return err
			}
		}
		if !slices.Contains(requestKinds, t.Kind) {
			return invalid(path+".kind", "the Request kind %q is not supported (supported: %s)", keyhold.Clip(t.Kind), strings.Join(requestKinds, ", "))
		}
		in, err := object(o["inputs"], path+".inputs", "schema", "method", "relativePath", "triggerAuthenticationType")
		if err != nil {
			return err
		}
		if s, ok := in["schema"]; ok {
			t.Schema = append(json.RawMessage(nil), s...)
		}
		if mr, ok := in["method"]; ok {
			meth, err := str(mr, path+".inputs.method")
			if err != nil {
				return err
			}
			if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, strings.ToUpper(meth)) {
				return invalid(path+".inputs.method", "%q is not an HTTP method Keyhold accepts (GET, POST, PUT, PATCH, DELETE)", keyhold.Clip(meth))
			}
			t.Method = strings.ToUpper(meth)
		}
		if rp, ok := in["relativePath"]; ok {
			return invalid(path+".inputs.relativePath", "relative paths on a Request trigger are not supported: pass values in the body or the query (%s)", keyhold.Clip(string(rp)))
		}
		if ta, ok := in["triggerAuthenticationType"]; ok {
			return invalid(path+".inputs.triggerAuthenticationType", "is not supported: the invoke URL is signed (%s)", keyhold.Clip(string(ta)))
		}
	case "Recurrence":
		o, err := object(m[name], path, "type", "recurrence", "evaluatedRecurrence", "metadata", "description")
		if err != nil {
			return err
		}
		r, err := parseRecurrence(o["recurrence"], path+".recurrence")
		if err != nil {
			return err
		}
		// Power Automate exports the schedule it computed next to the one
		// written; it must be the same schedule, or it would be ignored.
		if ev, ok := o["evaluatedRecurrence"]; ok {
			e, err := parseRecurrence(ev, path+".evaluatedRecurrence")
			if err != nil {
				return err
			}
			if *e != *r {
				return invalid(path+".evaluatedRecurrence", "differs from recurrence: remove it, or make it the same schedule")
			}
		}
		t.Recurrence = r
	case "OpenApiConnectionWebhook":
		o, err := object(m[name], path, "type", "inputs", "metadata", "description")
		if err != nil {
			return err
		}
		in, err := object(o["inputs"], path+".inputs", "host", "parameters", "authentication")
		if err != nil {
			return err
		}
		api, conn, op, err := connectorHost(in["host"], path+".inputs.host", true)
		if err != nil {
			return err
		}
		if api != "shared_teams" {
			return invalid(path+".inputs.host.apiId", "webhook triggers of the API %q are not supported: only Microsoft Teams (shared_teams)", keyhold.Clip(api))
		}
		t.API, t.Connection, t.Operation = api, conn, op
		p.addConn(conn)
		for _, k := range []string{"parameters", "authentication"} {
			if raw, ok := in[k]; ok {
				if _, err := p.compileRaw(raw, path+".inputs."+k, nil); err != nil {
					return err
				}
			}
		}
	default:
		return invalid(path+".type", "the trigger type %q is not supported (supported: Request, Recurrence, OpenApiConnectionWebhook)", keyhold.Clip(head.Type))
	}
	p.d.Triggers = []Trigger{t}
	return nil
}

func (p *defParser) addConn(name string) {
	if name != "" && !slices.Contains(p.d.conns, name) {
		p.d.conns = append(p.d.conns, name)
	}
}

// connectionParam finds the reference name in ApiConnection's
// "@parameters('$connections')['shared_x']['connectionId']".
var connectionParam = regexp.MustCompile(`^@parameters\('\$connections'\)\['([^']+)'\]\['connectionId'\]$`)

// connectorHost reads an OpenApiConnection's inputs.host: the api name
// (from apiId), the connection reference and the operation.
func connectorHost(raw json.RawMessage, path string, needOp bool) (api, conn, op string, err error) {
	h, err := object(raw, path, "apiId", "connectionName", "connection", "operationId")
	if err != nil {
		return "", "", "", err
	}
	var apiID string
	if r, ok := h["apiId"]; ok {
		if apiID, err = str(r, path+".apiId"); err != nil {
			return
		}
		api = apiID[strings.LastIndex(apiID, "/")+1:]
	}
	if r, ok := h["connectionName"]; ok {
		if conn, err = str(r, path+".connectionName"); err != nil {
			return
		}
	}
	if r, ok := h["connection"]; ok {
		if err = json.Unmarshal(r, &conn); err != nil {
			var c struct {
				ReferenceName string `json:"referenceName"`
				Name          string `json:"name"`
			}
			if json.Unmarshal(r, &c) != nil {
				return "", "", "", invalid(path+".connection", "must name a connection reference")
			}
			conn, err = c.ReferenceName, nil
			if conn == "" {
				conn = c.Name
			}
		}
	}
	if conn == "" {
		return "", "", "", invalid(path, "names no connection: give connectionName (the connection reference)")
	}
	if strings.ContainsAny(conn, "@") {
		return "", "", "", invalid(path, "the connection must be a literal connection reference name, not an expression (%s)", keyhold.Clip(conn))
	}
	if api == "" {
		api = conn
	}
	if r, ok := h["operationId"]; ok {
		if op, err = str(r, path+".operationId"); err != nil {
			return
		}
	}
	if needOp && op == "" {
		return "", "", "", invalid(path+".operationId", "is missing: name the connector operation")
	}
	return api, conn, op, nil
}

// actionKeys are the keys every action may have.
var actionKeys = []string{"type", "runAfter", "metadata", "description"}

// graph parses the actions object at path.
func (p *defParser) graph(raw json.RawMessage, path string, loops []string, depth int, top bool) (*graph, error) {
	keys, err := objectKeysOrEmpty(raw, path)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	g := &graph{}
	for i, name := range keys {
		n, err := p.action(name, m[name], path+"."+name, loops, depth, top)
		if err != nil {
			return nil, err
		}
		n.index = i
		g.nodes = append(g.nodes, n)
	}
	return g, p.order(g, path)
}

// order checks runAfter and sorts the graph topologically.
func (p *defParser) order(g *graph, path string) error {
	byName := map[string]*node{}
	for _, n := range g.nodes {
		byName[n.name] = n
	}
	indeg := map[*node]int{}
	after := map[*node][]*node{}
	for _, n := range g.nodes {
		for _, pr := range n.preds {
			q, ok := byName[pr.name]
			if !ok {
				if _, elsewhere := p.d.byName[pr.name]; elsewhere {
					return invalid(n.path+".runAfter."+pr.name, "runAfter can only name actions at the same level; %q is in another scope", keyhold.Clip(pr.name))
				}
				return invalid(n.path+".runAfter."+pr.name, "there is no action %q at this level", keyhold.Clip(pr.name))
			}
			if q == n {
				return invalid(n.path+".runAfter."+pr.name, "an action can't run after itself")
			}
			indeg[n]++
			after[q] = append(after[q], n)
		}
	}
	ready := []*node{}
	for _, n := range g.nodes {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		sort.Slice(ready, func(i, j int) bool { return ready[i].index < ready[j].index })
		n := ready[0]
		ready = ready[1:]
		g.order = append(g.order, n)
		for _, m := range after[n] {
			if indeg[m]--; indeg[m] == 0 {
				ready = append(ready, m)
			}
		}
	}
	if len(g.order) != len(g.nodes) {
		var cyc []string
		for _, n := range g.nodes {
			if indeg[n] > 0 {
				cyc = append(cyc, n.name)
			}
		}
		return invalid(path, "runAfter has a cycle through the actions %s: an action can't wait for one that waits for it", strings.Join(cyc, ", "))
	}
	for _, n := range g.nodes {
		if len(after[n]) == 0 {
			g.leaves = append(g.leaves, n)
		}
	}
	return nil
}

var runAfterStatuses = []string{StatusSucceeded, StatusFailed, StatusSkipped, StatusTimedOut}

func (p *defParser) action(name string, raw json.RawMessage, path string, loops []string, depth int, top bool) (*node, error) {
	if name == "" || strings.ContainsAny(name, "/[]'") || len(name) > 80 {
		return nil, invalid(path, "the action name %q is not allowed: use up to 80 characters without / [ ] or '", keyhold.Clip(name))
	}
	if _, dup := p.d.byName[name]; dup {
		return nil, invalid(path, "another action is already named %q: action names are unique in a definition", keyhold.Clip(name))
	}
	if p.count++; p.count > maxActions {
		return nil, invalid(path, "a definition has at most %d actions", maxActions)
	}
	var head struct {
		Type     string                     `json:"type"`
		RunAfter map[string]json.RawMessage `json:"runAfter"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, invalid(path, "must be a JSON object with a type and runAfter: %v", err)
	}
	n := &node{name: name, typ: head.Type, path: path, loops: loops, depth: depth}
	p.d.byName[name] = n
	preds, err := objectKeysOrEmpty(mustRaw(raw, "runAfter"), path+".runAfter")
	if err != nil {
		return nil, err
	}
	for _, pn := range preds {
		var sts []string
		if err := json.Unmarshal(head.RunAfter[pn], &sts); err != nil || len(sts) == 0 {
			return nil, invalid(path+".runAfter."+pn, "must be a non-empty array of statuses (Succeeded, Failed, Skipped, TimedOut)")
		}
		pr := pred{name: pn}
		for _, s := range sts {
			i := slices.IndexFunc(runAfterStatuses, func(x string) bool { return strings.EqualFold(x, s) })
			if i < 0 {
				return nil, invalid(path+".runAfter."+pn, "the status %q is not one of Succeeded, Failed, Skipped, TimedOut", keyhold.Clip(s))
			}
			pr.statuses = append(pr.statuses, runAfterStatuses[i])
		}
		n.preds = append(n.preds, pr)
	}
	keys := append([]string(nil), actionKeys...)
	switch n.typ {
	case "Compose":
		keys = append(keys, "inputs")
	case "InitializeVariable", "SetVariable", "IncrementVariable", "AppendToArrayVariable", "AppendToStringVariable":
		keys = append(keys, "inputs")
	case "Terminate", "Response":
		keys = append(keys, "inputs", "kind")
	case "Http", "Workflow", "ApiConnection", "OpenApiConnection":
		keys = append(keys, "inputs", "limit")
	case "If":
		keys = append(keys, "expression", "actions", "else")
	case "Switch":
		keys = append(keys, "expression", "cases", "default")
	case "Foreach":
		keys = append(keys, "foreach", "actions", "runtimeConfiguration", "limit")
	case "Until":
		keys = append(keys, "expression", "actions", "limit")
	case "Scope":
		keys = append(keys, "actions")
	case "Wait":
		keys = append(keys, "inputs")
	default:
		return nil, invalid(path+".type", "the action type %q is not supported (supported: Compose, InitializeVariable, SetVariable, IncrementVariable, AppendToArrayVariable, AppendToStringVariable, If, Switch, Foreach, Until, Scope, Terminate, Response, Wait, Http, Workflow, ApiConnection, OpenApiConnection)", keyhold.Clip(n.typ))
	}
	o, err := object(raw, path, keys...)
	if err != nil {
		return nil, err
	}
	if lim, ok := o["limit"]; ok {
		allowed := []string{"timeout"}
		if n.typ == "Until" {
			allowed = append(allowed, "count")
		}
		l, err := object(lim, path+".limit", allowed...)
		if err != nil {
			return nil, err
		}
		if t, ok := l["timeout"]; ok {
			s, err := str(t, path+".limit.timeout")
			if err != nil {
				return nil, err
			}
			if n.timeout, err = parseDuration(s); err != nil {
				return nil, invalid(path+".limit.timeout", "%v", err)
			}
		}
		if c, ok := l["count"]; ok {
			if err := json.Unmarshal(c, &n.count); err != nil || n.count < 1 || n.count > maxUntilCount {
				return nil, invalid(path+".limit.count", "must be an integer from 1 to %d, not %s", maxUntilCount, keyhold.Clip(string(c)))
			}
		}
	}
	if n.typ == "If" || n.typ == "Switch" || n.typ == "Foreach" || n.typ == "Until" || n.typ == "Scope" {
		if depth+1 > maxDepth {
			return nil, invalid(path, "containers nest at most %d deep", maxDepth)
		}
	}
	inner := loops
	if n.typ == "Foreach" || n.typ == "Until" {
		inner = append(slices.Clip(loops), name)
	}
	switch n.typ {
	case "Compose":
		raw, ok := o["inputs"]
		if !ok {
			return nil, invalid(path+".inputs", "is missing: a Compose needs inputs")
		}
		if n.inputs, err = p.compileRaw(raw, path+".inputs", n); err != nil {
			return nil, err
		}
	case "InitializeVariable":
		if !top {
			return nil, invalid(path, "InitializeVariable must be at the top level of the definition, not inside a %s", "container")
		}
		if err := p.initVariable(n, o["inputs"], path+".inputs"); err != nil {
			return nil, err
		}
	case "SetVariable", "IncrementVariable", "AppendToArrayVariable", "AppendToStringVariable":
		if err := p.useVariable(n, o["inputs"], path+".inputs"); err != nil {
			return nil, err
		}
	case "Terminate":
		in, err := object(o["inputs"], path+".inputs", "runStatus", "runError")
		if err != nil {
			return nil, err
		}
		st, err := str(in["runStatus"], path+".inputs.runStatus")
		if err != nil || !slices.Contains([]string{StatusSucceeded, StatusFailed, StatusCancelled}, st) {
			return nil, invalid(path+".inputs.runStatus", "must be Succeeded, Failed or Cancelled")
		}
		if re, ok := in["runError"]; ok {
			if _, err := object(re, path+".inputs.runError", "code", "message"); err != nil {
				return nil, err
			}
		}
		if n.inputs, err = p.compileRaw(o["inputs"], path+".inputs", n); err != nil {
			return nil, err
		}
		if k, ok := o["kind"]; ok {
			return nil, invalid(path+".kind", "a Terminate has no kind (%s)", keyhold.Clip(string(k)))
		}
	case "Wait":
		if n.wait, err = parseWait(o["inputs"], path+".inputs"); err != nil {
			return nil, err
		}
		if n.inputs, err = p.compileRaw(o["inputs"], path+".inputs", n); err != nil {
			return nil, err
		}
	case "Response":
		if k, ok := o["kind"]; ok {
			if n.kind, err = str(k, path+".kind"); err != nil {
				return nil, err
			}
			if !slices.Contains([]string{"Http", "PowerApp", "Skills"}, n.kind) {
				return nil, invalid(path+".kind", "the Response kind %q is not supported (Http, PowerApp, Skills)", keyhold.Clip(n.kind))
			}
		}
		if _, err := object(o["inputs"], path+".inputs", "statusCode", "headers", "body", "schema"); err != nil {
			return nil, err
		}
		if n.inputs, err = p.compileRaw(o["inputs"], path+".inputs", n); err != nil {
			return nil, err
		}
	case "Http", "Workflow", "ApiConnection", "OpenApiConnection":
		if err := p.callAction(n, o["inputs"], path+".inputs"); err != nil {
			return nil, err
		}
	case "If":
		if n.cond, err = p.condition(o["expression"], path+".expression", n); err != nil {
			return nil, err
		}
		if n.body, err = p.graph(o["actions"], path+".actions", inner, depth+1, false); err != nil {
			return nil, err
		}
		el, err := object(o["else"], path+".else", "actions")
		if err != nil {
			return nil, err
		}
		if n.elseG, err = p.graph(el["actions"], path+".else.actions", inner, depth+1, false); err != nil {
			return nil, err
		}
	case "Switch":
		ex, ok := o["expression"]
		if !ok {
			return nil, invalid(path+".expression", "is missing: a Switch needs the value to switch on")
		}
		if n.cond, err = p.compileRaw(ex, path+".expression", n); err != nil {
			return nil, err
		}
		ckeys, err := objectKeysOrEmpty(o["cases"], path+".cases")
		if err != nil {
			return nil, err
		}
		var cases map[string]json.RawMessage
		json.Unmarshal(o["cases"], &cases)
		var seen []any
		for _, cn := range ckeys {
			cp := path + ".cases." + cn
			c, err := object(cases[cn], cp, "case", "actions")
			if err != nil {
				return nil, err
			}
			v, err := plain(c["case"])
			if err != nil || v == nil {
				return nil, invalid(cp+".case", "is missing: give the value this case matches")
			}
			switch v.(type) {
			case string, float64:
			default:
				return nil, invalid(cp+".case", "must be a string or a number, not %s", keyhold.Clip(string(c["case"])))
			}
			if slices.ContainsFunc(seen, func(x any) bool { return x == v }) {
				return nil, invalid(cp+".case", "another case already matches %s", keyhold.Clip(string(c["case"])))
			}
			seen = append(seen, v)
			g, err := p.graph(c["actions"], cp+".actions", inner, depth+1, false)
			if err != nil {
				return nil, err
			}
			n.cases = append(n.cases, switchCase{name: cn, value: v, g: g})
		}
		def, err := object(o["default"], path+".default", "actions")
		if err != nil {
			return nil, err
		}
		if n.defaulG, err = p.graph(def["actions"], path+".default.actions", inner, depth+1, false); err != nil {
			return nil, err
		}
	case "Foreach":
		fe, ok := o["foreach"]
		if !ok {
			return nil, invalid(path+".foreach", "is missing: give the array to iterate over, e.g. \"@body('List_rows')?['value']\"")
		}
		if n.cond, err = p.compileRaw(fe, path+".foreach", n); err != nil {
			return nil, err
		}
		if rc, ok := o["runtimeConfiguration"]; ok {
			r, err := object(rc, path+".runtimeConfiguration", "concurrency")
			if err != nil {
				return nil, err
			}
			c, err := object(r["concurrency"], path+".runtimeConfiguration.concurrency", "repetitions")
			if err != nil {
				return nil, err
			}
			var reps int
			if err := json.Unmarshal(c["repetitions"], &reps); err != nil || reps < 1 || reps > 50 {
				return nil, invalid(path+".runtimeConfiguration.concurrency.repetitions", "must be an integer from 1 to 50")
			}
		}
		if n.body, err = p.graph(o["actions"], path+".actions", inner, depth+1, false); err != nil {
			return nil, err
		}
	case "Until":
		if n.cond, err = p.condition(o["expression"], path+".expression", n); err != nil {
			return nil, err
		}
		if n.count == 0 {
			n.count = defaultUntil
		}
		if n.timeout == 0 {
			n.timeout = time.Hour
		}
		if n.body, err = p.graph(o["actions"], path+".actions", inner, depth+1, false); err != nil {
			return nil, err
		}
	case "Scope":
		if n.body, err = p.graph(o["actions"], path+".actions", inner, depth+1, false); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// mustRaw returns the member k of the JSON object raw, or nil.
func mustRaw(raw json.RawMessage, k string) json.RawMessage {
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	return m[k]
}

var variableTypes = []string{"string", "integer", "float", "boolean", "array", "object"}

func (p *defParser) initVariable(n *node, raw json.RawMessage, path string) error {
	in, err := object(raw, path, "variables")
	if err != nil {
		return err
	}
	var vars []json.RawMessage
	if err := json.Unmarshal(in["variables"], &vars); err != nil || len(vars) != 1 {
		return invalid(path+".variables", "must be an array of one variable: {\"name\", \"type\", \"value\"}")
	}
	vp := path + ".variables[0]"
	v, err := object(vars[0], vp, "name", "type", "value")
	if err != nil {
		return err
	}
	name, err := str(v["name"], vp+".name")
	if err != nil || name == "" {
		return invalid(vp+".name", "must be the variable's name")
	}
	typ, err := str(v["type"], vp+".type")
	if err != nil || !slices.Contains(variableTypes, strings.ToLower(typ)) {
		return invalid(vp+".type", "must be one of %s, not %s", strings.Join(variableTypes, ", "), keyhold.Clip(string(v["type"])))
	}
	if p.d.vars[name] {
		return invalid(vp+".name", "the variable %q is already initialized by another action", keyhold.Clip(name))
	}
	p.d.vars[name] = true
	p.varTypes[name] = strings.ToLower(typ)
	n.varName, n.varType = name, strings.ToLower(typ)
	if val, ok := v["value"]; ok {
		if n.inputs, err = p.compileRaw(val, vp+".value", n); err != nil {
			return err
		}
	}
	return nil
}

func (p *defParser) useVariable(n *node, raw json.RawMessage, path string) error {
	in, err := object(raw, path, "name", "value")
	if err != nil {
		return err
	}
	name, err := str(in["name"], path+".name")
	if err != nil {
		return err
	}
	typ, ok := p.varTypes[name]
	if !ok {
		return invalid(path+".name", "the variable %q is not initialized: add an InitializeVariable action at the top level, before this one", keyhold.Clip(name))
	}
	n.varName, n.varType = name, typ
	switch n.typ {
	case "IncrementVariable":
		if typ != "integer" && typ != "float" {
			return invalid(path+".name", "the variable %q is a %s: IncrementVariable needs an integer or a float", name, typ)
		}
	case "AppendToArrayVariable":
		if typ != "array" {
			return invalid(path+".name", "the variable %q is a %s: AppendToArrayVariable needs an array", name, typ)
		}
	case "AppendToStringVariable":
		if typ != "string" {
			return invalid(path+".name", "the variable %q is a %s: AppendToStringVariable needs a string", name, typ)
		}
	}
	if val, ok := in["value"]; ok {
		if n.inputs, err = p.compileRaw(val, path+".value", n); err != nil {
			return err
		}
	} else if n.typ != "IncrementVariable" {
		return invalid(path+".value", "is missing")
	}
	return nil
}

var httpMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

func (p *defParser) callAction(n *node, raw json.RawMessage, path string) error {
	var allowed []string
	switch n.typ {
	case "Http":
		allowed = []string{"method", "uri", "headers", "queries", "body", "authentication", "retryPolicy"}
	case "Workflow":
		allowed = []string{"host", "body", "headers", "retryPolicy"}
	case "ApiConnection":
		allowed = []string{"host", "method", "path", "queries", "body", "headers", "authentication", "retryPolicy"}
	case "OpenApiConnection":
		allowed = []string{"host", "parameters", "authentication", "retryPolicy"}
	}
	in, err := object(raw, path, allowed...)
	if err != nil {
		return err
	}
	n.retry = defaultRetry
	if rp, ok := in["retryPolicy"]; ok {
		if n.retry, err = parseRetry(rp, path+".retryPolicy"); err != nil {
			return err
		}
		delete(in, "retryPolicy")
	}
	switch n.typ {
	case "Http":
		m, err := str(in["method"], path+".method")
		if err != nil || !slices.Contains(httpMethods, strings.ToUpper(m)) {
			return invalid(path+".method", "must be one of %s", strings.Join(httpMethods, ", "))
		}
		if _, ok := in["uri"]; !ok {
			return invalid(path+".uri", "is missing: give the URL to call")
		}
		if a, ok := in["authentication"]; ok {
			ref, err := httpAuthentication(a, path+".authentication")
			if err != nil {
				return err
			}
			p.addConn(ref)
		}
	case "Workflow":
		h, err := object(in["host"], path+".host", "workflowReferenceName", "triggerName")
		if err != nil {
			return err
		}
		ref, err := str(h["workflowReferenceName"], path+".host.workflowReferenceName")
		if err != nil || ref == "" || isTemplate(ref) {
			return invalid(path+".host.workflowReferenceName", "must be the child flow's id, written literally (so that recursion can be checked at save)")
		}
		if !slices.Contains(p.d.children, ref) {
			p.d.children = append(p.d.children, ref)
		}
	case "ApiConnection":
		h, err := object(in["host"], path+".host", "connection")
		if err != nil {
			return err
		}
		c, err := object(h["connection"], path+".host.connection", "name")
		if err != nil {
			return err
		}
		name, err := str(c["name"], path+".host.connection.name")
		if err != nil {
			return err
		}
		mt := connectionParam.FindStringSubmatch(name)
		if mt == nil {
			return invalid(path+".host.connection.name", "must be @parameters('$connections')['<reference>']['connectionId'], not %q", keyhold.Clip(name))
		}
		p.addConn(mt[1])
		if _, ok := in["method"]; !ok {
			return invalid(path+".method", "is missing")
		}
		if _, ok := in["path"]; !ok {
			return invalid(path+".path", "is missing")
		}
	case "OpenApiConnection":
		_, conn, _, err := connectorHost(in["host"], path+".host", true)
		if err != nil {
			return err
		}
		p.addConn(conn)
	}
	c := cmap{}
	for _, k := range sortedKeys(in) {
		if c[k], err = p.compileRaw(in[k], path+"."+k, n); err != nil {
			return err
		}
	}
	n.inputs = c
	if n.typ == "Http" {
		if u, ok := c["uri"].(clit); ok {
			if s, ok := u.v.(string); !ok || !(strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")) {
				return invalid(path+".uri", "must be an http or https URL, not %s", keyhold.Clip(fmt.Sprint(u.v)))
			}
		}
	}
	return nil
}

// maxWait is the longest Wait (Delay) interval.
const maxWait = 30 * 24 * time.Hour

var waitUnits = map[string]time.Duration{"Second": time.Second, "Minute": time.Minute, "Hour": time.Hour, "Day": 24 * time.Hour, "Week": 7 * 24 * time.Hour}

// parseWait reads a Wait (the designer's Delay) action's inputs:
// {"interval": {"count": n, "unit": "Second"|"Minute"|"Hour"|"Day"|"Week"}},
// a literal interval, at most maxWait. ("until", Delay until, and the unit
// Month, whose length varies, are refused.)
func parseWait(raw json.RawMessage, path string) (time.Duration, error) {
	in, err := object(raw, path, "interval")
	if err != nil {
		return 0, err
	}
	iv, ok := in["interval"]
	if !ok {
		return 0, invalid(path+".interval", "is missing: give {\"count\": n, \"unit\": \"Second\"} (Delay until is not supported)")
	}
	o, err := object(iv, path+".interval", "count", "unit")
	if err != nil {
		return 0, err
	}
	var count int64
	if err := json.Unmarshal(o["count"], &count); err != nil || count < 1 {
		return 0, invalid(path+".interval.count", "must be a whole number of at least 1, written literally, not %s", keyhold.Clip(string(o["count"])))
	}
	u, err := str(o["unit"], path+".interval.unit")
	if err != nil {
		return 0, err
	}
	unit, ok := waitUnits[u]
	if !ok {
		return 0, invalid(path+".interval.unit", "%q is not supported: use Second, Minute, Hour, Day or Week", keyhold.Clip(u))
	}
	if count > int64(maxWait/unit) {
		return 0, invalid(path+".interval", "%d %s is longer than a Wait's limit of 30 days", count, u)
	}
	return time.Duration(count) * unit, nil
}

// httpAuthentication reads an Http action's authentication: only a
// reference to a non-OAuth connection, {"type": "Connection",
// "connectionName": "<reference>"}, so that the credential lives sealed in
// the connection and never in the definition or the run's recorded
// inputs. Inline credentials (Basic, Raw, …) are refused. It returns the
// connection reference's name.
func httpAuthentication(raw json.RawMessage, path string) (string, error) {
	o, err := object(raw, path, "type", "connectionName")
	if err != nil {
		return "", invalid(path, "must be {\"type\": \"Connection\", \"connectionName\": \"<connection reference>\"}: inline credentials are not supported, put them in a non-OAuth connection (%s)", keyhold.Clip(string(raw)))
	}
	typ, err := str(o["type"], path+".type")
	if err != nil {
		return "", err
	}
	if typ != "Connection" {
		return "", invalid(path+".type", "%q is not supported: put the credentials in a non-OAuth connection and use {\"type\": \"Connection\", \"connectionName\": \"<connection reference>\"}", keyhold.Clip(typ))
	}
	ref, err := str(o["connectionName"], path+".connectionName")
	if err != nil || ref == "" || isTemplate(ref) {
		return "", invalid(path+".connectionName", "must name one of the flow's connection references, written literally")
	}
	return ref, nil
}

func parseRetry(raw json.RawMessage, path string) (retryPolicy, error) {
	o, err := object(raw, path, "type", "count", "interval", "minimumInterval", "maximumInterval")
	if err != nil {
		return retryPolicy{}, err
	}
	typ, err := str(o["type"], path+".type")
	if err != nil {
		return retryPolicy{}, err
	}
	rp := retryPolicy{typ: strings.ToLower(typ)}
	dur := func(k string, def time.Duration) (time.Duration, error) {
		r, ok := o[k]
		if !ok {
			return def, nil
		}
		s, err := str(r, path+"."+k)
		if err != nil {
			return 0, err
		}
		d, err := parseDuration(s)
		if err != nil {
			return 0, invalid(path+"."+k, "%v", err)
		}
		if d > 24*time.Hour {
			return 0, invalid(path+"."+k, "is over a day (%s)", s)
		}
		return d, nil
	}
	count := func() error {
		r, ok := o["count"]
		if !ok {
			rp.count = 4
			return nil
		}
		if err := json.Unmarshal(r, &rp.count); err != nil || rp.count < 1 || rp.count > maxRetries {
			return invalid(path+".count", "must be an integer from 1 to %d, not %s", maxRetries, keyhold.Clip(string(r)))
		}
		return nil
	}
	switch rp.typ {
	case "none":
		for _, k := range []string{"count", "interval", "minimumInterval", "maximumInterval"} {
			if _, ok := o[k]; ok {
				return retryPolicy{}, invalid(path+"."+k, "a retry policy of type none has no %s", k)
			}
		}
	case "fixed":
		if err := count(); err != nil {
			return retryPolicy{}, err
		}
		if _, ok := o["interval"]; !ok {
			return retryPolicy{}, invalid(path+".interval", "is missing: a fixed policy waits interval between tries, e.g. PT20S")
		}
		if rp.interval, err = dur("interval", 0); err != nil {
			return retryPolicy{}, err
		}
		for _, k := range []string{"minimumInterval", "maximumInterval"} {
			if _, ok := o[k]; ok {
				return retryPolicy{}, invalid(path+"."+k, "only exponential policies have %s", k)
			}
		}
	case "exponential":
		if err := count(); err != nil {
			return retryPolicy{}, err
		}
		if rp.interval, err = dur("interval", defaultRetry.interval); err != nil {
			return retryPolicy{}, err
		}
		if rp.min, err = dur("minimumInterval", defaultRetry.min); err != nil {
			return retryPolicy{}, err
		}
		if rp.max, err = dur("maximumInterval", defaultRetry.max); err != nil {
			return retryPolicy{}, err
		}
		if rp.min > rp.max {
			return retryPolicy{}, invalid(path, "minimumInterval is over maximumInterval")
		}
	default:
		return retryPolicy{}, invalid(path+".type", "the retry policy %q is not supported (none, fixed, exponential)", keyhold.Clip(typ))
	}
	return rp, nil
}

// condition compiles an If or Until expression: a template string, or the
// object form the designer writes ({"and": [{"equals": [a, b]}]}).
func (p *defParser) condition(raw json.RawMessage, path string, n *node) (cval, error) {
	if len(raw) == 0 {
		return nil, invalid(path, "is missing: give the condition")
	}
	v, err := plain(raw)
	if err != nil {
		return nil, invalid(path, "%v", err)
	}
	switch v := v.(type) {
	case string:
		return p.compile(v, path, n)
	case bool:
		return clit{v}, nil
	case map[string]any:
		x, err := p.condObject(v, path, n, 0)
		if err != nil {
			return nil, err
		}
		return &template{src: string(raw), whole: x}, nil
	}
	return nil, invalid(path, "must be an expression string or a condition object, not %s", keyhold.Clip(string(raw)))
}

func (p *defParser) condObject(o map[string]any, path string, n *node, depth int) (expr, error) {
	if depth > maxExprDeep {
		return nil, invalid(path, "the condition nests deeper than %d levels", maxExprDeep)
	}
	if len(o) != 1 {
		return nil, invalid(path, "a condition object has one function name, e.g. {\"equals\": [a, b]}; this has %d keys", len(o))
	}
	for name, arg := range o {
		f, ok := functions[strings.ToLower(name)]
		if !ok {
			return nil, invalid(path+"."+name, "function %q is not supported (docs/flows.md lists the functions)", keyhold.Clip(name))
		}
		args, ok := arg.([]any)
		if !ok {
			args = []any{arg}
		}
		if len(args) < f.min || f.max >= 0 && len(args) > f.max {
			return nil, invalid(path+"."+name, "%s takes %s, not %d", name, arity(f.min, f.max), len(args))
		}
		call := &callExpr{name: strings.ToLower(name), src: name}
		for i, a := range args {
			ap := fmt.Sprintf("%s.%s[%d]", path, name, i)
			switch a := a.(type) {
			case map[string]any:
				x, err := p.condObject(a, ap, n, depth+1)
				if err != nil {
					return nil, err
				}
				call.args = append(call.args, x)
			case string:
				c, err := p.compile(a, ap, n)
				if err != nil {
					return nil, err
				}
				call.args = append(call.args, templateExpr(c))
			default:
				call.args = append(call.args, &litExpr{v: a})
			}
		}
		return call, nil
	}
	return nil, nil
}

// tmplExpr is a template used as an expression (an argument of a
// condition object).
type tmplExpr struct{ t *template }

func (x *tmplExpr) String() string { return x.t.src }

func templateExpr(c cval) expr {
	switch c := c.(type) {
	case *template:
		if c.whole != nil {
			return c.whole
		}
		return &tmplExpr{c}
	case clit:
		return &litExpr{v: c.v}
	}
	return &litExpr{}
}

// compileRaw compiles a raw JSON value.
func (p *defParser) compileRaw(raw json.RawMessage, path string, n *node) (cval, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	v, err := plain(raw)
	if err != nil {
		return nil, invalid(path, "%v", err)
	}
	return p.compile(v, path, n)
}

// compile compiles a JSON value: its strings' expressions are parsed,
// their functions checked. Literal parts stay clit.
func (p *defParser) compile(v any, path string, n *node) (cval, error) {
	switch v := v.(type) {
	case string:
		if !isTemplate(v) {
			return clit{v}, nil
		}
		t, err := compileTemplate(v)
		if err != nil {
			return nil, invalid(path, "the expression %q: %v", keyhold.Clip(v), err)
		}
		for _, x := range t.exprs() {
			err := walkCalls(x, func(c *callExpr) error {
				p.refs = append(p.refs, exprRef{path: path, n: n, call: c})
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		return t, nil
	case map[string]any:
		out := cmap{}
		literal := true
		for _, k := range sortedKeys(v) {
			kp := path + "." + k
			if isTemplate(k) {
				return nil, invalid(kp, "expressions in property names are not supported (%s)", keyhold.Clip(k))
			}
			c, err := p.compile(v[k], kp, n)
			if err != nil {
				return nil, err
			}
			if _, ok := c.(clit); !ok {
				literal = false
			}
			out[k] = c
		}
		if literal {
			return clit{v}, nil
		}
		return out, nil
	case []any:
		out := carr{}
		literal := true
		for i, x := range v {
			c, err := p.compile(x, path+"["+strconv.Itoa(i)+"]", n)
			if err != nil {
				return nil, err
			}
			if _, ok := c.(clit); !ok {
				literal = false
			}
			out = append(out, c)
		}
		if literal {
			return clit{v}, nil
		}
		return out, nil
	}
	return clit{v}, nil
}

// checkRefs checks the calls that name actions, variables, loops and
// parameters with a literal name, now that every action is known.
func (p *defParser) checkRefs() error {
	for _, r := range p.refs {
		if len(r.call.args) == 0 {
			if r.call.name == "item" && (r.n == nil || !p.inForeach(r.n, "")) {
				return invalid(r.path, "item() is only available inside a Foreach")
			}
			continue
		}
		lit, ok := r.call.args[0].(*litExpr)
		if !ok {
			continue
		}
		name, ok := lit.v.(string)
		if !ok {
			continue
		}
		switch r.call.name {
		case "body", "outputs", "actions", "result":
			a, ok := p.d.byName[name]
			if !ok {
				return invalid(r.path, "%s('%s') names no action in this definition", r.call.src, keyhold.Clip(name))
			}
			if r.call.name == "result" && len(a.graphs()) == 0 {
				return invalid(r.path, "result('%s') needs a Scope, If, Switch, Foreach or Until, not a %s", keyhold.Clip(name), a.typ)
			}
			for _, l := range a.loops {
				if r.n == nil || !slices.Contains(r.n.loops, l) && r.n.name != l {
					return invalid(r.path, "%s('%s') is inside the loop %s and can only be referenced from inside it", r.call.src, keyhold.Clip(name), l)
				}
			}
			if r.n == nil || !p.upstream(r.n)[name] && !inside(a, r.n) {
				return invalid(r.path, "%s('%s'): the action %s doesn't run before this one: add it, or an action after it, to runAfter", r.call.src, keyhold.Clip(name), name)
			}
		case "variables":
			if !p.d.vars[name] {
				return invalid(r.path, "variables('%s') names no variable: initialize it with an InitializeVariable action", keyhold.Clip(name))
			}
		case "items", "iterationindexes":
			a, ok := p.d.byName[name]
			if !ok || (a.typ != "Foreach" && (a.typ != "Until" || r.call.name == "items")) {
				return invalid(r.path, "%s('%s') names no loop", r.call.src, keyhold.Clip(name))
			}
			if r.n == nil || !slices.Contains(r.n.loops, name) && r.n.name != name {
				return invalid(r.path, "%s('%s') is only available inside that loop", r.call.src, keyhold.Clip(name))
			}
		case "parameters":
			if !p.declared[name] && !strings.HasPrefix(name, "$") {
				return invalid(r.path, "parameters('%s') names no parameter: declare it in the definition's parameters", keyhold.Clip(name))
			}
		}
	}
	return nil
}

// upstream is every action that has ended before n starts: the actions
// n and its containers run after, transitively, with everything inside
// them. Logic Apps refuses references to any other action at save too.
func (p *defParser) upstream(n *node) map[string]bool {
	out := map[string]bool{}
	var mark func(x *node)
	mark = func(x *node) {
		if out[x.name] {
			return
		}
		out[x.name] = true
		for _, g := range x.graphs() {
			for _, c := range g.nodes {
				mark(c)
			}
		}
		for _, pr := range x.preds {
			mark(p.d.byName[pr.name])
		}
	}
	for c := n; c != nil; c = c.parent {
		for _, pr := range c.preds {
			mark(p.d.byName[pr.name])
		}
	}
	return out
}

// inside reports whether a is inside the container n (an Until's
// condition and result() read the actions in it).
func inside(a, n *node) bool {
	for c := a.parent; c != nil; c = c.parent {
		if c == n {
			return true
		}
	}
	return false
}

// inForeach reports whether n is inside a Foreach.
func (p *defParser) inForeach(n *node, _ string) bool {
	if n.typ == "Foreach" {
		return true
	}
	for _, l := range n.loops {
		if p.d.byName[l].typ == "Foreach" {
			return true
		}
	}
	return false
}

// parseDuration parses an ISO 8601 duration of weeks, days, hours, minutes
// and seconds (PT30S, P1D, P1DT12H). Years and months are refused: their
// length varies.
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not an ISO 8601 duration like PT30S, PT5M, PT1H or P1D (years and months are not supported)", keyhold.Clip(s))
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, bad
	}
	var d time.Duration
	inTime := false
	units := "WD"
	for rest != "" {
		if rest[0] == 'T' {
			if inTime || len(rest) == 1 {
				return 0, bad
			}
			inTime, units, rest = true, "HMS", rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, bad
		}
		f, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, bad
		}
		u := rest[i]
		j := strings.IndexByte(units, u)
		if j < 0 {
			return 0, bad
		}
		units = units[j+1:]
		var unit time.Duration
		switch {
		case !inTime && u == 'W':
			unit = 7 * 24 * time.Hour
		case !inTime && u == 'D':
			unit = 24 * time.Hour
		case u == 'H':
			unit = time.Hour
		case u == 'M':
			unit = time.Minute
		case u == 'S':
			unit = time.Second
		}
		if f > 366*24*3600 {
			return 0, fmt.Errorf("%q is too long", keyhold.Clip(s))
		}
		d += time.Duration(f * float64(unit))
		rest = rest[i+1:]
	}
	if d > 366*24*time.Hour {
		return 0, fmt.Errorf("%q is over a year", keyhold.Clip(s))
	}
	return d, nil
}
