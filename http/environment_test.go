package http

import (
	"bytes"
	"context"
	"encoding/json"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// TestEnvironmentRoundTrip: create, get, list, patch (Managed Environment
// on and off, rename) and delete through the Go client.
func TestEnvironmentRoundTrip(t *testing.T) { forEachBackend(t, testEnvironmentRoundTrip) }

func testEnvironmentRoundTrip(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.client

	e := &keyhold.Environment{DisplayName: "Contoso prod", Location: "europe", SKU: keyhold.SKUSandbox}
	if err := c.CreateEnvironment(ctx, e); err != nil {
		t.Fatalf("CreateEnvironment: %v", err)
	}
	if e.ID == "" || e.TenantID != f.creds.TenantID || e.State != keyhold.StateEnabled ||
		e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.Managed || e.SKU != keyhold.SKUSandbox || e.Location != "europe" {
		t.Fatalf("created = %+v, want an enabled, Microsoft-managed, unmanaged Sandbox in europe of the caller's tenant", e)
	}
	if e.CreatedAt.IsZero() || e.CreatedBy == "" {
		t.Fatalf("created = %+v, want createdTime and createdBy", e)
	}

	got, err := c.FindEnvironment(ctx, e.ID)
	if err != nil {
		t.Fatalf("FindEnvironment: %v", err)
	}
	if *got != *e {
		t.Fatalf("found %+v, want %+v", got, e)
	}
	list, err := c.ListEnvironments(ctx)
	if err != nil || len(list) != 1 || list[0].ID != e.ID {
		t.Fatalf("ListEnvironments = %v, %v; want the one environment", list, err)
	}

	managed := true
	upd, err := c.UpdateEnvironment(ctx, e.ID, keyhold.EnvironmentUpdate{Managed: &managed})
	if err != nil || !upd.Managed || upd.DisplayName != "Contoso prod" {
		t.Fatalf("UpdateEnvironment(managed) = %+v, %v; want managed, name kept", upd, err)
	}
	name := "Contoso production"
	if upd, err = c.UpdateEnvironment(ctx, e.ID, keyhold.EnvironmentUpdate{DisplayName: &name}); err != nil || upd.DisplayName != name || !upd.Managed {
		t.Fatalf("UpdateEnvironment(name) = %+v, %v; want renamed, still managed", upd, err)
	}
	if got, _ = c.FindEnvironment(ctx, e.ID); got.DisplayName != name || !got.Managed {
		t.Fatalf("after updates found %+v", got)
	}
	managed = false
	if upd, err = c.UpdateEnvironment(ctx, e.ID, keyhold.EnvironmentUpdate{Managed: &managed}); err != nil || upd.Managed {
		t.Fatalf("UpdateEnvironment(unmanaged) = %+v, %v", upd, err)
	}

	if err := c.DeleteEnvironment(ctx, e.ID); err != nil {
		t.Fatalf("DeleteEnvironment: %v", err)
	}
	_, err = c.FindEnvironment(ctx, e.ID)
	wantCode(t, err, keyhold.CodeEnvironmentNotFound)
	if list, err = c.ListEnvironments(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after delete ListEnvironments = %v, %v; want none", list, err)
	}
	err = c.DeleteEnvironment(ctx, e.ID)
	wantCode(t, err, keyhold.CodeEnvironmentNotFound)
}

// TestFinanceAndOperationsRoundTrip: an environment's finance and
// operations apps and Power Platform integration are set at creation
// through the Go client, shown under properties.financeAndOperations (and
// not shown for other environments), and integration is turned on by a
// PATCH; an invalid combination is refused and creates nothing.
func TestFinanceAndOperationsRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		c := f.client
		plain := &keyhold.Environment{DisplayName: "plain", Location: "europe", SKU: keyhold.SKUProduction}
		fo := &keyhold.Environment{DisplayName: "finance", Location: "europe", SKU: keyhold.SKUProduction, FinOps: true}
		both := &keyhold.Environment{DisplayName: "finance-pp", Location: "europe", SKU: keyhold.SKUSandbox, FinOps: true, PowerPlatformIntegration: true}
		for _, e := range []*keyhold.Environment{plain, fo, both} {
			want := *e
			if err := c.CreateEnvironment(ctx, e); err != nil {
				t.Fatalf("CreateEnvironment(%s): %v", want.DisplayName, err)
			}
			got, err := c.FindEnvironment(ctx, e.ID)
			if err != nil || got.FinOps != want.FinOps || got.PowerPlatformIntegration != want.PowerPlatformIntegration {
				t.Errorf("%s: found %+v, %v; want finance and operations %v, integration %v", want.DisplayName, got, err, want.FinOps, want.PowerPlatformIntegration)
			}
		}
		tok := f.adminToken(t)
		if a := f.call(t, "GET", adminEnvPrefix+"/"+plain.ID, tok, "", nil); bytes.Contains(a.body, []byte("financeAndOperations")) {
			t.Errorf("an environment without finance and operations apps shows them: %s", a.body)
		}
		if a := f.call(t, "GET", adminEnvPrefix+"/"+fo.ID, tok, "", nil); !bytes.Contains(a.body, []byte(`"financeAndOperations":{"powerPlatformIntegration":false}`)) {
			t.Errorf("finance and operations environment: %s", a.body)
		}

		n := len(mustList(t, c))
		err := c.CreateEnvironment(ctx, &keyhold.Environment{DisplayName: "bad", Location: "europe", SKU: keyhold.SKUProduction, PowerPlatformIntegration: true})
		wantCode(t, err, keyhold.CodeBadRequest)
		if got := len(mustList(t, c)); got != n {
			t.Errorf("the refused create left %d environments, want %d", got, n)
		}

		a := f.jsonCall(t, "PATCH", adminEnvPrefix+"/"+fo.ID, tok, `{"properties":{"financeAndOperations":{"powerPlatformIntegration":true}}}`)
		if a.status != nethttp.StatusOK || !bytes.Contains(a.body, []byte(`"financeAndOperations":{"powerPlatformIntegration":true}`)) {
			t.Fatalf("PATCH integration on: %d %s", a.status, a.body)
		}
		off := false
		_, err = c.UpdateEnvironment(ctx, fo.ID, keyhold.EnvironmentUpdate{PowerPlatformIntegration: &off})
		wantCode(t, err, keyhold.CodeBadRequest)
		if got, _ := c.FindEnvironment(ctx, fo.ID); !got.PowerPlatformIntegration {
			t.Errorf("the refused PATCH turned integration off: %+v", got)
		}
	})
}

