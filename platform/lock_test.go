package platform

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// lockWorld is one linked environment with data, on its own vault, key and
// policy.
type lockWorld struct {
	v        *keyhold.Vault
	key      string
	kid      string // the versioned kid the environment's key is wrapped under
	pol      *keyhold.EnterprisePolicy
	env      *keyhold.Environment
	data     *content
	grantSc  string
	grantNme string
}

func (f *cmkFixture) lockWorld(t *testing.T, name string) *lockWorld {
	t.Helper()
	w := &lockWorld{key: "k"}
	w.v = f.newVault(t, "kv-"+name, true)
	w.kid = f.newKey(t, w.v, w.key).KID
	w.pol = f.newPolicy(t, "pol-"+name, w.v, w.key, nil)
	w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
	w.env = f.managedEnv(t, "env-"+name)
	f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, w.env.ID, w.pol.SystemID) })
	w.data = f.fill(t, w.env.ID, 6, 2*ChunkSize+17, 5)
	f.check(t, w.env.ID, w.data)
	return w
}

func (f *cmkFixture) health(t *testing.T, pol *keyhold.EnterprisePolicy, want keyhold.HealthStatus) {
	t.Helper()
	got, err := f.p.CheckPolicyHealth(context.Background(), pol.ID())
	if err != nil || got != want {
		t.Fatalf("CheckPolicyHealth = %s, %v; want %s", got, err, want)
	}
	var stored *keyhold.EnterprisePolicy
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) (err error) {
		stored, err = tx.Policy(context.Background(), pol.SubscriptionID, pol.ResourceGroup, pol.Name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if stored.HealthStatus != want {
		t.Fatalf("stored health %s, want %s", stored.HealthStatus, want)
	}
}

// healthAudits counts the audit entries of pol's health changes.
func (f *cmkFixture) healthAudits(t *testing.T, pol *keyhold.EnterprisePolicy) int {
	t.Helper()
	var n int
	if err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: pol.TenantID, Limit: 1000})
		for _, e := range es {
			if e.Action == auditPolicyHealth && e.Target == pol.ID() {
				if e.ActorID != systemActorID || !strings.Contains(e.Detail, "->") {
					t.Errorf("health audit entry %+v: want the system actor and the change", e)
				}
				n++
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// requireLocked checks that the environment is Locked and that its data is
// refused, to the bootstrap Global Administrator too, with a message that
// names the policy and the cause.
func (f *cmkFixture) requireLocked(t *testing.T, w *lockWorld, cause string) {
	t.Helper()
	if s := f.env(t, w.env.ID).State; s != keyhold.StateLocked {
		t.Fatalf("environment state %s, want Locked", s)
	}
	_, err := f.p.GetRow(f.ctx, w.env.ID, "accounts", "r0000")
	if keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
		t.Fatalf("GetRow on a locked environment: %v, want EnvironmentLocked", err)
	}
	msg := keyhold.ErrorMessage(err)
	for _, want := range []string{"is locked", w.pol.ID(), cause, "re-enables"} {
		if !strings.Contains(msg, want) {
			t.Errorf("lock message %q lacks %q", msg, want)
		}
	}
	if _, _, err := f.p.OpenFile(f.ctx, w.env.ID, "file-0.bin"); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
		t.Errorf("OpenFile on a locked environment: %v, want EnvironmentLocked", err)
	}
	if _, err := f.p.PutRow(f.ctx, w.env.ID, "accounts", "new", json.RawMessage(`{}`)); keyhold.ErrorCode(err) != keyhold.CodeEnvironmentLocked {
		t.Errorf("PutRow on a locked environment: %v, want EnvironmentLocked", err)
	}
}

// TestLockOnRevocation: each way of revoking the policy's key access locks
// its environment; restoring access makes the policy Healthy but leaves the
// environment Locked until an administrator re-enables it, and then every
// row and file reads back.
func TestLockOnRevocation(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		for i, tr := range revocations() {
			t.Run(tr.name, func(t *testing.T) {
				w := tr.world(t, f, strings.Repeat("x", i+1))
				f.health(t, w.pol, keyhold.HealthHealthy)
				if err := f.p.EnableEnvironment(f.ctx, w.env.ID); keyhold.ErrorCode(err) != keyhold.CodeConflict {
					t.Errorf("EnableEnvironment on an Enabled environment: %v, want Conflict", err)
				}
				tr.revoke(t, f, w)
				f.health(t, w.pol, keyhold.HealthUnhealthy)
				f.requireLocked(t, w, tr.cause)
				if got := f.auditActions(t, w.env.ID); got[len(got)-1] != auditEnvLock {
					t.Errorf("audit ends %v, want %s", got, auditEnvLock)
				}
				// Unchanged health: no second audit entry, still locked.
				n := f.healthAudits(t, w.pol)
				f.health(t, w.pol, keyhold.HealthUnhealthy)
				if m := f.healthAudits(t, w.pol); m != n || n != 2 {
					t.Errorf("policy.health audit entries %d then %d, want 2 (Undetermined->Healthy, Healthy->Unhealthy) both times", n, m)
				}
				if err := f.p.EnableEnvironment(f.ctx, w.env.ID); keyhold.ErrorCode(err) == "" {
					t.Fatal("EnableEnvironment succeeded with access revoked")
				}
				tr.restore(t, f, w)
				f.health(t, w.pol, keyhold.HealthHealthy)
				f.requireLocked(t, w, tr.cause) // restored access unlocks nothing by itself
				if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
					t.Fatalf("EnableEnvironment: %v", err)
				}
				if s := f.env(t, w.env.ID).State; s != keyhold.StateEnabled {
					t.Fatalf("state after enable %s", s)
				}
				f.check(t, w.env.ID, w.data)
			})
		}
	})
}

