package http

import (
	"context"
	"encoding/json"
	nethttp "net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
)

// recordingCMK is an in-test keyhold.CMKService that records its calls and
// answers what the test set up. It stands in for the platform ONLY in the
// wire-shape tests of this file, which check how the HTTP layer reads
// requests and writes answers (paths, status codes, headers, JSON) and that
// a refused request reaches no service; what linking does is tested over
// the real stack (cmk_e2e_test.go).
type recordingCMK struct {
	mu    sync.Mutex
	calls []string // "link <env> <systemId>", "unlink …", "usage <policy id>"
	ops   map[string]*keyhold.Operation
	polls map[string]int
	// runningPolls is how many GetOperation answers an operation stays
	// Running before it Succeeds; failWith, if set, makes it fail instead.
	runningPolls int
	failWith     *keyhold.Error
	err          error // returned by LinkPolicy and UnlinkPolicy if set
	links        []*keyhold.PolicyLink
	usage        []*keyhold.KeyVersionUsage
}

var _ keyhold.CMKService = (*recordingCMK)(nil)

func newRecordingCMK() *recordingCMK {
	return &recordingCMK{ops: map[string]*keyhold.Operation{}, polls: map[string]int{}}
}

func (c *recordingCMK) start(kind, envID, systemID string) (*keyhold.Operation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, kind+" "+envID+" "+systemID)
	if c.err != nil {
		return nil, c.err
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	op := &keyhold.Operation{ID: uuid.NewString(), TenantID: "tenant-1", Kind: kind, Target: envID, State: keyhold.OperationRunning,
		Step: "rewrap", Total: 10, CreatedBy: "admin-1", CreatedAt: now, UpdatedAt: now}
	c.ops[op.ID] = op
	cp := *op
	return &cp, nil
}

func (c *recordingCMK) LinkPolicy(_ context.Context, envID, systemID string) (*keyhold.Operation, error) {
	return c.start(keyhold.OpLink, envID, systemID)
}

func (c *recordingCMK) UnlinkPolicy(_ context.Context, envID, systemID string) (*keyhold.Operation, error) {
	return c.start(keyhold.OpUnlink, envID, systemID)
}

func (c *recordingCMK) GetOperation(_ context.Context, id string) (*keyhold.Operation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	op, ok := c.ops[id]
	if !ok {
		return nil, keyhold.Errorf(keyhold.CodeNotFound, "operation %q was not found", id)
	}
	c.polls[id]++
	if op.State == keyhold.OperationRunning && c.polls[id] > c.runningPolls {
		op.FinishedAt = op.CreatedAt.Add(time.Minute)
		op.UpdatedAt, op.Step = op.FinishedAt, ""
		if c.failWith != nil {
			op.State, op.ErrorCode, op.ErrorMsg = keyhold.OperationFailed, c.failWith.Code, c.failWith.Message
		} else {
			op.State, op.Done = keyhold.OperationSucceeded, op.Total
		}
	} else if op.State == keyhold.OperationRunning {
		op.Done = int64(c.polls[id])
	}
	cp := *op
	return &cp, nil
}

func (c *recordingCMK) PolicyLinks(context.Context) ([]*keyhold.PolicyLink, error) {
	return c.links, nil
}

func (c *recordingCMK) KeyVersionUsage(_ context.Context, policyID string) ([]*keyhold.KeyVersionUsage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "usage "+policyID)
	return c.usage, nil
}

func (c *recordingCMK) recorded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// withCMK serves svc as the Server's CMK.
func withCMK(svc keyhold.CMKService) option {
	return func(f *fixture) { f.srv.CMK = svc }
}

const (
	testEnvID    = "0a1b2c3d-0000-4000-8000-000000000001"
	testSystemID = "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/4ad5b2c1-0000-4000-8000-00000000000a"
	testPolicyID = "/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.PowerPlatform/enterprisePolicies/contoso-cmk"
)

func linkURL(envID, action string) string {
	return bapPrefix + "/environments/" + envID + "/enterprisePolicies/Encryption/" + action
}

