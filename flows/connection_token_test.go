package flows_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// The OAuth connections' grants (issue 15): a connection holds a refresh
// token of the principal who made it and acts through it.

const dvAPI = "shared_commondataserviceforapps"

// createRowDef is a flow whose one connector action creates an orders row
// named by the trigger's body, through the "dv" connection.
const createRowDef = `{
  "$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
  "contentVersion": "1.0.0.0",
  "triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {"type": "object"}}}},
  "actions": {
    "Add_a_new_row": {"type": "OpenApiConnection", "runAfter": {},
      "inputs": {"host": {"apiId": "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps", "connectionName": "shared_commondataserviceforapps", "operationId": "CreateRecord"},
        "parameters": {"entityName": "orders", "item/name": "@triggerBody()?['name']"}}}
  }
}`

const dvOnlyRefs = `{"shared_commondataserviceforapps":{"apiName":"shared_commondataserviceforapps","connectionName":"dv"}}`

// user adds a user with a password to the world's tenant, a member of its
// environment, and returns the context of its calls.
func (w *world) user(t *testing.T, upn string) (*keyhold.Principal, context.Context) {
	t.Helper()
	admin, _ := keyhold.Caller(w.ctx)
	hash, err := crypt.HashPassword("a long and unusual passphrase for " + upn)
	if err != nil {
		t.Fatal(err)
	}
	u := &keyhold.Principal{ID: uuid.NewString(), TenantID: admin.TenantID, Type: keyhold.PrincipalUser, DisplayName: upn, CreatedAt: w.clock.Now()}
	bg := context.Background()
	if err := w.store.Update(bg, func(tx keyhold.Tx) error {
		if err := tx.CreatePrincipal(bg, u); err != nil {
			return err
		}
		if err := tx.CreateUserAccount(bg, &keyhold.UserAccount{PrincipalID: u.ID, TenantID: u.TenantID, UserPrincipalName: upn, PasswordHash: hash, UpdatedAt: w.clock.Now()}); err != nil {
			return err
		}
		return tx.AddEnvironmentMember(bg, &keyhold.EnvironmentMember{EnvID: w.env.ID, PrincipalID: u.ID, AddedBy: admin.PrincipalID, AddedAt: w.clock.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	return u, keyhold.NewContext(bg, &keyhold.Identity{TenantID: u.TenantID, PrincipalID: u.ID, Type: u.Type, Audience: keyhold.AudienceFlow})
}

// connRecord reads a connection's stored record.
func (w *world) connRecord(t *testing.T, api, name string) *keyhold.ConnectionRecord {
	t.Helper()
	return storetest.Read(t, w.store, func(ctx context.Context, tx keyhold.Tx) (*keyhold.ConnectionRecord, error) {
		return tx.Connection(ctx, w.env.ID, api, name)
	})
}

// connToken opens a connection's seal, as only the platform can, and
// returns the refresh token it holds ("" for none).
func (w *world) connToken(t *testing.T, rec *keyhold.ConnectionRecord) string {
	t.Helper()
	pt, err := w.p.Sealer.Open(context.Background(), rec.EnvID, keyhold.StoreConnections, keyhold.ConnectionItemID(rec.API, rec.Name), rec.Version, rec.Epoch, rec.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		RefreshToken string `json:"refreshToken"`
	}
	if err := json.Unmarshal(pt, &body); err != nil {
		t.Fatal(err)
	}
	return body.RefreshToken
}

// runCreateRow runs the createRowDef flow "orders" and returns the run and
// its one action.
func (w *world) runCreateRow(t *testing.T, name string) (*keyhold.FlowRun, *keyhold.FlowRunAction) {
	t.Helper()
	run, err := w.fl.RunTrigger(w.ctx, w.env.ID, "orders", "manual", json.RawMessage(`{"name":"`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	end := w.wait(t, w.fl, "orders", run.ID)
	acts, err := w.fl.RunActions(w.ctx, w.env.ID, "orders", run.ID)
	if err != nil {
		t.Fatal(err)
	}
	a := action(acts, "Add_a_new_row")
	if a == nil {
		t.Fatalf("no action Add_a_new_row in %+v", acts)
	}
	return end, a
}

// orderRows counts the orders rows.
func (w *world) orderRows(t *testing.T) int {
	t.Helper()
	page, err := w.p.ListRows(w.ctx, w.env.ID, "orders", keyhold.RowQuery{})
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound || keyhold.ErrorCode(err) == keyhold.CodeRowNotFound {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	return len(page.Rows)
}

func wantStatus(t *testing.T, c *keyhold.Connection, status string) {
	t.Helper()
	if len(c.Statuses) != 1 || c.Statuses[0].Status != status {
		t.Fatalf("connection %s statuses %+v: want one %s", c.Name, c.Statuses, status)
	}
}

// TestOAuthConnectionActsThroughGrant: a user's OAuth connection holds a
// refresh token of theirs; its connector action redeems it (rotating it:
// the used one is marked used, the successor sealed in its place) and
// runs as the user, under the data plane's checks: once the user is no
// longer a member of the environment, the action is refused.
func TestOAuthConnectionActsThroughGrant(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		ada, actx := w.user(t, "ada@contoso.example")
		c, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth})
		if err != nil {
			t.Fatal(err)
		}
		if c.PrincipalID != ada.ID {
			t.Fatalf("connection acts as %s, want the caller %s", c.PrincipalID, ada.ID)
		}
		wantStatus(t, c, keyhold.ConnectionConnected)
		first := w.connToken(t, w.connRecord(t, dvAPI, "dv"))
		if first == "" {
			t.Fatal("the connection holds no refresh token")
		}
		w.putFlow(t, w.fl, "orders", createRowDef, dvOnlyRefs)

		end, a := w.runCreateRow(t, "first")
		if end.Status != keyhold.RunSucceeded {
			t.Fatalf("run %s: %+v", end.Status, a.Error)
		}
		if n := w.orderRows(t); n != 1 {
			t.Fatalf("%d orders rows, want 1", n)
		}
		// Rotated: the first token is used, its successor sealed.
		rec := w.connRecord(t, dvAPI, "dv")
		next := w.connToken(t, rec)
		if next == "" || next == first || rec.Version != 2 {
			t.Fatalf("after an action the connection (version %d) holds the same token", rec.Version)
		}
		if err := w.store.View(context.Background(), func(tx keyhold.Tx) error {
			rt, err := tx.RefreshToken(context.Background(), crypt.SignInHash(first))
			if err != nil {
				return err
			}
			if rt.UsedAt.IsZero() || rt.PrincipalID != ada.ID || rt.ClientID != keyhold.ConnectionClientID || rt.Scope != string(keyhold.AudiencePowerApps)+"/.default" {
				t.Errorf("first token %+v: want used, Ada's, the connection client's, for the data plane", rt)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// A second action redeems the successor.
		if end, a := w.runCreateRow(t, "second"); end.Status != keyhold.RunSucceeded {
			t.Fatalf("second run %s: %+v", end.Status, a.Error)
		}

		// The data plane checks the identity the action runs as: Ada
		// without membership may not write rows.
		if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error {
			return tx.RemoveEnvironmentMember(context.Background(), w.env.ID, ada.ID)
		}); err != nil {
			t.Fatal(err)
		}
		end, a = w.runCreateRow(t, "third")
		if end.Status != keyhold.RunFailed || a.Error == nil || a.Error.Code != keyhold.CodeForbidden {
			t.Fatalf("run as a non-member %s: %+v, want Forbidden", end.Status, a.Error)
		}
		if n := w.orderRows(t); n != 2 {
			t.Fatalf("%d orders rows, want 2", n)
		}
	})
}

// TestOAuthConnectionRevoked: once the user's refresh tokens are revoked
// (sign-out everywhere), or the user is removed, the connection shows an
// Error status and its next action fails naming the connection and
// saying to re-authenticate, writing nothing; the owner's PUT
// re-authenticates it.
func TestOAuthConnectionRevoked(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		ada, actx := w.user(t, "ada@contoso.example")
		if _, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		w.putFlow(t, w.fl, "orders", createRowDef, dvOnlyRefs)
		bg := context.Background()
		if err := w.store.Update(bg, func(tx keyhold.Tx) error {
			_, err := tx.RevokePrincipalRefreshTokens(bg, ada.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		before := w.connRecord(t, dvAPI, "dv")

		c, err := w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionError)
		if e := c.Statuses[0].Error; e == nil || e.Code != keyhold.CodeConnectionUnauthenticated || !strings.Contains(e.Message, `"dv"`) || !strings.Contains(e.Message, "revoked") {
			t.Fatalf("status error %+v", e)
		}
		list, err := w.fl.ListConnections(w.ctx, w.env.ID)
		if err != nil || len(list) != 1 || list[0].Statuses[0].Status != keyhold.ConnectionError {
			t.Fatalf("ListConnections: %+v, %v", list, err)
		}

		end, a := w.runCreateRow(t, "refused")
		if end.Status != keyhold.RunFailed || a.Error == nil || a.Error.Code != keyhold.CodeConnectionUnauthenticated {
			t.Fatalf("run %s: %+v, want ConnectionUnauthenticated", end.Status, a.Error)
		}
		for _, want := range []string{`connection "dv"`, "re-authenticate", "revoked", "keyhold connection create"} {
			if !strings.Contains(a.Error.Message, want) {
				t.Errorf("action error %q does not say %q", a.Error.Message, want)
			}
		}
		if n := w.orderRows(t); n != 0 {
			t.Fatalf("%d orders rows written by a refused action", n)
		}
		if after := w.connRecord(t, dvAPI, "dv"); after.Version != before.Version || !bytes.Equal(after.Sealed, before.Sealed) {
			t.Fatal("the refused action changed the connection")
		}

		// Re-authentication: the owner puts it again.
		c, err = w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionConnected)
		if c, _ = w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv"); c.Statuses[0].Status != keyhold.ConnectionConnected {
			t.Fatalf("after re-authentication: %+v", c.Statuses)
		}
		if end, a := w.runCreateRow(t, "again"); end.Status != keyhold.RunSucceeded {
			t.Fatalf("run after re-authentication %s: %+v", end.Status, a.Error)
		}

		// A removed user: the grant ends with them.
		if err := w.store.Update(bg, func(tx keyhold.Tx) error { return tx.DeletePrincipal(bg, ada.ID) }); err != nil {
			t.Fatal(err)
		}
		c, err = w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionError)
		if end, a := w.runCreateRow(t, "gone"); end.Status != keyhold.RunFailed || a.Error == nil || a.Error.Code != keyhold.CodeConnectionUnauthenticated {
			t.Fatalf("run as a removed user %s: %+v", end.Status, a.Error)
		}
		if n := w.orderRows(t); n != 1 {
			t.Fatalf("%d orders rows, want 1", n)
		}
	})
}

// TestOAuthConnectionOwnerOnly: another member can't put over a user's
// OAuth connection (to make it act as themselves, or as anyone): refused,
// and the connection, its grant and its owner are unchanged.
func TestOAuthConnectionOwnerOnly(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		ada, actx := w.user(t, "ada@contoso.example")
		_, bctx := w.user(t, "bob@contoso.example")
		if _, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		before := w.connRecord(t, dvAPI, "dv")
		token := w.connToken(t, before)
		for _, in := range []*keyhold.ConnectionInput{
			{Kind: keyhold.ConnectionOAuth},
			{Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": "bobs-key"}},
		} {
			_, err := w.fl.PutConnection(bctx, w.env.ID, dvAPI, "dv", in)
			if keyhold.ErrorCode(err) != keyhold.CodeForbidden || !strings.Contains(err.Error(), ada.ID) || !strings.Contains(err.Error(), "only that principal") {
				t.Fatalf("Bob puts %s over Ada's connection: %v, want Forbidden naming Ada", in.Kind, err)
			}
			after := w.connRecord(t, dvAPI, "dv")
			if after.Version != before.Version || after.PrincipalID != ada.ID || !bytes.Equal(after.Sealed, before.Sealed) || w.connToken(t, after) != token {
				t.Fatalf("a refused put changed the connection: %+v", after)
			}
		}
		c, err := w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionConnected)
		// Ada herself may.
		if _, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatalf("the owner re-authenticates: %v", err)
		}
		// Her earlier grant is revoked by it.
		if err := w.store.View(context.Background(), func(tx keyhold.Tx) error {
			rt, err := tx.RefreshToken(context.Background(), crypt.SignInHash(token))
			if err == nil && !rt.Revoked {
				t.Error("re-authentication left the earlier grant valid")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOAuthConnectionWithoutGrant: a connection sealed before connections
// held a grant (principal only) acts as nobody: it shows as needing
// re-authentication and its action fails so, until its owner puts it
// again.
func TestOAuthConnectionWithoutGrant(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		ada, actx := w.user(t, "ada@contoso.example")
		pt, _ := json.Marshal(map[string]string{"tenantId": ada.TenantID, "principalId": ada.ID})
		ctx := context.Background()
		sealed, epoch, err := w.p.Sealer.Seal(ctx, w.env.ID, keyhold.StoreConnections, keyhold.ConnectionItemID(dvAPI, "dv"), 1, pt)
		if err != nil {
			t.Fatal(err)
		}
		old := &keyhold.ConnectionRecord{EnvID: w.env.ID, API: dvAPI, Name: "dv", DisplayName: "dv", Kind: keyhold.ConnectionOAuth, PrincipalID: ada.ID,
			CreatedBy: ada.ID, Epoch: epoch, Version: 1, Sealed: sealed, CreatedAt: w.clock.Now()}
		if err := w.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutConnection(ctx, old) }); err != nil {
			t.Fatal(err)
		}
		w.putFlow(t, w.fl, "orders", createRowDef, dvOnlyRefs)
		c, err := w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionError)
		if e := c.Statuses[0].Error; e.Code != keyhold.CodeConnectionUnauthenticated || !strings.Contains(e.Message, "made before") {
			t.Fatalf("status error %+v", e)
		}
		end, a := w.runCreateRow(t, "old")
		if end.Status != keyhold.RunFailed || a.Error == nil || a.Error.Code != keyhold.CodeConnectionUnauthenticated || !strings.Contains(a.Error.Message, "re-authenticate") {
			t.Fatalf("run through an old connection %s: %+v", end.Status, a.Error)
		}
		if n := w.orderRows(t); n != 0 {
			t.Fatalf("%d orders rows", n)
		}
		if c, err = w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionConnected)
		if end, a := w.runCreateRow(t, "new"); end.Status != keyhold.RunSucceeded {
			t.Fatalf("run after re-authentication %s: %+v", end.Status, a.Error)
		}
	})
}

