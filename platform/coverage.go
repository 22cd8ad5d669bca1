package platform

import (
	"context"
	"time"

	"github.com/keyhold/keyhold"
)

// EncryptionCoverage reports, for each store of an environment, how many
// items it holds and under which root key, counted in the store in one
// snapshot (EpochCounts, BackupEpochCounts and the wrapped keys): nothing
// is estimated. An epoch's root is the key its stored copy is wrapped by
// (the customer's when a custody move leaves two copies for an instant, as
// unwrapEnvKey decides); items under an epoch with no wrapped key left
// have root "none": nothing can read them.
func (p *Environments) EncryptionCoverage(ctx context.Context, envID string) (*keyhold.EncryptionCoverage, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var out *keyhold.EncryptionCoverage
	err = p.store.View(ctx, func(tx keyhold.Tx) error {
		env, err := adminEnvironment(ctx, tx, id, envID)
		if err != nil {
			return err
		}
		wks, err := tx.WrappedKeys(ctx, env.ID)
		if err != nil {
			return err
		}
		counts, err := tx.EpochCounts(ctx, env.ID)
		if err != nil {
			return err
		}
		backups, err := tx.BackupEpochCounts(ctx, env.ID)
		if err != nil {
			return err
		}
		rootOf := epochRoots(wks)
		out = &keyhold.EncryptionCoverage{EnvID: env.ID, KeyManagedBy: env.KeyManagedBy, PolicyID: env.PolicyID, Epoch: env.Epoch, At: p.clock.Now().UTC()}
		add := func(store string, pick func(keyhold.EpochCount) int64) {
			s := keyhold.CoverageStore{Store: store, Roots: []keyhold.CoverageRoot{}}
			for _, c := range counts {
				if n := pick(c); n > 0 {
					r := rootOf(c.Epoch)
					r.Items = n
					s.Items += n
					s.Roots = append(s.Roots, r)
				}
			}
			out.Stores = append(out.Stores, s)
		}
		add(keyhold.CoverageRows, func(c keyhold.EpochCount) int64 { return c.Rows })
		add(keyhold.CoverageFiles, func(c keyhold.EpochCount) int64 { return c.Files })
		bs := keyhold.CoverageStore{Store: keyhold.CoverageBackups, Roots: []keyhold.CoverageRoot{}}
		for _, c := range backups {
			r := rootOf(c.Epoch)
			r.Items = c.Items
			exp := c.ExpiresAt.UTC()
			r.ExpiresAt = &exp
			bs.Items += c.Items
			bs.Roots = append(bs.Roots, r)
		}
		out.Stores = append(out.Stores, bs)
		add(keyhold.CoverageAudit, func(c keyhold.EpochCount) int64 { return c.Audit })
		flows, err := flowCoverage(ctx, tx, env, rootOf)
		if err != nil {
			return err
		}
		out.Stores = append(out.Stores, flows...)
		rs, err := retainedBYOK(ctx, tx, p.rec, env.TenantID, []string{env.ID}) // byok_retained.go
		if err != nil {
			return err
		}
		if len(rs) > 0 {
			out.RetainedBYOK = rs[0]
		}
		return customerVaults(ctx, tx, p.core, wks, out)
	})
	return out, err
}

// customerVaults names, on each of out's roots that is the customer's
// key, the vault that holds it, whether it is external, and the last
// successful unwrap of the identity that wrapped the epoch's key with a
// key of that vault: read once per identity and vault.
func customerVaults(ctx context.Context, tx keyhold.Tx, p *core, wks []*keyhold.WrappedKey, out *keyhold.EncryptionCoverage) error {
	byEpoch := map[uint32]*keyhold.WrappedKey{}
	for _, wk := range wks {
		if wk.Root == keyhold.RootCMK {
			byEpoch[wk.Epoch] = wk
		}
	}
	type seen struct {
		at    *time.Time
		vault string
		ext   bool
	}
	cache := map[unwrapKey]seen{}
	for i := range out.Stores {
		for j := range out.Stores[i].Roots {
			r := &out.Stores[i].Roots[j]
			wk := byEpoch[r.Epoch]
			if r.Root != keyhold.CoverageRootCustomer || wk == nil {
				continue
			}
			k := unwrapKey{wk.PrincipalID, unwrapVaultOf(p.kv, p.hsm, wk.KeyID)}
			v, ok := cache[k]
			if !ok {
				last, err := tx.LastUnwrap(ctx, k.principal, k.vault)
				if err != nil {
					return err
				}
				if !last.IsZero() {
					v.at = &last
				}
				v.ext = !builtinKID(p.kv, wk.KeyID) && !hsmKID(p.hsm, wk.KeyID)
				v.vault = k.vault
				if kid, err := keyhold.ParseKeyID(p.currentKID(wk.KeyID)); err == nil {
					v.vault = kid.VaultURL
				}
				cache[k] = v
			}
			r.Vault, r.External, r.LastUnwrap = v.vault, v.ext, v.at
		}
	}
	return nil
}