// wantAccepted checks a 202 answer to a link or unlink and returns its
// operation.
func (f *fixture) wantAccepted(t *testing.T, a answer, apiVersion string) map[string]any {
	t.Helper()
	if a.status != nethttp.StatusAccepted {
		t.Fatalf("answer %d, want 202: %s", a.status, a.body)
	}
	var op map[string]any
	if err := json.Unmarshal(a.body, &op); err != nil {
		t.Fatalf("202 body is not JSON: %v: %s", err, a.body)
	}
	want := f.url + operationsPrefix + "/" + op["name"].(string) + "?api-version=" + apiVersion
	if got := a.header.Get("operation-location"); got != want {
		t.Errorf("operation-location = %q, want %q", got, want)
	}
	if got := a.header.Get("Location"); got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got := a.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	return op
}

// field reads a dotted path of a decoded JSON object.
func field(t *testing.T, v map[string]any, path string) any {
	t.Helper()
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: %q is not inside an object", path, k)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("%s: no %q in %v", path, k, m)
		}
	}
	return cur
}

func TestCMKLinkWire(t *testing.T) {
	cmk := newRecordingCMK()
	f := newFixture(t, withCMK(cmk))
	tok := f.adminToken(t)

	a := f.jsonCall(t, "POST", linkURL(testEnvID, "link")+"?api-version=2019-10-01", tok, `{"SystemId":"`+testSystemID+`"}`)
	op := f.wantAccepted(t, a, "2019-10-01")
	for path, want := range map[string]any{
		"id": operationsPrefix + "/" + op["name"].(string), "operationId": op["name"],
		"type.id": "Link", "kind": "link", "state.id": "Running", "status": "Running",
		"environmentId": testEnvID, "target": testEnvID, "step": "rewrap", "progress.total": 10.0, "progress.done": 0.0,
		"requestedBy.id": "admin-1", "createdDateTime": "2026-01-02T03:04:05Z",
		"links.environment.path": adminEnvPrefix + "/" + testEnvID,
	} {
		if got := field(t, op, path); got != want {
			t.Errorf("operation %s = %v, want %v", path, got, want)
		}
	}
	if _, ok := op["error"]; ok {
		t.Errorf("a running operation has an error: %s", a.body)
	}
	if _, ok := op["finishedDateTime"]; ok {
		t.Errorf("a running operation has finishedDateTime: %s", a.body)
	}

	// The admin scope path, "systemId" in another case, a management
	// token, and no api-version.
	a = f.jsonCall(t, "POST", adminEnvPrefix+"/"+testEnvID+"/enterprisePolicies/encryption/unlink", f.mgmtToken(t), `{"systemId":"`+testSystemID+`"}`)
	f.wantAccepted(t, a, defaultBAPAPIVersion)

	want := []string{"link " + testEnvID + " " + testSystemID, "unlink " + testEnvID + " " + testSystemID}
	if got := cmk.recorded(); !reflect.DeepEqual(got, want) {
		t.Fatalf("service calls = %q, want %q", got, want)
	}
}