// TestOAuthConnectionTokenNotInPlaintext: the connection's refresh token
// (the first and its rotated successor) is in no answer and, on SQLite,
// in no file of the database, on PostgreSQL in no row of any table; the
// token endpoint refuses the connection's client, so a copy of the token
// would not sign in there either.
func TestOAuthConnectionTokenNotInPlaintext(t *testing.T) {
	check := func(t *testing.T, w *world, scan func(t *testing.T, secrets []string)) {
		_, actx := w.user(t, "ada@contoso.example")
		c, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth})
		if err != nil {
			t.Fatal(err)
		}
		first := w.connToken(t, w.connRecord(t, dvAPI, "dv"))
		w.putFlow(t, w.fl, "orders", createRowDef, dvOnlyRefs)
		if end, a := w.runCreateRow(t, "x"); end.Status != keyhold.RunSucceeded {
			t.Fatalf("run %s: %+v", end.Status, a.Error)
		}
		next := w.connToken(t, w.connRecord(t, dvAPI, "dv"))
		got, _ := w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		answers, _ := json.Marshal([]any{c, got})
		for _, s := range []string{first, next} {
			if s == "" || bytes.Contains(answers, []byte(s)) {
				t.Fatalf("token %q in an answer: %s", s, answers)
			}
		}
		if _, err := w.p.Refresh(context.Background(), mustTenant(t, w), keyhold.ConnectionClientID, next, ""); keyhold.ErrorCode(err) != keyhold.CodeInvalidClient {
			t.Fatalf("the token endpoint redeems a connection's token: %v", err)
		}
		scan(t, []string{first, next})
	}
	t.Run("sqlite", func(t *testing.T) {
		store, path := storetest.OpenSQLiteAt(t)
		w := newWorld(t, store)
		check(t, w, func(t *testing.T, secrets []string) {
			files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
			if len(files) == 0 {
				t.Fatal("no database files")
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range secrets {
					if bytes.Contains(b, []byte(s)) {
						t.Errorf("%s holds a connection's refresh token in plaintext", filepath.Base(f))
					}
				}
			}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		store := storetest.OpenPostgres(t)
		w := newWorld(t, store)
		check(t, w, func(t *testing.T, secrets []string) {
			db := store.(interface{ DB() *sql.DB }).DB()
			dump := dumpTables(t, db)
			if !strings.Contains(dump, "refresh_tokens") {
				t.Fatal("the dump has no refresh_tokens: it proves nothing")
			}
			for _, s := range secrets {
				// bytea columns dump as hex: look for that too.
				if strings.Contains(dump, s) || strings.Contains(dump, hex.EncodeToString([]byte(s))) {
					t.Error("a table holds a connection's refresh token in plaintext")
				}
			}
		})
	})
}

func mustTenant(t *testing.T, w *world) string {
	id, err := keyhold.Caller(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return id.TenantID
}

// dumpTables returns every row of every table of the public schema as
// text (bytea in hex), each table's name first.
func dumpTables(t *testing.T, db *sql.DB) string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		b.WriteString(tbl + "\n")
		r, err := db.QueryContext(ctx, `SELECT t::text FROM "`+tbl+`" t`)
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s + "\n")
		}
		r.Close()
	}
	return b.String()
}

