package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// cmkStoreTests are the conformance tests of keyhold.CMKTx; Run runs them
// with the rest.
var cmkStoreTests = []struct {
	name string
	fn   func(t *testing.T, s keyhold.Store)
}{
	{"ListWrappedKeys", testListWrappedKeys},
	{"PolicyWrappedKeys", testPolicyWrappedKeys},
	{"ResealRow", testResealRow},
	{"ResealRows", testResealRows},
	{"InsertRows", testInsertRows},
	{"StagedBackupRows", testStagedBackupRows},
	{"PagedBackup", testPagedBackup},
	{"EpochCounts", testEpochCounts},
	{"AuditSealed", testAuditSealed},
	{"BackupEpochCounts", testBackupEpochCounts},
	{"KeyVersionUses", testKeyVersionUses},
}

func wkey(env string, epoch uint32, root keyhold.RootKind, kid, principal string) *keyhold.WrappedKey {
	return &keyhold.WrappedKey{EnvID: env, Epoch: epoch, Root: root, KeyID: kid, PrincipalID: principal,
		Ciphertext: fmt.Appendf(nil, "wk:%s/%d/%s", env, epoch, root), CreatedAt: at(time.Duration(epoch) * time.Second)}
}

func wkNames(ks []*keyhold.WrappedKey) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, fmt.Sprintf("%s/%d/%s", k.EnvID, k.Epoch, k.Root))
	}
	return out
}