func TestCMKLinkRefusals(t *testing.T) {
	cmk := newRecordingCMK()
	f := newFixture(t, withCMK(cmk))
	tok := f.adminToken(t)
	path := linkURL(testEnvID, "link")

	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
		hints            []string
	}{
		{"missing SystemId", path, `{}`, 400, keyhold.CodeBadRequest, []string{"SystemId is required", "properties.systemId"}},
		{"empty SystemId", path, `{"SystemId":"  "}`, 400, keyhold.CodeBadRequest, []string{"SystemId is required"}},
		{"null SystemId", path, `{"SystemId":null}`, 400, keyhold.CodeBadRequest, []string{"SystemId is required"}},
		{"empty body", path, ``, 400, keyhold.CodeInvalidRequestContent, []string{"SystemId"}},
		{"SystemId not a string", path, `{"SystemId":7}`, 400, keyhold.CodeInvalidRequestContent, []string{"SystemId", "a string"}},
		{"resource id for SystemId", path, `{"SystemId":"` + testPolicyID + `"}`, 400, keyhold.CodeBadRequest, []string{"resource id", "/regions/"}},
		{"another policy type", bapPrefix + "/environments/" + testEnvID + "/enterprisePolicies/NetworkInjection/link", `{"SystemId":"` + testSystemID + `"}`,
			400, keyhold.CodeNotSupported, []string{`"NetworkInjection"`, "Encryption"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.jsonCall(t, "POST", tc.path, tok, tc.body).wantError(t, tc.status, tc.code, tc.hints...)
		})
	}
	t.Run("no token", func(t *testing.T) {
		a := f.jsonCall(t, "POST", path, "", `{"SystemId":"`+testSystemID+`"}`)
		a.wantError(t, 401, keyhold.CodeUnauthorized)
	})
	t.Run("vault token", func(t *testing.T) {
		a := f.jsonCall(t, "POST", path, f.token(t, "https://vault.azure.net/.default"), `{"SystemId":"`+testSystemID+`"}`)
		a.wantError(t, 401, keyhold.CodeInvalidToken, "audience")
	})
	t.Run("form body", func(t *testing.T) {
		a := f.call(t, "POST", path, tok, "application/x-www-form-urlencoded", strings.NewReader("SystemId=x"))
		a.wantError(t, 415, keyhold.CodeUnsupportedMediaType)
	})
	if got := cmk.recorded(); len(got) != 0 {
		t.Fatalf("refused requests reached the service: %q", got)
	}

	// The service's refusals pass through with their status and code.
	for _, tc := range []struct {
		name   string
		err    error
		status int
		inner  string
	}{
		{"unknown environment", keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found", testEnvID), 404, ""},
		{"not a platform admin", &keyhold.Error{Code: keyhold.CodeForbidden, Inner: "ForbiddenByRbac", Message: "no Reader on the policy"}, 403, "ForbiddenByRbac"},
		{"operation running", keyhold.Errorf(keyhold.CodeConflict, "a link is running"), 409, ""},
		{"not managed", keyhold.Errorf(keyhold.CodeBadRequest, "not a Managed Environment"), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmk.err = tc.err
			a := f.jsonCall(t, "POST", path, tok, `{"SystemId":"`+testSystemID+`"}`)
			e := tc.err.(*keyhold.Error)
			a.wantError(t, tc.status, e.Code, e.Message)
			if got := a.azureError(t); tc.inner != "" && (got.InnerError == nil || got.InnerError.Code != tc.inner) {
				t.Errorf("innererror = %+v, want %s", got.InnerError, tc.inner)
			}
			if a.header.Get("operation-location") != "" {
				t.Errorf("a refusal carries operation-location")
			}
		})
	}
	cmk.err = nil
}

func TestCMKOperationWire(t *testing.T) {
	cmk := newRecordingCMK()
	cmk.runningPolls = 1
	cmk.failWith = &keyhold.Error{Code: "KeyDisabled", Message: "the policy's key is disabled: enable it in the key vault"}
	f := newFixture(t, withCMK(cmk))
	tok := f.adminToken(t)
	op, _ := cmk.LinkPolicy(context.Background(), testEnvID, testSystemID)

	a := f.call(t, "GET", operationsPrefix+"/"+op.ID, tok, "", nil)
	var running map[string]any
	a.decode(t, 200, &running)
	if field(t, running, "state.id") != "Running" || field(t, running, "progress.done") != 1.0 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("running operation: %s, Retry-After %q", a.body, a.header.Get("Retry-After"))
	}

	a = f.call(t, "GET", operationsPrefix+"/"+op.ID, tok, "", nil)
	var failed map[string]any
	a.decode(t, 200, &failed)
	for path, want := range map[string]any{
		"state.id": "Failed", "status": "Failed", "error.code": "KeyDisabled", "error.message": cmk.failWith.Message,
		"finishedDateTime": "2026-01-02T03:05:05Z", "lastActionDateTime": "2026-01-02T03:05:05Z",
	} {
		if got := field(t, failed, path); got != want {
			t.Errorf("failed operation %s = %v, want %v", path, got, want)
		}
	}
	if _, ok := failed["step"]; ok {
		t.Errorf("a finished operation names a step: %s", a.body)
	}
	if got := a.header.Get("Retry-After"); got != "" {
		t.Errorf("a finished operation carries Retry-After %q", got)
	}

	f.call(t, "GET", operationsPrefix+"/"+uuid.NewString(), tok, "", nil).wantError(t, 404, keyhold.CodeNotFound)
}