// TestOAuthConnectionConcurrentActions: runs acting through one
// connection at once each redeem the token the connection holds at that
// moment (the connection's compare-and-set serializes them), so none
// looks like a stolen copy: all succeed, and the grant stays valid.
func TestOAuthConnectionConcurrentActions(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		_, actx := w.user(t, "ada@contoso.example")
		if _, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		w.putFlow(t, w.fl, "orders", createRowDef, dvOnlyRefs)
		// A second engine on the same store, so that two processes race.
		other := w.engine(t, "engine-2", nil)
		const n = 8
		var runs []string
		for i := range n {
			fl := w.fl
			if i%2 == 1 {
				fl = other
			}
			run, err := fl.RunTrigger(w.ctx, w.env.ID, "orders", "manual", json.RawMessage(`{"name":"r`+string(rune('a'+i))+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, run.ID)
		}
		for _, id := range runs {
			if end := w.wait(t, w.fl, "orders", id); end.Status != keyhold.RunSucceeded {
				acts, _ := w.fl.RunActions(w.ctx, w.env.ID, "orders", id)
				t.Fatalf("run %s %s: %+v", id, end.Status, action(acts, "Add_a_new_row").Error)
			}
		}
		c, err := w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionConnected)
		if rec := w.connRecord(t, dvAPI, "dv"); rec.Version != 1+n {
			t.Fatalf("connection version %d after %d actions, want %d", rec.Version, n, 1+n)
		}
	})
}

