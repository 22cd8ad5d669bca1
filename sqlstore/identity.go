package sqlstore

import (
	"context"
	"database/sql"

	"github.com/keyhold/keyhold"
)

// CreateTenant stores a new tenant. An existing id, or a second system
// tenant (the schema allows exactly one), is a CodeConflict.
func (t *tx) CreateTenant(ctx context.Context, tn *keyhold.Tenant) error {
	if err := checkTimes(tn.CreatedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO tenants (id, display_name, is_system, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		tn.ID, tn.DisplayName, tn.System, nanos(tn.CreatedAt))
	if err != nil {
		return t.fail("create tenant", err)
	}
	if n == 0 {
		dup, err := t.exists(ctx, `SELECT 1 FROM tenants WHERE id = ?`, tn.ID)
		if err != nil {
			return t.fail("create tenant", err)
		}
		if dup || !tn.System {
			return keyhold.Errorf(keyhold.CodeConflict, "tenant %q already exists", tn.ID)
		}
		return keyhold.Errorf(keyhold.CodeConflict, "tenant %q can't be the system tenant: another tenant already is", tn.ID)
	}
	return nil
}

const tenantCols = `id, display_name, is_system, created_at`

func scanTenant(sc scanner) (*keyhold.Tenant, error) {
	tn := &keyhold.Tenant{}
	err := sc.Scan(&tn.ID, &tn.DisplayName, boolCol{&tn.System}, timeCol{&tn.CreatedAt})
	return tn, err
}

// Tenant returns a tenant, or CodeNotFound.
func (t *tx) Tenant(ctx context.Context, id string) (*keyhold.Tenant, error) {
	tn, err := get(t, ctx, "get tenant", scanTenant, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id)
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "tenant %q not found", id))
	}
	return tn, nil
}

// ListTenants returns every tenant in id order.
func (t *tx) ListTenants(ctx context.Context) ([]*keyhold.Tenant, error) {
	return list(t, ctx, "list tenants", scanTenant, `SELECT `+tenantCols+` FROM tenants ORDER BY id`)
}

// CreateSubscription stores a new subscription of an existing tenant.
func (t *tx) CreateSubscription(ctx context.Context, s *keyhold.Subscription) error {
	if err := checkTimes(s.CreatedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO subscriptions (id, tenant_id, display_name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		s.ID, s.TenantID, s.DisplayName, nanos(s.CreatedAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeNotFound, "tenant %q not found", s.TenantID).WithCause(err)
		}
		return t.fail("create subscription", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "subscription %q already exists", s.ID)
	}
	return nil
}

const subscriptionCols = `id, tenant_id, display_name, created_at`

func scanSubscription(sc scanner) (*keyhold.Subscription, error) {
	s := &keyhold.Subscription{}
	err := sc.Scan(&s.ID, &s.TenantID, &s.DisplayName, timeCol{&s.CreatedAt})
	return s, err
}

// Subscription returns a subscription, or CodeNotFound.
func (t *tx) Subscription(ctx context.Context, id string) (*keyhold.Subscription, error) {
	sub, err := get(t, ctx, "get subscription", scanSubscription, `SELECT `+subscriptionCols+` FROM subscriptions WHERE id = ?`, id)
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "subscription %q not found", id))
	}
	return sub, nil
}

// ListSubscriptions returns a tenant's subscriptions (every tenant's if
// tenantID is "") in id order.
func (t *tx) ListSubscriptions(ctx context.Context, tenantID string) ([]*keyhold.Subscription, error) {
	if tenantID == "" {
		return list(t, ctx, "list subscriptions", scanSubscription, `SELECT `+subscriptionCols+` FROM subscriptions ORDER BY id`)
	}
	return list(t, ctx, "list subscriptions", scanSubscription,
		`SELECT `+subscriptionCols+` FROM subscriptions WHERE tenant_id = ? ORDER BY id`, tenantID)
}

// CreatePrincipal stores a new principal of an existing tenant. An existing
// object id, or an app id already used in the tenant, is a CodeConflict.
func (t *tx) CreatePrincipal(ctx context.Context, p *keyhold.Principal) error {
	if err := checkTimes(p.CreatedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO principals (id, tenant_id, type, display_name, app_id, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		p.ID, p.TenantID, string(p.Type), p.DisplayName, nullString(p.AppID), nanos(p.CreatedAt))
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeNotFound, "tenant %q not found", p.TenantID).WithCause(err)
		}
		return t.fail("create principal", err)
	}
	if n == 0 {
		dup, err := t.exists(ctx, `SELECT 1 FROM principals WHERE id = ?`, p.ID)
		if err != nil {
			return t.fail("create principal", err)
		}
		if dup {
			return keyhold.Errorf(keyhold.CodeConflict, "principal %q already exists", p.ID)
		}
		return keyhold.Errorf(keyhold.CodeConflict, "app id %q is already used by another principal of tenant %q", p.AppID, p.TenantID)
	}
	return nil
}

