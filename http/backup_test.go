package http_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// backupWorld is what the backup tests write and read back.
type backupWorld struct {
	s     *cmkStack
	rows  []string // row ids of table "accounts" that a test may write
	files []string // file names a test may write
}

// createEnv creates an environment of sku through the Go client.
func (w *backupWorld) createEnv(t *testing.T, name string, sku keyhold.EnvironmentSKU) *keyhold.Environment {
	t.Helper()
	e := &keyhold.Environment{DisplayName: name, Location: "europe", SKU: sku}
	if err := w.s.client.CreateEnvironment(context.Background(), e); err != nil {
		t.Fatalf("CreateEnvironment %s: %v", name, err)
	}
	return e
}

// put writes a row, or deletes it when data is "".
func (w *backupWorld) put(t *testing.T, envID, row, data string) {
	t.Helper()
	ctx := context.Background()
	var err error
	if data == "" {
		err = w.s.client.DeleteRow(ctx, envID, "accounts", row)
	} else {
		_, err = w.s.client.PutRow(ctx, envID, "accounts", row, json.RawMessage(data))
	}
	if err != nil {
		t.Fatalf("row %s of %s: %v", row, envID, err)
	}
}

// putFile uploads a file.
func (w *backupWorld) putFile(t *testing.T, envID, name string, content []byte) {
	t.Helper()
	if _, err := w.s.client.PutFile(context.Background(), envID, name, bytes.NewReader(content)); err != nil {
		t.Fatalf("file %s of %s: %v", name, envID, err)
	}
}

// data reads every row and file the tests may write, as "name=content"
// lines ("-" when absent; a row with its version), so that two reads can
// be compared byte for byte.
func (w *backupWorld) data(t *testing.T, envID string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, id := range w.rows {
		r, err := w.s.client.GetRow(ctx, envID, "accounts", id)
		switch keyhold.ErrorCode(err) {
		case "":
			fmt.Fprintf(&b, "row %s v%d = %s\n", id, r.Version, r.Data)
		case keyhold.CodeRowNotFound:
			fmt.Fprintf(&b, "row %s -\n", id)
		default:
			t.Fatalf("GetRow %s of %s: %v", id, envID, err)
		}
	}
	for _, name := range w.files {
		_, rc, err := w.s.client.OpenFile(ctx, envID, name)
		switch keyhold.ErrorCode(err) {
		case "":
			h := sha256.New()
			n, err := io.Copy(h, rc)
			rc.Close()
			if err != nil {
				t.Fatalf("reading file %s of %s: %v", name, envID, err)
			}
			fmt.Fprintf(&b, "file %s %d bytes sha256 %s\n", name, n, hex.EncodeToString(h.Sum(nil)))
		case keyhold.CodeFileNotFound:
			fmt.Fprintf(&b, "file %s -\n", name)
		default:
			t.Fatalf("OpenFile %s of %s: %v", name, envID, err)
		}
	}
	return b.String()
}

