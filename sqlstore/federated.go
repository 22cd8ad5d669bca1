package sqlstore

import (
	"context"
	"encoding/json"

	"github.com/keyhold/keyhold"
)

// Federated identity credentials (keyhold.FederatedTx). Each row is sealed
// like a client secret (access.go): with a sealer, a row whose seal fails
// is left out of every read, so a credential inserted in the database
// trusts no issuer.

var _ keyhold.FederatedTx = (*tx)(nil)

// AddFederatedCredential stores c, sealed under its principal's tenant.
func (t *tx) AddFederatedCredential(ctx context.Context, c *keyhold.FederatedCredential) error {
	if err := checkTimes(c.CreatedAt); err != nil {
		return err
	}
	auds, err := json.Marshal(c.Audiences)
	if err != nil {
		return t.fail("add federated credential", err)
	}
	var mac any
	if rs := t.sealer(); rs != nil {
		tenant, err := t.principalTenant(ctx, c.PrincipalID)
		if err != nil {
			return t.fail("add federated credential", err)
		}
		mac = rs.SealFederatedCredential(tenant, c)
	}
	_, err = t.exec(ctx, `INSERT INTO federated_credentials (id, principal_id, name, issuer, subject, audiences, description, created_at, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.PrincipalID, c.Name, c.Issuer, c.Subject, string(auds), c.Description, nanos(c.CreatedAt), mac)
	switch {
	case err == nil:
		return nil
	case t.class(err) == ErrForeignKey:
		return keyhold.Errorf(keyhold.CodeNotFound, "principal %q not found", c.PrincipalID).WithCause(err)
	case t.class(err) == ErrUnique:
		return keyhold.Errorf(keyhold.CodeConflict, "principal %q already has a federated credential named %q, or one for issuer %q and subject %q",
			c.PrincipalID, c.Name, c.Issuer, c.Subject).WithCause(err)
	}
	return t.fail("add federated credential", err)
}

type sealedFederated struct {
	c      *keyhold.FederatedCredential
	tenant string
	mac    []byte
}

// FederatedCredentials returns a principal's credentials whose seals hold,
// oldest first.
func (t *tx) FederatedCredentials(ctx context.Context, principalID string) ([]*keyhold.FederatedCredential, error) {
	rs, err := list(t, ctx, "list federated credentials", func(sc scanner) (sealedFederated, error) {
		c := &keyhold.FederatedCredential{}
		r := sealedFederated{c: c}
		var auds string
		if err := sc.Scan(&c.ID, &c.PrincipalID, &r.tenant, &c.Name, &c.Issuer, &c.Subject, &auds, &c.Description, timeCol{&c.CreatedAt}, &r.mac); err != nil {
			return r, err
		}
		return r, json.Unmarshal([]byte(auds), &c.Audiences)
	}, `SELECT f.id, f.principal_id, COALESCE(p.tenant_id, ''), f.name, f.issuer, f.subject, f.audiences, f.description, f.created_at, f.mac
		FROM federated_credentials f LEFT JOIN principals p ON p.id = f.principal_id
		WHERE f.principal_id = ? ORDER BY f.created_at, f.id`, principalID)
	if err != nil {
		return nil, err
	}
	sealer := t.sealer()
	out := make([]*keyhold.FederatedCredential, 0, len(rs))
	for _, r := range rs {
		if sealer == nil || t.keep(r.tenant, "principal "+r.c.PrincipalID+" federated credential "+r.c.Name,
			sealer.CheckFederatedCredential(r.tenant, r.c, r.mac)) {
			out = append(out, r.c)
		}
	}
	return out, nil
}

// DeleteFederatedCredential removes one of a principal's credentials.
func (t *tx) DeleteFederatedCredential(ctx context.Context, principalID, id string) error {
	n, err := t.execN(ctx, `DELETE FROM federated_credentials WHERE principal_id = ? AND id = ?`, principalID, id)
	if err != nil {
		return t.fail("delete federated credential", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeNotFound, "principal %q has no federated credential %q", principalID, id)
	}
	return nil
}