const principalCols = `id, tenant_id, type, display_name, app_id, created_at`

func scanPrincipal(sc scanner) (*keyhold.Principal, error) {
	p := &keyhold.Principal{}
	var typ string
	err := sc.Scan(&p.ID, &p.TenantID, &typ, &p.DisplayName, nullStrCol{&p.AppID}, timeCol{&p.CreatedAt})
	p.Type = keyhold.PrincipalType(typ)
	return p, err
}

// Principal returns a principal by object id, or CodeNotFound.
func (t *tx) Principal(ctx context.Context, id string) (*keyhold.Principal, error) {
	p, err := get(t, ctx, "get principal", scanPrincipal, `SELECT `+principalCols+` FROM principals WHERE id = ?`, id)
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "principal %q not found", id))
	}
	return p, nil
}

// PrincipalByAppID returns the principal of a tenant with the given app
// (client) id, or CodeNotFound.
func (t *tx) PrincipalByAppID(ctx context.Context, tenantID, appID string) (*keyhold.Principal, error) {
	var p *keyhold.Principal
	err := sql.ErrNoRows
	if appID != "" {
		p, err = get(t, ctx, "get principal by app id", scanPrincipal,
			`SELECT `+principalCols+` FROM principals WHERE tenant_id = ? AND app_id = ?`, tenantID, appID)
	}
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "no principal with app id %q in tenant %q", appID, tenantID))
	}
	return p, nil
}

// ListPrincipals returns a tenant's principals (every tenant's if tenantID
// is "") in id order.
func (t *tx) ListPrincipals(ctx context.Context, tenantID string) ([]*keyhold.Principal, error) {
	if tenantID == "" {
		return list(t, ctx, "list principals", scanPrincipal, `SELECT `+principalCols+` FROM principals ORDER BY id`)
	}
	return list(t, ctx, "list principals", scanPrincipal,
		`SELECT `+principalCols+` FROM principals WHERE tenant_id = ? ORDER BY id`, tenantID)
}

// AddCredential stores a client-secret hash of an existing principal. The
// same hash twice is a CodeConflict.
func (t *tx) AddCredential(ctx context.Context, c *keyhold.Credential) error {
	if err := checkTimes(c.CreatedAt, c.ExpiresAt); err != nil {
		return err
	}
	var mac any
	if rs := t.sealer(); rs != nil {
		tenant, err := t.principalTenant(ctx, c.PrincipalID)
		if err != nil {
			return t.fail("add credential", err)
		}
		mac = rs.SealCredential(tenant, c)
	}
	var cert any
	if len(c.Certificate) > 0 {
		cert = blob(c.Certificate)
	}
	n, err := t.execN(ctx, `INSERT INTO credentials (principal_id, secret_hash, created_at, expires_at, mac, certificate) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.PrincipalID, blob(c.SecretHash), nanos(c.CreatedAt), nanos(c.ExpiresAt), mac, cert)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeNotFound, "principal %q not found", c.PrincipalID).WithCause(err)
		}
		return t.fail("add credential", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "principal %q already has this credential", c.PrincipalID)
	}
	return nil
}

// sealedCredential is a credential as read, with its principal's tenant
// and its seal.
type sealedCredential struct {
	c      *keyhold.Credential
	tenant string
	mac    []byte
}

func scanCredential(sc scanner) (sealedCredential, error) {
	c := &keyhold.Credential{}
	var r sealedCredential
	err := sc.Scan(&c.PrincipalID, &r.tenant, &c.SecretHash, timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt}, &r.mac, &c.Certificate)
	r.c = c
	return r, err
}

// Credentials returns a principal's credentials, oldest first; none for an
// unknown principal. With a sealer, a credential whose seal fails is left
// out (see access.go).
func (t *tx) Credentials(ctx context.Context, principalID string) ([]*keyhold.Credential, error) {
	rs, err := list(t, ctx, "list credentials", scanCredential,
		`SELECT c.principal_id, COALESCE(p.tenant_id, ''), c.secret_hash, c.created_at, c.expires_at, c.mac, c.certificate FROM credentials c LEFT JOIN principals p ON p.id = c.principal_id
		WHERE c.principal_id = ? ORDER BY c.created_at, c.secret_hash`, principalID)
	if err != nil {
		return nil, err
	}
	sealer := t.sealer()
	out := make([]*keyhold.Credential, 0, len(rs))
	for _, r := range rs {
		if sealer == nil || t.keep(r.tenant, "principal "+r.c.PrincipalID, sealer.CheckCredential(r.tenant, r.c, r.mac)) {
			out = append(out, r.c)
		}
	}
	return out, nil
}

// RemoveCredentials deletes a principal's credentials, so that none of its
// secrets authenticates any more; it returns how many it deleted.
func (t *tx) RemoveCredentials(ctx context.Context, principalID string) (int, error) {
	n, err := t.execN(ctx, `DELETE FROM credentials WHERE principal_id = ?`, principalID)
	if err != nil {
		return 0, t.fail("remove credentials", err)
	}
	return int(n), nil
}

// AssignDirectoryRole gives a principal a role in a tenant. Assigning a role
// the principal already holds does nothing and succeeds, so that callers can
// ensure a role without reading first. An unknown tenant or principal is
// CodeNotFound.
func (t *tx) AssignDirectoryRole(ctx context.Context, tenantID, principalID string, role keyhold.DirectoryRole) error {
	t.rolesChanged = true // read by the data plane's role cache (RoleGenerations)
	mac := t.sealOrNil(func(rs keyhold.RecordSealer) []byte { return rs.SealDirectoryRole(tenantID, principalID, role) })
	_, err := t.exec(ctx, `INSERT INTO directory_roles (tenant_id, principal_id, role, mac) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		tenantID, principalID, string(role), mac)
	if err != nil {
		if t.class(err) == ErrForeignKey {
			return keyhold.Errorf(keyhold.CodeNotFound, "tenant %q or principal %q not found", tenantID, principalID).WithCause(err)
		}
		return t.fail("assign directory role", err)
	}
	return nil
}

