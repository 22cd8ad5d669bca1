package http

import (
	"context"
	"encoding/json"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestFlowSaveAsAndReportOverHTTPS: Save as over HTTPS answers 201 with
// the copy (a new name, its Location) and the Go client reads it; a body
// without properties is 400 and adds no flow. The flow-run report answers
// through the client, and a startTime that is not a time is 400 quoting
// it. Both databases.
func TestFlowSaveAsAndReportOverHTTPS(t *testing.T) {
	flowsForEach(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		env := f.createEnv(t, "save as")
		name := "Echo"
		if _, err := f.client.PutFlow(ctx, env.ID, "echo", &keyhold.FlowInput{DisplayName: &name, Definition: json.RawMessage(echoFlow)}); err != nil {
			t.Fatal(err)
		}
		tok := f.token(t, string(keyhold.AudienceFlow)+"/.default")
		a := f.call(t, "POST", flowPath(env.ID, "echo")+"/saveAs", tok, "application/json", strings.NewReader(`{"properties":{"displayName":"Echo (copy)"}}`))
		if a.status != nethttp.StatusCreated || !strings.Contains(a.header.Get("Location"), "/flows/") || strings.HasSuffix(a.header.Get("Location"), "/flows/echo") {
			t.Fatalf("saveAs: %d, Location %q, %s", a.status, a.header.Get("Location"), a.body)
		}
		cp, err := f.client.SaveFlowAs(ctx, env.ID, "echo", &keyhold.FlowSaveAs{DisplayName: "Echo (second copy)"})
		if err != nil || cp.ID == "" || cp.ID == "echo" || cp.DisplayName != "Echo (second copy)" || len(cp.Definition) == 0 {
			t.Fatalf("client SaveFlowAs: %+v, %v", cp, err)
		}
		f.call(t, "POST", flowPath(env.ID, "echo")+"/saveAs", tok, "application/json", strings.NewReader(`{"displayName":"x"}`)).
			wantError(t, 400, keyhold.CodeInvalidRequestContent, "properties")
		if fs, err := f.client.ListFlows(ctx, env.ID); err != nil || len(fs) != 3 {
			t.Fatalf("flows: %d, %v; want the original and two copies", len(fs), err)
		}

		rep, err := f.client.FlowRunReport(ctx, time.Time{}, time.Time{})
		if err != nil || rep.Environments == nil || !rep.To.After(rep.From) {
			t.Fatalf("report: %+v, %v", rep, err)
		}
		f.call(t, "GET", flowReportPath+"?startTime=yesterday", tok, "", nil).
			wantError(t, 400, keyhold.CodeInvalidRequestContent, `"yesterday"`, "RFC 3339")
	})
}
