package platform

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// newPrincipal creates a principal in the bootstrap tenant, straight in
// the store: a user with the sign-in name and password given, or a
// service principal or managed identity with an app id (and, for a
// service principal, the client secret given).
// addMember makes principalID a member of envID, through the store (as an
// administrator's PUT …/members would).
func (f *fixture) addMember(t *testing.T, envID, principalID string) {
	t.Helper()
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		return tx.AddEnvironmentMember(context.Background(), &keyhold.EnvironmentMember{EnvID: envID, PrincipalID: principalID, AddedBy: "test", AddedAt: f.clock.Now()})
	}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) newPrincipal(t *testing.T, typ keyhold.PrincipalType, upnOrSecret, password string) *keyhold.Principal {
	t.Helper()
	now := f.clock.Now()
	p := &keyhold.Principal{ID: uuid.NewString(), TenantID: f.creds.TenantID, Type: typ, DisplayName: "p-" + string(typ), CreatedAt: now}
	if typ != keyhold.PrincipalUser {
		p.AppID = uuid.NewString()
	}
	var hash []byte
	if typ == keyhold.PrincipalUser {
		var err error
		if hash, err = crypt.HashPassword(password); err != nil {
			t.Fatal(err)
		}
	}
	err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		ctx := context.Background()
		if err := tx.CreatePrincipal(ctx, p); err != nil {
			return err
		}
		switch typ {
		case keyhold.PrincipalUser:
			return tx.CreateUserAccount(ctx, &keyhold.UserAccount{PrincipalID: p.ID, TenantID: p.TenantID, UserPrincipalName: upnOrSecret, PasswordHash: hash, UpdatedAt: now})
		case keyhold.PrincipalServicePrincipal:
			return tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: p.ID, SecretHash: crypt.HashClientSecret(upnOrSecret), CreatedAt: now})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPasswordGrant: users sign in with their user principal name (in any
// case) and password; wrong ones are refused alike; only a slow hash of
// the password is stored.
func TestPasswordGrant(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	const pw = "correct horse battery staple"
	user := f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", pw)
	tenant := f.creds.TenantID
	const scope = "https://management.azure.com/.default"
	bg := context.Background()

	tok, err := f.p.IssuePasswordToken(bg, tenant, "ADA@contoso.example", pw, scope)
	if err != nil {
		t.Fatalf("IssuePasswordToken: %v", err)
	}
	id, err := f.p.Authenticate(bg, tok.AccessToken)
	if err != nil || id.PrincipalID != user.ID || id.Type != keyhold.PrincipalUser || id.AppID != "" || id.Audience != keyhold.AudienceManagement {
		t.Fatalf("Authenticate = %+v, %v", id, err)
	}
	claims := tokenPayload(t, tok.AccessToken)
	if claims["upn"] != "ada@contoso.example" || claims["idtyp"] != "user" || claims["keyhold_ptype"] != "User" {
		t.Fatalf("token claims %v: want Entra's upn and idtyp, and the principal type", claims)
	}

	cases := []struct {
		name                     string
		tenant, username, secret string
		scope                    string
		code                     string
	}{
		{"wrong password", tenant, "ada@contoso.example", pw + "!", scope, keyhold.CodeInvalidGrant},
		{"unknown user", tenant, "bob@contoso.example", pw, scope, keyhold.CodeInvalidGrant},
		{"other tenant", uuid.NewString(), "ada@contoso.example", pw, scope, keyhold.CodeInvalidGrant},
		{"tenant not a GUID", "contoso", "ada@contoso.example", pw, scope, keyhold.CodeInvalidGrant},
		{"unknown scope", tenant, "ada@contoso.example", pw, "https://graph.microsoft.com/.default", keyhold.CodeInvalidScope},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.p.IssuePasswordToken(bg, c.tenant, c.username, c.secret, c.scope)
			wantCode(t, err, c.code)
			if strings.Contains(keyhold.ErrorMessage(err), pw) {
				t.Fatal("the error holds the password")
			}
		})
	}
	// A wrong password and an unknown user read the same.
	_, e1 := f.p.IssuePasswordToken(bg, tenant, "ada@contoso.example", "wrong-password", scope)
	_, e2 := f.p.IssuePasswordToken(bg, tenant, "nobody@contoso.example", "wrong-password", scope)
	if strings.ReplaceAll(keyhold.ErrorMessage(e1), "ada@contoso.example", "X") != strings.ReplaceAll(keyhold.ErrorMessage(e2), "nobody@contoso.example", "X") {
		t.Fatalf("messages differ: %q, %q", keyhold.ErrorMessage(e1), keyhold.ErrorMessage(e2))
	}
	// Service principals can't use the password grant with their secret.
	sp := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "khs_secret-of-the-app", "")
	_, err = f.p.IssuePasswordToken(bg, tenant, sp.AppID, "khs_secret-of-the-app", scope)
	wantCode(t, err, keyhold.CodeInvalidGrant)

	// What the database holds is an argon2id hash, not the password.
	err = f.store.View(bg, func(tx keyhold.Tx) error {
		a, err := tx.UserAccount(bg, user.ID)
		if err != nil {
			return err
		}
		if bytes.Contains(a.PasswordHash, []byte(pw)) || !bytes.HasPrefix(a.PasswordHash, []byte("$argon2id$")) || !crypt.CheckPassword(a.PasswordHash, pw) {
			t.Fatalf("stored password hash %q", a.PasswordHash)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tokenPayload decodes a JWT's claims without verifying them.
func tokenPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := jsonBase64(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPrincipalTypeReachesIdentity: Authenticate reports the type of the
// principal a token was issued to; TokenFor mints only for managed
// identities.
func TestPrincipalTypeReachesIdentity(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	bg := context.Background()
	const scope = "https://vault.azure.net/.default"
	user := f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", "correct horse battery staple")
	mi := f.newPrincipal(t, keyhold.PrincipalManagedIdentity, "", "")
	sp := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "khs_app-secret", "")

	userTok, err := f.p.IssuePasswordToken(bg, f.creds.TenantID, "ada@contoso.example", "correct horse battery staple", scope)
	if err != nil {
		t.Fatal(err)
	}
	spTok, err := f.p.IssueToken(bg, f.creds.TenantID, sp.AppID, "khs_app-secret", scope)
	if err != nil {
		t.Fatal(err)
	}
	miTok, err := f.p.TokenFor(bg, mi.ID, keyhold.AudienceVault)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tok  string
		id   string
		typ  keyhold.PrincipalType
	}{
		{"user", userTok.AccessToken, user.ID, keyhold.PrincipalUser},
		{"service principal", spTok.AccessToken, sp.ID, keyhold.PrincipalServicePrincipal},
		{"managed identity", miTok.AccessToken, mi.ID, keyhold.PrincipalManagedIdentity},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := f.p.Authenticate(bg, c.tok)
			if err != nil || id.PrincipalID != c.id || id.Type != c.typ || id.Audience != keyhold.AudienceVault {
				t.Fatalf("Authenticate = %+v, %v; want %s of type %s", id, err, c.id, c.typ)
			}
		})
	}
	for _, c := range []struct {
		name string
		id   string
		aud  keyhold.Audience
		code string
	}{
		{"a service principal", sp.ID, keyhold.AudienceVault, keyhold.CodeForbidden},
		{"a user", user.ID, keyhold.AudienceVault, keyhold.CodeForbidden},
		{"nobody", uuid.NewString(), keyhold.AudienceVault, keyhold.CodeNotFound},
		{"an unknown audience", mi.ID, "https://graph.microsoft.com", keyhold.CodeInvalidScope},
	} {
		t.Run("TokenFor "+c.name, func(t *testing.T) {
			_, err := f.p.TokenFor(bg, c.id, c.aud)
			wantCode(t, err, c.code)
		})
	}
	// A managed identity's token expires like any other.
	f.clock.Advance(DefaultTokenTTL + time.Second)
	_, err = f.p.Authenticate(bg, miTok.AccessToken)
	wantCode(t, err, keyhold.CodeExpiredToken)
}

