package platform

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/hsm/hsmtest"
	"github.com/keyhold/keyhold/keyprovider"
	"github.com/keyhold/keyhold/mhsm"
	"github.com/keyhold/keyhold/ops"
	"github.com/keyhold/keyhold/sqlstore/storetest"
	"github.com/keyhold/keyhold/vault"
)

// newHSMCMKFixture is newCMKFixture whose platform also reaches the keys
// of a Managed HSM over the test SoftHSM2 token, as the server wires it:
// Config.ManagedHSM, and wrappers that route HSM key ids to the HSM.
func newHSMCMKFixture(t *testing.T, store keyhold.Store) (*cmkFixture, *mhsm.Service) {
	t.Helper()
	ctx := context.Background()
	master := testMasterKey(t)
	t.Cleanup(master.Destroy)
	clock := newFakeClock()
	runner, err := ops.New(ops.Config{Store: store, Owner: "test-" + uuid.NewString()[:8], LeaseTTL: 5 * time.Second,
		PollInterval: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := vault.New(vault.Config{Store: store, MasterKey: master, Clock: clock, BaseURL: cmkBase})
	if err != nil {
		t.Fatal(err)
	}
	h, err := mhsm.New(mhsm.Config{Store: store, Clock: clock, BaseURL: cmkBase, HSM: hsmtest.Token(t)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(ctx, Config{Store: store, MasterKey: master, Clock: clock, Issuer: cmkBase, Ops: runner, Vault: kv, ManagedHSM: h,
		CMK: func(id *keyhold.Identity) keyhold.KeyWrapper {
			return keyprovider.ByVault{Vault: keyprovider.NewBuiltin(kv, id), HSM: keyprovider.NewManagedHSM(h, id)}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); h.Close(); kv.Close() })
	creds, _, err := p.BootstrapCustomer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := &fixture{p: p, store: store, master: master, clock: clock, creds: creds}
	base.ctx = base.login(t, creds.TenantID, creds.ClientID, creds.ClientSecret)
	f := &cmkFixture{fixture: base, kv: kv, arm: arm.New(arm.Config{Store: store, Clock: clock}), runner: runner, sub: creds.SubscriptionID}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := f.arm.RegisterProvider(f.ctx, f.sub, keyhold.NamespaceKeyVault); err != nil {
		t.Fatal(err)
	}
	if _, err := f.arm.PutResourceGroup(f.ctx, &keyhold.ResourceGroup{SubscriptionID: f.sub, Name: cmkRG, Location: cmkLocation}); err != nil {
		t.Fatal(err)
	}
	return f, h
}

// TestCMKManagedHSMFlow is the spec's CMK flow on a Managed HSM key: the
// link (refused until the policy's identity holds Crypto User on the key),
// rotation pickup, the key-version report, and each lock trigger (the
// assignment removed, the key disabled, the key deleted, the HSM deleted)
// with its restore and re-enable.
func TestCMKManagedHSMFlow(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f, h := newHSMCMKFixture(t, open(t))
		admin := f.adminID()
		hsm := &keyhold.ManagedHSM{SubscriptionID: f.sub, ResourceGroup: cmkRG, Name: "contoso-hsm", Location: cmkLocation,
			InitialAdminObjectIDs: []string{admin}, EnablePurgeProtection: true, SoftDeleteRetentionDays: 7}
		if _, err := h.PutManagedHSM(f.ctx, hsm, false); err != nil {
			t.Fatal(err)
		}
		req := keyhold.SecurityDomainRequest{Quorum: 2}
		for i := range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			req.Keys = append(req.Keys, keyhold.SecurityDomainKey{KID: string(rune('a' + i)), N: k.N.Bytes(), E: k.E})
		}
		if _, err := h.DownloadSecurityDomain(f.ctx, hsm.Name, req); err != nil {
			t.Fatal(err)
		}
		assign := func(name, scope, role, principal string) {
			t.Helper()
			if _, err := h.PutHSMRoleAssignment(f.ctx, hsm.Name, &keyhold.HSMRoleAssignment{Name: name, Scope: scope,
				RoleDefinitionID: keyhold.HSMRoleDefinitionPrefix + role, PrincipalID: principal}); err != nil {
				t.Fatal(err)
			}
		}
		assign("10000000-0000-4000-8000-000000000001", "/", keyhold.RoleHSMCryptoUser, admin)
		assign("10000000-0000-4000-8000-000000000002", "/", keyhold.RoleHSMCryptoOfficer, admin)
		k1, err := h.CreateKey(f.ctx, hsm.Name, "cmk", keyhold.CreateKeyParams{Type: keyhold.KeyTypeRSAHSM})
		if err != nil {
			t.Fatal(err)
		}
		pol := f.newPolicy(t, "pol-hsm", &keyhold.Vault{}, "cmk", func(p *keyhold.EnterprisePolicy) { p.KeyVaultID = hsm.ID() })
		env := f.managedEnv(t, "env-hsm")
		data := f.fill(t, env.ID, 6, 2*ChunkSize+17, 5)

		// Refused while the identity holds no role on the key: nothing changes.
		if _, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("link without a role on the key: %v, want Forbidden", err)
		}
		if e := f.env(t, env.ID); e.KeyManagedBy == keyhold.KeyManagedByCustomer || e.PolicyID != "" {
			t.Fatalf("a refused link changed the environment: %+v", e)
		}
		grant := "10000000-0000-4000-8000-000000000003"
		assign(grant, "/keys/cmk", keyhold.RoleHSMCryptoUser, pol.PrincipalID)

		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		wks := f.wrapped(t, env.ID)
		if len(wks) != 1 || wks[0].Root != keyhold.RootCMK || wks[0].KeyID != k1.KID || wks[0].PrincipalID != pol.PrincipalID {
			t.Fatalf("after link: wrapped keys %v, want one under %s", describeKeys(wks), k1.KID)
		}
		f.check(t, env.ID, data)
		f.health(t, pol, keyhold.HealthHealthy)

		// Rotation: the new version is picked up; the report lists both.
		f.clock.Advance(time.Hour)
		k2, err := h.RotateKey(f.ctx, hsm.Name, "cmk")
		if err != nil {
			t.Fatal(err)
		}
		// A database writer swaps the new version's public key for one it
		// holds the private half of. The HSM's key versions carry no seal,
		// so it is the custody move that refuses: its new copy, wrapped
		// under the edited key, doesn't unwrap in the token. Nothing is
		// rewrapped, and the environment serves under k1; with the record
		// put back, the next pickup moves it to k2.
		var doc string
		if err := sqlDB(f.store).QueryRow(`SELECT doc FROM hsm_key_versions WHERE version_key = '` + strings.ToLower(k2.Version.Version) + `'`).Scan(&doc); err != nil {
			t.Fatal(err)
		}
		var edited keyhold.KeyVersion
		if err := json.Unmarshal([]byte(doc), &edited); err != nil {
			t.Fatal(err)
		}
		edited.N = attackerModulus(t)
		forged, err := json.Marshal(&edited)
		if err != nil {
			t.Fatal(err)
		}
		if n := storetest.Exec(t, f.store, `UPDATE hsm_key_versions SET doc = ? WHERE version_key = ?`, string(forged), strings.ToLower(k2.Version.Version)); n != 1 {
			t.Fatalf("edited %d key versions, want 1", n)
		}
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
			t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
		}
		// The rotation yields the environment it can't prove (as
		// TestRotationProvesItself): it rewraps nothing.
		failed := f.wait(t, f.operations(t, pol.ID())[0])
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].KeyID != k1.KID {
			t.Fatalf("after the refused rotation: wrapped keys %v, want one under %s", describeKeys(wks), k1.KID)
		}
		f.check(t, env.ID, data)
		storetest.Exec(t, f.store, `UPDATE hsm_key_versions SET doc = ? WHERE version_key = ?`, doc, strings.ToLower(k2.Version.Version))

		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
			t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
		}
		for _, op := range f.operations(t, pol.ID()) {
			if op.ID == failed.ID {
				continue
			}
			if op = f.wait(t, op); op.State != keyhold.OperationSucceeded {
				t.Fatalf("rotation %s %s %q", op.State, op.ErrorCode, op.ErrorMsg)
			}
		}
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].KeyID != k2.KID {
			t.Fatalf("after rotation: wrapped keys %v, want one under %s", describeKeys(wks), k2.KID)
		}
		f.check(t, env.ID, data)
		usage, err := f.p.KeyVersionUsage(f.ctx, pol.ID())
		if err != nil || len(usage) != 2 || usage[0].Version != k1.Version.Version || usage[0].LiveKeys != 0 ||
			!usage[1].Current || usage[1].LiveKeys != 1 || usage[1].KeyID != k2.KID {
			t.Fatalf("KeyVersionUsage = %s, %v", showUsage(usage), err)
		}

		off, on := false, true
		for _, tr := range []struct {
			name            string
			revoke, restore func()
		}{
			{"assignment removed",
				func() {
					if _, err := h.DeleteHSMRoleAssignment(f.ctx, hsm.Name, grant); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					grant = uuid.NewString()
					assign(grant, "/keys/cmk", keyhold.RoleHSMCryptoUser, pol.PrincipalID)
				}},
			{"key disabled",
				func() {
					if _, err := h.UpdateKey(f.ctx, hsm.Name, "cmk", "", keyhold.KeyAttributes{Enabled: &off}, nil, nil); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if _, err := h.UpdateKey(f.ctx, hsm.Name, "cmk", "", keyhold.KeyAttributes{Enabled: &on}, nil, nil); err != nil {
						t.Fatal(err)
					}
				}},
			{"key deleted",
				func() {
					if _, err := h.DeleteKey(f.ctx, hsm.Name, "cmk"); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if _, err := h.RecoverDeletedKey(f.ctx, hsm.Name, "cmk"); err != nil {
						t.Fatal(err)
					}
				}},
			{"HSM deleted",
				func() {
					if err := h.DeleteManagedHSM(f.ctx, f.sub, cmkRG, hsm.Name); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if _, err := h.PutManagedHSM(f.ctx, &keyhold.ManagedHSM{SubscriptionID: f.sub, ResourceGroup: cmkRG, Name: hsm.Name}, true); err != nil {
						t.Fatal(err)
					}
				}},
		} {
			tr.revoke()
			f.health(t, pol, keyhold.HealthUnhealthy)
			if s := f.env(t, env.ID).State; s != keyhold.StateLocked {
				t.Fatalf("%s: environment %s, want Locked", tr.name, s)
			}
			if _, err := f.p.GetRow(f.ctx, env.ID, "accounts", "r0000"); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
				t.Fatalf("%s: GetRow = %v, want EnvironmentLocked", tr.name, err)
			}
			if err := f.p.EnableEnvironment(f.ctx, env.ID); keyhold.ErrorCode(err) == "" {
				t.Fatalf("%s: re-enabled with the key unreachable", tr.name)
			}
			tr.restore()
			f.health(t, pol, keyhold.HealthHealthy)
			if err := f.p.EnableEnvironment(f.ctx, env.ID); err != nil {
				t.Fatalf("%s: EnableEnvironment: %v", tr.name, err)
			}
			f.check(t, env.ID, data)
		}
	})
}
