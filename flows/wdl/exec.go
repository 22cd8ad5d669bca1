package wdl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Execute runs the definition from state to the end. Actions already in
// state with a terminal status are not run again (their recorded outputs
// are reused), so calling Execute again after a crash resumes without
// repeating completed actions; an action recorded as Running when the run
// stopped is run again. save is called with the whole state after an
// action starts (status Running) and after it ends; if save fails, Execute
// stops and returns that error. Execute returns nil when the run reached a
// terminal status (state.Status), or the first error that stopped it
// unfinished (ctx cancelled, a Host error that isn't *ActionError, a save
// failure).
//
// Actions run one at a time, in runAfter order (ties in definition order);
// a Foreach runs its iterations one after another.
func Execute(ctx context.Context, d *Definition, state *RunState, params map[string]any, host Host, save func(*RunState) error) error {
	if terminal(state.Status) {
		return nil
	}
	if state.Actions == nil {
		state.Actions = map[string]*ActionState{}
	}
	if state.Variables == nil {
		state.Variables = map[string]any{}
	}
	state.Status = StatusRunning
	state.Trigger.Body = normalize(state.Trigger.Body)
	r := &runner{ctx: ctx, d: d, st: state, params: params, host: host, save: save}
	err := r.runGraph(d.top, nil)
	var term *terminated
	switch {
	case errors.As(err, &term):
		// Terminate set the run's status; actions it cut short are
		// cancelled.
		now := host.Now()
		for _, a := range state.Actions {
			if a.Status == StatusRunning {
				a.Status, a.End = StatusCancelled, now
			}
		}
	case err != nil:
		return err
	case r.failed(d.top, nil):
		state.Status = StatusFailed
		state.Error = r.firstError(d.top, nil)
	default:
		state.Status = StatusSucceeded
	}
	return save(state)
}

// terminated stops a run at a Terminate action.
type terminated struct{}

func (*terminated) Error() string { return "terminated" }

type runner struct {
	ctx    context.Context
	d      *Definition
	st     *RunState
	params map[string]any
	host   Host
	save   func(*RunState) error
}

func prefix(loops []loopFrame) string {
	var b strings.Builder
	for _, l := range loops {
		fmt.Fprintf(&b, "%s[%d]/", l.name, l.index)
	}
	return b.String()
}

