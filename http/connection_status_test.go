package http

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// TestConnectionStatusOverHTTPS: an OAuth connection's GET shows
// properties.statuses as Power Platform does: [{"status":"Connected"}],
// then, once its principal's refresh tokens are revoked,
// [{"status":"Error","target":"token","error":{"code":"ConnectionUnauthenticated",…}}];
// the Go client reads them back, and a PUT by the owner re-authenticates
// it. Both databases.
func TestConnectionStatusOverHTTPS(t *testing.T) {
	flowsForEach(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		env := f.createEnv(t, "conns")
		tok := f.token(t, "https://service.flow.microsoft.com/.default")
		path := "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps/connections/dv?" + url.Values{"$filter": {"environment eq '" + env.ID + "'"}}.Encode()
		type status struct {
			Status string `json:"status"`
			Target string `json:"target"`
			Error  *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		statuses := func(a answer) []status {
			t.Helper()
			if a.status >= 300 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			var body struct {
				Properties struct {
					Statuses []status `json:"statuses"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(a.body, &body); err != nil {
				t.Fatal(err)
			}
			return body.Properties.Statuses
		}
		put := func() []status { return statuses(f.jsonCall(t, "PUT", path, tok, `{"properties":{"kind":"oauth"}}`)) }
		if st := put(); len(st) != 1 || st[0].Status != "Connected" || st[0].Error != nil {
			t.Fatalf("PUT statuses %+v", st)
		}
		if st := statuses(f.call(t, "GET", path, tok, "", nil)); len(st) != 1 || st[0].Status != "Connected" {
			t.Fatalf("GET statuses %+v", st)
		}

		id, err := keyhold.Caller(f.adminCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.store.Update(ctx, func(tx keyhold.Tx) error {
			_, err := tx.RevokePrincipalRefreshTokens(ctx, id.PrincipalID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		st := statuses(f.call(t, "GET", path, tok, "", nil))
		if len(st) != 1 || st[0].Status != "Error" || st[0].Target != "token" || st[0].Error == nil ||
			st[0].Error.Code != keyhold.CodeConnectionUnauthenticated || !strings.Contains(st[0].Error.Message, "re-authenticate") {
			t.Fatalf("GET statuses after revocation %+v", st)
		}
		c, err := f.client.GetConnection(ctx, env.ID, "shared_commondataserviceforapps", "dv")
		if err != nil || len(c.Statuses) != 1 || c.Statuses[0].Status != keyhold.ConnectionError || c.Statuses[0].Error.Code != keyhold.CodeConnectionUnauthenticated {
			t.Fatalf("client GetConnection: %+v, %v", c, err)
		}
		if st := put(); len(st) != 1 || st[0].Status != "Connected" {
			t.Fatalf("re-authenticating PUT statuses %+v", st)
		}
	})
}
