package sqlstore

import (
	"context"
	"database/sql"

	"github.com/keyhold/keyhold"
)

// CreateUserAccount stores a user principal's sign-in name and password
// hash. A UPN already used in the tenant (in any case) or a second account
// for the principal is a CodeConflict; an unknown principal is CodeNotFound.
func (t *tx) CreateUserAccount(ctx context.Context, u *keyhold.UserAccount) error {
	if err := checkTimes(u.UpdatedAt); err != nil {
		return err
	}
	mac := t.sealOrNil(func(rs keyhold.RecordSealer) []byte { return rs.SealUserAccount(u) })
	n, err := t.execN(ctx, `INSERT INTO user_accounts (principal_id, tenant_id, upn_key, upn, password_hash, updated_at, mac) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		u.PrincipalID, u.TenantID, key(u.UserPrincipalName), u.UserPrincipalName, blob(u.PasswordHash), nanos(u.UpdatedAt), mac)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeNotFound, "principal %q not found", u.PrincipalID).WithCause(err)
		}
		return t.fail("create user account", err)
	}
	if n == 0 {
		dup, err := t.exists(ctx, `SELECT 1 FROM user_accounts WHERE principal_id = ?`, u.PrincipalID)
		if err != nil {
			return t.fail("create user account", err)
		}
		if dup {
			return keyhold.Errorf(keyhold.CodeConflict, "principal %q already has a user account", u.PrincipalID)
		}
		return keyhold.Errorf(keyhold.CodeConflict, "user principal name %q is already used in tenant %q", u.UserPrincipalName, u.TenantID)
	}
	return nil
}

const userAccountCols = `principal_id, tenant_id, upn, password_hash, updated_at`

func scanUserAccount(sc scanner) (*keyhold.UserAccount, error) {
	u := &keyhold.UserAccount{}
	err := sc.Scan(&u.PrincipalID, &u.TenantID, &u.UserPrincipalName, &u.PasswordHash, timeCol{&u.UpdatedAt})
	return u, err
}

// sealedUserAccountCols are userAccountCols and the seal.
const sealedUserAccountCols = userAccountCols + `, mac`

// sealedAccount is a user account as read, with its seal.
type sealedAccount struct {
	u   *keyhold.UserAccount
	mac []byte
}

func scanSealedUserAccount(sc scanner) (sealedAccount, error) {
	u := &keyhold.UserAccount{}
	var mac []byte
	err := sc.Scan(&u.PrincipalID, &u.TenantID, &u.UserPrincipalName, &u.PasswordHash, timeCol{&u.UpdatedAt}, &mac)
	return sealedAccount{u, mac}, err
}

// checkAccount reports whether a's seal holds (or no sealer is
// installed), recording it as refused otherwise (see access.go).
func (t *tx) checkAccount(a sealedAccount) bool {
	rs := t.sealer()
	return rs == nil || t.keep(a.u.TenantID, "user account "+a.u.UserPrincipalName, rs.CheckUserAccount(a.u, a.mac))
}

// UserAccount returns a principal's user account, or CodeNotFound (also
// for an account whose seal fails).
func (t *tx) UserAccount(ctx context.Context, principalID string) (*keyhold.UserAccount, error) {
	a, err := get(t, ctx, "get user account", scanSealedUserAccount,
		`SELECT `+sealedUserAccountCols+` FROM user_accounts WHERE principal_id = ?`, principalID)
	if err == nil && !t.checkAccount(a) {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "principal %q has no user account", principalID))
	}
	return a.u, nil
}

// UserAccountByUPN returns the account of a tenant with the given user
// principal name (in any case), or CodeNotFound (also for an account whose
// seal fails: it signs no one in).
func (t *tx) UserAccountByUPN(ctx context.Context, tenantID, upn string) (*keyhold.UserAccount, error) {
	a, err := get(t, ctx, "get user account by upn", scanSealedUserAccount,
		`SELECT `+sealedUserAccountCols+` FROM user_accounts WHERE tenant_id = ? AND upn_key = ?`, tenantID, key(upn))
	if err == nil && !t.checkAccount(a) {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "no user %q in tenant %q", upn, tenantID))
	}
	return a.u, nil
}

// ListUserAccounts returns a tenant's user accounts by UPN, leaving out
// those whose seal fails.
func (t *tx) ListUserAccounts(ctx context.Context, tenantID string) ([]*keyhold.UserAccount, error) {
	as, err := list(t, ctx, "list user accounts", scanSealedUserAccount,
		`SELECT `+sealedUserAccountCols+` FROM user_accounts WHERE tenant_id = ? ORDER BY upn_key`, tenantID)
	if err != nil {
		return nil, err
	}
	out := make([]*keyhold.UserAccount, 0, len(as))
	for _, a := range as {
		if t.checkAccount(a) {
			out = append(out, a.u)
		}
	}
	return out, nil
}

// DeletePrincipal deletes a principal and what hangs off it, or returns
// CodeNotFound.
func (t *tx) DeletePrincipal(ctx context.Context, id string) error {
	t.rolesChanged = true // read by the data plane's role cache (RoleGenerations)
	// The foreign keys cascade; deleting explicitly as well keeps the
	// guarantee even on a database opened without foreign-key enforcement.
	for _, table := range []string{"credentials", "federated_credentials", "directory_roles", "user_accounts", "environment_members", "refresh_tokens", "redirect_uris"} {
		if _, err := t.exec(ctx, `DELETE FROM `+table+` WHERE principal_id = ?`, id); err != nil {
			return t.fail("delete principal", err)
		}
	}
	n, err := t.execN(ctx, `DELETE FROM principals WHERE id = ?`, id)
	if err != nil {
		return t.fail("delete principal", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "principal %q not found", id)
	}
	return nil
}

// AddEnvironmentMember makes a principal a member of an environment.
func (t *tx) AddEnvironmentMember(ctx context.Context, m *keyhold.EnvironmentMember) error {
	if err := checkTimes(m.AddedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO environment_members (env_id, principal_id, added_by, added_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		m.EnvID, m.PrincipalID, m.AddedBy, nanos(m.AddedAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeNotFound, "environment %q or principal %q not found", m.EnvID, m.PrincipalID).WithCause(err)
		}
		return t.fail("add environment member", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "principal %q is already a member of environment %q", m.PrincipalID, m.EnvID)
	}
	return nil
}

// RemoveEnvironmentMember ends a membership, or returns CodeNotFound.
func (t *tx) RemoveEnvironmentMember(ctx context.Context, envID, principalID string) error {
	n, err := t.execN(ctx, `DELETE FROM environment_members WHERE env_id = ? AND principal_id = ?`, envID, principalID)
	if err != nil {
		return t.fail("remove environment member", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "principal %q is not a member of environment %q", principalID, envID)
	}
	return nil
}

// EnvironmentMembers lists an environment's members, oldest first; none
// for an unknown environment.
func (t *tx) EnvironmentMembers(ctx context.Context, envID string) ([]*keyhold.EnvironmentMember, error) {
	return list(t, ctx, "list environment members", func(sc scanner) (*keyhold.EnvironmentMember, error) {
		m := &keyhold.EnvironmentMember{}
		err := sc.Scan(&m.EnvID, &m.PrincipalID, &m.AddedBy, timeCol{&m.AddedAt})
		return m, err
	}, `SELECT env_id, principal_id, added_by, added_at FROM environment_members WHERE env_id = ? ORDER BY added_at, principal_id`, envID)
}

// IsEnvironmentMember reports whether a principal is a member of an
// environment.
func (t *tx) IsEnvironmentMember(ctx context.Context, envID, principalID string) (bool, error) {
	ok, err := t.exists(ctx, `SELECT 1 FROM environment_members WHERE env_id = ? AND principal_id = ?`, envID, principalID)
	if err != nil {
		return false, t.fail("check environment member", err)
	}
	return ok, nil
}