func TestCMKPolicyLinksWire(t *testing.T) {
	cmk := newRecordingCMK()
	f := newFixture(t, withCMK(cmk))
	tok := f.adminToken(t)

	var empty map[string]any
	f.call(t, "GET", policyLinksPath, tok, "", nil).decode(t, 200, &empty)
	if v, ok := empty["value"].([]any); !ok || len(v) != 0 {
		t.Fatalf("no links = %v, want {\"value\":[]}", empty)
	}

	cmk.links = testPolicyLinks()
	var out struct {
		Value []map[string]any `json:"value"`
	}
	f.call(t, "GET", policyLinksPath+"?api-version=2020-10-01", tok, "", nil).decode(t, 200, &out)
	if len(out.Value) != 2 {
		t.Fatalf("value = %v, want 2 rows", out.Value)
	}
	for path, want := range map[string]any{
		"environmentId": testEnvID, "displayName": "Contoso", "location": "europe", "environmentState": "Enabled", "displayState": "Enabled",
		"keyManagedBy": "Customer", "encryptionStatus": "Succeeded", "linkStatus": "Linked",
		"policy.id": testPolicyID, "policy.name": "contoso-cmk", "policy.systemId": testSystemID, "policy.location": "europe",
		"policy.keyVault.id":       "/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.KeyVault/vaults/kv1",
		"policy.keyVault.key.name": "cmk", "policy.healthStatus": "Healthy",
		"lastOperation.id": "op-1", "lastOperation.kind": "link", "lastOperation.state": "Succeeded",
		"lastOperation.lastActionDateTime": "2026-01-02T03:04:05Z",
	} {
		if got := field(t, out.Value[0], path); got != want {
			t.Errorf("row 0 %s = %v, want %v", path, got, want)
		}
	}
	if got := field(t, out.Value[1], "displayState"); got != "Environment disabled" {
		t.Errorf("a Locked environment shows %v, want Environment disabled", got)
	}
	if got := field(t, out.Value[1], "environmentState"); got != "Locked" {
		t.Errorf("a Locked environment's state is %v", got)
	}
	if _, ok := out.Value[1]["policy"]; ok {
		t.Errorf("a row without a policy shows one: %v", out.Value[1])
	}
}

func testPolicyLinks() []*keyhold.PolicyLink {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []*keyhold.PolicyLink{
		{
			Environment: &keyhold.Environment{ID: testEnvID, DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction,
				State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByCustomer, EncryptionStatus: keyhold.EncryptionSucceeded,
				PolicyID: testPolicyID, PolicySystemID: testSystemID, LinkStatus: keyhold.LinkStatusLinked, LastOperationID: "op-1"},
			Policy: &keyhold.EnterprisePolicy{SubscriptionID: "s-1", ResourceGroup: "rg-1", Name: "contoso-cmk", Location: "europe",
				Kind: keyhold.PolicyKindEncryption, SystemID: testSystemID, HealthStatus: keyhold.HealthHealthy,
				KeyVaultID: "/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.KeyVault/vaults/kv1", KeyName: "cmk"},
			LastOperation: &keyhold.Operation{ID: "op-1", Kind: keyhold.OpLink, State: keyhold.OperationSucceeded, Target: testEnvID, UpdatedAt: at},
		},
		{
			Environment: &keyhold.Environment{ID: "env-2", DisplayName: "Fabrikam", Location: "europe", SKU: keyhold.SKUSandbox,
				State: keyhold.StateLocked, KeyManagedBy: keyhold.KeyManagedByMicrosoft, EncryptionStatus: keyhold.EncryptionFailed},
		},
	}
}

func TestCMKKeyVersionUsageWire(t *testing.T) {
	cmk := newRecordingCMK()
	used := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cmk.usage = []*keyhold.KeyVersionUsage{
		{KeyID: "https://h/vaults/kv1/keys/cmk/v2", Version: "v2", Current: true, LiveKeys: 3},
		{KeyID: "https://h/vaults/kv1/keys/cmk/v1", Version: "v1", LastUsedAt: used, SafeToDisableAt: used.Add(keyhold.KeyVersionRetention)},
	}
	f := newFixture(t, withCMK(cmk))
	mgmt := f.mgmtToken(t)

	// ARM paths match in any case, the last segment included.
	path := "/subscriptions/s-1/resourcegroups/rg-1/providers/microsoft.powerplatform/enterprisepolicies/contoso-cmk/keyversionusage?api-version=2020-10-30-preview"
	var out struct {
		Value []map[string]any `json:"value"`
	}
	f.call(t, "GET", path, mgmt, "", nil).decode(t, 200, &out)
	if len(out.Value) != 2 {
		t.Fatalf("value = %v", out.Value)
	}
	for path, want := range map[string]any{"kid": "https://h/vaults/kv1/keys/cmk/v2", "version": "v2", "current": true, "liveEnvironmentKeys": 3.0, "backups": 0.0} {
		if got := field(t, out.Value[0], path); got != want {
			t.Errorf("v2 %s = %v, want %v", path, got, want)
		}
	}
	if _, ok := out.Value[0]["lastUsedDateTime"]; ok {
		t.Errorf("a version in use shows lastUsedDateTime: %v", out.Value[0])
	}
	if got := field(t, out.Value[1], "safeToDisableDateTime"); got != "2026-01-30T00:00:00Z" {
		t.Errorf("v1 safeToDisableDateTime = %v", got)
	}
	if got := cmk.recorded(); !reflect.DeepEqual(got, []string{"usage " + testPolicyID}) {
		t.Fatalf("service calls = %q", got)
	}

	f.call(t, "GET", "/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.PowerPlatform/enterprisePolicies/contoso-cmk/versions", mgmt, "", nil).
		wantError(t, 404, keyhold.CodeNotFound, "keyVersionUsage")
	f.call(t, "GET", path, f.adminToken(t), "", nil).wantError(t, 401, keyhold.CodeInvalidToken, "audience")
	if got := cmk.recorded(); len(got) != 1 {
		t.Fatalf("refused requests reached the service: %q", got)
	}
}

