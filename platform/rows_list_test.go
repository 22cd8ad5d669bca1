package platform

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestListRows: a table's rows come back decrypted in id order, in pages
// that the skip token chains, filtered on equality; other tables' rows
// never show; a stranger is refused; a bad $top or $filter is refused
// quoting it.
func TestListRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		e := f.createEnv(t, "rows")
		for i := range 7 {
			status := "open"
			if i%3 == 0 {
				status = "closed"
			}
			if _, err := f.p.PutRow(f.ctx, e.ID, "tasks", fmt.Sprintf("t%02d", i), json.RawMessage(fmt.Sprintf(`{"n":%d,"status":%q}`, i, status))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.p.PutRow(f.ctx, e.ID, "tasks_2", "t00", json.RawMessage(`{"status":"open"}`)); err != nil {
			t.Fatal(err)
		}
		var ids []string
		q := keyhold.RowQuery{Top: 3}
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("the pages don't end")
			}
			page, err := f.p.ListRows(f.ctx, e.ID, "tasks", q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Rows) > 3 {
				t.Fatalf("a page of %d rows, $top 3", len(page.Rows))
			}
			for _, r := range page.Rows {
				if r.Table != "tasks" || !strings.Contains(string(r.Data), `"status"`) {
					t.Fatalf("row %+v", r)
				}
				ids = append(ids, r.ID)
			}
			if page.SkipToken == "" {
				break
			}
			q.SkipToken = page.SkipToken
		}
		if got := strings.Join(ids, ","); got != "t00,t01,t02,t03,t04,t05,t06" {
			t.Fatalf("paged ids %s", got)
		}
		page, err := f.p.ListRows(f.ctx, e.ID, "tasks", keyhold.RowQuery{Filter: "status eq 'closed'"})
		if err != nil {
			t.Fatal(err)
		}
		var closed []string
		for _, r := range page.Rows {
			closed = append(closed, r.ID)
		}
		if got := strings.Join(closed, ","); got != "t00,t03,t06" || page.SkipToken != "" {
			t.Fatalf("filtered ids %s, skip token %q", got, page.SkipToken)
		}
		page, err = f.p.ListRows(f.ctx, e.ID, "tasks", keyhold.RowQuery{Filter: "status eq 'open' and n eq 4"})
		if err != nil || len(page.Rows) != 1 || page.Rows[0].ID != "t04" {
			t.Fatalf("two clauses: %+v, %v", page, err)
		}

		_, err = f.p.ListRows(f.ctx, e.ID, "tasks", keyhold.RowQuery{Top: keyhold.MaxRowPage + 1})
		wantCode(t, err, keyhold.CodeInvalidRequestContent)
		_, err = f.p.ListRows(f.ctx, e.ID, "tasks", keyhold.RowQuery{Filter: "status ne 'open'"})
		wantCode(t, err, keyhold.CodeInvalidRequestContent)
		if !strings.Contains(err.Error(), "status ne 'open'") {
			t.Errorf("the refusal doesn't quote the filter: %v", err)
		}
		stranger := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "khs_stranger-secret", "")
		_, err = f.p.ListRows(f.login(t, f.creds.TenantID, stranger.AppID, "khs_stranger-secret"), e.ID, "tasks", keyhold.RowQuery{})
		wantCode(t, err, keyhold.CodeForbidden)
	})
}