// testListWrappedKeys: the keys of one principal across environments, in
// (environment, epoch, root) order, filtered by root and by key id, paged
// by (environment, epoch).
func testListWrappedKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	for _, e := range []string{"e1", "e2", "e3"} {
		seedEnv(t, s, "t1", e)
	}
	const v1, v2 = "https://h/vaults/v/keys/k/v1", "https://h/vaults/v/keys/k/v2"
	keys := []*keyhold.WrappedKey{
		wkey("e1", 1, keyhold.RootCMK, v1, "mi-a"),
		wkey("e1", 2, keyhold.RootCMK, v2, "mi-a"),
		wkey("e2", 1, keyhold.RootMMK, "mmk/1", ""),
		wkey("e2", 2, keyhold.RootCMK, v1, "mi-a"),
		wkey("e3", 1, keyhold.RootCMK, v1, "mi-b"),
	}
	update(t, s, func(tx keyhold.Tx) error {
		for _, k := range keys {
			if err := tx.PutWrappedKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	list := func(f keyhold.WrappedKeyFilter) []*keyhold.WrappedKey {
		t.Helper()
		var got []*keyhold.WrappedKey
		view(t, s, func(tx keyhold.Tx) (err error) {
			got, err = tx.ListWrappedKeys(ctx, f)
			return err
		})
		return got
	}
	equal(t, "all", list(keyhold.WrappedKeyFilter{}), keys)
	equal(t, "mi-a", wkNames(list(keyhold.WrappedKeyFilter{PrincipalID: "mi-a"})), []string{"e1/1/CMK", "e1/2/CMK", "e2/2/CMK"})
	equal(t, "MMK", wkNames(list(keyhold.WrappedKeyFilter{Root: keyhold.RootMMK})), []string{"e2/1/MMK"})
	equal(t, "mi-a not on v2", wkNames(list(keyhold.WrappedKeyFilter{PrincipalID: "mi-a", ExceptKeyID: v2})), []string{"e1/1/CMK", "e2/2/CMK"})
	equal(t, "page 1", wkNames(list(keyhold.WrappedKeyFilter{PrincipalID: "mi-a", Limit: 2})), []string{"e1/1/CMK", "e1/2/CMK"})
	equal(t, "page 2", wkNames(list(keyhold.WrappedKeyFilter{PrincipalID: "mi-a", AfterEnvID: "e1", AfterEpoch: 2, Limit: 2})), []string{"e2/2/CMK"})
	equal(t, "after e2/1", wkNames(list(keyhold.WrappedKeyFilter{AfterEnvID: "e2", AfterEpoch: 1})), []string{"e2/2/CMK", "e3/1/CMK"})
	equal(t, "nobody", len(list(keyhold.WrappedKeyFilter{PrincipalID: "mi-z"})), 0)
}

// testPolicyWrappedKeys: the CMK wraps of the current epoch of the
// environments linked to a policy (named in any case), and nothing of
// other epochs, other roots, other policies or unlinked environments.
func testPolicyWrappedKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	const pol = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/Pol"
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, tenant("t1")); err != nil {
			return err
		}
		for _, e := range []struct {
			id     string
			epoch  uint32
			policy string
		}{{"e1", 2, pol}, {"e2", 1, strings.ToUpper(pol)}, {"e3", 1, pol + "2"}, {"e4", 1, ""}} {
			en := env(e.id, "t1")
			en.Epoch, en.PolicyID = e.epoch, e.policy
			if err := tx.CreateEnvironment(ctx, en); err != nil {
				return err
			}
		}
		for _, k := range []*keyhold.WrappedKey{
			wkey("e1", 1, keyhold.RootCMK, "kid/1", "mi-a"), // an old epoch
			wkey("e1", 2, keyhold.RootCMK, "kid/2", "mi-a"),
			wkey("e1", 2, keyhold.RootMMK, "mmk/1", ""),
			wkey("e2", 1, keyhold.RootCMK, "kid/1", "mi-a"),
			wkey("e3", 1, keyhold.RootCMK, "kid/1", "mi-b"),
			wkey("e4", 1, keyhold.RootCMK, "kid/1", "mi-a"),
		} {
			if err := tx.PutWrappedKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	var got []*keyhold.WrappedKey
	view(t, s, func(tx keyhold.Tx) (err error) {
		got, err = tx.PolicyWrappedKeys(ctx, strings.ToLower(pol))
		return err
	})
	equal(t, "linked", wkNames(got), []string{"e1/2/CMK", "e2/1/CMK"})
	if got[0].KeyID != "kid/2" || got[0].PrincipalID != "mi-a" || string(got[0].Ciphertext) != "wk:e1/2/CMK" {
		t.Errorf("e1's key read back as %+v", got[0])
	}
	view(t, s, func(tx keyhold.Tx) (err error) {
		got, err = tx.PolicyWrappedKeys(ctx, pol+"3")
		return err
	})
	equal(t, "no environment", len(got), 0)
}

// testResealRow: a row is re-sealed only at its version and epoch, keeping
// its version and update time; otherwise CodeConflict and no change.
func testResealRow(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutRow(ctx, row("e1", "T", "a", 1, 1)); err != nil {
			return err
		}
		return tx.PutRow(ctx, row("e1", "T", "a", 2, 1))
	})
	moved := row("e1", "T", "a", 2, 2)
	moved.Ciphertext = []byte("resealed")
	for _, tc := range []struct {
		name    string
		version uint64
		from    uint32
	}{{"old version", 1, 1}, {"newer version", 3, 1}, {"other epoch", 2, 3}} {
		r := *moved
		r.Version = tc.version
		err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.ResealRow(ctx, &r, tc.from) })
		wantCode(t, tc.name, err, keyhold.CodeConflict, `"a"`)
	}
	var got *keyhold.RowRecord
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.Row(ctx, "e1", "T", "a"); return err })
	equal(t, "row after refused reseals", got, row("e1", "T", "a", 2, 1))

	update(t, s, func(tx keyhold.Tx) error { return tx.ResealRow(ctx, moved, 1) })
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.Row(ctx, "e1", "T", "a"); return err })
	want := row("e1", "T", "a", 2, 2)
	want.Ciphertext = []byte("resealed")
	want.UpdatedAt = row("e1", "T", "a", 2, 1).UpdatedAt
	equal(t, "resealed row", got, want)
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.ResealRow(ctx, moved, 1) })
	wantCode(t, "reseal again from the old epoch", err, keyhold.CodeConflict)
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		r := *row("e1", "T", "gone", 1, 2)
		return tx.ResealRow(ctx, &r, 1)
	})
	wantCode(t, "missing row", err, keyhold.CodeConflict)
}