// TestOAuthConnectionCopyRefused: a connection holding another
// connection's token (as a copy of an environment, or a restore into
// another, carries it) neither acts through it nor, by using it, revokes
// the original's grant: it shows as needing re-authentication, and the
// original still works.
func TestOAuthConnectionCopyRefused(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		ada, actx := w.user(t, "ada@contoso.example")
		if _, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		orig := w.connRecord(t, dvAPI, "dv")
		pt, err := w.p.Sealer.Open(ctx, w.env.ID, keyhold.StoreConnections, keyhold.ConnectionItemID(dvAPI, "dv"), orig.Version, orig.Epoch, orig.Sealed)
		if err != nil {
			t.Fatal(err)
		}
		sealed, epoch, err := w.p.Sealer.Seal(ctx, w.env.ID, keyhold.StoreConnections, keyhold.ConnectionItemID(dvAPI, "copy"), 1, pt)
		if err != nil {
			t.Fatal(err)
		}
		cp := &keyhold.ConnectionRecord{EnvID: w.env.ID, API: dvAPI, Name: "copy", DisplayName: "copy", Kind: keyhold.ConnectionOAuth, PrincipalID: ada.ID,
			CreatedBy: ada.ID, Epoch: epoch, Version: 1, Sealed: sealed, CreatedAt: w.clock.Now()}
		if err := w.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutConnection(ctx, cp) }); err != nil {
			t.Fatal(err)
		}
		c, err := w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "copy")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionError)
		w.putFlow(t, w.fl, "orders", createRowDef, `{"shared_commondataserviceforapps":{"apiName":"shared_commondataserviceforapps","connectionName":"copy"}}`)
		end, a := w.runCreateRow(t, "through the copy")
		if end.Status != keyhold.RunFailed || a.Error == nil || a.Error.Code != keyhold.CodeConnectionUnauthenticated || !strings.Contains(a.Error.Message, "another connection") {
			t.Fatalf("run through the copy %s: %+v", end.Status, a.Error)
		}
		// The original is untouched and still acts.
		c, err = w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionConnected)
		w.putFlow(t, w.fl, "orders", createRowDef, dvOnlyRefs)
		if end, a := w.runCreateRow(t, "through the original"); end.Status != keyhold.RunSucceeded {
			t.Fatalf("run through the original %s: %+v", end.Status, a.Error)
		}
	})
}

