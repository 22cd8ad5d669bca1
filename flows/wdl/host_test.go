package wdl

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// testHost is the Host of this package's tests: an in-memory table store
// for the connector operations, scripted answers for Http, child flows run
// by Execute itself, and a clock that Sleep advances. The real host is the
// flows package.
type testHost struct {
	mu       sync.Mutex
	now      time.Time
	rows     map[string]map[string]map[string]any // entity → id → row
	nextID   int
	calls    []Call
	slept    []time.Duration
	children map[string]*Definition
	// httpFail is how many retryable failures an Http call to a URI
	// containing the key answers before succeeding; -1: always.
	httpFail map[string]int
	// hook, if set, runs before each Call; an error it returns is the
	// Call's.
	hook func(c Call) error
	// after, if set, is run by Sleep (to move things on while waiting).
	after func(d time.Duration)
}

func newHost() *testHost {
	return &testHost{now: time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC), rows: map[string]map[string]map[string]any{},
		children: map[string]*Definition{}, httpFail: map[string]int{}}
}

func (h *testHost) Now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *testHost) Sleep(ctx context.Context, d time.Duration) error {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.slept = append(h.slept, d)
	after := h.after
	h.mu.Unlock()
	if after != nil {
		after(d)
	}
	return ctx.Err()
}

func (h *testHost) callsTo(path string) int {
	n := 0
	for _, c := range h.calls {
		if c.Path == path {
			n++
		}
	}
	return n
}

func (h *testHost) Call(ctx context.Context, c Call) (Outputs, error) {
	h.mu.Lock()
	h.calls = append(h.calls, c)
	hook := h.hook
	h.mu.Unlock()
	if hook != nil {
		if err := hook(c); err != nil {
			return Outputs{}, err
		}
	}
	in, _ := c.Inputs.(map[string]any)
	switch c.Type {
	case "Response":
		return Outputs{}, nil
	case "Http":
		uri, _ := in["uri"].(string)
		for k, n := range h.httpFail {
			if strings.Contains(uri, k) && n != 0 {
				h.httpFail[k] = n - 1
				if n < 0 {
					h.httpFail[k] = n
				}
				return Outputs{}, &ActionError{Code: "ServiceUnavailable", Message: "503 from " + uri, Retryable: true, StatusCode: 503}
			}
		}
		return Outputs{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: map[string]any{"uri": uri, "ok": true}}, nil
	case "Workflow":
		host, _ := in["host"].(map[string]any)
		ref, _ := host["workflowReferenceName"].(string)
		d := h.children[ref]
		if d == nil {
			return Outputs{}, &ActionError{Code: "WorkflowNotFound", Message: "no child flow " + ref, StatusCode: 404}
		}
		st := NewRun(Outputs{Body: in["body"]})
		if err := Execute(ctx, d, st, nil, h, func(*RunState) error { return nil }); err != nil {
			return Outputs{}, err
		}
		if st.Status != StatusSucceeded {
			return Outputs{}, &ActionError{Code: st.Error.Code, Message: st.Error.Message, StatusCode: 400}
		}
		if st.Response == nil {
			return Outputs{StatusCode: 202}, nil
		}
		return *st.Response, nil
	case "OpenApiConnection":
		return h.connector(in)
	case "ApiConnection":
		return Outputs{StatusCode: 200, Body: in}, nil
	}
	return Outputs{}, fmt.Errorf("testHost: no %s", c.Type)
}

func (h *testHost) connector(in map[string]any) (Outputs, error) {
	host, _ := in["host"].(map[string]any)
	p, _ := in["parameters"].(map[string]any)
	entity, _ := p["entityName"].(string)
	h.mu.Lock()
	defer h.mu.Unlock()
	table := h.rows[entity]
	if table == nil {
		table = map[string]map[string]any{}
		h.rows[entity] = table
	}
	item := map[string]any{}
	for k, v := range p {
		if f, ok := strings.CutPrefix(k, "item/"); ok {
			item[f] = v
		}
	}
	id, _ := p["recordId"].(string)
	switch host["operationId"] {
	case "CreateRecord":
		h.nextID++
		id = fmt.Sprintf("row-%d", h.nextID)
		item["id"] = id
		table[id] = item
		return Outputs{StatusCode: 201, Body: item}, nil
	case "GetItem":
		if r, ok := table[id]; ok {
			return Outputs{StatusCode: 200, Body: r}, nil
		}
		return Outputs{}, &ActionError{Code: "RowNotFound", Message: "no row " + id, StatusCode: 404}
	case "ListRecords":
		ids := make([]string, 0, len(table))
		for k := range table {
			ids = append(ids, k)
		}
		sort.Strings(ids)
		out := []any{}
		for _, k := range ids {
			out = append(out, table[k])
		}
		return Outputs{StatusCode: 200, Body: map[string]any{"value": out}}, nil
	case "UpdateRecord":
		r, ok := table[id]
		if !ok {
			return Outputs{}, &ActionError{Code: "RowNotFound", Message: "no row " + id, StatusCode: 404}
		}
		for k, v := range item {
			r[k] = v
		}
		return Outputs{StatusCode: 200, Body: r}, nil
	case "DeleteRecord":
		if _, ok := table[id]; !ok {
			return Outputs{}, &ActionError{Code: "RowNotFound", Message: "no row " + id, StatusCode: 404}
		}
		delete(table, id)
		return Outputs{StatusCode: 204}, nil
	}
	return Outputs{}, &ActionError{Code: "OperationNotSupported", Message: fmt.Sprint(host["operationId"]), StatusCode: 400}
}
