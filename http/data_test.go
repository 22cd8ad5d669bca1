package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestRows: put, get and delete a row through the Go client and raw.
func TestRows(t *testing.T) { forEachBackend(t, testRows) }

func testRows(t *testing.T, f *fixture) {
	ctx := context.Background()
	env := f.createEnv(t, "Rows")

	row, err := f.client.PutRow(ctx, env.ID, "accounts", "r1", json.RawMessage(`{"name":"Contoso","revenue":1000}`))
	if err != nil {
		t.Fatalf("PutRow: %v", err)
	}
	if row.Version != 1 || row.EnvID != env.ID || row.Table != "accounts" || row.ID != "r1" || row.UpdatedAt.IsZero() {
		t.Fatalf("PutRow = %+v, want version 1 of accounts/r1", row)
	}
	row, err = f.client.PutRow(ctx, env.ID, "accounts", "r1", json.RawMessage(`{"name":"Contoso","revenue":2000}`))
	if err != nil || row.Version != 2 {
		t.Fatalf("second PutRow = %+v, %v; want version 2", row, err)
	}
	got, err := f.client.GetRow(ctx, env.ID, "accounts", "r1")
	if err != nil {
		t.Fatalf("GetRow: %v", err)
	}
	var data map[string]any
	if err := json.Unmarshal(got.Data, &data); err != nil || data["revenue"] != float64(2000) || got.Version != 2 {
		t.Fatalf("GetRow = %+v (%s), want revenue 2000 at version 2", got, got.Data)
	}

	tok := f.adminToken(t)
	a := f.call(t, "GET", "/environments/"+env.ID+"/tables/accounts/rows/r1", tok, "", nil)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &fields); err != nil || a.status != nethttp.StatusOK {
		t.Fatalf("raw GET: %d %s", a.status, a.body)
	}
	for _, k := range []string{"environmentId", "table", "id", "version", "updatedAt", "data"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("row JSON %s lacks %q", a.body, k)
		}
	}

	if err := f.client.DeleteRow(ctx, env.ID, "accounts", "r1"); err != nil {
		t.Fatalf("DeleteRow: %v", err)
	}
	_, err = f.client.GetRow(ctx, env.ID, "accounts", "r1")
	wantCode(t, err, keyhold.CodeRowNotFound)
	a = f.call(t, "DELETE", "/environments/"+env.ID+"/tables/accounts/rows/r2", tok, "", nil)
	if a.status != nethttp.StatusNoContent && a.status != nethttp.StatusNotFound {
		t.Fatalf("DELETE of a missing row: %d %s", a.status, a.body)
	}
}

// TestListRowsRoute: GET …/tables/{table}/rows pages and filters through
// the Go client ($top, $filter, $skiptoken) and raw; a bad $top is 400.
func TestListRowsRoute(t *testing.T) { forEachBackend(t, testListRowsRoute) }

