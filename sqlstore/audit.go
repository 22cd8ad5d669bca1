package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold"
)

// Page sizes of ListAudit.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AppendAudit appends an entry and sets e.ID to its id, which grows with
// each entry.
func (t *tx) AppendAudit(ctx context.Context, e *keyhold.AuditEntry) error {
	if err := checkTimes(e.At); err != nil {
		return err
	}
	version, err := u64Arg(e.Version)
	if err != nil {
		return err
	}
	err = t.queryRow(ctx, `INSERT INTO audit_log (occurred_at, tenant_id, actor_id, action, target, env_id, result, detail, epoch, version, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		nanos(e.At), e.TenantID, e.ActorID, e.Action, e.Target, e.EnvID, e.Result, e.Detail, int64(e.Epoch), version, e.Sealed).Scan(&e.ID)
	if err != nil {
		return t.fail("append audit entry", err)
	}
	return nil
}

// ShredAudit drops the seals of an environment's entries under epochs
// other than keep.
func (t *tx) ShredAudit(ctx context.Context, envID string, keep uint32) (int64, error) {
	res, err := t.exec(ctx, `UPDATE audit_log SET target = '', detail = '', epoch = 0, version = 0, sealed = NULL WHERE env_id = ? AND epoch <> 0 AND epoch <> ?`, envID, int64(keep))
	if err != nil {
		return 0, t.fail("shred audit entries", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, t.fail("shred audit entries", err)
	}
	return n, nil
}

// SealAudit replaces an entry's target and detail with its seal, while the
// entry is still under epoch from.
func (t *tx) SealAudit(ctx context.Context, e *keyhold.AuditEntry, from uint32) (bool, error) {
	if e.Epoch == 0 || len(e.Sealed) == 0 {
		return false, fmt.Errorf("sqlstore: seal audit entry %d: no epoch or seal given", e.ID)
	}
	version, err := u64Arg(e.Version)
	if err != nil {
		return false, err
	}
	res, err := t.exec(ctx, `UPDATE audit_log SET target = '', detail = '', epoch = ?, version = ?, sealed = ? WHERE id = ? AND epoch = ?`,
		int64(e.Epoch), version, e.Sealed, e.ID, int64(from))
	if err != nil {
		return false, t.fail("seal audit entry", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, t.fail("seal audit entry", err)
	}
	return n == 1, nil
}

// ListAudit returns the entries that match f, newest (highest id) first:
// those of f.TenantID and f.EnvID where set, with an id below f.BeforeID
// if it is set (with an id above f.AfterID, oldest first, if that is not 0), at most f.Limit of them (DefaultAuditLimit if 0, never more
// than MaxAuditLimit).
func (t *tx) ListAudit(ctx context.Context, f keyhold.AuditFilter) ([]*keyhold.AuditEntry, error) {
	var conds []string
	var args []any
	if f.TenantID != "" {
		conds, args = append(conds, "tenant_id = ?"), append(args, f.TenantID)
	}
	if f.EnvID != "" {
		conds, args = append(conds, "env_id = ?"), append(args, f.EnvID)
	}
	if f.BeforeID > 0 {
		conds, args = append(conds, "id < ?"), append(args, f.BeforeID)
	}
	if len(f.ActionPrefixes) > 0 {
		var ors []string
		for _, pre := range f.ActionPrefixes {
			if strings.ContainsAny(pre, `%_\`) {
				return nil, fmt.Errorf("sqlstore: list audit entries: action prefix %q holds a LIKE wildcard", pre)
			}
			ors, args = append(ors, "action LIKE ?"), append(args, pre+"%")
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	if f.Epoch != 0 {
		conds, args = append(conds, "epoch = ?"), append(args, int64(f.Epoch))
	}
	if f.Plain {
		var ors []string
		for _, pre := range keyhold.AuditSealedActions() {
			ors, args = append(ors, "action LIKE ?"), append(args, pre+"%")
		}
		// A shredded entry (ShredAudit) has epoch 0 and an empty target:
		// nothing to seal.
		conds = append(conds, "epoch = 0", "env_id <> ''", "target <> ''", "("+strings.Join(ors, " OR ")+")")
	}
	order := "DESC"
	if f.AfterID != 0 {
		conds, args, order = append(conds, "id > ?"), append(args, f.AfterID), "ASC"
	}
	args = append(args, clampLimit(f.Limit, DefaultAuditLimit, MaxAuditLimit))
	return list(t, ctx, "list audit entries", func(sc scanner) (*keyhold.AuditEntry, error) {
		e := &keyhold.AuditEntry{}
		err := sc.Scan(&e.ID, timeCol{&e.At}, &e.TenantID, &e.ActorID, &e.Action, &e.Target, &e.EnvID, &e.Result, &e.Detail, u32Col{&e.Epoch}, u64Col{&e.Version}, &e.Sealed)
		return e, err
	}, `SELECT id, occurred_at, tenant_id, actor_id, action, target, env_id, result, detail, epoch, version, sealed FROM audit_log`+where(conds)+` ORDER BY id `+order+` LIMIT ?`, args...)
}
