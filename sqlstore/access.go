package sqlstore

import (
	"context"
	"database/sql"

	"github.com/keyhold/keyhold"
)

// Access records (keyhold.SealingStore): client secrets' hashes, users'
// password hashes, role assignments and directory roles carry a seal in
// their mac column, set by every write here once a sealer is installed,
// and checked by every read: a record whose seal fails (or that has none)
// is treated as absent, so that a secret hash or a grant inserted into the
// database by someone without the master key neither signs anyone in nor
// authorizes anything, and it is reported to the sealer's owner when the
// transaction ends (to be logged and audited). Checking in the store
// rather than in each service means no reader can forget to, and costs
// no query: the seal comes back with the row it covers, and an HMAC per
// row read is all the check adds.
//
// A store without a sealer (the conformance suite, tools that read the
// database alone) writes and reads these records unchecked.

// accessSealer is an installed sealer and its refusal report.
type accessSealer struct {
	s       keyhold.RecordSealer
	refused func(context.Context, []keyhold.RefusedRecord)
}

var _ keyhold.SealingStore = (*Store)(nil)

// SetRecordSealer installs s: from now on the store seals the access
// records it writes and passes over, reporting them to refused, those it
// reads whose seal fails. refused runs after the transaction that read
// them has ended, and may use the store.
func (s *Store) SetRecordSealer(rs keyhold.RecordSealer, refused func(context.Context, []keyhold.RefusedRecord)) {
	if refused == nil {
		refused = func(context.Context, []keyhold.RefusedRecord) {}
	}
	s.access.Store(&accessSealer{s: rs, refused: refused})
}

// sealer returns the installed sealer, or nil.
func (t *tx) sealer() keyhold.RecordSealer {
	if a := t.s.access.Load(); a != nil {
		return a.s
	}
	return nil
}

// keep reports whether a record read passes its check (err nil), and
// records it as refused otherwise.
func (t *tx) keep(tenant, target string, err error) bool {
	if err == nil {
		return true
	}
	t.refused = append(t.refused, keyhold.RefusedRecord{TenantID: tenant, Target: target, Err: err})
	return false
}

// reportRefused hands the records refused in this transaction to the
// sealer's owner.
func (t *tx) reportRefused(ctx context.Context) {
	if len(t.refused) == 0 {
		return
	}
	if a := t.s.access.Load(); a != nil {
		a.refused(context.WithoutCancel(ctx), t.refused)
	}
	t.refused = nil
}

// sealOrNil returns seal(), or nil without a sealer.
func (t *tx) sealOrNil(seal func(keyhold.RecordSealer) []byte) any {
	if rs := t.sealer(); rs != nil {
		return seal(rs)
	}
	return nil
}

// principalTenant returns a principal's tenant ("" if it is unknown).
func (t *tx) principalTenant(ctx context.Context, principalID string) (string, error) {
	var tenant string
	err := t.queryRow(ctx, `SELECT tenant_id FROM principals WHERE id = ?`, principalID).Scan(&tenant)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return tenant, err
}

// SealAccessRecords seals the access records that have no seal, while no
// access record has one: at the first start after the upgrade that sealed
// them. Once one is sealed, an unsealed record can only have been written
// outside Keyhold, and it stays unsealed (and absent to every read); their
// number is returned as left. audit runs in the same transaction for each
// record sealed.
func (s *Store) SealAccessRecords(ctx context.Context, audit func(tx keyhold.Tx, tenantID, target string) error) (sealed, left int, err error) {
	err = s.Update(ctx, func(ktx keyhold.Tx) error {
		sealed, left = 0, 0
		t := ktx.(*tx)
		rs := t.sealer()
		if rs == nil {
			return keyhold.Errorf(keyhold.CodeInternal, "sealing access records: no record sealer is installed")
		}
		var already int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM (
			SELECT 1 AS x FROM credentials WHERE mac IS NOT NULL UNION ALL
			SELECT 1 FROM user_accounts WHERE mac IS NOT NULL UNION ALL
			SELECT 1 FROM role_assignments WHERE mac IS NOT NULL UNION ALL
			SELECT 1 FROM directory_roles WHERE mac IS NOT NULL) AS s`).Scan(&already); err != nil {
			return t.fail("seal access records", err)
		}
		type todo struct {
			tenant, target string
			query          string
			args           []any
		}
		var work []todo
		creds, err := list(t, ctx, "seal access records", func(sc scanner) (todo, error) {
			c := &keyhold.Credential{}
			var tenant string
			err := sc.Scan(&c.PrincipalID, &tenant, &c.SecretHash, timeCol{&c.ExpiresAt}, &c.Certificate)
			return todo{tenant, "principal " + c.PrincipalID + " client secret",
				`UPDATE credentials SET mac = ? WHERE principal_id = ? AND secret_hash = ?`,
				[]any{rs.SealCredential(tenant, c), c.PrincipalID, blob(c.SecretHash)}}, err
		}, `SELECT c.principal_id, COALESCE(p.tenant_id, ''), c.secret_hash, c.expires_at, c.certificate FROM credentials c LEFT JOIN principals p ON p.id = c.principal_id WHERE c.mac IS NULL`)
		if err != nil {
			return err
		}
		work = append(work, creds...)
		accts, err := list(t, ctx, "seal access records", func(sc scanner) (todo, error) {
			u, err := scanUserAccount(sc)
			if err != nil {
				return todo{}, err
			}
			return todo{u.TenantID, "user account " + u.UserPrincipalName,
				`UPDATE user_accounts SET mac = ? WHERE principal_id = ?`, []any{rs.SealUserAccount(u), u.PrincipalID}}, nil
		}, `SELECT `+userAccountCols+` FROM user_accounts WHERE mac IS NULL`)
		if err != nil {
			return err
		}
		work = append(work, accts...)
		ras, err := list(t, ctx, "seal access records", func(sc scanner) (todo, error) {
			a, err := scanRoleAssignment(sc)
			if err != nil {
				return todo{}, err
			}
			return todo{a.TenantID, a.Scope + "/providers/Microsoft.Authorization/roleAssignments/" + a.ID,
				`UPDATE role_assignments SET mac = ? WHERE id_key = ?`, []any{rs.SealRoleAssignment(a), key(a.ID)}}, nil
		}, `SELECT `+roleAssignmentCols+` FROM role_assignments WHERE mac IS NULL`)
		if err != nil {
			return err
		}
		work = append(work, ras...)
		drs, err := list(t, ctx, "seal access records", func(sc scanner) (todo, error) {
			var tenant, principal, role string
			err := sc.Scan(&tenant, &principal, &role)
			return todo{tenant, "principal " + principal + " directory role " + role,
				`UPDATE directory_roles SET mac = ? WHERE tenant_id = ? AND principal_id = ? AND role = ?`,
				[]any{rs.SealDirectoryRole(tenant, principal, keyhold.DirectoryRole(role)), tenant, principal, role}}, err
		}, `SELECT tenant_id, principal_id, role FROM directory_roles WHERE mac IS NULL`)
		if err != nil {
			return err
		}
		work = append(work, drs...)
		if already > 0 {
			left = len(work)
			return nil
		}
		for _, w := range work {
			if _, err := t.exec(ctx, w.query, w.args...); err != nil {
				return t.fail("seal access records", err)
			}
			if audit != nil {
				if err := audit(t, w.tenant, w.target); err != nil {
					return err
				}
			}
			sealed++
		}
		return nil
	})
	return sealed, left, err
}