// RemoveDirectoryRole takes a role from a principal; CodeNotFound if it
// doesn't hold it.
func (t *tx) RemoveDirectoryRole(ctx context.Context, tenantID, principalID string, role keyhold.DirectoryRole) error {
	t.rolesChanged = true // read by the data plane's role cache (RoleGenerations)
	n, err := t.execN(ctx, `DELETE FROM directory_roles WHERE tenant_id = ? AND principal_id = ? AND role = ?`,
		tenantID, principalID, string(role))
	if err != nil {
		return t.fail("remove directory role", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "principal %q does not hold the role %q in tenant %q", principalID, role, tenantID)
	}
	return nil
}

// DirectoryRoles returns the roles a principal holds in a tenant, sorted.
// With a sealer, a role whose seal fails is left out (see access.go).
func (t *tx) DirectoryRoles(ctx context.Context, tenantID, principalID string) ([]keyhold.DirectoryRole, error) {
	type held struct {
		role keyhold.DirectoryRole
		mac  []byte
	}
	hs, err := list(t, ctx, "list directory roles", func(sc scanner) (held, error) {
		var r string
		var mac []byte
		err := sc.Scan(&r, &mac)
		return held{keyhold.DirectoryRole(r), mac}, err
	}, `SELECT role, mac FROM directory_roles WHERE tenant_id = ? AND principal_id = ? ORDER BY role`, tenantID, principalID)
	if err != nil {
		return nil, err
	}
	sealer := t.sealer()
	out := make([]keyhold.DirectoryRole, 0, len(hs))
	for _, h := range hs {
		if sealer == nil || t.keep(tenantID, "principal "+principalID+" directory role "+string(h.role),
			sealer.CheckDirectoryRole(tenantID, principalID, h.role, h.mac)) {
			out = append(out, h.role)
		}
	}
	return out, nil
}

// PutSealedKey stores a sealed key. It never replaces one: an existing id is
// a CodeConflict, so that a second replica starting at the same moment
// can't overwrite the platform key the first one created.
func (t *tx) PutSealedKey(ctx context.Context, k *keyhold.SealedKey) error {
	if err := checkTimes(k.CreatedAt); err != nil {
		return err
	}
	n, err := t.execN(ctx, `INSERT INTO sealed_keys (id, sealed, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, blob(k.Sealed), nanos(k.CreatedAt))
	if err != nil {
		return t.fail("put sealed key", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "sealed key %q already exists and is never replaced", k.ID)
	}
	return nil
}

// SealedKey returns a sealed key, or CodeNotFound.
func (t *tx) SealedKey(ctx context.Context, id string) (*keyhold.SealedKey, error) {
	k, err := get(t, ctx, "get sealed key", func(sc scanner) (*keyhold.SealedKey, error) {
		k := &keyhold.SealedKey{}
		err := sc.Scan(&k.ID, &k.Sealed, timeCol{&k.CreatedAt})
		return k, err
	}, `SELECT id, sealed, created_at FROM sealed_keys WHERE id = ?`, id)
	if err != nil {
		return nil, notFound(err, keyhold.Errorf(keyhold.CodeNotFound, "sealed key %q not found", id))
	}
	return k, nil
}
