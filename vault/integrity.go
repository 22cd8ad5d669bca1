package vault

import (
	"context"
	"fmt"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// Record integrity (crypt.RecordKey). Every vault, key and key version the
// Service writes is sealed under a key derived from the master key, and
// every read that an operation acts on is checked: a record changed in the
// database by anyone but Keyhold (a version with someone else's public key
// made current, an enabled flag or purge protection flipped) fails with
// keyhold.CodeRecordIntegrity, is audited as that refusal, and is never
// used. Enterprise policies' bindings to their keys are sealed here too
// (SealPolicy), for the policy service, which holds no master key.

// vault loads a vault, live or deleted, and checks its record.
func (s *core) vault(ctx context.Context, tx keyhold.Tx, name string) (*keyhold.Vault, error) {
	v, err := tx.Vault(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.rec.CheckVault(v); err != nil {
		return nil, err
	}
	v.URI = s.VaultURI(v.Name)
	return v, nil
}

// storedVault is the copy of v that is written: its URI in the relative
// form /vaults/{name}, since no address is stored (a vault's URI is
// rendered with the public address as it is read). The URI is not sealed.
func storedVault(v *keyhold.Vault) *keyhold.Vault {
	st := *v
	st.URI = "/vaults/" + v.Name
	return &st
}

func (s *core) createVault(ctx context.Context, tx keyhold.Tx, v *keyhold.Vault) error {
	s.rec.SealVault(v)
	st := storedVault(v)
	err := tx.CreateVault(ctx, st)
	v.Version = st.Version
	return err
}

func (s *core) updateVault(ctx context.Context, tx keyhold.Tx, v *keyhold.Vault) error {
	s.rec.SealVault(v)
	st := storedVault(v)
	err := tx.UpdateVault(ctx, st)
	v.Version = st.Version
	return err
}

func (s *core) putKey(ctx context.Context, tx keyhold.Tx, k *keyhold.Key) error {
	s.rec.SealKey(k)
	return tx.PutKey(ctx, k)
}

func (s *core) putKeyVersion(ctx context.Context, tx keyhold.Tx, kv *keyhold.KeyVersion) error {
	s.rec.SealKeyVersion(kv)
	return tx.PutKeyVersion(ctx, kv)
}

// SealPolicy sets p.MAC, the seal of p's binding to its key (see
// crypt.RecordKey.SealPolicy). The policy service calls it on every policy
// it writes.
func (s *core) SealPolicy(p *keyhold.EnterprisePolicy) { s.rec.SealPolicy(p) }

// CheckPolicy returns keyhold.CodeRecordIntegrity unless p's binding to
// its key is as SealPolicy sealed it.
func (s *core) CheckPolicy(p *keyhold.EnterprisePolicy) error { return s.rec.CheckPolicy(p) }

// SealRecords seals the vaults, keys, key versions and enterprise policies
// that have no seal yet, the records written before Keyhold sealed them,
// and returns how many it sealed. It does so only while no record at all
// carries a seal, that is at the first start after the upgrade: once any
// record is sealed, an unsealed one can only have been written outside
// Keyhold, and it stays unsealed, and refused. Each record it seals is
// audited (integrity.seal) in its tenant's log. The server calls it at
// start, before it serves; replicas starting together seal once (the
// store serializes the transactions, and the later one finds the records
// sealed).
func (s *core) SealRecords(ctx context.Context) (int, error) {
	n := 0
	err := s.store.Update(ctx, func(tx keyhold.Tx) error {
		n = 0
		var vaults []*keyhold.Vault
		for _, deleted := range []bool{false, true} {
			vs, err := tx.ListVaults(ctx, keyhold.VaultFilter{Deleted: deleted})
			if err != nil {
				return err
			}
			vaults = append(vaults, vs...)
		}
		pols, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{})
		if err != nil {
			return err
		}
		type todo struct {
			tenant, target string
			seal           func() error
		}
		var work []todo
		sealed := false
		// Vaults sealed before their access was sealed get the access
		// seal once, while no vault has one yet: their state's seal
		// must hold (it was written by Keyhold).
		accessSealed := false
		for _, v := range vaults {
			accessSealed = accessSealed || crypt.HasVaultAccessSeal(v)
		}
		for _, v := range vaults {
			if len(v.MAC) > 0 && !accessSealed && !crypt.HasVaultAccessSeal(v) && s.rec.CheckVault(v) == nil {
				if err := s.updateVault(ctx, tx, v); err != nil {
					return fmt.Errorf("sealing the access of %s: %w", v.ID(), err)
				}
				if err := s.systemAudit(ctx, tx, v.TenantID, "integrity.seal", v.ID(), "access policies sealed at the first start after the upgrade to sealed access policies"); err != nil {
					return err
				}
				n++
			}
		}
		for _, v := range vaults {
			sealed = sealed || len(v.MAC) > 0
			if len(v.MAC) == 0 {
				work = append(work, todo{v.TenantID, v.ID(), func() error { return s.updateVault(ctx, tx, v) }})
			}
			for _, deleted := range []bool{false, true} {
				ks, err := tx.ListKeys(ctx, v.Name, deleted)
				if err != nil {
					return err
				}
				for _, k := range ks {
					sealed = sealed || len(k.MAC) > 0
					if len(k.MAC) == 0 {
						work = append(work, todo{v.TenantID, s.KeyID(k.VaultName, k.Name, ""), func() error { return s.putKey(ctx, tx, k) }})
					}
					kvs, err := tx.ListKeyVersions(ctx, k.VaultName, k.Name)
					if err != nil {
						return err
					}
					for _, kv := range kvs {
						sealed = sealed || len(kv.MAC) > 0
						if len(kv.MAC) == 0 {
							work = append(work, todo{v.TenantID, s.KeyID(kv.VaultName, kv.Name, kv.Version), func() error { return s.putKeyVersion(ctx, tx, kv) }})
						}
					}
				}
			}
		}
		for _, p := range pols {
			sealed = sealed || len(p.MAC) > 0
			if len(p.MAC) == 0 {
				work = append(work, todo{p.TenantID, p.ID(), func() error { s.rec.SealPolicy(p); return tx.UpdatePolicy(ctx, p) }})
			}
		}
		if len(work) == 0 {
			return nil
		}
		if sealed {
			for _, w := range work {
				s.log.Error("vault: a record has no integrity seal although this server seals every record it writes: it was written outside Keyhold and will be refused",
					"record", w.target)
			}
			return nil
		}
		for _, w := range work {
			if err := w.seal(); err != nil {
				return fmt.Errorf("sealing %s: %w", w.target, err)
			}
			if err := s.systemAudit(ctx, tx, w.tenant, "integrity.seal", w.target, "sealed at the first start after the upgrade to sealed records"); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if n > 0 {
		s.log.Warn("vault: sealed the records written before this version; check the audit entries integrity.seal if the database may have been written by others before the upgrade", "records", n)
	}
	return n, err
}