// TestLockOldKeyVersion: the environment's key is wrapped under version 1
// of the policy's key; disabling version 1 and creating a version 2 of the
// same name does not unlock it: only re-enabling version 1 does.
func TestLockOldKeyVersion(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		w := f.lockWorld(t, "version")
		v1 := kidVersion(w.kid)
		no, yes := false, true
		if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, w.key, v1, keyhold.KeyAttributes{Enabled: &no}, nil, nil); err != nil {
			t.Fatal(err)
		}
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		f.requireLocked(t, w, keyhold.InnerKeyDisabled)
		f.newKey(t, w.v, w.key) // a new current version, same name
		f.health(t, w.pol, keyhold.HealthUnhealthy)
		err := f.p.EnableEnvironment(f.ctx, w.env.ID)
		if keyhold.ErrorCode(err) != keyhold.CodeForbidden || !strings.Contains(keyhold.ErrorMessage(err), "stays locked") {
			t.Fatalf("EnableEnvironment with only a new version: %v, want Forbidden, stays locked", err)
		}
		f.requireLocked(t, w, keyhold.InnerKeyDisabled)
		// A platform admin without Reader on the policy may not enable.
		admin, _ := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
		if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, w.key, v1, keyhold.KeyAttributes{Enabled: &yes}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.p.EnableEnvironment(admin, w.env.ID); keyhold.ErrorCode(err) != keyhold.CodeForbidden {
			t.Fatalf("EnableEnvironment without Reader: %v, want Forbidden", err)
		}
		if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
			t.Fatalf("EnableEnvironment with version 1 enabled again: %v", err)
		}
		f.health(t, w.pol, keyhold.HealthHealthy)
		f.check(t, w.env.ID, w.data)
	})
}

// flakyWrapper delegates to a real wrapper until fail is set, and then
// answers KeyVaultUnavailable, as a vault that does not answer.
type flakyWrapper struct {
	inner keyhold.KeyWrapper
	fail  *atomic.Bool
}

var errVaultDown = keyhold.Errorf(keyhold.CodeKeyVaultUnavailable, "the key vault did not answer (injected)")

func (w flakyWrapper) Wrap(ctx context.Context, keyID string, pt []byte) (string, []byte, error) {
	if w.fail.Load() {
		return "", nil, errVaultDown
	}
	return w.inner.Wrap(ctx, keyID, pt)
}

func (w flakyWrapper) Unwrap(ctx context.Context, kid string, ct []byte) ([]byte, error) {
	if w.fail.Load() {
		return nil, errVaultDown
	}
	return w.inner.Unwrap(ctx, kid, ct)
}

func (w flakyWrapper) Probe(ctx context.Context, keyID string) error {
	if w.fail.Load() {
		return errVaultDown
	}
	return w.inner.(keyhold.KeyProber).Probe(ctx, keyID)
}