func testListRowsRoute(t *testing.T, f *fixture) {
	ctx := context.Background()
	env := f.createEnv(t, "List rows")
	for i, status := range []string{"open", "closed", "open"} {
		if _, err := f.client.PutRow(ctx, env.ID, "tasks", "t"+strconv.Itoa(i), json.RawMessage(`{"status":"`+status+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	page, err := f.client.ListRows(ctx, env.ID, "tasks", keyhold.RowQuery{Top: 2})
	if err != nil || len(page.Rows) != 2 || page.SkipToken != "t1" {
		t.Fatalf("first page %+v, %v", page, err)
	}
	page, err = f.client.ListRows(ctx, env.ID, "tasks", keyhold.RowQuery{Top: 2, SkipToken: page.SkipToken})
	if err != nil || len(page.Rows) != 1 || page.Rows[0].ID != "t2" || page.SkipToken != "" {
		t.Fatalf("second page %+v, %v", page, err)
	}
	page, err = f.client.ListRows(ctx, env.ID, "tasks", keyhold.RowQuery{Filter: "status eq 'open'"})
	if err != nil || len(page.Rows) != 2 || page.Rows[1].ID != "t2" {
		t.Fatalf("filtered %+v, %v", page, err)
	}
	tok := f.adminToken(t)
	a := f.call(t, "GET", "/environments/"+env.ID+"/tables/tasks/rows?$top=-1", tok, "", nil)
	if a.status != nethttp.StatusBadRequest || !strings.Contains(string(a.body), `$top \"-1`) {
		t.Fatalf("bad $top: %d %s", a.status, a.body)
	}
	a = f.call(t, "GET", "/environments/"+env.ID+"/tables/tasks/rows?$filter=status%20gt%201", tok, "", nil)
	if a.status != nethttp.StatusBadRequest || !strings.Contains(string(a.body), "status gt 1") {
		t.Fatalf("bad $filter: %d %s", a.status, a.body)
	}
}

// TestFiles: a file of a few MiB (not a multiple of the chunk size) streams
// up and down through the Go client intact.
func TestFiles(t *testing.T) { forEachBackend(t, testFiles) }

func testFiles(t *testing.T, f *fixture) {
	ctx := context.Background()
	env := f.createEnv(t, "Files")

	const size = 3<<20 + 17
	up := sha256.New()
	info, err := f.client.PutFile(ctx, env.ID, "report.bin", io.TeeReader(io.LimitReader(rand.Reader, size), up))
	if err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	if info.Size != size || info.Version != 1 || info.Name != "report.bin" || info.EnvID != env.ID {
		t.Fatalf("PutFile = %+v, want %d bytes at version 1", info, size)
	}

	got, rc, err := f.client.OpenFile(ctx, env.ID, "report.bin")
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	down := sha256.New()
	n, err := io.Copy(down, rc)
	rc.Close()
	if err != nil || n != size {
		t.Fatalf("reading the file: %d bytes, %v; want %d", n, err, size)
	}
	if !bytes.Equal(up.Sum(nil), down.Sum(nil)) {
		t.Fatal("the downloaded file's SHA-256 differs from the uploaded one's")
	}
	if got.Size != size || got.Version != 1 || got.UpdatedAt.IsZero() {
		t.Fatalf("OpenFile info = %+v", got)
	}

	tok := f.adminToken(t)
	a := f.call(t, "GET", "/environments/"+env.ID+"/files/report.bin", tok, "", nil)
	h := a.header
	if a.status != nethttp.StatusOK || h.Get("Content-Type") != "application/octet-stream" ||
		h.Get("Content-Length") != strconv.Itoa(size) || h.Get("ETag") != `"1"` {
		t.Fatalf("raw GET: %d, headers %v", a.status, h)
	}

	// Replacing it bumps the version; an empty file is a file.
	if info, err = f.client.PutFile(ctx, env.ID, "report.bin", strings.NewReader("")); err != nil || info.Version != 2 || info.Size != 0 {
		t.Fatalf("second PutFile = %+v, %v", info, err)
	}
	_, _, err = f.client.OpenFile(ctx, env.ID, "missing.bin")
	wantCode(t, err, keyhold.CodeFileNotFound)
}

// TestFileTamperAborts: when stored ciphertext fails to decrypt mid-stream,
// after the headers are out, the server aborts the connection: the client
// sees a broken transfer, never a short file that looks complete.
func TestFileTamperAborts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	env := f.createEnv(t, "Tamper")
	const size = 3 << 20
	if _, err := f.client.PutFile(ctx, env.ID, "f.bin", io.LimitReader(rand.Reader, size)); err != nil {
		t.Fatal(err)
	}
	// Flip a byte in the second chunk, as someone with database access
	// might.
	err := f.store.Update(ctx, func(tx keyhold.Tx) error {
		rec, err := tx.File(ctx, env.ID, "f.bin")
		if err != nil {
			return err
		}
		chunk, err := tx.FileChunk(ctx, env.ID, rec.Generation, 1)
		if err != nil {
			return err
		}
		chunk[len(chunk)/2] ^= 1
		return tx.PutFileChunk(ctx, env.ID, rec.Generation, 1, chunk)
	})
	if err != nil {
		t.Fatalf("tampering: %v", err)
	}

	info, rc, err := f.client.OpenFile(ctx, env.ID, "f.bin")
	if err != nil {
		t.Fatalf("OpenFile: %v (the headers should be out before the bad chunk)", err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err == nil {
		t.Fatalf("read %d of %d bytes without an error: a truncated transfer looked complete", n, info.Size)
	}
	if n >= size {
		t.Fatalf("read %d bytes of a %d-byte file whose second chunk was altered", n, size)
	}
	if !strings.Contains(f.logs.String(), "aborting response after headers were sent") {
		t.Fatal("the abort was not logged")
	}
}

// TestAudit: the audit log lists newest first and pages with nextLink.
func TestAudit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	env := f.createEnv(t, "Audited")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := f.client.PutRow(ctx, env.ID, "t", id, json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := f.client.ListAudit(ctx, keyhold.AuditFilter{EnvID: env.ID})
	if err != nil || len(all) < 4 {
		t.Fatalf("ListAudit = %d entries, %v; want the create and three writes", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("entries not newest first: %d then %d", all[i-1].ID, all[i].ID)
		}
	}
	page, err := f.client.ListAudit(ctx, keyhold.AuditFilter{EnvID: env.ID, Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != all[0].ID {
		t.Fatalf("first page = %v, %v", page, err)
	}

	tok := f.adminToken(t)
	a := f.call(t, "GET", bapPrefix+"/scopes/admin/auditlogs?environmentId="+env.ID+"&top=2", tok, "", nil)
	var out struct {
		Value    []*keyhold.AuditEntry
		NextLink string
	}
	if err := json.Unmarshal(a.body, &out); err != nil || len(out.Value) != 2 {
		t.Fatalf("raw page: %d %s", a.status, a.body)
	}
	prefix := f.url + bapPrefix + "/scopes/admin/auditlogs?"
	if !strings.HasPrefix(out.NextLink, prefix) || !strings.Contains(out.NextLink, "before="+strconv.FormatInt(out.Value[1].ID, 10)) {
		t.Fatalf("nextLink = %q, want %s…before=%d", out.NextLink, prefix, out.Value[1].ID)
	}
	a = f.call(t, "GET", strings.TrimPrefix(out.NextLink, f.url), tok, "", nil)
	var next struct{ Value []*keyhold.AuditEntry }
	if err := json.Unmarshal(a.body, &next); err != nil || len(next.Value) == 0 || next.Value[0].ID != all[2].ID {
		t.Fatalf("next page: %d %s; want entry %d first", a.status, a.body, all[2].ID)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestFileRefusedBeforeUpload: an upload the server refuses up front (an
// unknown environment) is not sent: the client asks with
// "Expect: 100-continue" and streams only once the server reads.
func TestFileRefusedBeforeUpload(t *testing.T) {
	f := newFixture(t)
	const size = 16 << 20
	body := &countingReader{r: io.LimitReader(rand.Reader, size)}
	_, err := f.client.PutFile(context.Background(), "no-such-env", "big.bin", body)
	wantCode(t, err, keyhold.CodeEnvironmentNotFound)
	if body.n != 0 {
		t.Fatalf("the client read %d bytes of an upload the server refused before reading", body.n)
	}
}