// state is data, the environment's backups and the changes the audit log
// records for it: what a refusal must leave as it was.
func (w *backupWorld) state(t *testing.T, envID string) string {
	t.Helper()
	ctx := context.Background()
	bs, err := w.s.client.ListBackups(ctx, envID)
	if err != nil {
		t.Fatalf("ListBackups %s: %v", envID, err)
	}
	s := w.data(t, envID)
	for _, b := range bs {
		s += fmt.Sprintf("backup %s %q %d rows %d files %d bytes\n", b.ID, b.Label, b.Rows, b.Files, b.Bytes)
	}
	e, err := w.s.client.FindEnvironment(ctx, envID)
	if err != nil {
		t.Fatalf("FindEnvironment %s: %v", envID, err)
	}
	s += fmt.Sprintf("environment %s %s %s %s\n", e.State, e.SKU, e.KeyManagedBy, e.PolicyID)
	entries, err := w.s.client.ListAudit(ctx, keyhold.AuditFilter{EnvID: envID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range entries {
		if a.Result == "Succeeded" {
			s += "audit " + a.Action + "\n"
		}
	}
	return s
}

// answer is a raw HTTP answer.
type backupAnswer struct {
	status int
	header nethttp.Header
	body   []byte
}

// do sends a raw request with an administrator's token; body "" sends
// none.
func (w *backupWorld) do(t *testing.T, method, path, body string) backupAnswer {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := nethttp.NewRequest(method, w.s.url+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+w.s.token(t, keyhold.AudiencePowerApps))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.s.raw.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return backupAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantAzureError checks that a is an Azure error body with status and
// code, whose message says each of hints.
func (a backupAnswer) wantAzureError(t *testing.T, status int, code string, hints ...string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" ||
		!strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("answer %d (%s) is not an Azure error body: %s", a.status, a.header.Get("Content-Type"), a.body)
	}
	if a.status != status || (code != "" && e.Error.Code != code) {
		t.Fatalf("answer %d %s (%s), want %d %s", a.status, e.Error.Code, e.Error.Message, status, code)
	}
	for _, h := range hints {
		if !strings.Contains(e.Error.Message, h) {
			t.Fatalf("message %q does not say %q", e.Error.Message, h)
		}
	}
}

// wantAccepted checks a 202 of a started operation of kind on target, as
// a link answers (operation-location with apiVersion, the request's or
// the default), polls its operation-location until it ends, and returns
// the operation's id.
func (w *backupWorld) wantAccepted(t *testing.T, a backupAnswer, kind, target, apiVersion string) string {
	t.Helper()
	loc := a.header.Get("operation-location")
	if a.status != nethttp.StatusAccepted || loc == "" || a.header.Get("Location") != loc || a.header.Get("Retry-After") != "1" ||
		!strings.HasPrefix(loc, w.s.url+"/providers/Microsoft.BusinessAppPlatform/scopes/admin/operations/") ||
		!strings.HasSuffix(loc, "?api-version="+apiVersion) {
		t.Fatalf("%s: %d, operation-location %q, Location %q, Retry-After %q; want 202 with where to poll\n%s",
			kind, a.status, loc, a.header.Get("Location"), a.header.Get("Retry-After"), a.body)
	}
	var op struct{ Name, Kind, Status, EnvironmentID string }
	if err := json.Unmarshal(a.body, &op); err != nil || op.Name == "" || op.Kind != kind || op.EnvironmentID != target {
		t.Fatalf("%s: 202 body %s", kind, a.body)
	}
	w.wait(t, op.Name)
	polled := w.do(t, "GET", strings.TrimPrefix(loc, w.s.url), "")
	var got struct{ Name, Status string }
	if polled.status != 200 || json.Unmarshal(polled.body, &got) != nil || got.Name != op.Name || got.Status != "Succeeded" {
		t.Fatalf("GET operation-location of %s: %d %s", kind, polled.status, polled.body)
	}
	return op.Name
}

// wait follows an operation to its end through the Go client; it must
// succeed.
func (w *backupWorld) wait(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	op, err := w.s.client.WaitOperation(ctx, id, 0, nil)
	if err != nil || op.State != keyhold.OperationSucceeded {
		t.Fatalf("operation %s: %+v, %v", id, op, err)
	}
}

// content is n bytes that differ with seed.
func content(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), 'b', 'a', 'c', 'k', 'u', 'p'})
	b := make([]byte, n)
	r.Read(b)
	return b
}

func adminEnvPath(envID string, more ...string) string {
	return "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/" + envID + "/" + strings.Join(more, "/")
}

// TestBackupRestoreCopyReset takes backups over HTTPS, overwrites the
// data, restores it (202, operation-location, Succeeded) and reads it
// back byte for byte; copies an environment into another; resets a
// Sandbox; deletes a backup.
func TestBackupRestoreCopyReset(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := &backupWorld{s: newCMKStackOn(t, open(t)), rows: []string{"a1", "a2", "a3"}, files: []string{"big.bin", "small.txt"}}
		testBackupRestoreCopyReset(t, w)
	})
}