// TestTransientFaultDoesNotLock: a vault that does not answer makes the
// policy Warning, locks nothing, serves reads and writes from the key cache
// until its TTL, then answers KeyVaultUnavailable (503); nothing written is
// lost.
func TestTransientFaultDoesNotLock(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		fail := new(atomic.Bool)
		real := f.p.cmk
		f.p.cmk = func(id *keyhold.Identity) keyhold.KeyWrapper { return flakyWrapper{inner: real(id), fail: fail} }
		w := f.lockWorld(t, "flaky")
		f.health(t, w.pol, keyhold.HealthHealthy)
		if _, err := f.p.GetRow(f.ctx, w.env.ID, "accounts", "r0000"); err != nil { // fills the cache
			t.Fatal(err)
		}
		fail.Store(true)
		f.health(t, w.pol, keyhold.HealthWarning)
		if s := f.env(t, w.env.ID).State; s != keyhold.StateEnabled {
			t.Fatalf("state after a transient fault %s, want Enabled", s)
		}
		if err := f.readBack(w.env.ID, w.data); err != nil {
			t.Fatalf("cached reads during the fault: %v", err)
		}
		if _, err := f.p.PutRow(f.ctx, w.env.ID, "accounts", "during", json.RawMessage(`{"during":true}`)); err != nil {
			t.Fatalf("cached write during the fault: %v", err)
		}
		w.data.rows["accounts/during"] = `{"during":true}`
		f.clock.Advance(DefaultKeyCacheTTL + time.Minute)
		if _, err := f.p.GetRow(f.ctx, w.env.ID, "accounts", "r0000"); keyhold.ErrorCode(err) != keyhold.CodeKeyVaultUnavailable {
			t.Fatalf("read after the cache TTL: %v, want KeyVaultUnavailable (503)", err)
		}
		f.health(t, w.pol, keyhold.HealthWarning)
		if s := f.env(t, w.env.ID).State; s != keyhold.StateEnabled {
			t.Fatalf("state %s, want Enabled", s)
		}
		fail.Store(false)
		f.health(t, w.pol, keyhold.HealthHealthy)
		f.check(t, w.env.ID, w.data)
		if err := f.p.CheckAllPolicyHealth(context.Background()); err != nil {
			t.Fatalf("CheckAllPolicyHealth: %v", err)
		}
	})
}

// revocation is one way of taking a policy's key access away (and back):
// the triggers the spec's "lock environments by revoking key vault and/or
// key permission access" lists. world builds the environment it revokes
// (f.lockWorld when nil).
type revocation struct {
	name            string
	cause           string
	revoke, restore func(t *testing.T, f *cmkFixture, w *lockWorld)
	makeWorld       func(t *testing.T, f *cmkFixture, name string) *lockWorld
}

func (r revocation) world(t *testing.T, f *cmkFixture, name string) *lockWorld {
	if r.makeWorld != nil {
		return r.makeWorld(t, f, name)
	}
	return f.lockWorld(t, name)
}

// revocations are the triggers that take access away and can give it
// back; deleting the policy with its resource group has its own test
// (lock_triggers_test.go).
func revocations() []revocation {
	no, yes := false, true
	putVault := func(t *testing.T, f *cmkFixture, w *lockWorld, mod func(v *keyhold.Vault)) {
		t.Helper()
		v, err := f.kv.GetVault(f.ctx, f.sub, cmkRG, w.v.Name)
		if err != nil {
			t.Fatal(err)
		}
		mod(v)
		if _, err := f.kv.PutVault(f.ctx, v); err != nil {
			t.Fatalf("PutVault: %v", err)
		}
	}
	return []revocation{
		{"role-assignment", keyhold.InnerForbiddenByRbac,
			func(t *testing.T, f *cmkFixture, w *lockWorld) { f.revoke(t, w.grantSc, w.grantNme) },
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				w.grantSc, w.grantNme = f.grantKey(t, w.pol, w.v, w.key)
			}, nil},
		{"key-disabled", keyhold.InnerKeyDisabled,
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, w.key, "", keyhold.KeyAttributes{Enabled: &no}, nil, nil); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, w.key, "", keyhold.KeyAttributes{Enabled: &yes}, nil, nil); err != nil {
					t.Fatal(err)
				}
			}, nil},
		{"public-access-disabled", keyhold.InnerForbiddenByFirewall,
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				putVault(t, f, w, func(v *keyhold.Vault) {
					v.PublicNetworkAccess, v.NetworkACLs.Bypass = keyhold.PublicAccessDisable, keyhold.BypassNone
				})
			},
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				putVault(t, f, w, func(v *keyhold.Vault) {
					v.PublicNetworkAccess, v.NetworkACLs.Bypass = keyhold.PublicAccessEnabled, keyhold.BypassAzureServices
				})
			}, nil},
		{"default-deny", keyhold.InnerForbiddenByFirewall,
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				putVault(t, f, w, func(v *keyhold.Vault) {
					v.NetworkACLs.DefaultAction, v.NetworkACLs.Bypass = keyhold.NetworkDeny, keyhold.BypassNone
				})
			},
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				putVault(t, f, w, func(v *keyhold.Vault) {
					v.NetworkACLs.DefaultAction, v.NetworkACLs.Bypass = keyhold.NetworkAllow, keyhold.BypassAzureServices
				})
			}, nil},
		{"vault-deleted", keyhold.CodeVaultNotFound,
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				if err := f.kv.DeleteVault(f.ctx, f.sub, cmkRG, w.v.Name); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				if _, err := f.kv.RecoverVault(f.ctx, f.sub, cmkRG, w.v.Name); err != nil {
					t.Fatal(err)
				}
			}, nil},
		{"key-version-disabled", keyhold.InnerKeyDisabled,
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				v1 := kidVersion(w.kid)
				if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, w.key, v1, keyhold.KeyAttributes{Enabled: &no}, nil, nil); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				v1 := kidVersion(w.kid)
				if _, err := f.kv.UpdateKey(f.ctx, w.v.Name, w.key, v1, keyhold.KeyAttributes{Enabled: &yes}, nil, nil); err != nil {
					t.Fatal(err)
				}
			}, nil},
		{"key-deleted", keyhold.CodeKeyNotFound,
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				if _, err := f.kv.DeleteKey(f.ctx, w.v.Name, w.key); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				if _, err := f.kv.RecoverDeletedKey(f.ctx, w.v.Name, w.key); err != nil {
					t.Fatal(err)
				}
			}, nil},
		{"access-policy", keyhold.InnerAccessDenied,
			func(t *testing.T, f *cmkFixture, w *lockWorld) {
				if _, err := f.kv.UpdateAccessPolicies(f.ctx, f.sub, cmkRG, w.v.Name, "remove", []keyhold.AccessPolicy{
					{TenantID: w.pol.TenantID, ObjectID: w.pol.PrincipalID}}); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T, f *cmkFixture, w *lockWorld) { f.grantAccessPolicy(t, w.v, w.pol.PrincipalID) },
			func(t *testing.T, f *cmkFixture, name string) *lockWorld { return f.accessPolicyLockWorld(t, name) }},
	}
}

