package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyhold/keyhold"
)

// Soft delete, recovery and purge of keys, and the purge of vaults and
// keys whose retention has passed.

// DeleteKey soft-deletes a key; the bundle carries its deleted dates. It
// stays recoverable until ScheduledPurgeAt, the deletion date plus the
// vault's retention.
func (s *Keys) DeleteKey(ctx context.Context, vault, name string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opDeleteKey, vault, name, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			v, k, kv, err := s.authorizedKey(ctx, tx, c, opDeleteKey, vault, name, "", false)
			if err != nil {
				return err
			}
			now := s.now()
			k.DeletedAt, k.ScheduledPurgeAt, k.UpdatedAt = now, now.AddDate(0, 0, v.SoftDeleteRetentionDays), now
			if err := s.putKey(ctx, tx, k); err != nil {
				return err
			}
			out = s.bundle(k, kv)
			c.detail = "scheduled purge " + k.ScheduledPurgeAt.Format(time.RFC3339)
			return c.record(ctx, tx, now)
		})
	})
	return out, err
}

// GetDeletedKey returns a soft-deleted key (its current version).
func (s *Keys) GetDeletedKey(ctx context.Context, vault, name string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opGetDeletedKey, vault, name, func(c *call) error {
		return s.store.View(ctx, func(tx keyhold.Tx) error {
			_, k, kv, err := s.authorizedKey(ctx, tx, c, opGetDeletedKey, vault, name, "", true)
			if err != nil {
				return err
			}
			out = s.bundle(k, kv)
			return nil
		})
	})
	return out, err
}

// RecoverDeletedKey undeletes a key, with all its versions.
func (s *Keys) RecoverDeletedKey(ctx context.Context, vault, name string) (*keyhold.KeyBundle, error) {
	var out *keyhold.KeyBundle
	err := s.keyOp(ctx, opRecoverKey, vault, name, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			_, k, kv, err := s.authorizedKey(ctx, tx, c, opRecoverKey, vault, name, "", true)
			if err != nil {
				return err
			}
			now := s.now()
			k.DeletedAt, k.ScheduledPurgeAt, k.UpdatedAt = time.Time{}, time.Time{}, now
			if err := s.putKey(ctx, tx, k); err != nil {
				return err
			}
			out = s.bundle(k, kv)
			return c.record(ctx, tx, now)
		})
	})
	return out, err
}

// PurgeDeletedKey destroys a soft-deleted key and its versions (and their
// token objects). Refused under purge protection until ScheduledPurgeAt
// (CodeForbidden).
func (s *Keys) PurgeDeletedKey(ctx context.Context, vault, name string) error {
	var objs [][]byte
	err := s.keyOp(ctx, opPurgeKey, vault, name, func(c *call) error {
		return s.store.Update(ctx, func(tx keyhold.Tx) error {
			v, err := s.authorize(ctx, tx, c, opPurgeKey, vault, name)
			if err != nil {
				return err
			}
			k, err := s.deletedKey(ctx, tx, v.Name, name)
			if err != nil {
				return err
			}
			now := s.now()
			if v.EnablePurgeProtection && now.Before(k.ScheduledPurgeAt) {
				return keyhold.Errorf(keyhold.CodeForbidden,
					"Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge key %s at %s, after the retention period has passed.",
					k.Name, k.ScheduledPurgeAt.Format(time.RFC3339))
			}
			if objs, err = s.keyTokenObjects(ctx, tx, k); err != nil {
				return err
			}
			if err := tx.PurgeKey(ctx, k.VaultName, k.Name); err != nil {
				return err
			}
			return c.record(ctx, tx, now)
		})
	})
	if err == nil {
		s.destroyTokenObjects(objs)
	}
	return err
}

// PurgeExpired purges soft-deleted vaults and keys past ScheduledPurgeAt,
// purge protection or not, and returns how many it purged. It keeps going
// past a failure and returns every error it met.
func (s *Keys) PurgeExpired(ctx context.Context) (int, error) {
	now := s.now()
	var vaults, live []*keyhold.Vault
	err := s.store.View(ctx, func(tx keyhold.Tx) error {
		var err error
		if vaults, err = tx.ListVaults(ctx, keyhold.VaultFilter{Deleted: true}); err != nil {
			return err
		}
		live, err = tx.ListVaults(ctx, keyhold.VaultFilter{})
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, v := range vaults {
		if now.Before(v.ScheduledPurgeAt) {
			continue
		}
		var objs [][]byte
		purged := false
		err := s.store.Update(ctx, func(tx keyhold.Tx) error {
			objs, purged = nil, false
			cur, err := s.vault(ctx, tx, v.Name)
			if err != nil || !cur.Deleted() || now.Before(cur.ScheduledPurgeAt) {
				return err // recovered or purged meanwhile
			}
			if objs, err = s.purgeVault(ctx, tx, cur.Name); err != nil {
				return err
			}
			purged = true
			return s.systemAudit(ctx, tx, cur.TenantID, "vault.purge", cur.ID(), "retention period passed")
		})
		if err != nil && !codeIs(err, keyhold.CodeNotFound) {
			errs = append(errs, fmt.Errorf("purging vault %s: %w", v.Name, err))
			continue
		}
		if err == nil && purged {
			n++
			s.destroyTokenObjects(objs)
		}
	}
	for _, v := range live {
		var keys []*keyhold.Key
		if err := s.store.View(ctx, func(tx keyhold.Tx) error {
			var err error
			keys, err = tx.ListKeys(ctx, v.Name, true)
			return err
		}); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, k := range keys {
			if now.Before(k.ScheduledPurgeAt) {
				continue
			}
			var objs [][]byte
			purged := false
			err := s.store.Update(ctx, func(tx keyhold.Tx) error {
				objs, purged = nil, false
				cur, err := tx.Key(ctx, k.VaultName, k.Name)
				if err != nil || !cur.Deleted() || now.Before(cur.ScheduledPurgeAt) {
					return err // recovered or purged meanwhile
				}
				if err := s.rec.CheckKeyState(cur); err != nil {
					return err // its purge date may not be Keyhold's
				}
				if objs, err = s.keyTokenObjects(ctx, tx, cur); err != nil {
					return err
				}
				if err := tx.PurgeKey(ctx, cur.VaultName, cur.Name); err != nil {
					return err
				}
				purged = true
				return s.systemAudit(ctx, tx, v.TenantID, "key.purge", s.KeyID(cur.VaultName, cur.Name, ""), "retention period passed")
			})
			if err != nil && !codeIs(err, keyhold.CodeNotFound) {
				errs = append(errs, fmt.Errorf("purging key %s of vault %s: %w", k.Name, k.VaultName, err))
				continue
			}
			if err == nil && purged {
				n++
				s.destroyTokenObjects(objs)
			}
		}
	}
	return n, errors.Join(errs...)
}
