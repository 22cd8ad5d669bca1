package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func vault(name, sub, rg string) *keyhold.Vault {
	return &keyhold.Vault{
		SubscriptionID: sub, ResourceGroup: rg, Name: name, Location: "westeurope", TenantID: "t1", SKU: "premium",
		SoftDeleteRetentionDays: 7, EnablePurgeProtection: true, EnableRbacAuthorization: false,
		AccessPolicies: []keyhold.AccessPolicy{
			{TenantID: "t1", ObjectID: "policy-identity", Keys: []string{keyhold.PermGet, keyhold.PermWrapKey, keyhold.PermUnwrapKey}},
			{TenantID: "t1", ObjectID: "nobody", Keys: []string{}},
		},
		NetworkACLs:         keyhold.NetworkACLs{Bypass: keyhold.BypassAzureServices, DefaultAction: keyhold.NetworkDeny, IPRules: []string{"10.0.0.0/8", "192.0.2.1"}},
		PublicNetworkAccess: keyhold.PublicAccessEnabled,
		URI:                 "https://localhost:8443/vaults/" + name,
		CreatedAt:           at(0), UpdatedAt: at(0),
	}
}

func testVaults(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	v1 := vault("Contoso-KV", "sub1", "RG")
	v2 := vault("beta-kv", "sub1", "other-rg")
	v2.AccessPolicies, v2.NetworkACLs, v2.EnableRbacAuthorization = nil, keyhold.NetworkACLs{Bypass: keyhold.BypassNone, DefaultAction: keyhold.NetworkAllow}, true
	v3 := vault("gamma-kv", "sub2", "rg")
	update(t, s, func(tx keyhold.Tx) error {
		for _, v := range []*keyhold.Vault{v1, v2, v3} {
			if err := tx.CreateVault(ctx, v); err != nil {
				return err
			}
			if v.Version != 1 {
				t.Errorf("CreateVault set Version %d, want 1", v.Version)
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Vault(ctx, "CONTOSO-kv")
		if err != nil {
			return err
		}
		equal(t, "Vault(other case)", got, v1)
		got, err = tx.Vault(ctx, "beta-kv")
		if err != nil {
			return err
		}
		equal(t, "Vault(nil access policies)", got, v2)
		for _, tc := range []struct {
			name string
			f    keyhold.VaultFilter
			want []*keyhold.Vault
		}{
			{"all live", keyhold.VaultFilter{}, []*keyhold.Vault{v2, v1, v3}},
			{"subscription", keyhold.VaultFilter{SubscriptionID: "SUB1"}, []*keyhold.Vault{v2, v1}},
			{"resource group", keyhold.VaultFilter{SubscriptionID: "sub1", ResourceGroup: "rg"}, []*keyhold.Vault{v1}},
			{"deleted", keyhold.VaultFilter{Deleted: true}, []*keyhold.Vault{}},
		} {
			l, err := tx.ListVaults(ctx, tc.f)
			if err != nil {
				return err
			}
			equal(t, "ListVaults("+tc.name+")", l, tc.want)
		}
		_, err = tx.Vault(ctx, "missing-kv")
		wantCode(t, "Vault(missing)", err, keyhold.CodeNotFound, "missing-kv")
		return nil
	})
	taken := vault("contoso-KV", "sub9", "rg")
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateVault(ctx, taken) })
	wantCode(t, "CreateVault(name taken, other case)", err, keyhold.CodeConflict, "contoso-KV")

	// Soft delete is an update; the name stays taken.
	stale := *v1
	v1.DeletedAt, v1.ScheduledPurgeAt, v1.UpdatedAt = at(time.Hour), at(time.Hour+7*24*time.Hour), at(time.Hour)
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdateVault(ctx, v1) })
	if v1.Version != 2 {
		t.Errorf("UpdateVault left Version %d, want 2", v1.Version)
	}
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateVault(ctx, &stale) })
	wantCode(t, "UpdateVault(stale version)", err, keyhold.CodeConflict, "Contoso-KV")
	ghost := vault("ghost-kv", "sub1", "rg")
	ghost.Version = 1
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateVault(ctx, ghost) })
	wantCode(t, "UpdateVault(missing)", err, keyhold.CodeNotFound, "ghost-kv")
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateVault(ctx, taken) })
	wantCode(t, "CreateVault(name of a soft-deleted vault)", err, keyhold.CodeConflict, "contoso-KV")
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Vault(ctx, "contoso-kv")
		if err != nil {
			return err
		}
		equal(t, "Vault(soft-deleted)", got, v1)
		l, err := tx.ListVaults(ctx, keyhold.VaultFilter{SubscriptionID: "sub1"})
		if err != nil {
			return err
		}
		equal(t, "ListVaults(live) after soft delete", l, []*keyhold.Vault{v2})
		l, err = tx.ListVaults(ctx, keyhold.VaultFilter{SubscriptionID: "sub1", Deleted: true})
		if err != nil {
			return err
		}
		equal(t, "ListVaults(deleted)", l, []*keyhold.Vault{v1})
		return nil
	})

	// Purge removes the vault with its keys and versions; the name is free
	// again.
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutKey(ctx, &keyhold.Key{VaultName: "contoso-kv", Name: "cmk", Type: keyhold.KeyTypeRSA, Size: 2048, CreatedAt: at(0)}); err != nil {
			return err
		}
		return tx.PutKeyVersion(ctx, &keyhold.KeyVersion{VaultName: "contoso-kv", Name: "cmk", Version: "v1", Material: []byte("sealed"), CreatedAt: at(0)})
	})
	update(t, s, func(tx keyhold.Tx) error { return tx.PurgeVault(ctx, "CONTOSO-KV") })
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Vault(ctx, "contoso-kv")
		wantCode(t, "Vault(purged)", err, keyhold.CodeNotFound)
		_, err = tx.Key(ctx, "contoso-kv", "cmk")
		wantCode(t, "Key of a purged vault", err, keyhold.CodeNotFound)
		_, err = tx.KeyVersion(ctx, "contoso-kv", "cmk", "v1")
		wantCode(t, "KeyVersion of a purged vault", err, keyhold.CodeNotFound)
		return nil
	})
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PurgeVault(ctx, "contoso-kv") })
	wantCode(t, "PurgeVault(missing)", err, keyhold.CodeNotFound, "contoso-kv")
	update(t, s, func(tx keyhold.Tx) error { return tx.CreateVault(ctx, taken) })
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Key(ctx, "contoso-kv", "cmk")
		wantCode(t, "Key of a re-created vault", err, keyhold.CodeNotFound)
		return nil
	})
}

func testKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		for _, v := range []*keyhold.Vault{vault("kv-a", "sub", "rg"), vault("KV-B", "sub", "rg")} {
			if err := tx.CreateVault(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
	policy := &keyhold.RotationPolicy{
		LifetimeActions: []keyhold.LifetimeAction{{Action: "Rotate", TimeAfterCreate: "P90D"}, {Action: "Notify", TimeBeforeExpiry: "P30D"}},
		ExpiryTime:      "P1Y", CreatedAt: at(time.Minute), UpdatedAt: at(2 * time.Minute),
	}
	cmk := &keyhold.Key{VaultName: "kv-a", Name: "CMK", Type: keyhold.KeyTypeRSAHSM, Size: 3072, CurrentVersion: "v2",
		Tags: map[string]string{"purpose": "powerplatform"}, RotationPolicy: policy, CreatedAt: at(0), UpdatedAt: at(time.Hour)}
	plain := &keyhold.Key{VaultName: "kv-a", Name: "another", Type: keyhold.KeyTypeRSA, Size: 2048, CurrentVersion: "x", CreatedAt: at(0), UpdatedAt: at(0)}
	inB := &keyhold.Key{VaultName: "KV-B", Name: "rotated", Type: keyhold.KeyTypeRSA, Size: 4096, CurrentVersion: "y",
		RotationPolicy: &keyhold.RotationPolicy{LifetimeActions: []keyhold.LifetimeAction{{Action: "Rotate", TimeAfterCreate: "P30D"}}}, CreatedAt: at(0)}
	gone := &keyhold.Key{VaultName: "kv-a", Name: "gone", Type: keyhold.KeyTypeRSA, Size: 2048, RotationPolicy: policy,
		CreatedAt: at(0), DeletedAt: at(time.Hour), ScheduledPurgeAt: at(91 * 24 * time.Hour)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, k := range []*keyhold.Key{inB, cmk, plain, gone} {
			if err := tx.PutKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Key(ctx, "KV-A", "cmk")
		if err != nil {
			return err
		}
		equal(t, "Key(other case)", got, cmk)
		if got.RotationPolicy.CreatedAt.Location() != time.UTC {
			t.Errorf("rotation policy time in %v, want UTC", got.RotationPolicy.CreatedAt.Location())
		}
		got, err = tx.Key(ctx, "kv-a", "another")
		if err != nil {
			return err
		}
		equal(t, "Key(no policy, no tags)", got, plain)
		l, err := tx.ListKeys(ctx, "kv-a", false)
		if err != nil {
			return err
		}
		equal(t, "ListKeys(live)", l, []*keyhold.Key{plain, cmk})
		l, err = tx.ListKeys(ctx, "kv-a", true)
		if err != nil {
			return err
		}
		equal(t, "ListKeys(deleted)", l, []*keyhold.Key{gone})
		l, err = tx.KeysWithRotationPolicy(ctx)
		if err != nil {
			return err
		}
		equal(t, "KeysWithRotationPolicy", l, []*keyhold.Key{cmk, inB})
		_, err = tx.Key(ctx, "kv-a", "missing")
		wantCode(t, "Key(missing)", err, keyhold.CodeNotFound, "missing", "kv-a")
		return nil
	})
	// PutKey replaces: rotating moves the current version, removing the
	// policy takes the key off the scheduler's list.
	cmk2 := *cmk
	cmk2.CurrentVersion, cmk2.RotationPolicy, cmk2.UpdatedAt = "v3", nil, at(2*time.Hour)
	update(t, s, func(tx keyhold.Tx) error { return tx.PutKey(ctx, &cmk2) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Key(ctx, "kv-a", "CMK")
		if err != nil {
			return err
		}
		equal(t, "Key after replace", got, &cmk2)
		l, err := tx.KeysWithRotationPolicy(ctx)
		if err != nil {
			return err
		}
		equal(t, "KeysWithRotationPolicy after removing a policy", l, []*keyhold.Key{inB})
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.PutKey(ctx, &keyhold.Key{VaultName: "no-such-kv", Name: "k", CreatedAt: at(0)})
	})
	wantCode(t, "PutKey(unknown vault)", err, keyhold.CodeNotFound, "no-such-kv")
}

func testKeyVersions(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.CreateVault(ctx, vault("kv", "sub", "rg")); err != nil {
			return err
		}
		return tx.PutKey(ctx, &keyhold.Key{VaultName: "kv", Name: "cmk", Type: keyhold.KeyTypeRSA, Size: 2048, CreatedAt: at(0)})
	})
	v1 := &keyhold.KeyVersion{VaultName: "kv", Name: "cmk", Version: "0123456789abcdef0123456789abcdef", Type: keyhold.KeyTypeRSA, Size: 2048,
		N: []byte{0xc3, 0x00, 0x01, 0xff}, E: 65537, KeyOps: []string{"wrapKey", "unwrapKey"}, Enabled: true,
		Material: []byte("sealed-private-key-1"), CreatedAt: at(0), UpdatedAt: at(0)}
	v2 := &keyhold.KeyVersion{VaultName: "kv", Name: "cmk", Version: "fedcba9876543210fedcba9876543210", Type: keyhold.KeyTypeRSA, Size: 2048,
		N: []byte{0xc4}, E: 3, KeyOps: nil, Enabled: true, NotBefore: at(time.Hour), Expires: at(365 * 24 * time.Hour),
		Material: []byte("sealed-private-key-2"), CreatedAt: at(time.Minute), UpdatedAt: at(time.Minute)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, v := range []*keyhold.KeyVersion{v2, v1} {
			if err := tx.PutKeyVersion(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
	// Disabling an old version replaces it.
	v1.Enabled, v1.UpdatedAt = false, at(time.Hour)
	update(t, s, func(tx keyhold.Tx) error { return tx.PutKeyVersion(ctx, v1) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.KeyVersion(ctx, "KV", "CMK", "0123456789ABCDEF0123456789ABCDEF")
		if err != nil {
			return err
		}
		equal(t, "KeyVersion(other case)", got, v1)
		l, err := tx.ListKeyVersions(ctx, "kv", "cmk")
		if err != nil {
			return err
		}
		equal(t, "ListKeyVersions, oldest first", l, []*keyhold.KeyVersion{v1, v2})
		_, err = tx.KeyVersion(ctx, "kv", "cmk", "nope")
		wantCode(t, "KeyVersion(missing)", err, keyhold.CodeNotFound, "nope", "cmk", "kv")
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.PutKeyVersion(ctx, &keyhold.KeyVersion{VaultName: "kv", Name: "no-such-key", Version: "v", Material: []byte("sealed-secret-material")})
	})
	wantCode(t, "PutKeyVersion(unknown key)", err, keyhold.CodeNotFound, "no-such-key")
	noSecret(t, err, []byte("sealed-secret-material"))

	update(t, s, func(tx keyhold.Tx) error { return tx.PurgeKey(ctx, "kv", "CMK") })
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Key(ctx, "kv", "cmk")
		wantCode(t, "Key(purged)", err, keyhold.CodeNotFound)
		l, err := tx.ListKeyVersions(ctx, "kv", "cmk")
		if err == nil && len(l) != 0 {
			t.Errorf("versions of a purged key remain: %s", show(l))
		}
		return err
	})
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PurgeKey(ctx, "kv", "cmk") })
	wantCode(t, "PurgeKey(missing)", err, keyhold.CodeNotFound, "cmk")
}