// grantAccessPolicy gives principal Get, Wrap Key and Unwrap Key on the
// keys of an access-policy vault.
func (f *cmkFixture) grantAccessPolicy(t *testing.T, v *keyhold.Vault, principal string) {
	t.Helper()
	if _, err := f.kv.UpdateAccessPolicies(f.ctx, f.sub, cmkRG, v.Name, "add", []keyhold.AccessPolicy{
		{TenantID: f.creds.TenantID, ObjectID: principal, Keys: []string{keyhold.PermGet, keyhold.PermWrapKey, keyhold.PermUnwrapKey}}}); err != nil {
		t.Fatal(err)
	}
}

// accessPolicyLockWorld is lockWorld on a vault that authorizes with
// access policies rather than RBAC.
func (f *cmkFixture) accessPolicyLockWorld(t *testing.T, name string) *lockWorld {
	t.Helper()
	w := &lockWorld{key: "k"}
	w.v = &keyhold.Vault{SubscriptionID: f.sub, ResourceGroup: cmkRG, Name: "kv-" + name, Location: cmkLocation, EnablePurgeProtection: true}
	if _, err := f.kv.PutVault(f.ctx, w.v); err != nil {
		t.Fatal(err)
	}
	if _, err := f.kv.UpdateAccessPolicies(f.ctx, f.sub, cmkRG, w.v.Name, "add", []keyhold.AccessPolicy{
		{TenantID: f.creds.TenantID, ObjectID: f.adminID(), Keys: []string{keyhold.PermCreate, keyhold.PermGet, keyhold.PermUpdate, keyhold.PermDelete, keyhold.PermRecover}}}); err != nil {
		t.Fatal(err)
	}
	w.kid = f.newKey(t, w.v, w.key).KID
	w.pol = f.newPolicy(t, "pol-"+name, w.v, w.key, nil)
	f.grantAccessPolicy(t, w.v, w.pol.PrincipalID)
	w.env = f.managedEnv(t, "env-"+name)
	f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, w.env.ID, w.pol.SystemID) })
	w.data = f.fill(t, w.env.ID, 6, 2*ChunkSize+17, 5)
	f.check(t, w.env.ID, w.data)
	return w
}

// TestMonitorLocksEachTrigger: with the change feed running at its
// default interval, as the server runs it, and no probe called by hand,
// every revocation locks its environment within seconds; after access is
// restored an administrator re-enables it and every row and file reads
// back.
func TestMonitorLocksEachTrigger(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.p.RunChangeFeed(ctx, 0) }()
		defer func() { cancel(); <-done }()
		for i, tr := range revocations() {
			t.Run(tr.name, func(t *testing.T) {
				w := tr.world(t, f, "m"+strings.Repeat("x", i+1))
				tr.revoke(t, f, w)
				took := f.waitState(t, w.env.ID, keyhold.StateLocked, 10*time.Second)
				t.Logf("locked %v after the revocation", took)
				f.requireLocked(t, w, tr.cause)
				tr.restore(t, f, w)
				if err := f.p.EnableEnvironment(f.ctx, w.env.ID); err != nil {
					t.Fatalf("EnableEnvironment: %v", err)
				}
				f.check(t, w.env.ID, w.data)
			})
		}
	})
}

// kidVersion returns the version a key id names, "" if none or not a key id.
func kidVersion(kid string) string {
	k, _ := keyhold.ParseKeyID(kid)
	return k.Version
}
