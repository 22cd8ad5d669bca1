package sqlstore

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// The customer-managed key lifecycle's queries (keyhold.CMKTx).

var _ keyhold.CMKTx = (*tx)(nil)

// Page sizes of ListWrappedKeys.
const (
	DefaultWrappedKeyLimit = 1000
	MaxWrappedKeyLimit     = 10000
)

func scanWrappedKey(sc scanner) (*keyhold.WrappedKey, error) {
	k := &keyhold.WrappedKey{}
	var root string
	err := sc.Scan(&k.EnvID, u32Col{&k.Epoch}, &root, &k.KeyID, &k.PrincipalID, &k.Ciphertext, timeCol{&k.CreatedAt})
	k.Root = keyhold.RootKind(root)
	return k, err
}

// ListWrappedKeys returns one page of wrapped keys across environments, in
// (environment, epoch, root kind) order.
func (t *tx) ListWrappedKeys(ctx context.Context, f keyhold.WrappedKeyFilter) ([]*keyhold.WrappedKey, error) {
	var conds []string
	var args []any
	if f.PrincipalID != "" {
		conds, args = append(conds, "principal_id = ?"), append(args, f.PrincipalID)
	}
	if f.Root != "" {
		conds, args = append(conds, "root_kind = ?"), append(args, string(f.Root))
	}
	if f.ExceptKeyID != "" {
		conds, args = append(conds, "key_id <> ?"), append(args, f.ExceptKeyID)
	}
	if f.AfterEnvID != "" || f.AfterEpoch != 0 {
		// A row-value comparison, which both backends turn into a range
		// of the index (see ListRows).
		conds, args = append(conds, "(env_id, epoch) > (?, ?)"), append(args, f.AfterEnvID, int64(f.AfterEpoch))
	}
	args = append(args, clampLimit(f.Limit, DefaultWrappedKeyLimit, MaxWrappedKeyLimit))
	return list(t, ctx, "list wrapped keys", scanWrappedKey,
		`SELECT env_id, epoch, root_kind, key_id, principal_id, ciphertext, created_at FROM wrapped_keys`+where(conds)+
			` ORDER BY env_id, epoch, root_kind LIMIT ?`, args...)
}

// PolicyWrappedKeys joins the environments linked to the policy (by the
// environments_by_policy index) with their wrapped keys of the current
// epoch: one statement for the whole policy.
func (t *tx) PolicyWrappedKeys(ctx context.Context, policyID string) ([]*keyhold.WrappedKey, error) {
	return list(t, ctx, "list a policy's wrapped keys", scanWrappedKey,
		`SELECT w.env_id, w.epoch, w.root_kind, w.key_id, w.principal_id, w.ciphertext, w.created_at
		FROM environments e JOIN wrapped_keys w ON w.env_id = e.id AND w.epoch = e.epoch
		WHERE e.policy_key = ? AND w.root_kind = ? ORDER BY w.env_id`, key(policyID), string(keyhold.RootCMK))
}

// ResealRow swaps a row's ciphertext and epoch if it is still at r.Version
// and fromEpoch; CodeConflict otherwise.
func (t *tx) ResealRow(ctx context.Context, r *keyhold.RowRecord, fromEpoch uint32) error {
	version, err := u64Arg(r.Version)
	if err != nil {
		return err
	}
	n, err := t.execN(ctx, `UPDATE data_rows SET epoch = ?, ciphertext = ? WHERE env_id = ? AND table_name = ? AND id = ? AND version = ? AND epoch = ?`,
		int64(r.Epoch), blob(r.Ciphertext), r.EnvID, r.Table, r.ID, version, int64(fromEpoch))
	if err != nil {
		return t.fail("reseal row", err)
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.CodeConflict, "row %q in table %q changed or was deleted since version %d under epoch %d was read: read it again", r.ID, r.Table, r.Version, fromEpoch)
	}
	return nil
}

