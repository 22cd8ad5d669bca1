package platform

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// The custody threat model's "database alone" claims for the records that
// say who a caller is and what it may do: someone who can write the
// database, but holds no master key, inserts a client secret hash, a
// password hash, a role assignment or a directory role with raw SQL, and
// then uses it through the running server. Each is treated as absent,
// logged and audited (integrity.refused); legitimately written ones work.

const zeroNanos = math.MinInt64

// insertCredential writes a client secret's hash for principalID with raw
// SQL, past Keyhold.
func insertCredential(t *testing.T, f *cmkFixture, principalID, secret string) {
	t.Helper()
	storetest.Exec(t, f.store, `INSERT INTO credentials (principal_id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		principalID, crypt.HashClientSecret(secret), f.clock.Now().UnixNano(), int64(zeroNanos))
}

// insertPrincipal writes a principal with raw SQL, past Keyhold.
func insertPrincipal(t *testing.T, f *cmkFixture, typ keyhold.PrincipalType, appID any) string {
	t.Helper()
	id := uuid.NewString()
	storetest.Exec(t, f.store, `INSERT INTO principals (id, tenant_id, type, display_name, app_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, f.creds.TenantID, string(typ), "intruder", appID, f.clock.Now().UnixNano())
	return id
}

// insertAssignment writes a role assignment of role at scope for
// principalID with raw SQL, past Keyhold.
func insertAssignment(t *testing.T, f *cmkFixture, principalID, role, scope string) {
	t.Helper()
	r, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		t.Fatalf("no role %q", role)
	}
	id := uuid.NewString()
	storetest.Exec(t, f.store, `INSERT INTO role_assignments (id_key, id, scope_key, scope, role_definition_id, principal_id, principal_type, tenant_id, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		strings.ToLower(id), id, strings.ToLower(scope), scope, r.ID, principalID, "ServicePrincipal", f.creds.TenantID, f.adminID(), f.clock.Now().UnixNano())
}

// refusedAudits returns the tenant's integrity.refused entries whose
// target contains s.
func refusedAudits(t *testing.T, f *cmkFixture, s string) int {
	t.Helper()
	n := 0
	for _, e := range integrityAudits(t, f) {
		if strings.Contains(e.Target, s) && e.Result == keyhold.CodeRecordIntegrity {
			n++
		}
	}
	return n
}

// TestInsertedClientSecretDoesNotSignIn: a client secret hash inserted
// for the bootstrap administrator, or for a principal inserted with it,
// gets no token: the answer is the wrong secret's, word for word, and the
// record is audited as refused. The administrator's own secret still
// signs in.
func TestInsertedClientSecretDoesNotSignIn(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		bg := context.Background()
		const scope = "https://management.azure.com/.default"
		admin := f.adminID()
		_, wrongErr := f.p.IssueToken(bg, f.creds.TenantID, f.creds.ClientID, "not-the-secret", scope)
		wantCode(t, wrongErr, keyhold.CodeInvalidClient)

		insertCredential(t, f, admin, "attacker-secret")
		appID := uuid.NewString()
		intruder := insertPrincipal(t, f, keyhold.PrincipalServicePrincipal, appID)
		insertCredential(t, f, intruder, "attacker-secret")

		for _, c := range []struct{ name, client string }{{"existing admin", f.creds.ClientID}, {"inserted principal", appID}} {
			tok, err := f.p.IssueToken(bg, f.creds.TenantID, c.client, "attacker-secret", scope)
			if tok != nil || keyhold.ErrorCode(err) != keyhold.CodeInvalidClient {
				t.Fatalf("%s: IssueToken with an inserted secret = %v, %v; want no token and %s", c.name, tok, err, keyhold.CodeInvalidClient)
			}
			if c.client == f.creds.ClientID && keyhold.ErrorMessage(err) != keyhold.ErrorMessage(wrongErr) {
				t.Fatalf("the refusal %q differs from a wrong secret's %q: an oracle", keyhold.ErrorMessage(err), keyhold.ErrorMessage(wrongErr))
			}
		}
		if refusedAudits(t, f, admin) == 0 || refusedAudits(t, f, intruder) == 0 {
			t.Fatalf("no integrity.refused audit entry for the inserted secrets: %v", integrityAudits(t, f))
		}
		// The legitimate secret still signs in, and the inserted rows are
		// left for the operator to find, not sealed.
		if _, err := f.p.IssueToken(bg, f.creds.TenantID, f.creds.ClientID, f.creds.ClientSecret, scope); err != nil {
			t.Fatalf("the bootstrap secret no longer signs in: %v", err)
		}
		if n := storetest.Exec(t, f.store, `UPDATE credentials SET created_at = created_at WHERE mac IS NULL`); n != 2 {
			t.Fatalf("%d unsealed credentials, want the 2 inserted", n)
		}
	})
}

// TestInsertedPasswordDoesNotSignIn: a user account inserted with a
// password hash the attacker knows, or an existing user's hash replaced,
// signs no one in: invalid_grant, as for a wrong password.
func TestInsertedPasswordDoesNotSignIn(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		bg := context.Background()
		const scope = "https://management.azure.com/.default"
		hash, err := crypt.HashPassword("attacker password 1")
		if err != nil {
			t.Fatal(err)
		}
		intruder := insertPrincipal(t, f, keyhold.PrincipalUser, nil)
		storetest.Exec(t, f.store, `INSERT INTO user_accounts (principal_id, tenant_id, upn_key, upn, password_hash, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			intruder, f.creds.TenantID, "mallory@contoso.example", "mallory@contoso.example", hash, f.clock.Now().UnixNano())
		ada := f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", "ada's own long password")
		if _, err := f.p.IssuePasswordToken(bg, f.creds.TenantID, "ada@contoso.example", "ada's own long password", scope); err != nil {
			t.Fatalf("a legitimate user can't sign in: %v", err)
		}
		storetest.Exec(t, f.store, `UPDATE user_accounts SET password_hash = ? WHERE principal_id = ?`, hash, ada.ID)

		for _, upn := range []string{"mallory@contoso.example", "ada@contoso.example"} {
			tok, err := f.p.IssuePasswordToken(bg, f.creds.TenantID, upn, "attacker password 1", scope)
			if tok != nil || keyhold.ErrorCode(err) != keyhold.CodeInvalidGrant {
				t.Fatalf("%s: IssuePasswordToken with an inserted hash = %v, %v; want no token and %s", upn, tok, err, keyhold.CodeInvalidGrant)
			}
		}
		if refusedAudits(t, f, "mallory@contoso.example") == 0 || refusedAudits(t, f, "ada@contoso.example") == 0 {
			t.Fatalf("no integrity.refused audit entry for the inserted accounts: %v", integrityAudits(t, f))
		}
	})
}