func mustList(t *testing.T, c *Client) []*keyhold.Environment {
	t.Helper()
	envs, err := c.ListEnvironments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

// TestEnvironmentJSON: the wire shape is the BAP admin API's.
func TestEnvironmentJSON(t *testing.T) {
	f := newFixture(t)
	tok := f.adminToken(t)
	a := f.jsonCall(t, "POST", bapPrefix+"/environments?api-version=2020-10-01", tok,
		`{"location":"unitedstates","properties":{"displayName":"Contoso","environmentSku":"Production"}}`)
	if a.status != nethttp.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var env struct {
		ID, Type, Location, Name string
		Properties               struct {
			TenantID, DisplayName, EnvironmentSku, AzureRegion, ProvisioningState string
			CreatedTime, LastModifiedTime                                         time.Time
			CreatedBy                                                             struct{ ID string }
			States                                                                struct{ Management, Runtime struct{ ID string } }
			GovernanceConfiguration                                               struct{ ProtectionLevel string }
			ProtectionStatus                                                      struct{ KeyManagedBy string }
		}
	}
	if err := json.Unmarshal(a.body, &env); err != nil {
		t.Fatal(err)
	}
	p := env.Properties
	checks := []struct{ name, got, want string }{
		{"id", env.ID, adminEnvPrefix + "/" + env.Name},
		{"type", env.Type, "Microsoft.BusinessAppPlatform/scopes/environments"},
		{"location", env.Location, "unitedstates"},
		{"tenantId", p.TenantID, f.creds.TenantID},
		{"displayName", p.DisplayName, "Contoso"},
		{"environmentSku", p.EnvironmentSku, "Production"},
		{"azureRegion", p.AzureRegion, "unitedstates"},
		{"provisioningState", p.ProvisioningState, "Succeeded"},
		{"states.management.id", p.States.Management.ID, "Ready"},
		{"states.runtime.id", p.States.Runtime.ID, "Enabled"},
		{"governanceConfiguration.protectionLevel", p.GovernanceConfiguration.ProtectionLevel, "Basic"},
		{"protectionStatus.keyManagedBy", p.ProtectionStatus.KeyManagedBy, "Microsoft"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if p.CreatedTime.IsZero() || p.LastModifiedTime.IsZero() || p.CreatedBy.ID == "" {
		t.Errorf("createdTime %v, lastModifiedTime %v, createdBy %q: want all set", p.CreatedTime, p.LastModifiedTime, p.CreatedBy.ID)
	}

	a = f.jsonCall(t, "PATCH", adminEnvPrefix+"/"+env.Name, tok, `{"properties":{"governanceConfiguration":{"protectionLevel":"Standard"}}}`)
	if a.status != nethttp.StatusOK || !bytes.Contains(a.body, []byte(`"protectionLevel":"Standard"`)) {
		t.Fatalf("patch: %d %s", a.status, a.body)
	}
	patched := a.body
	if a = f.jsonCall(t, "PATCH", adminEnvPrefix+"/"+env.Name, tok, `{}`); a.status != nethttp.StatusOK || !bytes.Equal(a.body, patched) {
		t.Fatalf("empty patch: %d %s, want 200 and the environment unchanged", a.status, a.body)
	}
	a = f.call(t, "GET", adminEnvPrefix+"?api-version=2020-10-01", tok, "", nil)
	if a.status != nethttp.StatusOK || !bytes.HasPrefix(a.body, []byte(`{"value":[{"id":`)) {
		t.Fatalf("list: %d %s", a.status, a.body)
	}
	if a = f.call(t, "DELETE", adminEnvPrefix+"/"+env.Name, tok, "", nil); a.status != nethttp.StatusNoContent || len(a.body) != 0 {
		t.Fatalf("delete: %d %q, want 204 and no body", a.status, a.body)
	}
	if a = f.call(t, "GET", adminEnvPrefix, tok, "", nil); string(a.body) != `{"value":[]}` {
		t.Fatalf("empty list = %s, want {\"value\":[]}", a.body)
	}
}

// TestBadInput: each bad request is refused with its status and code, a
// message that says what to fix, and nothing changed.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.adminToken(t)
	env := f.createEnv(t, "Kept")
	if _, err := f.client.PutRow(ctx, env.ID, "accounts", "r1", json.RawMessage(`{"name":"kept"}`)); err != nil {
		t.Fatal(err)
	}
	rowPath := "/environments/" + env.ID + "/tables/accounts/rows/r1"
	envPath := adminEnvPrefix + "/" + env.ID
	create := bapPrefix + "/environments"

	// snapshot is everything the cases could change.
	snapshot := func() string {
		t.Helper()
		envs := f.call(t, "GET", adminEnvPrefix, tok, "", nil)
		row := f.call(t, "GET", rowPath, tok, "", nil)
		file := f.call(t, "GET", "/environments/"+env.ID+"/files/f1", tok, "", nil)
		return string(envs.body) + "\n" + string(row.body) + "\n" + string(file.body)
	}
	before := snapshot()

	big := `{"location":"unitedstates","properties":{"displayName":"` + strings.Repeat("x", maxEnvBytes) + `"}}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		chunked     bool // send without Content-Length
		status      int
		code        string
		hints       []string
	}{
		{"unknown location", "POST", create, "application/json",
			`{"location":"mars","properties":{"displayName":"X","environmentSku":"Production"}}`,
			false, 400, keyhold.CodeInvalidLocation, []string{`"mars"`, "unitedstates", "europe"}},
		{"unknown SKU", "POST", create, "application/json",
			`{"location":"europe","properties":{"displayName":"X","environmentSku":"Premium"}}`,
			false, 400, keyhold.CodeInvalidSKU, []string{`"Premium"`, "Production", "Sandbox"}},
		{"no display name", "POST", create, "application/json",
			`{"location":"europe","properties":{"environmentSku":"Production"}}`,
			false, 400, keyhold.CodeBadRequest, []string{"properties.displayName is required"}},
		{"malformed JSON", "POST", create, "application/json",
			`{"location":"europe",}`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"not valid JSON", "invalid character '}'", "at offset 21", `send a JSON object like {"location":"unitedstates"`}},
		{"truncated JSON", "POST", create, "application/json",
			`{"location":"europe","properties":{`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"ends at offset 35", "complete JSON object"}},
		{"wrong field type", "POST", create, "application/json",
			`{"location":"europe","properties":{"displayName":42,"environmentSku":"Production"}}`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{`"properties.displayName"`, "JSON number", "must be a string"}},
		{"trailing data", "POST", create, "application/json",
			`{"location":"europe","properties":{"displayName":"X","environmentSku":"Production"}} {}`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"more data after the JSON object", "offset 85"}},
		{"Power Platform integration not a boolean", "POST", create, "application/json",
			`{"location":"europe","properties":{"displayName":"X","environmentSku":"Production","financeAndOperations":{"powerPlatformIntegration":"yes"}}}`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"properties.financeAndOperations.powerPlatformIntegration", "must be true or false"}},
		{"array body", "POST", create, "application/json", `[]`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"JSON array", "send a JSON object"}},
		{"empty body", "POST", create, "application/json", ``,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"empty"}},
		{"oversized body", "POST", create, "application/json", big,
			false, 413, keyhold.CodeRequestTooLarge, []string{"larger than 65536 bytes"}},
		{"oversized body, chunked", "POST", create, "application/json", big,
			true, 413, keyhold.CodeRequestTooLarge, []string{"larger than 65536 bytes"}},
		{"form body", "POST", create, "application/x-www-form-urlencoded", "location=europe",
			false, 415, keyhold.CodeUnsupportedMediaType, []string{"application/x-www-form-urlencoded", "application/json"}},
		{"multipart body", "POST", create, "multipart/form-data; boundary=x", "--x--",
			false, 415, keyhold.CodeUnsupportedMediaType, []string{"multipart/form-data"}},
		{"text body", "POST", create, "text/plain", `{"location":"europe"}`,
			false, 415, keyhold.CodeUnsupportedMediaType, []string{"Content-Type: application/json"}},
		{"unknown environment", "GET", adminEnvPrefix + "/no-such-env", "", "",
			false, 404, keyhold.CodeEnvironmentNotFound, []string{`"no-such-env"`, "list environments to find its id"}},
		{"patch unknown environment", "PATCH", adminEnvPrefix + "/no-such-env", "application/json", `{"properties":{"displayName":"Y"}}`,
			false, 404, keyhold.CodeEnvironmentNotFound, []string{`"no-such-env"`, "list environments to find its id"}},
		{"delete unknown environment", "DELETE", adminEnvPrefix + "/no-such-env", "", "",
			false, 404, keyhold.CodeEnvironmentNotFound, []string{`"no-such-env"`, "list environments to find its id"}},
		{"unknown protection level", "PATCH", envPath, "application/json", `{"properties":{"governanceConfiguration":{"protectionLevel":"Ultra"}}}`,
			false, 400, keyhold.CodeBadRequest, []string{`"Ultra"`, `"Standard"`, `"Basic"`}},
		{"empty display name", "PATCH", envPath, "application/json", `{"properties":{"displayName":"  "}}`,
			false, 400, keyhold.CodeBadRequest, []string{"properties.displayName is empty"}},
		{"display name with a bidi override", "PATCH", envPath, "application/json", `{"properties":{"displayName":"Sales\u202edorp"}}`,
			false, 400, keyhold.CodeBadRequest, []string{"properties.displayName", `"Sales\u202edorp"`, "U+202E (RIGHT-TO-LEFT OVERRIDE)"}},
		{"display name with NUL", "POST", create, "application/json", `{"location":"europe","properties":{"displayName":"Sales\u0000Prod","environmentSku":"Production"}}`,
			false, 400, keyhold.CodeBadRequest, []string{"properties.displayName", "U+0000"}},
		{"patch wrong type", "PATCH", envPath, "application/json", `{"properties":{"governanceConfiguration":{"protectionLevel":true}}}`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{`"properties.governanceConfiguration.protectionLevel"`, "must be a string"}},
		{"row not an object", "PUT", rowPath, "application/json", `[1,2]`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"JSON array", "send a JSON object"}},
		{"row malformed", "PUT", rowPath, "application/json", `{"name":}`,
			false, 400, keyhold.CodeInvalidRequestContent, []string{"at offset 8"}},
		{"row not UTF-8", "PUT", rowPath, "application/json", "{\"name\":\"\xff\"}",
			false, 400, keyhold.CodeInvalidRequestContent, []string{"UTF-8", "offset 9"}},
		{"row too large", "PUT", rowPath, "application/json", `{"a":"` + strings.Repeat("x", keyhold.MaxRowBytes) + `"}`,
			true, 413, keyhold.CodeRequestTooLarge, []string{"larger than 1048576 bytes"}},
		{"row bad table name", "PUT", "/environments/" + env.ID + "/tables/9bad/rows/r1", "application/json", `{}`,
			false, 400, keyhold.CodeInvalidName, []string{`"9bad"`, "use a letter"}},
		{"row bad id", "PUT", "/environments/" + env.ID + "/tables/accounts/rows/-r", "application/json", `{}`,
			false, 400, keyhold.CodeInvalidName, []string{`"-r"`}},
		{"row form body", "PUT", rowPath, "application/x-www-form-urlencoded", "name=x",
			false, 415, keyhold.CodeUnsupportedMediaType, nil},
		{"row of unknown environment", "PUT", "/environments/no-such-env/tables/accounts/rows/r1", "application/json", `{}`,
			false, 404, keyhold.CodeEnvironmentNotFound, []string{`"no-such-env"`, "list environments to find its id"}},
		{"file multipart body", "PUT", "/environments/" + env.ID + "/files/f1", "multipart/form-data; boundary=x", "--x--",
			false, 415, keyhold.CodeUnsupportedMediaType, []string{"application/octet-stream"}},
		{"file bad name", "PUT", "/environments/" + env.ID + "/files/.hidden", "application/octet-stream", "x",
			false, 400, keyhold.CodeInvalidName, []string{`".hidden"`}},
		{"audit bad top", "GET", bapPrefix + "/scopes/admin/auditlogs?top=many", "", "",
			false, 400, keyhold.CodeBadRequest, []string{`"many"`, "1 to 1000"}},
		{"unknown path", "GET", "/providers/Microsoft.Nope/things", "", "",
			false, 404, keyhold.CodeNotFound, []string{"no API at GET /providers/Microsoft.Nope/things", "docs/api.md"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body interface{ Read([]byte) (int, error) } = strings.NewReader(tt.body)
			if tt.chunked {
				body = struct{ *strings.Reader }{strings.NewReader(tt.body)} // length unknown
			}
			a := f.call(t, tt.method, tt.path, tok, tt.contentType, body)
			a.wantError(t, tt.status, tt.code, tt.hints...)
			if after := snapshot(); after != before {
				t.Fatalf("the request changed state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestMethodNotAllowed: a known path with another method is a 405 that
// lists the methods in Allow.
func TestMethodNotAllowed(t *testing.T) {
	f := newFixture(t)
	a := f.call(t, "POST", "/environments/e/tables/t/rows/r", "", "", nil)
	a.wantError(t, nethttp.StatusMethodNotAllowed, keyhold.CodeMethodNotAllowed, "POST is not supported", "GET")
	if got := a.header.Get("Allow"); got != "GET, HEAD, PUT, DELETE" {
		t.Fatalf("Allow = %q", got)
	}
	if id := a.header.Get("x-ms-request-id"); !isUUID(id) {
		t.Fatalf("x-ms-request-id = %q, want a uuid", id)
	}
}

// TestEnvironmentJSONRestoring: an environment whose data a restore, copy
// or reset is replacing shows states.management "Restoring" and the
// operation's id, and the client reads the id back; otherwise "Ready" and
// no id.
func TestEnvironmentJSONRestoring(t *testing.T) {
	e := &keyhold.Environment{ID: "env-r", TenantID: "t", DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUSandbox,
		State: keyhold.StateEnabled, RestoreOperationID: "op-1"}
	for _, tc := range []struct{ op, management string }{{"op-1", "Restoring"}, {"", "Ready"}} {
		e.RestoreOperationID = tc.op
		b, err := json.Marshal(toEnvironmentJSON(e))
		if err != nil {
			t.Fatal(err)
		}
		var j environmentJSON
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		if j.Properties.States.Management.ID != tc.management || fromEnvironmentJSON(&j).RestoreOperationID != tc.op ||
			(tc.op == "") == strings.Contains(string(b), "restoreOperationId") {
			t.Errorf("operation %q: %s; want management %s and the id back", tc.op, b, tc.management)
		}
	}
}

// TestCreateFlowsInSolutionsProperty: properties.createFlowsInSolutions
// shows the setting as it applies (off on the platform key); PATCH turns
// it on and off, through the wire and the Go client; a value that is not
// a boolean is refused quoting it, and changes nothing.
func TestCreateFlowsInSolutionsProperty(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		c := f.client
		e := &keyhold.Environment{DisplayName: "sol", Location: "europe", SKU: keyhold.SKUProduction}
		if err := c.CreateEnvironment(ctx, e); err != nil {
			t.Fatal(err)
		}
		tok := f.adminToken(t)
		if a := f.call(t, "GET", adminEnvPrefix+"/"+e.ID, tok, "", nil); !bytes.Contains(a.body, []byte(`"createFlowsInSolutions":false`)) {
			t.Errorf("platform key: %s", a.body)
		}
		a := f.jsonCall(t, "PATCH", adminEnvPrefix+"/"+e.ID, tok, `{"properties":{"createFlowsInSolutions":true}}`)
		if a.status != nethttp.StatusOK || !bytes.Contains(a.body, []byte(`"createFlowsInSolutions":true`)) {
			t.Fatalf("PATCH on: %d %s", a.status, a.body)
		}
		a = f.jsonCall(t, "PATCH", adminEnvPrefix+"/"+e.ID, tok, `{"properties":{"createFlowsInSolutions":"yes"}}`)
		if a.status != nethttp.StatusBadRequest || !bytes.Contains(a.body, []byte("createFlowsInSolutions")) {
			t.Errorf("PATCH \"yes\": %d %s", a.status, a.body)
		}
		if got, err := c.FindEnvironment(ctx, e.ID); err != nil || !got.FlowsInSolutions() {
			t.Errorf("after the refused PATCH: %+v, %v", got, err)
		}
		off := false
		got, err := c.UpdateEnvironment(ctx, e.ID, keyhold.EnvironmentUpdate{CreateFlowsInSolutions: &off})
		if err != nil || got.FlowsInSolutions() {
			t.Fatalf("client off: %+v, %v", got, err)
		}
		if got, err := c.FindEnvironment(ctx, e.ID); err != nil || got.FlowsInSolutions() {
			t.Errorf("read back off: %+v, %v", got, err)
		}
	})
}