// TestOAuthConnectionStatusLocked: while the environment is locked its
// OAuth connections can't act, and say so (Error, EnvironmentLocked);
// the listing still answers, and a non-OAuth one shows Connected.
func TestOAuthConnectionStatusLocked(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		_, actx := w.user(t, "ada@contoso.example")
		if _, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.fl.PutConnection(actx, w.env.ID, "shared_http", "api", &keyhold.ConnectionInput{Kind: keyhold.ConnectionNonOAuth, Parameters: map[string]string{"apiKey": "k"}}); err != nil {
			t.Fatal(err)
		}
		w.setState(t, keyhold.StateLocked)
		list, err := w.fl.ListConnections(w.ctx, w.env.ID)
		if err != nil || len(list) != 2 {
			t.Fatalf("ListConnections while locked: %+v, %v", list, err)
		}
		for _, c := range list {
			switch c.Kind {
			case keyhold.ConnectionOAuth:
				wantStatus(t, c, keyhold.ConnectionError)
				if c.Statuses[0].Error.Code != keyhold.CodeEnvironmentLocked {
					t.Fatalf("OAuth connection while locked: %+v", c.Statuses[0].Error)
				}
			default:
				wantStatus(t, c, keyhold.ConnectionConnected)
			}
		}
		w.setState(t, keyhold.StateEnabled)
		c, err := w.fl.GetConnection(w.ctx, w.env.ID, dvAPI, "dv")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c, keyhold.ConnectionConnected)
	})
}