// TestInsertedGrantDoesNotUnwrap: a principal the attacker controls (with
// a legitimate secret, and no rights) is granted wrap and unwrap on the
// customer's key by an inserted role assignment, at the key and at the
// subscription: it still can't unwrap the environment's wrapped key (read
// from the database) through the vault. The same grant made through
// Keyhold does let it unwrap.
func TestInsertedGrantDoesNotUnwrap(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := newCustodyWorld(t, f, "kv-grant")
		f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "mallory-secret", "")
		var mallory *keyhold.Principal
		f.store.View(f.ctx, func(tx keyhold.Tx) error {
			ps, err := tx.ListPrincipals(f.ctx, f.creds.TenantID)
			for _, p := range ps {
				if p.DisplayName == "p-"+string(keyhold.PrincipalServicePrincipal) {
					mallory = p
				}
			}
			return err
		})
		mctx := f.login(t, f.creds.TenantID, mallory.AppID, "mallory-secret")
		var cmk *keyhold.WrappedKey
		for _, wk := range w.before {
			if wk.Root == keyhold.RootCMK {
				cmk = wk
			}
		}
		if cmk == nil {
			t.Fatalf("no CMK-wrapped key in %v", describeKeys(w.before))
		}
		keyScope := w.v.ID() + "/keys/k"
		insertAssignment(t, f, mallory.ID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, keyScope)
		insertAssignment(t, f, mallory.ID, keyhold.RoleKeyVaultCryptoUser, "/subscriptions/"+f.sub)

		_, pt, err := f.kv.UnwrapKey(mctx, w.v.Name, "k", w.k1.Version.Version, keyprovider.Algorithm, cmk.Ciphertext)
		if err == nil || pt != nil {
			t.Fatalf("UnwrapKey with an inserted role assignment = %d bytes, %v; want a refusal", len(pt), err)
		}
		wantCode(t, err, keyhold.CodeForbidden)
		if refusedAudits(t, f, "roleAssignments") == 0 {
			t.Fatalf("no integrity.refused audit entry for the inserted assignments: %v", integrityAudits(t, f))
		}
		w.unchanged(t, f)

		f.grant(t, mallory.ID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, keyScope)
		if _, pt, err := f.kv.UnwrapKey(mctx, w.v.Name, "k", w.k1.Version.Version, keyprovider.Algorithm, cmk.Ciphertext); err != nil || len(pt) == 0 {
			t.Fatalf("UnwrapKey with a role assignment made through Keyhold = %d bytes, %v", len(pt), err)
		}
	})
}