// testEpochCounts: rows and files per epoch, epochs without items left
// out, other environments not counted.
func testEpochCounts(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	update(t, s, func(tx keyhold.Tx) error {
		for i, ep := range []uint32{1, 1, 3, 3, 3} {
			if err := tx.PutRow(ctx, row("e1", "T", fmt.Sprint(i), 1, ep)); err != nil {
				return err
			}
		}
		if err := tx.PutRow(ctx, row("e2", "T", "x", 1, 1)); err != nil {
			return err
		}
		for i, ep := range []uint32{2, 3} {
			f := &keyhold.FileRecord{EnvID: "e1", Name: fmt.Sprint("f", i), Generation: fmt.Sprint("g", i), Epoch: ep, Version: 1, UpdatedAt: at(0)}
			if _, err := tx.PutFile(ctx, f); err != nil {
				return err
			}
		}
		return nil
	})
	var got []keyhold.EpochCount
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.EpochCounts(ctx, "e1"); return err })
	equal(t, "e1", got, []keyhold.EpochCount{{Epoch: 1, Rows: 2}, {Epoch: 2, Files: 1}, {Epoch: 3, Rows: 3, Files: 1}})
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.EpochCounts(ctx, "nope"); return err })
	equal(t, "unknown environment", len(got), 0)
}

// testKeyVersionUses: the later of two uses is kept, and apart from it the
// later end of retention (an earlier use may ask to be kept longer: an
// unlink's 30 days against a rotation's 28); names compare
// case-insensitively, and each key lists only its own versions.
func testKeyVersionUses(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		for _, u := range []*keyhold.KeyVersionUse{
			{VaultName: "Vault1", KeyName: "Key", Version: "bb", LastUsedAt: at(time.Hour)},
			{VaultName: "vault1", KeyName: "KEY", Version: "BB", LastUsedAt: at(time.Minute)}, // earlier: ignored
			{VaultName: "vault1", KeyName: "key", Version: "aa", LastUsedAt: at(time.Minute)},
			{VaultName: "vault1", KeyName: "key", Version: "aa", LastUsedAt: at(2 * time.Hour)}, // later: kept
			{VaultName: "vault1", KeyName: "other", Version: "cc", LastUsedAt: at(0)},
			{VaultName: "vault1", KeyName: "kept", Version: "dd", LastUsedAt: at(time.Hour), RetainUntil: at(30 * time.Hour)},
			{VaultName: "vault1", KeyName: "kept", Version: "dd", LastUsedAt: at(2 * time.Hour), RetainUntil: at(29 * time.Hour)}, // later use, earlier end: both maxima kept
			{VaultName: "vault1", KeyName: "kept", Version: "ee", LastUsedAt: at(time.Hour), RetainUntil: at(28 * time.Hour)},
			{VaultName: "vault1", KeyName: "kept", Version: "ee", LastUsedAt: at(time.Minute), RetainUntil: at(31 * time.Hour)}, // earlier use, later end
		} {
			if err := tx.TouchKeyVersion(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
	var got []*keyhold.KeyVersionUse
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.KeyVersionUses(ctx, "VAULT1", "key"); return err })
	equal(t, "uses", got, []*keyhold.KeyVersionUse{
		{VaultName: "vault1", KeyName: "key", Version: "aa", LastUsedAt: at(2 * time.Hour)},
		{VaultName: "Vault1", KeyName: "Key", Version: "bb", LastUsedAt: at(time.Hour)},
	})
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.KeyVersionUses(ctx, "vault1", "kept"); return err })
	equal(t, "retention", got, []*keyhold.KeyVersionUse{
		{VaultName: "vault1", KeyName: "kept", Version: "dd", LastUsedAt: at(2 * time.Hour), RetainUntil: at(30 * time.Hour)},
		{VaultName: "vault1", KeyName: "kept", Version: "ee", LastUsedAt: at(time.Hour), RetainUntil: at(31 * time.Hour)},
	})
	view(t, s, func(tx keyhold.Tx) (err error) { got, err = tx.KeyVersionUses(ctx, "vault2", "key"); return err })
	equal(t, "no uses", len(got), 0)
}
