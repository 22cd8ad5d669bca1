package wdl_test

import (
	"context"
	"fmt"
	"time"

	"github.com/keyhold/keyhold/flows/wdl"
)

// echoHost answers every call with its inputs, at a fixed time.
type echoHost struct{}

func (echoHost) Call(_ context.Context, c wdl.Call) (wdl.Outputs, error) {
	return wdl.Outputs{StatusCode: 200, Body: c.Inputs}, nil
}
func (echoHost) Now() time.Time                                   { return time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC) }
func (echoHost) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func ExampleParse() {
	_, err := wdl.Parse([]byte(`{
		"triggers": {"manual": {"type": "Request", "kind": "Button"}},
		"actions": {"Greet": {"type": "Compose", "inputs": "@shout(triggerBody()['name'])"}}
	}`))
	fmt.Println(err)
	// Output: InvalidFlowDefinition: actions.Greet.inputs: the expression "@shout(triggerBody()['name'])": function "shout" is not supported (docs/flows.md lists the functions)
}

func ExampleExecute() {
	d, err := wdl.Parse([]byte(`{
		"triggers": {"manual": {"type": "Request", "kind": "Http"}},
		"actions": {
			"Greet": {"type": "Compose", "inputs": "Hello @{triggerBody()['name']} at @{utcNow('HH:mm')}"},
			"Reply": {"type": "Response", "inputs": {"statusCode": 200, "body": "@outputs('Greet')"}, "runAfter": {"Greet": ["Succeeded"]}}
		}
	}`))
	if err != nil {
		panic(err)
	}
	st := wdl.NewRun(wdl.Outputs{Body: map[string]any{"name": "Ada"}})
	saves := 0
	err = wdl.Execute(context.Background(), d, st, nil, echoHost{}, func(*wdl.RunState) error { saves++; return nil })
	fmt.Println(err, st.Status, st.Response.StatusCode, st.Response.Body, saves)
	// Output: <nil> Succeeded 200 Hello Ada at 09:30 5
}