// TestDataAccessByMembership: an environment's members use its data; a
// principal that is neither a member nor a platform administrator does
// not, and membership ends with its removal.
func TestDataAccessByMembership(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	e := f.createEnv(t, "members")
	member := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "khs_member-secret", "")
	stranger := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "khs_stranger-secret", "")
	f.addMember(t, e.ID, member.ID)
	memberCtx := f.login(t, f.creds.TenantID, member.AppID, "khs_member-secret")
	strangerCtx := f.login(t, f.creds.TenantID, stranger.AppID, "khs_stranger-secret")
	doc := json.RawMessage(`{"name":"Fabrikam"}`)

	cases := []struct {
		name string
		ctx  context.Context
		code string
	}{
		{"member", memberCtx, ""},
		{"platform administrator", f.ctx, ""},
		{"neither", strangerCtx, keyhold.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.p.PutRow(c.ctx, e.ID, "accounts", "a-"+strings.ReplaceAll(c.name, " ", "-"), doc)
			wantCode(t, err, c.code)
			_, err = f.p.GetRow(c.ctx, e.ID, "accounts", "a-member")
			if c.code == "" {
				wantCode(t, err, "")
			} else {
				wantCode(t, err, c.code)
				if !strings.Contains(keyhold.ErrorMessage(err), "member") {
					t.Fatalf("refusal %q does not say how to become a member", keyhold.ErrorMessage(err))
				}
			}
		})
	}
	// The refused write stored nothing.
	_, err := f.p.GetRow(f.ctx, e.ID, "accounts", "a-neither")
	wantCode(t, err, keyhold.CodeRowNotFound)

	err = f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		return tx.RemoveEnvironmentMember(context.Background(), e.ID, member.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.p.GetRow(memberCtx, e.ID, "accounts", "a-member")
	wantCode(t, err, keyhold.CodeForbidden)
}

// jsonBase64 decodes a JWT segment (base64url without padding).
func jsonBase64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