// TestOAuthConnectionReplayRevokes: a connection put back with a token it
// already used (a backup restored after the connection acted) is a
// replayed token, as at the token endpoint: the action fails, and the
// revocation of the grant's whole family commits (with its audit entry)
// though the action's own write does not.
func TestOAuthConnectionReplayRevokes(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		_, actx := w.user(t, "ada@contoso.example")
		if _, err := w.fl.PutConnection(actx, w.env.ID, dvAPI, "dv", &keyhold.ConnectionInput{Kind: keyhold.ConnectionOAuth}); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		old := w.connRecord(t, dvAPI, "dv")
		pt, err := w.p.Sealer.Open(ctx, w.env.ID, keyhold.StoreConnections, keyhold.ConnectionItemID(dvAPI, "dv"), old.Version, old.Epoch, old.Sealed)
		if err != nil {
			t.Fatal(err)
		}
		w.putFlow(t, w.fl, "orders", createRowDef, dvOnlyRefs)
		if end, a := w.runCreateRow(t, "first"); end.Status != keyhold.RunSucceeded {
			t.Fatalf("run %s: %+v", end.Status, a.Error)
		}
		now := w.connRecord(t, dvAPI, "dv")
		current := w.connToken(t, now)
		// Put the first (used) token back, as a restore would.
		back := *now
		back.Version = now.Version + 1
		if back.Sealed, back.Epoch, err = w.p.Sealer.Seal(ctx, w.env.ID, keyhold.StoreConnections, keyhold.ConnectionItemID(dvAPI, "dv"), back.Version, pt); err != nil {
			t.Fatal(err)
		}
		if err := w.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutConnection(ctx, &back) }); err != nil {
			t.Fatal(err)
		}
		end, a := w.runCreateRow(t, "replayed")
		if end.Status != keyhold.RunFailed || a.Error == nil || a.Error.Code != keyhold.CodeConnectionUnauthenticated || !strings.Contains(a.Error.Message, "already used") {
			t.Fatalf("run with a replayed token %s: %+v", end.Status, a.Error)
		}
		if after := w.connRecord(t, dvAPI, "dv"); after.Version != back.Version {
			t.Fatalf("the refused action wrote the connection (version %d, want %d)", after.Version, back.Version)
		}
		if n := w.orderRows(t); n != 1 {
			t.Fatalf("%d orders rows, want 1", n)
		}
		if err := w.store.View(ctx, func(tx keyhold.Tx) error {
			rt, err := tx.RefreshToken(ctx, crypt.SignInHash(current))
			if err != nil {
				return err
			}
			if !rt.Revoked {
				t.Error("the replay did not revoke the grant's family")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}