// TestCMKRoutesOff: without a CMK service, its paths are unknown.
func TestCMKRoutesOff(t *testing.T) {
	f := newFixture(t)
	f.jsonCall(t, "POST", linkURL(testEnvID, "link"), f.adminToken(t), `{"SystemId":"`+testSystemID+`"}`).
		wantError(t, 404, keyhold.CodeNotFound)
}

// TestCMKClient drives the wire through the Go client.
func TestCMKClient(t *testing.T) {
	cmk := newRecordingCMK()
	cmk.runningPolls = 1
	f := newFixture(t, withCMK(cmk))
	ctx := context.Background()
	c := f.client

	op, err := c.LinkPolicy(ctx, testEnvID, testSystemID)
	if err != nil {
		t.Fatalf("LinkPolicy: %v", err)
	}
	if op.ID == "" || op.Kind != keyhold.OpLink || op.Target != testEnvID || op.State != keyhold.OperationRunning ||
		op.TenantID != "tenant-1" || op.CreatedBy != "admin-1" || op.Total != 10 || op.Step != "rewrap" {
		t.Fatalf("LinkPolicy = %+v", op)
	}
	var seen []keyhold.OperationState
	start := time.Now()
	done, err := c.WaitOperation(ctx, op.ID, 0, func(o *keyhold.Operation) { seen = append(seen, o.State) })
	if err != nil || done.State != keyhold.OperationSucceeded || done.Done != 10 || done.FinishedAt.IsZero() {
		t.Fatalf("WaitOperation = %+v, %v", done, err)
	}
	if want := []keyhold.OperationState{keyhold.OperationRunning, keyhold.OperationSucceeded}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("progress saw %v, want %v", seen, want)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("WaitOperation polled again after %v, before the server's Retry-After of 1s", d)
	}

	cmk.runningPolls, cmk.failWith = 0, &keyhold.Error{Code: "KeyDisabled", Message: "the key is disabled"}
	op, err = c.UnlinkPolicy(ctx, testEnvID, testSystemID)
	if err != nil || op.Kind != keyhold.OpUnlink {
		t.Fatalf("UnlinkPolicy = %+v, %v", op, err)
	}
	failed, err := c.WaitOperation(ctx, op.ID, time.Millisecond, nil)
	wantCode(t, err, "KeyDisabled")
	if failed == nil || failed.State != keyhold.OperationFailed || !strings.Contains(err.Error(), "the key is disabled") || !strings.Contains(err.Error(), op.ID) {
		t.Fatalf("WaitOperation of a failing operation = %+v, %v", failed, err)
	}

	_, err = c.GetOperation(ctx, uuid.NewString())
	wantCode(t, err, keyhold.CodeNotFound)
	_, err = c.WaitOperation(ctx, uuid.NewString(), 0, nil)
	wantCode(t, err, keyhold.CodeNotFound)

	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	cmk.runningPolls = 1000
	op, _ = c.LinkPolicy(ctx, testEnvID, testSystemID)
	last, err := c.WaitOperation(cctx, op.ID, 0, nil)
	if err != context.DeadlineExceeded || last == nil || last.State != keyhold.OperationRunning {
		t.Fatalf("WaitOperation past its deadline = %+v, %v; want the running operation and DeadlineExceeded", last, err)
	}

	cmk.err = keyhold.Errorf(keyhold.CodeEnvironmentNotFound, "environment %q was not found", testEnvID)
	_, err = c.LinkPolicy(ctx, testEnvID, testSystemID)
	wantCode(t, err, keyhold.CodeEnvironmentNotFound)
	cmk.err = nil

	cmk.links = testPolicyLinks()
	links, err := c.PolicyLinks(ctx)
	if err != nil {
		t.Fatalf("PolicyLinks: %v", err)
	}
	want := testPolicyLinks()
	if !reflect.DeepEqual(links, want) {
		t.Fatalf("PolicyLinks round trip:\n got %s\nwant %s", jsonOf(links), jsonOf(want))
	}

	used := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cmk.usage = []*keyhold.KeyVersionUsage{
		{KeyID: "k/v2", Version: "v2", Current: true, LiveKeys: 3, Backups: 1},
		{KeyID: "k/v1", Version: "v1", LastUsedAt: used, SafeToDisableAt: used.Add(keyhold.KeyVersionRetention)},
	}
	usage, err := c.KeyVersionUsage(ctx, testPolicyID)
	if err != nil || !reflect.DeepEqual(usage, cmk.usage) {
		t.Fatalf("KeyVersionUsage = %s, %v; want %s", jsonOf(usage), err, jsonOf(cmk.usage))
	}
	_, err = c.KeyVersionUsage(ctx, testSystemID)
	wantCode(t, err, keyhold.CodeBadRequest)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestOperationIDFromLocation(t *testing.T) {
	for _, tc := range []struct{ loc, want string }{
		{"https://h:1/providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/abc?api-version=2019-10-01", "abc"},
		{"/providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/abc", "abc"},
		{"https://h:1/prefix/providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/abc", "abc"},
		{"https://h:1/providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/", ""},
		{"https://h:1/providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/a/b", ""},
		{"https://h:1/elsewhere/scopes/admin/operations/abc", ""},
		{"", ""},
		{"%zz", ""},
	} {
		if got := operationIDFromLocation(tc.loc); got != tc.want {
			t.Errorf("operationIDFromLocation(%q) = %q, want %q", tc.loc, got, tc.want)
		}
	}
}