func testBackupRestoreCopyReset(t *testing.T, w *backupWorld) {
	ctx := context.Background()
	c := w.s.client
	prod := w.createEnv(t, "Contoso", keyhold.SKUProduction)
	w.put(t, prod.ID, "a1", `{"name":"Fabrikam","revenue":1000}`)
	w.put(t, prod.ID, "a2", `{"name":"Northwind"}`)
	big := content(1, 1<<20+1) // over one chunk
	w.putFile(t, prod.ID, "big.bin", big)
	w.putFile(t, prod.ID, "small.txt", []byte("hello"))
	before := w.data(t, prod.ID)

	// Take a backup: 201, Location, the Backup JSON.
	a := w.do(t, "POST", adminEnvPath(prod.ID, "backups")+"?api-version=2022-03-01-preview", `{"label":"before the upgrade"}`)
	var b keyhold.Backup
	if a.status != nethttp.StatusCreated || json.Unmarshal(a.body, &b) != nil || b.ID == "" {
		t.Fatalf("POST backups: %d %s", a.status, a.body)
	}
	if want := w.s.url + adminEnvPath(prod.ID, "backups", b.ID); a.header.Get("Location") != want {
		t.Fatalf("Location = %q, want %q", a.header.Get("Location"), want)
	}
	if b.EnvID != prod.ID || b.Label != "before the upgrade" || b.Rows != 2 || b.Files != 2 || b.Bytes != int64(len(big)+5) ||
		b.CreatedAt.IsZero() || b.ExpiresAt.Sub(b.CreatedAt) != keyhold.BackupRetentionProduction || b.CreatedBy == "" {
		t.Fatalf("backup = %+v", b)
	}
	var raw map[string]any
	json.Unmarshal(a.body, &raw)
	for _, k := range []string{"id", "environmentId", "label", "createdBy", "backupPointDateTime", "expiresAt", "rows", "files", "bytes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("the backup's JSON lacks %q: %s", k, a.body)
		}
	}
	if _, ok := raw["tenantId"]; ok {
		t.Errorf("the backup's JSON shows its tenant: %s", a.body)
	}
	// A second one through the Go client, without a label or a body.
	b2, err := c.CreateBackup(ctx, prod.ID, "")
	if err != nil || b2.Label != "" || b2.Rows != 2 {
		t.Fatalf("CreateBackup = %+v, %v", b2, err)
	}
	if a := w.do(t, "POST", adminEnvPath(prod.ID, "backups"), ""); a.status != nethttp.StatusCreated {
		t.Fatalf("POST backups without a body: %d %s", a.status, a.body)
	} else {
		var b3 keyhold.Backup
		json.Unmarshal(a.body, &b3)
		if err := c.DeleteBackup(ctx, prod.ID, b3.ID); err != nil {
			t.Fatal(err)
		}
	}

	// List (newest first) and get.
	bs, err := c.ListBackups(ctx, prod.ID)
	if err != nil || len(bs) != 2 || bs[0].ID != b2.ID || bs[1].ID != b.ID {
		t.Fatalf("ListBackups = %v, %v; want %s then %s", bs, err, b2.ID, b.ID)
	}
	a = w.do(t, "GET", adminEnvPath(prod.ID, "backups"), "")
	var list struct{ Value []keyhold.Backup }
	if a.status != 200 || json.Unmarshal(a.body, &list) != nil || len(list.Value) != 2 {
		t.Fatalf("GET backups: %d %s", a.status, a.body)
	}
	got, err := c.GetBackup(ctx, prod.ID, b.ID)
	if err != nil || got.ID != b.ID || got.Label != b.Label || !got.CreatedAt.Equal(b.CreatedAt) || got.Bytes != b.Bytes {
		t.Fatalf("GetBackup = %+v, %v; want %+v", got, err, b)
	}

	// Overwrite the data, then restore the first backup.
	w.put(t, prod.ID, "a1", `{"name":"changed"}`)
	w.put(t, prod.ID, "a2", "")
	w.put(t, prod.ID, "a3", `{"name":"new"}`)
	w.putFile(t, prod.ID, "big.bin", content(2, 3<<20))
	if after := w.data(t, prod.ID); after == before {
		t.Fatal("overwriting changed nothing")
	}
	a = w.do(t, "POST", adminEnvPath(prod.ID, "restore")+"?api-version=2022-03-01-preview",
		`{"backupId":"`+b.ID+`","sourceEnvironmentId":"`+prod.ID+`"}`)
	w.wantAccepted(t, a, keyhold.OpRestore, prod.ID, "2022-03-01-preview")
	if got := w.data(t, prod.ID); got != before {
		t.Fatalf("after the restore:\n%s\nwant, as backed up:\n%s", got, before)
	}
	_, rc, err := c.OpenFile(ctx, prod.ID, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	gotBig, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(gotBig, big) {
		t.Fatalf("big.bin after the restore: %d bytes, %v; want the %d backed up", len(gotBig), err, len(big))
	}

	// Copy into another environment, through the Go client: its own data
	// goes, the source's comes.
	other := w.createEnv(t, "Test", keyhold.SKUProduction)
	w.put(t, other.ID, "a3", `{"name":"only in the target"}`)
	w.putFile(t, other.ID, "small.txt", []byte("the target's"))
	op, err := c.CopyEnvironment(ctx, other.ID, prod.ID)
	if err != nil || op.Kind != keyhold.OpCopy || op.Target != other.ID || op.ID == "" {
		t.Fatalf("CopyEnvironment = %+v, %v", op, err)
	}
	w.wait(t, op.ID)
	if got := w.data(t, other.ID); got != before {
		t.Fatalf("the copy:\n%s\nwant the source's:\n%s", got, before)
	}
	if got := w.data(t, prod.ID); got != before {
		t.Fatalf("the copy changed its source:\n%s", got)
	}
	// And raw, with copyType.
	w.put(t, other.ID, "a3", `{"name":"again"}`)
	a = w.do(t, "POST", adminEnvPath(other.ID, "copy"), `{"sourceEnvironmentId":"`+prod.ID+`","copyType":"FullCopy"}`)
	w.wantAccepted(t, a, keyhold.OpCopy, other.ID, "2019-10-01")
	if got := w.data(t, other.ID); got != before {
		t.Fatalf("the second copy:\n%s", got)
	}

	// A restore through the Go client of prod's backup into the other
	// environment (both under the platform's key).
	w.put(t, other.ID, "a1", `{"name":"to be restored over"}`)
	if op, err = c.RestoreBackup(ctx, other.ID, b.ID); err != nil || op.Kind != keyhold.OpRestore {
		t.Fatalf("RestoreBackup = %+v, %v", op, err)
	}
	w.wait(t, op.ID)
	if got := w.data(t, other.ID); got != before {
		t.Fatalf("restore into another environment:\n%s", got)
	}

	// Reset a Sandbox: its data and backups go.
	sandbox := w.createEnv(t, "Sandbox", keyhold.SKUSandbox)
	w.put(t, sandbox.ID, "a1", `{"name":"sandbox"}`)
	w.putFile(t, sandbox.ID, "small.txt", []byte("sandbox"))
	sb, err := c.CreateBackup(ctx, sandbox.ID, "sandbox")
	if err != nil || sb.ExpiresAt.Sub(sb.CreatedAt) != keyhold.BackupRetention {
		t.Fatalf("CreateBackup of a Sandbox = %+v, %v", sb, err)
	}
	a = w.do(t, "POST", adminEnvPath(sandbox.ID, "reset")+"?api-version=2022-03-01-preview", "")
	w.wantAccepted(t, a, keyhold.OpReset, sandbox.ID, "2022-03-01-preview")
	if got, want := w.data(t, sandbox.ID), "row a1 -\nrow a2 -\nrow a3 -\nfile big.bin -\nfile small.txt -\n"; got != want {
		t.Fatalf("after the reset:\n%s\nwant nothing", got)
	}
	if bs, err := c.ListBackups(ctx, sandbox.ID); err != nil || len(bs) != 0 {
		t.Fatalf("backups after the reset: %v, %v", bs, err)
	}
	// The Sandbox serves again, with "{}" as the body this time.
	w.put(t, sandbox.ID, "a2", `{"name":"after"}`)
	a = w.do(t, "POST", adminEnvPath(sandbox.ID, "reset"), "{}")
	w.wantAccepted(t, a, keyhold.OpReset, sandbox.ID, "2019-10-01")
	// And through the Go client.
	w.put(t, sandbox.ID, "a2", `{"name":"after"}`)
	if op, err = c.ResetEnvironment(ctx, sandbox.ID); err != nil || op.Kind != keyhold.OpReset || op.Target != sandbox.ID {
		t.Fatalf("ResetEnvironment = %+v, %v", op, err)
	}
	w.wait(t, op.ID)
	if got := w.data(t, sandbox.ID); strings.Contains(got, "after") {
		t.Fatalf("after the client's reset:\n%s", got)
	}

	// Delete a backup: 204; again: 404 BackupNotFound.
	a = w.do(t, "DELETE", adminEnvPath(prod.ID, "backups", b2.ID), "")
	if a.status != nethttp.StatusNoContent || len(a.body) != 0 {
		t.Fatalf("DELETE backup: %d %s", a.status, a.body)
	}
	w.do(t, "DELETE", adminEnvPath(prod.ID, "backups", b2.ID), "").wantAzureError(t, 404, keyhold.CodeBackupNotFound, b2.ID)
	wantErrorCode(t, c.DeleteBackup(ctx, prod.ID, b2.ID), keyhold.CodeBackupNotFound)
	if bs, err := c.ListBackups(ctx, prod.ID); err != nil || len(bs) != 1 || bs[0].ID != b.ID {
		t.Fatalf("after deleting %s: %v, %v", b2.ID, bs, err)
	}
	if got := w.data(t, prod.ID); got != before {
		t.Fatalf("deleting a backup changed the data:\n%s", got)
	}
}