// TestInsertedDirectoryRoleDoesNotAdminister: a Power Platform
// Administrator role inserted for a principal without one lets it neither
// create nor list environments.
func TestInsertedDirectoryRoleDoesNotAdminister(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		p := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, "mallory-secret", "")
		mctx := f.login(t, f.creds.TenantID, p.AppID, "mallory-secret")
		storetest.Exec(t, f.store, `INSERT INTO directory_roles (tenant_id, principal_id, role) VALUES (?, ?, ?)`,
			f.creds.TenantID, p.ID, string(keyhold.RolePowerPlatformAdministrator))
		before, err := f.p.ListEnvironments(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.p.ListEnvironments(mctx)
		wantCode(t, err, keyhold.CodeForbidden)
		err = f.p.CreateEnvironment(mctx, &keyhold.Environment{DisplayName: "intruder", Location: "europe", SKU: keyhold.SKUProduction})
		wantCode(t, err, keyhold.CodeForbidden)
		if after, _ := f.p.ListEnvironments(f.ctx); len(after) != len(before) {
			t.Fatalf("%d environments, want %d: a refused create changed something", len(after), len(before))
		}
		if refusedAudits(t, f, p.ID) == 0 {
			t.Fatalf("no integrity.refused audit entry for the inserted role: %v", integrityAudits(t, f))
		}
	})
}

// TestAccessRecordsSealedOnceAtUpgrade: credentials, user accounts, role
// assignments and directory roles written before this version (no seal)
// are sealed, and audited, when the platform next opens, and work again;
// once any is sealed, a record without a seal is left unsealed and
// ignored, however often the platform opens.
func TestAccessRecordsSealedOnceAtUpgrade(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		bg := context.Background()
		const scope = "https://management.azure.com/.default"
		f.newPrincipal(t, keyhold.PrincipalUser, "ada@contoso.example", "ada's own long password")
		v := f.newVault(t, "kv-upgrade", true) // assigns a role through Keyhold
		// The database as the previous version left it: nothing sealed.
		total := int64(0)
		for _, table := range []string{"credentials", "user_accounts", "role_assignments", "directory_roles"} {
			total += storetest.Exec(t, f.store, `UPDATE `+table+` SET mac = NULL`)
		}
		if _, err := f.p.IssueToken(bg, f.creds.TenantID, f.creds.ClientID, f.creds.ClientSecret, scope); keyhold.ErrorCode(err) != keyhold.CodeInvalidClient {
			t.Fatalf("an unsealed secret signed in before the upgrade's sealing: %v", err)
		}
		openAgain := func() {
			t.Helper()
			p, kv, err := openCMK(bg, f.store, f.master, nil, f.clock)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			p.Close()
			kv.Close()
		}
		openAgain()
		sealed := 0
		f.store.View(bg, func(tx keyhold.Tx) error {
			es, err := tx.ListAudit(bg, keyhold.AuditFilter{TenantID: f.creds.TenantID, Limit: 1000})
			for _, e := range es {
				if e.Action == "integrity.seal" && e.ActorID == systemActorID {
					sealed++
				}
			}
			return err
		})
		if int64(sealed) != total {
			t.Fatalf("%d integrity.seal audit entries, want one per record (%d)", sealed, total)
		}
		if _, err := f.p.IssueToken(bg, f.creds.TenantID, f.creds.ClientID, f.creds.ClientSecret, scope); err != nil {
			t.Fatalf("the bootstrap secret doesn't sign in after sealing: %v", err)
		}
		if _, err := f.p.IssuePasswordToken(bg, f.creds.TenantID, "ada@contoso.example", "ada's own long password", scope); err != nil {
			t.Fatalf("the user doesn't sign in after sealing: %v", err)
		}
		if _, err := f.kv.GetVault(f.ctx, v.SubscriptionID, v.ResourceGroup, v.Name); err != nil {
			t.Fatalf("the admin's role assignments don't authorize after sealing: %v", err)
		}

		// Sealed once: a record inserted now stays unsealed, and ignored.
		insertCredential(t, f, f.adminID(), "attacker-secret")
		openAgain()
		if n := storetest.Exec(t, f.store, `UPDATE credentials SET created_at = created_at WHERE mac IS NULL`); n != 1 {
			t.Fatalf("%d unsealed credentials after a second open, want the 1 inserted", n)
		}
		if _, err := f.p.IssueToken(bg, f.creds.TenantID, f.creds.ClientID, "attacker-secret", scope); keyhold.ErrorCode(err) != keyhold.CodeInvalidClient {
			t.Fatalf("a secret inserted after the sealing signs in: %v", err)
		}
	})
}