// epochCountsRows counts an environment's rows per epoch. No index holds
// epoch (migration 0052: it made every re-sealed row move an index entry,
// and kept PostgreSQL's updates from being HOT), so this reads the
// environment's rows by the primary key's env_id prefix: the
// environment's rows only, never the table (TestRekeyReadPlans).
const epochCountsRows = `SELECT epoch, COUNT(*) FROM data_rows WHERE env_id = ? GROUP BY epoch`

// EpochCounts counts an environment's rows, files and sealed audit
// entries per epoch.
func (t *tx) EpochCounts(ctx context.Context, envID string) ([]keyhold.EpochCount, error) {
	type count struct {
		epoch uint32
		n     int64
	}
	scan := func(sc scanner) (count, error) {
		var c count
		err := sc.Scan(u32Col{&c.epoch}, &c.n)
		return c, err
	}
	rows, err := list(t, ctx, "count rows by epoch", scan, epochCountsRows, envID)
	if err != nil {
		return nil, err
	}
	files, err := list(t, ctx, "count files by epoch", scan, `SELECT epoch, COUNT(*) FROM data_files WHERE env_id = ? GROUP BY epoch`, envID)
	if err != nil {
		return nil, err
	}
	audit, err := list(t, ctx, "count audit entries by epoch", scan, `SELECT epoch, COUNT(*) FROM audit_log WHERE env_id = ? AND epoch <> 0 GROUP BY epoch`, envID)
	if err != nil {
		return nil, err
	}
	byEpoch := map[uint32]*keyhold.EpochCount{}
	var out []keyhold.EpochCount
	get := func(e uint32) *keyhold.EpochCount {
		if c, ok := byEpoch[e]; ok {
			return c
		}
		c := &keyhold.EpochCount{Epoch: e}
		byEpoch[e] = c
		return c
	}
	for _, c := range rows {
		get(c.epoch).Rows += c.n
	}
	for _, c := range files {
		get(c.epoch).Files += c.n
	}
	for _, c := range audit {
		get(c.epoch).Audit += c.n
	}
	for _, c := range byEpoch {
		out = append(out, *c)
	}
	for i := 1; i < len(out); i++ { // a handful of epochs: insertion sort
		for j := i; j > 0 && out[j].Epoch < out[j-1].Epoch; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// TouchKeyVersion upserts a key version's last use, keeping the later
// time and, apart, the later end of retention (CASE rather than MAX or
// GREATEST, which the two databases spell differently).
func (t *tx) TouchKeyVersion(ctx context.Context, u *keyhold.KeyVersionUse) error {
	if err := checkTimes(u.LastUsedAt, u.RetainUntil); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO key_version_uses (vault_key, key_name_key, version, vault_name, key_name, last_used_at, retain_until) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (vault_key, key_name_key, version) DO UPDATE SET
		last_used_at = CASE WHEN excluded.last_used_at > key_version_uses.last_used_at THEN excluded.last_used_at ELSE key_version_uses.last_used_at END,
		retain_until = CASE WHEN excluded.retain_until > key_version_uses.retain_until THEN excluded.retain_until ELSE key_version_uses.retain_until END`,
		key(u.VaultName), key(u.KeyName), strings.ToLower(u.Version), u.VaultName, u.KeyName, nanos(u.LastUsedAt), nanos(u.RetainUntil))
	if err != nil {
		return t.fail("touch key version", err)
	}
	return nil
}

// KeyVersionUses lists the recorded last uses of a key's versions.
func (t *tx) KeyVersionUses(ctx context.Context, vaultName, keyName string) ([]*keyhold.KeyVersionUse, error) {
	return list(t, ctx, "list key version uses", func(sc scanner) (*keyhold.KeyVersionUse, error) {
		u := &keyhold.KeyVersionUse{}
		err := sc.Scan(&u.VaultName, &u.KeyName, &u.Version, timeCol{&u.LastUsedAt}, timeCol{&u.RetainUntil})
		return u, err
	}, `SELECT vault_name, key_name, version, last_used_at, retain_until FROM key_version_uses WHERE vault_key = ? AND key_name_key = ? ORDER BY version`,
		key(vaultName), key(keyName))
}