// runGraph runs one level's actions in order.
func (r *runner) runGraph(g *graph, loops []loopFrame) error {
	pre := prefix(loops)
	for _, n := range g.order {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		path := pre + n.name
		if s := r.st.Actions[path]; s != nil && terminal(s.Status) {
			continue
		}
		if !r.runAfterMet(n, pre) {
			now := r.host.Now()
			r.st.Actions[path] = &ActionState{Name: n.name, Type: n.typ, Status: StatusSkipped, Start: now, End: now}
			r.skipInside(n, loops)
			if err := r.save(r.st); err != nil {
				return err
			}
			continue
		}
		if err := r.run(n, path, loops); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) runAfterMet(n *node, pre string) bool {
	for _, p := range n.preds {
		s := r.st.Actions[pre+p.name]
		if s == nil {
			return false
		}
		ok := false
		for _, want := range p.statuses {
			if s.Status == want || want == StatusFailed && s.Status == StatusCancelled {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// skipInside records a skipped container's actions as skipped too (not
// inside loops, which have no iterations).
func (r *runner) skipInside(n *node, loops []loopFrame) {
	if n.typ == "Foreach" || n.typ == "Until" {
		return
	}
	for _, g := range n.graphs() {
		r.skipGraph(g, loops)
	}
}

func (r *runner) skipGraph(g *graph, loops []loopFrame) {
	now := r.host.Now()
	pre := prefix(loops)
	for _, c := range g.nodes {
		if r.st.Actions[pre+c.name] == nil {
			r.st.Actions[pre+c.name] = &ActionState{Name: c.name, Type: c.typ, Status: StatusSkipped, Start: now, End: now}
		}
		r.skipInside(c, loops)
	}
}

// failed reports whether a level ended in an unhandled failure: one of its
// last actions failed, timed out, or was skipped because of an unhandled
// failure before it.
func (r *runner) failed(g *graph, loops []loopFrame) bool {
	pre := prefix(loops)
	memo := map[string]bool{}
	byName := map[string]*node{}
	for _, n := range g.nodes {
		byName[n.name] = n
	}
	var flag func(n *node) bool
	flag = func(n *node) bool {
		if v, ok := memo[n.name]; ok {
			return v
		}
		memo[n.name] = false
		s := r.st.Actions[pre+n.name]
		v := false
		if s != nil {
			switch s.Status {
			case StatusFailed, StatusTimedOut, StatusCancelled:
				v = true
			case StatusSkipped:
				for _, p := range n.preds {
					if flag(byName[p.name]) {
						v = true
					}
				}
			}
		}
		memo[n.name] = v
		return v
	}
	for _, l := range g.leaves {
		if flag(l) {
			return true
		}
	}
	return false
}

// firstError is the error of the first failed action of a level, in run
// order, with its path.
func (r *runner) firstError(g *graph, loops []loopFrame) *ActionError {
	pre := prefix(loops)
	for _, n := range g.order {
		s := r.st.Actions[pre+n.name]
		if s == nil || s.Status != StatusFailed && s.Status != StatusTimedOut {
			continue
		}
		if s.Error != nil {
			e := *s.Error
			if !strings.HasPrefix(e.Message, pre+n.name) {
				e.Message = pre + n.name + ": " + e.Message
			}
			return &e
		}
		return &ActionError{Code: "ActionFailed", Message: fmt.Sprintf("%s%s: the action %s", pre, n.name, strings.ToLower(s.Status))}
	}
	return &ActionError{Code: "ActionFailed", Message: "an action failed"}
}

// run runs one action whose runAfter is met.
func (r *runner) run(n *node, path string, loops []loopFrame) error {
	s := r.st.Actions[path]
	if s == nil || s.Status != StatusRunning {
		s = &ActionState{Name: n.name, Type: n.typ, Status: StatusRunning, Start: r.host.Now()}
		r.st.Actions[path] = s
		if err := r.save(r.st); err != nil {
			return err
		}
	}
	e := &env{d: r.d, st: r.st, params: r.params, host: r.host, loops: loops, cur: n, path: path}
	err := r.do(n, s, e, path, loops)
	var ae *ActionError
	var term *terminated
	switch {
	case errors.As(err, &term):
		// The Terminate action succeeded; the containers it is in were
		// cut short (Execute records them Cancelled).
		if n.typ == "Terminate" {
			s.Status, s.End = StatusSucceeded, r.host.Now()
		}
		return err
	case errors.As(err, &ae):
		if s.Status == StatusRunning {
			s.Status = StatusFailed
		}
		s.Error = ae
	case err != nil:
		return err
	case s.Status == StatusRunning:
		s.Status = StatusSucceeded
	}
	s.End = r.host.Now()
	return r.save(r.st)
}

// exprFailure is a runtime expression error as an action's error: it names
// the JSON path and the expression.
func exprFailure(path, src string, err error) *ActionError {
	return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s: unable to evaluate the expression %q: %v", path, clipRunes(src, 300), err)}
}

// evalValue evaluates a compiled value; a failure is an *ActionError
// naming the path.
func (e *env) evalValue(c cval, path string) (any, error) {
	switch c := c.(type) {
	case nil:
		return nil, nil
	case clit:
		// A copy: the definition is shared by every run, and the host or
		// a later action may change the value it gets.
		return deepCopy(c.v), nil
	case *template:
		v, err := e.evalTemplate(c)
		if err != nil {
			var ae *ActionError
			if errors.As(err, &ae) {
				return nil, err
			}
			if _, ok := err.(*evalError); !ok {
				return nil, err // the host's: the run stops unfinished
			}
			return nil, exprFailure(path, c.src, err)
		}
		return v, nil
	case cmap:
		out := make(map[string]any, len(c))
		for k, x := range c {
			v, err := e.evalValue(x, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case carr:
		out := make([]any, len(c))
		for i, x := range c {
			v, err := e.evalValue(x, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("wdl: unknown compiled value %T", c)
}

// do performs an action. An *ActionError fails it; *terminated ends the
// run; any other error stops the run unfinished.
func (r *runner) do(n *node, s *ActionState, e *env, path string, loops []loopFrame) error {
	switch n.typ {
	case "Compose":
		v, err := e.evalValue(n.inputs, n.path+".inputs")
		if err != nil {
			return err
		}
		s.Inputs, s.Outputs = v, &Outputs{Body: v}
	case "InitializeVariable":
		v, err := e.evalValue(n.inputs, n.path+".inputs.variables[0].value")
		if err != nil {
			return err
		}
		if n.inputs == nil {
			v = zeroValue(n.varType)
		}
		v, err = convertVar(n.varName, n.varType, v)
		if err != nil {
			return err
		}
		s.Inputs = map[string]any{"variables": []any{map[string]any{"name": n.varName, "type": n.varType, "value": v}}}
		r.st.Variables[n.varName] = v
	case "SetVariable", "IncrementVariable", "AppendToArrayVariable", "AppendToStringVariable":
		return r.variable(n, s, e)
	case "Terminate":
		v, err := e.evalValue(n.inputs, n.path+".inputs")
		if err != nil {
			return err
		}
		s.Inputs = v
		in, _ := v.(map[string]any)
		status, _ := in["runStatus"].(string)
		r.st.Status = status
		if status != StatusSucceeded {
			ae := &ActionError{Code: "Terminated", Message: "the run was terminated by " + path}
			if re, ok := in["runError"].(map[string]any); ok {
				if c, ok := re["code"].(string); ok && c != "" {
					ae.Code = c
				}
				if m, ok := re["message"]; ok && m != nil {
					ae.Message = formatText(m)
				}
			}
			r.st.Error = ae
		}
		return &terminated{}
	case "Response":
		v, err := e.evalValue(n.inputs, n.path+".inputs")
		if err != nil {
			return err
		}
		in, _ := v.(map[string]any)
		out := Outputs{StatusCode: 200, Body: in["body"]}
		if sc, ok := in["statusCode"]; ok {
			f, ok := sc.(float64)
			if !ok {
				if str, isStr := sc.(string); isStr {
					var n int
					if _, err := fmt.Sscan(str, &n); err == nil {
						f, ok = float64(n), true
					}
				}
			}
			if !ok || f < 100 || f > 599 || f != math.Trunc(f) {
				return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s.inputs.statusCode: %s is not an HTTP status code", n.path, clipRunes(formatText(sc), 40))}
			}
			out.StatusCode = int(f)
		}
		if h, ok := in["headers"].(map[string]any); ok {
			out.Headers = map[string]string{}
			for k, x := range h {
				out.Headers[k] = formatText(x)
			}
		}
		s.Inputs = v
		if _, err := r.host.Call(r.ctx, Call{Path: path, Name: n.name, Type: n.typ, Inputs: v, Attempt: 1}); err != nil {
			return err
		}
		r.st.Response = &out
		s.Outputs = &out
	case "Http", "Workflow", "ApiConnection", "OpenApiConnection":
		return r.call(n, s, e, path)
	case "Wait":
		// It waits until its start (saved when it started) plus the
		// interval: a run resumed after a crash waits only what is left.
		v, err := e.evalValue(n.inputs, n.path+".inputs")
		if err != nil {
			return err
		}
		s.Inputs = v
		if left := s.Start.Add(n.wait).Sub(r.host.Now()); left > 0 {
			if err := r.host.Sleep(r.ctx, left); err != nil {
				return err
			}
		}
	case "Scope":
		if err := r.runGraph(n.body, loops); err != nil {
			return err
		}
		return r.scopeResult(n, s, n.body, loops)
	case "If":
		var b bool
		if in, ok := s.Inputs.(map[string]any); ok {
			b, _ = in["expressionResult"].(bool) // resumed: the branch already chosen
		} else {
			v, err := e.evalValue(n.cond, n.path+".expression")
			if err != nil {
				return err
			}
			var isBool bool
			if b, isBool = v.(bool); !isBool {
				return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s.expression: the condition is %s, not a boolean", n.path, typeName(v))}
			}
			s.Inputs = map[string]any{"expressionResult": b}
			if err := r.save(r.st); err != nil {
				return err
			}
		}
		run, skip := n.body, n.elseG
		if !b {
			run, skip = skip, run
		}
		r.skipGraph(skip, loops)
		if err := r.runGraph(run, loops); err != nil {
			return err
		}
		return r.scopeResult(n, s, run, loops)
	case "Switch":
		return r.doSwitch(n, s, e, loops)
	case "Foreach":
		return r.foreach(n, s, e, path, loops)
	case "Until":
		return r.until(n, s, e, loops)
	default:
		return fmt.Errorf("wdl: no implementation of %s", n.typ)
	}
	return nil
}

// scopeResult sets a container's status from the level it ran.
func (r *runner) scopeResult(n *node, s *ActionState, g *graph, loops []loopFrame) error {
	if r.failed(g, loops) {
		s.Status = StatusFailed
		inner := r.firstError(g, loops)
		return &ActionError{Code: "ActionFailed", Message: "an action failed: " + inner.Message}
	}
	return nil
}

func (r *runner) doSwitch(n *node, s *ActionState, e *env, loops []loopFrame) error {
	chosen := ""
	if in, ok := s.Inputs.(map[string]any); ok {
		chosen, _ = in["case"].(string)
	} else {
		v, err := e.evalValue(n.cond, n.path+".expression")
		if err != nil {
			return err
		}
		chosen = "default"
		for _, c := range n.cases {
			if deepEqual(c.value, v) || formatText(c.value) == formatText(v) && v != nil {
				chosen = c.name
				break
			}
		}
		s.Inputs = map[string]any{"expressionValue": v, "case": chosen}
		if err := r.save(r.st); err != nil {
			return err
		}
	}
	run := n.defaulG
	for _, c := range n.cases {
		if c.name == chosen {
			run = c.g
		} else {
			r.skipGraph(c.g, loops)
		}
	}
	if run != n.defaulG {
		r.skipGraph(n.defaulG, loops)
	}
	if err := r.runGraph(run, loops); err != nil {
		return err
	}
	return r.scopeResult(n, s, run, loops)
}

func (r *runner) foreach(n *node, s *ActionState, e *env, path string, loops []loopFrame) error {
	items, ok := s.Inputs.([]any)
	if !ok {
		v, err := e.evalValue(n.cond, n.path+".foreach")
		if err != nil {
			return err
		}
		if v == nil {
			v = []any{}
		}
		if items, ok = v.([]any); !ok {
			return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s.foreach: the value is %s, not an array", n.path, typeName(v))}
		}
		if len(items) > maxForeachItems {
			return &ActionError{Code: "ForeachTooManyItems", Message: fmt.Sprintf("%s.foreach: the array has %d items, over the limit of %d: filter or page the data first", n.path, len(items), maxForeachItems)}
		}
		s.Inputs = items
		if err := r.save(r.st); err != nil {
			return err
		}
	}
	anyFailed := false
	for i, it := range items {
		if n.timeout > 0 && r.host.Now().Sub(s.Start) > n.timeout {
			s.Status = StatusTimedOut
			return &ActionError{Code: "ActionTimedOut", Message: fmt.Sprintf("%s: the loop ran over its limit.timeout of %s", n.path, n.timeout)}
		}
		frame := append(append([]loopFrame(nil), loops...), loopFrame{name: n.name, item: it, index: i})
		if err := r.runGraph(n.body, frame); err != nil {
			return err
		}
		if r.failed(n.body, frame) {
			anyFailed = true
		}
	}
	s.Outputs = &Outputs{Body: map[string]any{"iterations": float64(len(items))}}
	if anyFailed {
		s.Status = StatusFailed
		return &ActionError{Code: "ActionFailed", Message: fmt.Sprintf("%s: an action failed in an iteration", path)}
	}
	return nil
}

func (r *runner) until(n *node, s *ActionState, e *env, loops []loopFrame) error {
	for i := 0; ; i++ {
		frame := append(append([]loopFrame(nil), loops...), loopFrame{name: n.name, index: i})
		if err := r.runGraph(n.body, frame); err != nil {
			return err
		}
		s.Outputs = &Outputs{Body: map[string]any{"iterations": float64(i + 1)}}
		if r.failed(n.body, frame) {
			s.Status = StatusFailed
			return &ActionError{Code: "ActionFailed", Message: fmt.Sprintf("%s[%d]: an action failed", n.name, i)}
		}
		ie := &env{d: e.d, st: e.st, params: e.params, host: e.host, loops: frame, cur: n, path: e.path}
		v, err := ie.evalValue(n.cond, n.path+".expression")
		if err != nil {
			return err
		}
		done, ok := v.(bool)
		if !ok {
			return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s.expression: the condition is %s, not a boolean", n.path, typeName(v))}
		}
		if done || i+1 >= n.count {
			return nil
		}
		if r.host.Now().Sub(s.Start) > n.timeout {
			s.Status = StatusTimedOut
			return &ActionError{Code: "ActionTimedOut", Message: fmt.Sprintf("%s: the loop ran over its limit.timeout of %s", n.path, n.timeout)}
		}
	}
}

// call performs a host action with its retry policy and timeout.
func (r *runner) call(n *node, s *ActionState, e *env, path string) error {
	v, err := e.evalValue(n.inputs, n.path+".inputs")
	if err != nil {
		return err
	}
	s.Inputs = v
	var deadline time.Time
	if n.timeout > 0 {
		deadline = s.Start.Add(n.timeout)
	}
	timedOut := func() error {
		s.Status = StatusTimedOut
		return &ActionError{Code: "ActionTimedOut", Message: fmt.Sprintf("%s: no answer within limit.timeout %s", n.path, n.timeout)}
	}
	for {
		s.Attempts++
		if s.Attempts > 1 {
			if err := r.save(r.st); err != nil {
				return err
			}
		}
		ctx, cancel := r.ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			left := deadline.Sub(r.host.Now())
			if left <= 0 {
				return timedOut()
			}
			ctx, cancel = context.WithTimeout(r.ctx, left)
		}
		out, err := r.host.Call(ctx, Call{Path: path, Name: n.name, Type: n.typ, Inputs: v, Attempt: s.Attempts})
		expired := ctx.Err() != nil && r.ctx.Err() == nil
		cancel()
		if err == nil {
			out.Body = normalize(out.Body)
			s.Outputs = &out
			return nil
		}
		var ae *ActionError
		if !errors.As(err, &ae) {
			if expired {
				return timedOut()
			}
			return err
		}
		s.Outputs = &Outputs{StatusCode: ae.StatusCode}
		if !ae.Retryable || s.Attempts > n.retry.count {
			return ae
		}
		wait := n.retry.delay(s.Attempts)
		if !deadline.IsZero() && !r.host.Now().Add(wait).Before(deadline) {
			return timedOut()
		}
		if err := r.host.Sleep(r.ctx, wait); err != nil {
			return err
		}
	}
}

func zeroValue(typ string) any {
	switch typ {
	case "string":
		return ""
	case "integer", "float":
		return float64(0)
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return nil
}

// convertVar checks v against a variable's declared type.
func convertVar(name, typ string, v any) (any, error) {
	ok := false
	switch typ {
	case "string":
		_, ok = v.(string)
	case "integer":
		f, isNum := v.(float64)
		ok = isNum && f == math.Trunc(f)
	case "float":
		_, ok = v.(float64)
	case "boolean":
		_, ok = v.(bool)
	case "array":
		_, ok = v.([]any)
	case "object":
		_, ok = v.(map[string]any)
	}
	if !ok && v != nil {
		return nil, &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("the variable '%s' is of type %s; the value %s is %s", name, typ, clipRunes(formatText(v), 60), typeName(v))}
	}
	return v, nil
}

func (r *runner) variable(n *node, s *ActionState, e *env) error {
	var v any = float64(1)
	if n.inputs != nil {
		var err error
		if v, err = e.evalValue(n.inputs, n.path+".inputs.value"); err != nil {
			return err
		}
	}
	s.Inputs = map[string]any{"name": n.varName, "value": v}
	cur, ok := r.st.Variables[n.varName]
	if !ok {
		return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s: the variable '%s' is not initialized yet", n.path, n.varName)}
	}
	var next any
	switch n.typ {
	case "SetVariable":
		nv, err := convertVar(n.varName, n.varType, v)
		if err != nil {
			return err
		}
		next = nv
	case "IncrementVariable":
		d, ok := v.(float64)
		c, ok2 := cur.(float64)
		if !ok || !ok2 || n.varType == "integer" && d != math.Trunc(d) {
			return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s: can't increment the %s variable '%s' by %s", n.path, n.varType, n.varName, clipRunes(formatText(v), 40))}
		}
		next = c + d
	case "AppendToArrayVariable":
		arr, _ := cur.([]any)
		next = append(append(make([]any, 0, len(arr)+1), arr...), v)
	case "AppendToStringVariable":
		str, _ := cur.(string)
		if len(str)+len(formatText(v)) > maxStrBytes {
			return &ActionError{Code: "InvalidTemplate", Message: fmt.Sprintf("%s: the variable '%s' would be over the limit of %d bytes", n.path, n.varName, maxStrBytes)}
		}
		next = str + formatText(v)
	}
	r.st.Variables[n.varName] = next
	s.Outputs = &Outputs{Body: map[string]any{"name": n.varName, "value": next}}
	return nil
}

// deepCopy copies JSON maps and arrays.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}
