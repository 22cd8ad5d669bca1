package platform

import (
	"context"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/vault"
)

// replicaAt opens a second platform over f's store, as a replica whose
// vault renders its addresses with base (its listen address when no
// public URL is configured), and returns f's fixture as seen through it.
func replicaAt(t *testing.T, f *cmkFixture, base string) *cmkFixture {
	t.Helper()
	ctx := context.Background()
	kv, err := vault.New(vault.Config{Store: f.store, MasterKey: f.master, Clock: f.clock, BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	// Its own runner, not run: its rotations would run on f's.
	runner, err := ops.New(ops.Config{Store: f.store, Owner: "replica-b"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(ctx, Config{Store: f.store, MasterKey: f.master, Clock: f.clock, Issuer: base, Ops: runner, Vault: kv,
		CMK: func(id *keyhold.Identity) keyhold.KeyWrapper { return keyprovider.NewBuiltin(kv, id) }})
	if err != nil {
		kv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); kv.Close() })
	bf := *f.fixture
	bf.p = p
	return &cmkFixture{fixture: &bf, kv: kv, arm: f.arm, runner: runner, sub: f.sub}
}

// TestReplicaAddressesAgree: replicas at different addresses share one
// store. A wrap is stored naming no address (/vaults/{vault}/keys/…), so
// neither replica sees the other's wraps as stale and rewraps them (the
// churn issue 12 measured: 23 rotations in 7 minutes, with no rotation),
// and each unwraps the other's. Ids stored by the previous release, full
// URLs of the path form with a replica's host, still unwrap on both and
// are not stale either.
func TestReplicaAddressesAgree(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, a *cmkFixture) {
		ctx := context.Background()
		b := replicaAt(t, a, "https://10.0.0.2:9443")
		v := a.newVault(t, "kv-replicas", true)
		k := a.newKey(t, v, "k")
		pol := a.newPolicy(t, "pol", v, "k", nil)
		a.grantKey(t, pol, v, "k")
		e := a.managedEnv(t, "e")
		c := a.fill(t, e.ID, 4, 10)
		a.succeed(t, "link", func() (*keyhold.Operation, error) { return a.p.LinkPolicy(a.ctx, e.ID, pol.SystemID) })

		want := "/vaults/kv-replicas/keys/k/" + k.Version.Version
		wks := a.wrapped(t, e.ID)
		if len(wks) != 1 || wks[0].KeyID != want {
			t.Fatalf("stored wrapped keys %v; want one under %s, naming no address", describeKeys(wks), want)
		}
		pickups := func(when string) {
			t.Helper()
			for _, r := range []*cmkFixture{a, b} {
				if n, err := r.p.PickUpRotations(ctx); err != nil || n != 0 {
					t.Fatalf("%s: PickUpRotations on %s = %d, %v; want 0: nothing rotated", when, r.kv.VaultURI("kv-replicas"), n, err)
				}
			}
		}
		pickups("after the link")
		b.check(t, e.ID, c) // B unwraps what A wrapped
		a.check(t, e.ID, c)

		// The previous release's form: the full path-form URL with the
		// host of the replica that wrapped it.
		for _, old := range []string{"https://127.0.0.1:8443/vaults/kv-replicas/keys/k/" + k.Version.Version,
			"https://10.0.0.9:8443/Vaults/KV-REPLICAS/keys/k/" + strings.ToUpper(k.Version.Version)} {
			wk := *wks[0]
			wk.KeyID = old
			if err := a.store.Update(ctx, func(tx keyhold.Tx) error { return tx.PutWrappedKey(ctx, &wk) }); err != nil {
				t.Fatal(err)
			}
			pickups("with " + old + " stored")
			a.check(t, e.ID, c)
			b.check(t, e.ID, c)
		}
		if ops := a.operations(t, pol.ID()); len(ops) != 0 {
			t.Fatalf("operations on the policy: %+v; want none", ops)
		}
	})
}