// epochRoots returns the root of each epoch among wks.
func epochRoots(wks []*keyhold.WrappedKey) func(epoch uint32) keyhold.CoverageRoot {
	by := map[uint32]*keyhold.WrappedKey{}
	for _, wk := range wks {
		if cur, ok := by[wk.Epoch]; !ok || wk.Root == keyhold.RootCMK && cur.Root != keyhold.RootCMK {
			by[wk.Epoch] = wk
		}
	}
	return func(epoch uint32) keyhold.CoverageRoot {
		r := keyhold.CoverageRoot{Root: keyhold.CoverageRootNone, Epoch: epoch}
		switch wk := by[epoch]; {
		case wk == nil:
		case wk.Root == keyhold.RootMMK:
			r.Root = keyhold.CoverageRootPlatform
		case wk.Root == keyhold.RootCMK:
			r.Root, r.KeyID = keyhold.CoverageRootCustomer, wk.KeyID
		case wk.Root == keyhold.RootBYOK:
			r.Root, r.KeyID = keyhold.CoverageRootBYOK, wk.KeyID
		}
		return r
	}
}

// flowCoverage reports the flows' stores of env from FlowEpochCounts, in
// the report's order. Epoch 0 is the platform key's partition (non-OAuth
// connections, which spec 004 keeps on the platform key); any other epoch
// is the environment key's, whose root rootOf names. Runs kept from before
// a link (pre-migration runs, issue 16) are under the platform key, one
// root per link's partition with the date it is shredded; with none, the
// store is listed with no items and root "none".
func flowCoverage(ctx context.Context, tx keyhold.Tx, env *keyhold.Environment, rootOf func(uint32) keyhold.CoverageRoot) ([]keyhold.CoverageStore, error) {
	counts, err := tx.FlowEpochCounts(ctx, env.ID)
	if err != nil {
		return nil, err
	}
	pre, err := preMigrationCoverage(ctx, tx, env.ID)
	if err != nil {
		return nil, err
	}
	pick := func(store string, keep func(keyhold.FlowEpochCount) bool) keyhold.CoverageStore {
		s := keyhold.CoverageStore{Store: store, Roots: []keyhold.CoverageRoot{}}
		for _, c := range counts {
			if !keep(c) || c.Count == 0 {
				continue
			}
			r := keyhold.CoverageRoot{Root: keyhold.CoverageRootPlatform}
			if c.Epoch != 0 {
				r = rootOf(c.Epoch)
			}
			r.Items = int64(c.Count)
			s.Items += r.Items
			s.Roots = append(s.Roots, r)
		}
		return s
	}
	of := func(store string) func(keyhold.FlowEpochCount) bool {
		return func(c keyhold.FlowEpochCount) bool { return c.Store == store }
	}
	return []keyhold.CoverageStore{
		pick(keyhold.CoverageFlows, of(keyhold.FlowCountFlows)),
		pick(keyhold.CoverageRunHistory, of(keyhold.FlowCountRuns)),
		pick(keyhold.CoverageOAuthConnections, func(c keyhold.FlowEpochCount) bool {
			return c.Store == keyhold.FlowCountConnections && c.Epoch != 0
		}),
		pick(keyhold.CoverageConnections, func(c keyhold.FlowEpochCount) bool {
			return c.Store == keyhold.FlowCountConnections && c.Epoch == 0
		}),
		pre,
	}, nil
}

// preMigrationCoverage is the pre-migration runs' row of the report.
func preMigrationCoverage(ctx context.Context, tx keyhold.Tx, envID string) (keyhold.CoverageStore, error) {
	s := keyhold.CoverageStore{Store: keyhold.CoveragePreMigrationRuns, Roots: []keyhold.CoverageRoot{}}
	keys, err := tx.PreMigrationKeys(ctx, envID)
	if err != nil {
		return s, err
	}
	for _, k := range keys {
		runs, err := tx.PreMigrationRuns(ctx, envID, k.PartitionID)
		if err != nil {
			return s, err
		}
		exp := k.ExpiresAt
		r := keyhold.CoverageRoot{Root: keyhold.CoverageRootPlatform, KeyID: k.KeyID, Items: int64(len(runs)), ExpiresAt: &exp}
		s.Items += r.Items
		s.Roots = append(s.Roots, r)
	}
	if len(s.Roots) == 0 {
		s.Roots = []keyhold.CoverageRoot{{Root: keyhold.CoverageRootNone}}
	}
	return s, nil
}

var _ keyhold.CoverageService = (*Environments)(nil)