// TestBackupRefusals: bad bodies, unknown backups and fields, a copyType
// other than FullCopy, a source that is not the backup's, and a reset of
// an environment that is not a Sandbox are refused in the Azure error
// shape, and change nothing: the data, the backups, the environment and
// the audit log's record of changes stay as they were.
func TestBackupRefusals(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := &backupWorld{s: newCMKStackOn(t, open(t)), rows: []string{"a1", "a2"}, files: []string{"f.bin"}}
		testBackupRefusals(t, w)
	})
}

func testBackupRefusals(t *testing.T, w *backupWorld) {
	ctx := context.Background()
	c := w.s.client
	prod := w.createEnv(t, "Contoso", keyhold.SKUProduction)
	other := w.createEnv(t, "Other", keyhold.SKUProduction)
	w.put(t, prod.ID, "a1", `{"name":"Fabrikam"}`)
	w.putFile(t, prod.ID, "f.bin", content(3, 1000))
	b, err := c.CreateBackup(ctx, prod.ID, "kept")
	if err != nil {
		t.Fatal(err)
	}
	w.put(t, prod.ID, "a2", `{"name":"after the backup"}`)
	w.put(t, other.ID, "a1", `{"name":"other"}`)
	prodState, otherState := w.state(t, prod.ID), w.state(t, other.ID)
	unchanged := func(t *testing.T) {
		t.Helper()
		if got := w.state(t, prod.ID); got != prodState {
			t.Fatalf("a refusal changed %s:\n%s\nwas:\n%s", prod.ID, got, prodState)
		}
		if got := w.state(t, other.ID); got != otherState {
			t.Fatalf("a refusal changed %s:\n%s\nwas:\n%s", other.ID, got, otherState)
		}
	}

	long := strings.Repeat("x", keyhold.MaxBackupLabel+1)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
		hints                    []string
	}{
		{"backup: label not a string", "POST", adminEnvPath(prod.ID, "backups"), `{"label":1}`, 400, keyhold.CodeInvalidRequestContent, []string{`"label"`, "a string"}},
		{"backup: unknown field", "POST", adminEnvPath(prod.ID, "backups"), `{"lable":"x"}`, 400, keyhold.CodeInvalidRequestContent, []string{`"lable"`, "label"}},
		{"backup: not an object", "POST", adminEnvPath(prod.ID, "backups"), `["x"]`, 400, keyhold.CodeInvalidRequestContent, []string{"array"}},
		{"backup: bad JSON", "POST", adminEnvPath(prod.ID, "backups"), `{"label":`, 400, keyhold.CodeInvalidRequestContent, []string{"not valid JSON"}},
		{"backup: two objects", "POST", adminEnvPath(prod.ID, "backups"), `{"label":"a"}{}`, 400, keyhold.CodeInvalidRequestContent, []string{"more data"}},
		{"backup: label too long", "POST", adminEnvPath(prod.ID, "backups"), `{"label":"` + long + `"}`, 400, keyhold.CodeInvalidRequestContent, []string{"at most"}},
		{"backup: control character", "POST", adminEnvPath(prod.ID, "backups"), `{"label":"a\u0007b"}`, 400, keyhold.CodeInvalidRequestContent, []string{"printable"}},
		{"backup: unknown environment", "POST", adminEnvPath("00000000-0000-0000-0000-000000000000", "backups"), `{}`, 404, keyhold.CodeEnvironmentNotFound, nil},
		{"get: unknown backup", "GET", adminEnvPath(prod.ID, "backups", "nope"), "", 404, keyhold.CodeBackupNotFound, []string{`"nope"`, "lists its backups"}},
		{"get: another environment's backup", "GET", adminEnvPath(other.ID, "backups", b.ID), "", 404, keyhold.CodeBackupNotFound, nil},
		{"delete: unknown backup", "DELETE", adminEnvPath(prod.ID, "backups", "nope"), "", 404, keyhold.CodeBackupNotFound, nil},
		{"delete: another environment's backup", "DELETE", adminEnvPath(other.ID, "backups", b.ID), "", 404, keyhold.CodeBackupNotFound, nil},
		{"restore: no body", "POST", adminEnvPath(prod.ID, "restore"), "", 400, keyhold.CodeInvalidRequestContent, []string{"empty", "backupId"}},
		{"restore: no backupId", "POST", adminEnvPath(prod.ID, "restore"), `{}`, 400, keyhold.CodeBadRequest, []string{"backupId is required"}},
		{"restore: empty backupId", "POST", adminEnvPath(prod.ID, "restore"), `{"backupId":" "}`, 400, keyhold.CodeBadRequest, []string{"backupId is required"}},
		{"restore: unknown field", "POST", adminEnvPath(prod.ID, "restore"), `{"backupId":"` + b.ID + `","force":true}`, 400, keyhold.CodeInvalidRequestContent, []string{`"force"`, "backupId and sourceEnvironmentId"}},
		{"restore: backupId not a string", "POST", adminEnvPath(prod.ID, "restore"), `{"backupId":7}`, 400, keyhold.CodeInvalidRequestContent, []string{`"backupId"`}},
		{"restore: unknown backup", "POST", adminEnvPath(prod.ID, "restore"), `{"backupId":"nope"}`, 404, keyhold.CodeBackupNotFound, []string{`"nope"`}},
		{"restore: not the source's backup", "POST", adminEnvPath(prod.ID, "restore"), `{"backupId":"` + b.ID + `","sourceEnvironmentId":"` + other.ID + `"}`,
			400, keyhold.CodeBadRequest, []string{b.ID, "is not a backup of environment " + other.ID}},
		{"restore: unknown source", "POST", adminEnvPath(prod.ID, "restore"), `{"backupId":"` + b.ID + `","sourceEnvironmentId":"00000000-0000-0000-0000-000000000000"}`,
			404, keyhold.CodeEnvironmentNotFound, nil},
		{"restore: unknown target", "POST", adminEnvPath("00000000-0000-0000-0000-000000000000", "restore"), `{"backupId":"` + b.ID + `"}`, 404, keyhold.CodeEnvironmentNotFound, nil},
		{"copy: no source", "POST", adminEnvPath(other.ID, "copy"), `{"copyType":"FullCopy"}`, 400, keyhold.CodeBadRequest, []string{"sourceEnvironmentId is required"}},
		{"copy: MinimalCopy", "POST", adminEnvPath(other.ID, "copy"), `{"sourceEnvironmentId":"` + prod.ID + `","copyType":"MinimalCopy"}`,
			400, keyhold.CodeBadRequest, []string{"only FullCopy is supported", `"MinimalCopy"`}},
		{"copy: unknown field", "POST", adminEnvPath(other.ID, "copy"), `{"sourceEnvironmentId":"` + prod.ID + `","skipAuditData":true}`,
			400, keyhold.CodeInvalidRequestContent, []string{`"skipAuditData"`}},
		{"copy: onto itself", "POST", adminEnvPath(prod.ID, "copy"), `{"sourceEnvironmentId":"` + prod.ID + `"}`, 400, keyhold.CodeBadRequest, []string{"onto itself"}},
		{"copy: unknown source", "POST", adminEnvPath(other.ID, "copy"), `{"sourceEnvironmentId":"00000000-0000-0000-0000-000000000000"}`, 404, keyhold.CodeEnvironmentNotFound, nil},
		{"reset: unknown field", "POST", adminEnvPath(prod.ID, "reset"), `{"baseLanguageCode":1033}`, 400, keyhold.CodeInvalidRequestContent, []string{`"baseLanguageCode"`, "no fields"}},
		{"reset: not an object", "POST", adminEnvPath(prod.ID, "reset"), `null`, 400, keyhold.CodeInvalidRequestContent, nil},
		// The platform's refusal: a Production environment is not reset.
		{"reset: not a Sandbox", "POST", adminEnvPath(prod.ID, "reset"), `{}`, 0, "", []string{prod.ID}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := w.do(t, tc.method, tc.path, tc.body)
			if tc.status == 0 {
				if a.status < 400 || a.status >= 500 {
					t.Fatalf("answer %d %s, want a refusal", a.status, a.body)
				}
				a.wantAzureError(t, a.status, "", tc.hints...)
			} else {
				a.wantAzureError(t, tc.status, tc.code, tc.hints...)
			}
			unchanged(t)
		})
	}

	// The Go client gets the server's codes as *keyhold.Error.
	_, err = c.GetBackup(ctx, prod.ID, "nope")
	wantErrorCode(t, err, keyhold.CodeBackupNotFound)
	_, err = c.RestoreBackup(ctx, prod.ID, "nope")
	wantErrorCode(t, err, keyhold.CodeBackupNotFound)
	_, err = c.CreateBackup(ctx, prod.ID, long)
	wantErrorCode(t, err, keyhold.CodeInvalidRequestContent)
	_, err = c.CopyEnvironment(ctx, prod.ID, prod.ID)
	wantErrorCode(t, err, keyhold.CodeBadRequest)
	_, err = c.ResetEnvironment(ctx, prod.ID)
	if ke, ok := err.(*keyhold.Error); !ok || ke.Code == "" || ke.Message == "" {
		t.Fatalf("ResetEnvironment of a Production environment = %v (%T), want a *keyhold.Error", err, err)
	}
	_, err = c.ListBackups(ctx, "00000000-0000-0000-0000-000000000000")
	wantErrorCode(t, err, keyhold.CodeEnvironmentNotFound)
	_, err = c.CreateBackup(ctx, "", "x")
	wantErrorCode(t, err, keyhold.CodeBadRequest)
	unchanged(t)

	// A token of another audience is refused before anything runs.
	req, _ := nethttp.NewRequest("POST", w.s.url+adminEnvPath(prod.ID, "backups"), nil)
	req.Header.Set("Authorization", "Bearer "+w.s.token(t, keyhold.AudienceVault))
	resp, err := w.s.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != nethttp.StatusUnauthorized {
		t.Fatalf("a vault token: %d, want 401", resp.StatusCode)
	}
	unchanged(t)
	if !slices.ContainsFunc(strings.Split(prodState, "\n"), func(l string) bool { return strings.HasPrefix(l, "backup "+b.ID) }) {
		t.Fatalf("the state does not show the backup:\n%s", prodState)
	}
}