// TestEnvironmentJSONPolicy: a linked environment shows its policy under
// properties.enterprisePolicies.customerManagedKeys, as BAP does, and the
// client reads it back.
func TestEnvironmentJSONPolicy(t *testing.T) {
	e := &keyhold.Environment{ID: testEnvID, TenantID: "t", DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction,
		Managed: true, State: keyhold.StateDisabled, KeyManagedBy: keyhold.KeyManagedByCustomer,
		PolicyID: testPolicyID, PolicySystemID: testSystemID, LinkStatus: keyhold.LinkStatusLinked}
	b, err := json.Marshal(toEnvironmentJSON(e))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	for path, want := range map[string]any{
		"properties.protectionStatus.keyManagedBy":                     "Customer",
		"properties.states.runtime.id":                                 "Disabled",
		"properties.enterprisePolicies.customerManagedKeys.policyId":   "4ad5b2c1-0000-4000-8000-00000000000a",
		"properties.enterprisePolicies.customerManagedKeys.location":   "europe",
		"properties.enterprisePolicies.customerManagedKeys.id":         testPolicyID,
		"properties.enterprisePolicies.customerManagedKeys.systemId":   testSystemID,
		"properties.enterprisePolicies.customerManagedKeys.linkStatus": "Linked",
	} {
		if got := field(t, m, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	var j environmentJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	back := fromEnvironmentJSON(&j)
	if back.PolicyID != e.PolicyID || back.PolicySystemID != e.PolicySystemID || back.LinkStatus != e.LinkStatus ||
		back.KeyManagedBy != e.KeyManagedBy || back.State != e.State {
		t.Fatalf("round trip = %+v, want the policy fields of %+v", back, e)
	}

	e.PolicyID, e.PolicySystemID, e.LinkStatus, e.KeyManagedBy = "", "", "", keyhold.KeyManagedByMicrosoft
	b, _ = json.Marshal(toEnvironmentJSON(e))
	if strings.Contains(string(b), "enterprisePolicies") {
		t.Fatalf("an unlinked environment shows enterprisePolicies: %s", b)
	}
}
