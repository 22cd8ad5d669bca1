package flows_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// listFlow lists the tasks rows with the given parameters and composes
// the ids it got and the skip token.
func listFlow(params string) string {
	return `{
  "triggers": {"manual": {"type": "Request", "kind": "Button"}},
  "actions": {
    "List_rows": {"type": "OpenApiConnection", "inputs": {
      "host": {"apiId": "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps", "connectionName": "shared_commondataserviceforapps", "operationId": "ListRecords"},
      "parameters": ` + params + `}},
    "Ids": {"type": "Compose", "inputs": {"count": "@length(body('List_rows')?['value'])", "first": "@first(body('List_rows')?['value'])?['id']", "next": "@body('List_rows')?['skipToken']"}, "runAfter": {"List_rows": ["Succeeded"]}}
  }
}`
}

// TestListRecords: the connector's ListRecords lists a table's rows as
// the connection's principal, with $top, $filter and $skiptoken; a bad
// $filter fails the action quoting it.
func TestListRecords(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.connections(t)
		for i := range 5 {
			status := "open"
			if i%2 == 1 {
				status = "closed"
			}
			if _, err := w.p.PutRow(w.ctx, w.env.ID, "tasks", fmt.Sprintf("t%d", i), json.RawMessage(`{"status":"`+status+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		compose := func(flowID string) (string, *keyhold.FlowRunAction) {
			t.Helper()
			end, acts := w.runSample(t, flowID, `{}`)
			var list *keyhold.FlowRunAction
			out := ""
			for _, a := range acts {
				switch a.Path {
				case "List_rows":
					list = a
				case "Ids":
					b, _ := json.Marshal(a.Outputs)
					out = string(b)
				}
			}
			if end.Status != keyhold.RunSucceeded {
				return "failed", list
			}
			return out, list
		}
		for _, c := range []struct{ id, params, want string }{
			{"all", `{"entityName": "tasks"}`, `"count":5,"first":"t0"`},
			{"top", `{"entityName": "tasks", "$top": 2}`, `"count":2,"first":"t0","next":"t1"`},
			{"skip", `{"entityName": "tasks", "$top": "2", "$skiptoken": "t1"}`, `"count":2,"first":"t2","next":"t3"`},
			{"filter", `{"entityName": "tasks", "$filter": "status eq 'closed'"}`, `"count":2,"first":"t1"`},
		} {
			w.putFlow(t, w.fl, c.id, listFlow(c.params), dvRefs)
			if got, _ := compose(c.id); !strings.Contains(got, c.want) {
				t.Errorf("%s: composed %s, want %s", c.id, got, c.want)
			}
		}
		w.putFlow(t, w.fl, "bad", listFlow(`{"entityName": "tasks", "$filter": "status lt 3"}`), dvRefs)
		got, list := compose("bad")
		if got != "failed" || list == nil || list.Error == nil || !strings.Contains(list.Error.Message, "status lt 3") {
			t.Fatalf("bad filter: %s, %+v", got, list)
		}
	})
}
