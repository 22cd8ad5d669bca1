package platform

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// platformAdmin creates a service principal with the Power Platform
// Administrator directory role (and no ARM role) and returns its context.
func (f *cmkFixture) platformAdmin(t *testing.T, role keyhold.DirectoryRole) (context.Context, string) {
	t.Helper()
	secret := crypt.NewClientSecret()
	pr := f.newPrincipal(t, keyhold.PrincipalServicePrincipal, secret, "")
	if role != "" {
		if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
			return tx.AssignDirectoryRole(context.Background(), pr.TenantID, pr.ID, role)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return f.login(t, pr.TenantID, pr.AppID, secret), pr.ID
}

// auditActions lists the actions audited for an environment, oldest first.
func (f *cmkFixture) auditActions(t testing.TB, envID string) []string {
	t.Helper()
	entries, err := f.p.ListAudit(f.ctx, keyhold.AuditFilter{EnvID: envID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		if strings.HasPrefix(entries[i].Action, "environment.") {
			out = append(out, entries[i].Action)
		}
	}
	return out
}

// TestCMKLifecycle walks the whole flow at the service level: link an
// environment holding rows and a multi-chunk file, swap it to a second
// policy and key, unlink it; after each step everything reads back, the
// environment's JSON shows its custody, and the wrapped keys are exactly
// the ones that should exist.
func TestCMKLifecycle(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v1 := f.newVault(t, "kv-contoso-one", true)
		key1 := f.newKey(t, v1, "env-key")
		pol1 := f.newPolicy(t, "policy-one", v1, "env-key", nil)
		f.grantKey(t, pol1, v1, "env-key")
		admin, adminID := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
		f.grant(t, adminID, keyhold.RoleReader, pol1.ID())

		env := f.managedEnv(t, "contoso-prod")
		c := f.fill(t, env.ID, 30, 2*ChunkSize+1234, 7)
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].Root != keyhold.RootMMK || wks[0].Epoch != 1 {
			t.Fatalf("before link: wrapped keys %v, want the epoch 1 MMK copy", describeKeys(wks))
		}

		// Link.
		op := f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, env.ID, pol1.SystemID) })
		if op.Kind != keyhold.OpLink || op.Target != env.ID || op.TenantID != f.creds.TenantID || op.CreatedBy != adminID || op.Done != op.Total || op.Total != 30+2 {
			t.Errorf("link operation %+v: want kind link on the environment, by the admin, 32 of 32 items re-keyed", op)
		}
		e := f.env(t, env.ID)
		b, _ := json.Marshal(e)
		for _, want := range []string{`"keyManagedBy":"Customer"`, `"policyId":"` + pol1.ID() + `"`, `"policySystemId":"` + pol1.SystemID + `"`,
			`"linkStatus":"Linked"`, `"encryptionStatus":"Succeeded"`, `"lastOperationId":"` + op.ID + `"`, `"state":"Enabled"`, `"epoch":2`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("environment JSON after link lacks %s: %s", want, b)
			}
		}
		wks := f.wrapped(t, env.ID)
		if len(wks) != 1 || wks[0].Root != keyhold.RootCMK || wks[0].Epoch != 2 || wks[0].PrincipalID != pol1.PrincipalID ||
			wks[0].KeyID != stored(key1.KID) {
			t.Fatalf("after link: wrapped keys %v, want only epoch 2 under %s as %s (the MMK copy and epoch 1 gone)", describeKeys(wks), key1.KID, pol1.PrincipalID)
		}
		// The audit entries of the writes moved with them (audit_seal.go).
		if cs := f.epochCounts(t, env.ID); len(cs) != 1 || cs[0] != (keyhold.EpochCount{Epoch: 2, Rows: 30, Files: 2, Audit: cs[0].Audit}) || cs[0].Audit == 0 {
			t.Fatalf("after link: items per epoch %v, want all 32 and their audit entries on epoch 2", cs)
		}
		f.check(t, env.ID, c)
		wantActions := []string{auditLinkStart, auditLinkDisable, auditLinkRewrap, auditLinkEnable, auditNewEpoch, auditDestroy}
		if got := f.auditActions(t, env.ID); !slices.Equal(got[len(got)-len(wantActions):], wantActions) {
			t.Errorf("audited %v, want it to end with %v", got, wantActions)
		}
		links, err := f.p.PolicyLinks(admin)
		if err != nil || len(links) != 1 || links[0].Environment.ID != env.ID || links[0].Policy == nil || links[0].Policy.SystemID != pol1.SystemID ||
			links[0].LastOperation == nil || links[0].LastOperation.ID != op.ID {
			t.Fatalf("PolicyLinks = %+v, %v", links, err)
		}
		got, err := f.p.GetOperation(admin, op.ID)
		if err != nil || got.State != keyhold.OperationSucceeded {
			t.Fatalf("GetOperation = %+v, %v", got, err)
		}

		// New writes land on the new epoch and read back.
		c2 := f.fill(t, env.ID, 3)
		for k, v := range c2.rows {
			c.rows[k] = v
		}

		// Swap to a second policy, with its own vault and key.
		v2 := f.newVault(t, "kv-contoso-two", true)
		key2 := f.newKey(t, v2, "env-key-2")
		pol2 := f.newPolicy(t, "policy-two", v2, "env-key-2", nil)
		f.grantKey(t, pol2, v2, "env-key-2")
		f.grant(t, adminID, keyhold.RoleReader, pol2.ID())
		op = f.succeed(t, "swap", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, env.ID, pol2.SystemID) })
		e = f.env(t, env.ID)
		if e.PolicyID != pol2.ID() || e.PolicySystemID != pol2.SystemID || e.KeyManagedBy != keyhold.KeyManagedByCustomer || e.Epoch != 3 ||
			e.State != keyhold.StateEnabled || e.EncryptionStatus != keyhold.EncryptionSucceeded || e.LastOperationID != op.ID {
			t.Fatalf("after swap: %+v", e)
		}
		wks = f.wrapped(t, env.ID)
		if len(wks) != 1 || wks[0].Epoch != 3 || wks[0].KeyID != stored(key2.KID) || wks[0].PrincipalID != pol2.PrincipalID {
			t.Fatalf("after swap: wrapped keys %v, want only epoch 3 under %s", describeKeys(wks), key2.KID)
		}
		f.check(t, env.ID, c)
		// The first key's version wraps nothing now.
		usage, err := f.p.KeyVersionUsage(admin, pol1.ID())
		if err != nil || len(usage) != 1 || usage[0].LiveKeys != 0 || !usage[0].Current || usage[0].LastUsedAt.IsZero() || !usage[0].SafeToDisableAt.IsZero() {
			t.Fatalf("KeyVersionUsage(policy one) = %s, %v: want its one, current, version with no live key and a last use", showUsage(usage), err)
		}

		// Unlink.
		op = f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(admin, env.ID, pol2.SystemID) })
		e = f.env(t, env.ID)
		b, _ = json.Marshal(e)
		if e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.PolicyID != "" || e.PolicySystemID != "" || e.LinkStatus != "" ||
			e.EncryptionStatus != keyhold.EncryptionSucceeded || e.State != keyhold.StateEnabled || e.Epoch != 3 || e.LastOperationID != op.ID ||
			strings.Contains(string(b), "policyId") || strings.Contains(string(b), "linkStatus") {
			t.Fatalf("after unlink: %s", b)
		}
		wks = f.wrapped(t, env.ID)
		if len(wks) != 1 || wks[0].Root != keyhold.RootMMK || wks[0].Epoch != 3 || wks[0].PrincipalID != "" {
			t.Fatalf("after unlink: wrapped keys %v, want only the epoch 3 MMK copy", describeKeys(wks))
		}
		f.check(t, env.ID, c)
		usage, err = f.p.KeyVersionUsage(admin, pol2.ID())
		if err != nil || len(usage) != 1 || usage[0].LiveKeys != 0 || usage[0].LastUsedAt.IsZero() {
			t.Fatalf("KeyVersionUsage(policy two) = %s, %v", showUsage(usage), err)
		}
		wantActions = []string{auditUnlinkStart, auditUnlinkDisable, auditUnlinkRewrap, auditUnlinkEnable}
		if got := f.auditActions(t, env.ID); !slices.Equal(got[len(got)-len(wantActions):], wantActions) {
			t.Errorf("audited %v, want it to end with %v", got, wantActions)
		}
	})
}

func showUsage(us []*keyhold.KeyVersionUsage) string {
	b, _ := json.Marshal(us)
	return string(b)
}

// envState is what a refused request must leave as it was.
type envState struct {
	env  string
	keys string
	ops  int
}

func (f *cmkFixture) state(t *testing.T, envID string) envState {
	t.Helper()
	e, _ := json.Marshal(f.env(t, envID))
	var keys []string
	for _, k := range f.wrapped(t, envID) {
		keys = append(keys, fmt.Sprintf("%d/%s/%s/%s/%x", k.Epoch, k.Root, k.PrincipalID, k.KeyID, sha256.Sum256(k.Ciphertext)))
	}
	return envState{env: string(e), keys: strings.Join(keys, " "), ops: len(f.operations(t, envID))}
}

// refusal is one request that must be refused with code, its message
// naming every one of mention, and change nothing.
type refusal struct {
	name    string
	env     func() string // the environment it is about
	do      func(envID string) error
	code    string
	inner   string
	mention []string
}

func (f *cmkFixture) runRefusals(t *testing.T, cases []refusal) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			envID := c.env()
			var data *content
			if f.env(t, envID).State == keyhold.StateEnabled {
				data = f.fill(t, envID, 1)
			}
			before := f.state(t, envID)
			err := c.do(envID)
			wantCode(t, err, c.code)
			var ke *keyhold.Error
			if c.inner != "" && (!errorsAs(err, &ke) || ke.Inner != c.inner) {
				t.Errorf("inner code of %v: want %s", err, c.inner)
			}
			for _, m := range c.mention {
				if msg := keyhold.ErrorMessage(err); !strings.Contains(msg, m) {
					t.Errorf("message %q does not mention %q", msg, m)
				}
			}
			if after := f.state(t, envID); after != before {
				t.Errorf("the refusal changed state:\nbefore %+v\nafter  %+v", before, after)
			}
			if data != nil {
				f.check(t, envID, data)
			}
		})
	}
}

// TestLinkRefusals: every check of LinkPolicy refuses with the code and a
// message that names the fix, and leaves the environment (its JSON), its
// wrapped keys and its data as they were, with no operation created.
func TestLinkRefusals(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		good := f.newVault(t, "kv-good", true)
		f.newKey(t, good, "k")
		pol := f.newPolicy(t, "pol", good, "k", nil)
		f.grantKey(t, pol, good, "k")
		admin, adminID := f.platformAdmin(t, keyhold.RoleDynamics365Administrator)
		f.grant(t, adminID, keyhold.RoleReader, "/subscriptions/"+f.sub+"/resourceGroups/"+cmkRG)
		noReader, _ := f.platformAdmin(t, keyhold.RolePowerPlatformAdministrator)
		notAdmin, notAdminID := f.platformAdmin(t, "")
		f.grant(t, notAdminID, keyhold.RoleReader, pol.ID())

		envA := f.managedEnv(t, "a")
		data := f.fill(t, envA.ID, 4, 100)
		env := func() string { return envA.ID }
		link := func(ctx context.Context, sys string) func(string) error {
			return func(envID string) error { _, err := f.p.LinkPolicy(ctx, envID, sys); return err }
		}

		// Policies and keys that fail one check each.
		weak := f.newVault(t, "kv-no-purge", false)
		f.newKey(t, weak, "k")
		polWeak := f.newPolicy(t, "pol-weak", weak, "k", nil)
		f.grantKey(t, polWeak, weak, "k")
		polLockbox := f.newPolicy(t, "pol-lockbox", good, "k", func(p *keyhold.EnterprisePolicy) { p.Kind = keyhold.PolicyKindLockbox })
		polNoMI := f.newPolicy(t, "pol-no-identity", good, "k", func(p *keyhold.EnterprisePolicy) { p.PrincipalID = "-" })
		polNoGrant := f.newPolicy(t, "pol-no-grant", good, "k", nil)
		polNoKey := f.newPolicy(t, "pol-no-key", good, "missing", nil)
		f.grantKey(t, polNoKey, good, "missing")
		polAsia := f.newPolicy(t, "pol-asia", good, "k", func(p *keyhold.EnterprisePolicy) {
			p.Location = "asia"
			p.SystemID = "/regions/asia/providers/Microsoft.PowerPlatform/enterprisePolicies/" + uuid.NewString()
		})
		f.grantKey(t, polAsia, good, "k")
		polOtherVault := f.newPolicy(t, "pol-gone-vault", good, "k", func(p *keyhold.EnterprisePolicy) {
			p.KeyVaultID = strings.Replace(good.ID(), "kv-good", "kv-never-made", 1)
		})
		polExternal := f.newPolicy(t, "pol-external", good, "k", func(p *keyhold.EnterprisePolicy) {
			p.KeyVaultID = ""
			p.External = &keyhold.ExternalKeyVault{URI: "https://customer.example", TenantID: uuid.NewString(), ClientID: uuid.NewString()}
		})
		f.newKey(t, good, "off")
		polOff := f.newPolicy(t, "pol-disabled-key", good, "off", nil)
		f.grantKey(t, polOff, good, "off")
		no := false
		if _, err := f.kv.UpdateKey(f.ctx, good.Name, "off", "", keyhold.KeyAttributes{Enabled: &no}, nil, nil); err != nil {
			t.Fatal(err)
		}
		f.newKey(t, good, "expired")
		polExpired := f.newPolicy(t, "pol-expired-key", good, "expired", nil)
		f.grantKey(t, polExpired, good, "expired")
		past := f.clock.Now().Add(-time.Hour)
		if _, err := f.kv.UpdateKey(f.ctx, good.Name, "expired", "", keyhold.KeyAttributes{Expires: &past}, nil, nil); err != nil {
			t.Fatal(err)
		}
		f.newKey(t, good, "early")
		polEarly := f.newPolicy(t, "pol-early-key", good, "early", nil)
		f.grantKey(t, polEarly, good, "early")
		future := f.clock.Now().Add(time.Hour)
		if _, err := f.kv.UpdateKey(f.ctx, good.Name, "early", "", keyhold.KeyAttributes{NotBefore: &future}, nil, nil); err != nil {
			t.Fatal(err)
		}
		// An access-policy vault whose policy lacks Unwrap Key.
		ap := &keyhold.Vault{SubscriptionID: f.sub, ResourceGroup: cmkRG, Name: "kv-access-policy", Location: cmkLocation, EnablePurgeProtection: true}
		if _, err := f.kv.PutVault(f.ctx, ap); err != nil {
			t.Fatal(err)
		}
		polAP := f.newPolicy(t, "pol-ap", ap, "k", nil)
		if _, err := f.kv.UpdateAccessPolicies(f.ctx, f.sub, cmkRG, ap.Name, "add", []keyhold.AccessPolicy{
			{TenantID: f.creds.TenantID, ObjectID: f.adminID(), Keys: []string{keyhold.PermCreate, keyhold.PermGet}},
			{TenantID: f.creds.TenantID, ObjectID: polAP.PrincipalID, Keys: []string{keyhold.PermGet, keyhold.PermWrapKey}},
		}); err != nil {
			t.Fatal(err)
		}
		f.newKey(t, ap, "k")

		// Environments that fail one check each.
		envAsia := &keyhold.Environment{DisplayName: "asia", Location: "asia", SKU: keyhold.SKUProduction}
		if err := f.p.CreateEnvironment(f.ctx, envAsia); err != nil {
			t.Fatal(err)
		}
		envUnmanaged := &keyhold.Environment{DisplayName: "basic", Location: cmkLocation, SKU: keyhold.SKUSandbox}
		if err := f.p.CreateEnvironment(f.ctx, envUnmanaged); err != nil {
			t.Fatal(err)
		}
		skuEnv := func(sku keyhold.EnvironmentSKU) func() string {
			return func() string {
				e := f.managedEnv(t, string(sku))
				f.setEnv(t, e.ID, func(e *keyhold.Environment) { e.SKU = sku })
				return e.ID
			}
		}
		disabledEnv := func() string {
			e := f.managedEnv(t, "disabled")
			f.setEnv(t, e.ID, func(e *keyhold.Environment) { e.State = keyhold.StateDisabled })
			return e.ID
		}
		linkedEnv := func() string {
			e := f.managedEnv(t, "linked")
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, e.ID, pol.SystemID) })
			return e.ID
		}
		busyEnv := func() string {
			e := f.managedEnv(t, "busy")
			if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
				now := time.Now().UTC()
				return tx.CreateOperation(context.Background(), &keyhold.Operation{ID: "op-busy-" + e.ID[:8], TenantID: e.TenantID, Kind: "test-hold",
					Target: e.ID, State: keyhold.OperationRunning, Step: "hold", CreatedBy: "test", CreatedAt: now, UpdatedAt: now})
			}); err != nil {
				t.Fatal(err)
			}
			return e.ID
		}

		f.runRefusals(t, []refusal{
			{"no identity", env, link(context.Background(), pol.SystemID), keyhold.CodeUnauthorized, "", []string{"bearer token"}},
			{"not an administrator", env, link(notAdmin, pol.SystemID), keyhold.CodeForbidden, "", []string{string(keyhold.RolePowerPlatformAdministrator)}},
			{"administrator without Reader", env, link(noReader, pol.SystemID), keyhold.CodeForbidden, "", []string{"Reader", pol.ID(), "key vault administrator"}},
			{"unknown systemId", env, link(admin, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/"+uuid.NewString()), keyhold.CodeNotFound, "", []string{"systemId"}},
			{"unknown environment", func() string { return envA.ID }, func(string) error {
				_, err := f.p.LinkPolicy(admin, uuid.NewString(), pol.SystemID)
				return err
			}, keyhold.CodeEnvironmentNotFound, "", nil},
			{"vault without purge protection", env, link(admin, polWeak.SystemID), keyhold.CodeBadRequest, "", []string{"purge protection", "kv-no-purge"}},
			{"vault not found", env, link(admin, polOtherVault.SystemID), keyhold.CodeVaultNotFound, "", []string{"kv-never-made"}},
			{"policy naming an external vault", env, link(admin, polExternal.SystemID), keyhold.CodeNotSupported, "", []string{"external key vault https://customer.example", "keyVault.id"}},
			{"policy of another kind", env, link(admin, polLockbox.SystemID), keyhold.CodeBadRequest, "", []string{"Lockbox", "Encryption"}},
			{"policy without identity", env, link(admin, polNoMI.SystemID), keyhold.CodeBadRequest, "", []string{"SystemAssigned"}},
			{"identity not granted (RBAC)", env, link(admin, polNoGrant.SystemID), keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac,
				[]string{polNoGrant.PrincipalID, keyhold.RoleKeyVaultCryptoServiceEncryptUser, "Get, Wrap Key and Unwrap Key"}},
			{"identity lacks Unwrap Key (access policy)", env, link(admin, polAP.SystemID), keyhold.CodeForbidden, keyhold.InnerAccessDenied,
				[]string{polAP.PrincipalID, "Get, Wrap Key and Unwrap Key"}},
			{"key not found", env, link(admin, polNoKey.SystemID), keyhold.CodeKeyNotFound, "", []string{"missing", "create it"}},
			{"key disabled", env, link(admin, polOff.SystemID), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, []string{"disabled", "enable"}},
			{"key expired", env, link(admin, polExpired.SystemID), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, []string{"expired", "exp"}},
			{"key not yet valid", env, link(admin, polEarly.SystemID), keyhold.CodeForbidden, keyhold.InnerKeyDisabled, []string{"not yet valid", "nbf"}},
			{"environment in another region", func() string { return envAsia.ID }, link(admin, pol.SystemID), keyhold.CodeBadRequest, "", []string{"region", "asia", cmkLocation}},
			{"policy in another region", env, link(admin, polAsia.SystemID), keyhold.CodeBadRequest, "", []string{"region"}},
			{"not a Managed Environment", func() string { return envUnmanaged.ID }, link(admin, pol.SystemID), keyhold.CodeBadRequest, "", []string{"Managed Environment"}},
			{"Trial environment", skuEnv(keyhold.SKUTrial), link(admin, pol.SystemID), keyhold.CodeBadRequest, "", []string{"Trial", "Production or Sandbox"}},
			{"Teams environment", skuEnv(keyhold.SKUTeams), link(admin, pol.SystemID), keyhold.CodeBadRequest, "", []string{"Teams"}},
			{"environment disabled", disabledEnv, link(admin, pol.SystemID), keyhold.CodeEnvironmentDisabled, "", []string{"Enabled"}},
			{"linked to this policy already", linkedEnv, link(admin, pol.SystemID), keyhold.CodeConflict, "", []string{"already linked", pol.ID()}},
			{"operation running", busyEnv, link(admin, pol.SystemID), keyhold.CodeConflict, "", []string{"op-busy-", "test-hold"}},
		})
		f.check(t, envA.ID, data)
		if wks := f.wrapped(t, envA.ID); len(wks) != 1 || wks[0].Root != keyhold.RootMMK {
			t.Fatalf("after the refusals: wrapped keys %v", describeKeys(wks))
		}

		// The same administrator links once the grant is there, and an
		// access-policy grant (Get, Wrap Key, Unwrap Key) is as good as
		// the role.
		if _, err := f.kv.UpdateAccessPolicies(f.ctx, f.sub, cmkRG, ap.Name, "add", []keyhold.AccessPolicy{
			{TenantID: f.creds.TenantID, ObjectID: polAP.PrincipalID, Keys: []string{keyhold.PermUnwrapKey}},
		}); err != nil {
			t.Fatal(err)
		}
		f.succeed(t, "link with an access policy", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(admin, envA.ID, polAP.SystemID) })
		f.check(t, envA.ID, data)

		// Unlink refusals.
		unlink := func(ctx context.Context, sys string) func(string) error {
			return func(envID string) error { _, err := f.p.UnlinkPolicy(ctx, envID, sys); return err }
		}
		plain := f.managedEnv(t, "plain")
		f.runRefusals(t, []refusal{
			{"unlink: not an administrator", env, unlink(notAdmin, polAP.SystemID), keyhold.CodeForbidden, "", []string{"directory role"}},
			{"unlink: administrator without Reader", env, unlink(noReader, polAP.SystemID), keyhold.CodeForbidden, "", []string{"Reader"}},
			{"unlink: unknown systemId", env, unlink(admin, "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/nope"), keyhold.CodeNotFound, "", nil},
			{"unlink: linked to another policy", env, unlink(admin, pol.SystemID), keyhold.CodeConflict, "", []string{polAP.ID()}},
			{"unlink: not linked", func() string { return plain.ID }, unlink(admin, pol.SystemID), keyhold.CodeConflict, "", []string{"not linked"}},
			{"unlink: operation running", func() string {
				if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
					now := time.Now().UTC()
					return tx.CreateOperation(context.Background(), &keyhold.Operation{ID: "op-hold-unlink", TenantID: envA.TenantID, Kind: "test-hold",
						Target: envA.ID, State: keyhold.OperationRunning, Step: "hold", CreatedBy: "test", CreatedAt: now, UpdatedAt: now})
				}); err != nil {
					t.Fatal(err)
				}
				return envA.ID
			}, unlink(admin, polAP.SystemID), keyhold.CodeConflict, "", []string{"op-hold-unlink"}},
			{"unlink: environment disabled", func() string {
				f.setEnv(t, envA.ID, func(e *keyhold.Environment) { e.State = keyhold.StateDisabled }) // Locked: lock_ops_test.go
				return envA.ID
			}, unlink(admin, polAP.SystemID), keyhold.CodeEnvironmentDisabled, "", []string{"Disabled"}},
		})
	})
}

func errorsAs(err error, ke **keyhold.Error) bool { return errors.As(err, ke) }

// setEnv changes an environment straight in the store.
func (f *cmkFixture) setEnv(t testing.TB, id string, mod func(e *keyhold.Environment)) {
	t.Helper()
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		e, err := tx.Environment(context.Background(), id)
		if err != nil {
			return err
		}
		mod(e)
		return tx.UpdateEnvironment(context.Background(), e)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPlatformAloneCannotDecrypt: once linked, the environment's data
// opens only through the customer's key. With the policy identity's role
// assignment removed and the key cache dropped, reads fail with Key
// Vault's Forbidden; the store holds no copy the MMK opens; restoring the
// grant restores the reads.
func TestPlatformAloneCannotDecrypt(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-custody", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol", v, "k", nil)
		scope, grant := f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "e")
		c := f.fill(t, env.ID, 5, ChunkSize+10)
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		f.check(t, env.ID, c)

		f.revoke(t, scope, grant)
		f.p.DropKeys(env.ID)
		_, err := f.p.GetRow(f.ctx, env.ID, "accounts", "r0000")
		wantCode(t, err, keyhold.CodeForbidden)
		var ke *keyhold.Error
		if !errorsAs(err, &ke) || ke.Inner != keyhold.InnerForbiddenByRbac || !strings.Contains(ke.Message, pol.PrincipalID) {
			t.Errorf("read error %v: want ForbiddenByRbac naming the policy identity", err)
		}
		_, _, err = f.p.OpenFile(f.ctx, env.ID, "file-0.bin")
		wantCode(t, err, keyhold.CodeForbidden)
		_, err = f.p.PutRow(f.ctx, env.ID, "accounts", "new", json.RawMessage(`{}`))
		wantCode(t, err, keyhold.CodeForbidden)
		// Nothing the platform holds opens the EK: every wrapped copy is
		// the CMK's, and the MMK does not unwrap it.
		for _, wk := range f.wrapped(t, env.ID) {
			if wk.Root != keyhold.RootCMK {
				t.Fatalf("wrapped key %v is not under the CMK", describeKeys([]*keyhold.WrappedKey{wk}))
			}
			if _, err := f.p.mmk.Unwrap(context.Background(), "mmk/1", wk.Ciphertext); err == nil {
				t.Fatal("the MMK unwraps the CMK-wrapped key")
			}
		}

		f.grantKey(t, pol, v, "k")
		f.check(t, env.ID, c)
	})
}

// TestLinkFailureRollsBack: a link whose identity loses its grant between
// the checks and the rewrap fails, leaves the environment Enabled on the
// MMK with EncryptionStatus Failed and every item readable, and can be run
// again once the grant is back.
func TestLinkFailureRollsBack(t *testing.T) {
	cmkBackends(t, false, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-rollback", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol", v, "k", nil)
		scope, grant := f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "e")
		c := f.fill(t, env.ID, 5, 100)
		op, err := f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID)
		if err != nil {
			t.Fatal(err)
		}
		f.revoke(t, scope, grant)
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.runner.Run(rctx) }()
		defer func() { cancel(); <-done }()
		op = f.wait(t, op)
		if op.State != keyhold.OperationFailed || op.ErrorCode != keyhold.CodeForbidden || !strings.Contains(op.ErrorMsg, pol.PrincipalID) {
			t.Fatalf("operation = %s %s %q, want Failed Forbidden naming the identity", op.State, op.ErrorCode, op.ErrorMsg)
		}
		e := f.env(t, env.ID)
		if e.State != keyhold.StateEnabled || e.EncryptionStatus != keyhold.EncryptionFailed || e.KeyManagedBy != keyhold.KeyManagedByMicrosoft || e.PolicyID != "" || e.Epoch != 1 {
			t.Fatalf("after the failed link: %+v", e)
		}
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].Root != keyhold.RootMMK {
			t.Fatalf("after the failed link: wrapped keys %v", describeKeys(wks))
		}
		f.check(t, env.ID, c)
		f.grantKey(t, pol, v, "k")
		f.succeed(t, "link again", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		f.check(t, env.ID, c)

		// A link whose re-key failed (simulated: its status says so) is
		// finished by linking again: a re-key, not a refusal.
		f.setEnv(t, env.ID, func(e *keyhold.Environment) { e.EncryptionStatus = keyhold.EncryptionFailed })
		op = f.succeed(t, "re-key", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		if e := f.env(t, env.ID); op.Kind != keyhold.OpRekey || e.Epoch != 3 || e.EncryptionStatus != keyhold.EncryptionSucceeded || e.State != keyhold.StateEnabled {
			t.Fatalf("re-key operation %s left %+v", op.Kind, e)
		}
		if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].Epoch != 3 {
			t.Fatalf("after the re-key: wrapped keys %v", describeKeys(wks))
		}
		f.check(t, env.ID, c)
	})
}

// TestRekeyKeepsConcurrentWrites: rows written while the re-key runs (the
// environment serves during it) all read back with their last values.
func TestRekeyKeepsConcurrentWrites(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-busy", true)
		f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		env := f.managedEnv(t, "e")
		c := f.fill(t, env.ID, 600)
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var writes atomic.Int64
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				table := []string{"accounts", "contacts"}[i%2]
				id := fmt.Sprintf("r%04d", (i*37)%600)
				data := fmt.Sprintf(`{"w":%d}`, i)
				if _, err := f.p.PutRow(f.ctx, env.ID, table, id, json.RawMessage(data)); err == nil {
					mu.Lock()
					c.rows[table+"/"+id] = data
					mu.Unlock()
					writes.Add(1)
				} else if c := keyhold.ErrorCode(err); c != keyhold.CodeEnvironmentDisabled && c != keyhold.CodeConflict {
					t.Errorf("PutRow during the link: %v", err)
					return
				}
			}
		})
		f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
		close(stop)
		wg.Wait()
		t.Logf("%d writes landed during the link", writes.Load())
		e := f.env(t, env.ID)
		if cs := f.epochCounts(t, env.ID); len(cs) != 1 || cs[0].Epoch != e.Epoch {
			t.Fatalf("items per epoch %v, want all on %d", cs, e.Epoch)
		}
		f.check(t, env.ID, c)
	})
}

// TestRotationPickup: when a policy that names no version sees its key
// rotate, PickUpRotations submits one rotation that rewraps every linked
// environment's key under the new version, without downtime; the old
// version then shows no live key and is safe to disable 28 days after its
// last use. A policy pinned to a version is left alone.
func TestRotationPickup(t *testing.T) {
	cmkBackends(t, true, func(t *testing.T, f *cmkFixture) {
		v := f.newVault(t, "kv-rotate", true)
		k1 := f.newKey(t, v, "k")
		pol := f.newPolicy(t, "pol", v, "k", nil)
		f.grantKey(t, pol, v, "k")
		pinned := f.newPolicy(t, "pinned", v, "k", func(p *keyhold.EnterprisePolicy) { p.KeyVersion = k1.Version.Version })
		f.grantKey(t, pinned, v, "k")
		var envs []*keyhold.Environment
		var contents []*content
		for i := range 3 {
			e := f.managedEnv(t, fmt.Sprint("e", i))
			contents = append(contents, f.fill(t, e.ID, 3, 50))
			p := pol
			if i == 2 {
				p = pinned
			}
			f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, e.ID, p.SystemID) })
			envs = append(envs, e)
		}
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 0 {
			t.Fatalf("PickUpRotations before any rotation = %d, %v; want 0", n, err)
		}
		f.clock.Advance(time.Hour)
		k2, err := f.kv.RotateKey(f.ctx, v.Name, "k")
		if err != nil {
			t.Fatal(err)
		}
		n, err := f.p.PickUpRotations(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("PickUpRotations = %d, %v; want 1", n, err)
		}
		ops := f.operations(t, pol.ID())
		if len(ops) != 1 || ops[0].Kind != keyhold.OpRotate {
			t.Fatalf("operations on the policy: %+v", ops)
		}
		op := f.wait(t, ops[0])
		if op.State != keyhold.OperationSucceeded || op.Done != 2 {
			t.Fatalf("rotation %s %s %q, %d done; want Succeeded with 2", op.State, op.ErrorCode, op.ErrorMsg, op.Done)
		}
		for i, e := range envs {
			wks := f.wrapped(t, e.ID)
			want := k2.KID
			if i == 2 {
				want = k1.KID
			}
			if len(wks) != 1 || wks[0].KeyID != stored(want) {
				t.Errorf("environment %d: wrapped keys %v, want one under %s", i, describeKeys(wks), want)
			}
			if ee := f.env(t, e.ID); ee.State != keyhold.StateEnabled || ee.EncryptionStatus != keyhold.EncryptionSucceeded {
				t.Errorf("environment %d after rotation: %+v", i, ee)
			}
			f.check(t, e.ID, contents[i])
		}
		if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 0 {
			t.Fatalf("PickUpRotations after the rotation = %d, %v; want 0", n, err)
		}
		usage, err := f.p.KeyVersionUsage(f.ctx, pol.ID())
		if err != nil || len(usage) != 2 {
			t.Fatalf("KeyVersionUsage = %s, %v", showUsage(usage), err)
		}
		old, cur := usage[0], usage[1]
		if old.Version != k1.Version.Version || old.Current || old.LiveKeys != 1 || !old.LastUsedAt.IsZero() || !old.SafeToDisableAt.IsZero() {
			t.Errorf("old version while the pinned policy uses it: %s", showUsage(usage))
		}
		if cur.Version != k2.Version.Version || !cur.Current || cur.LiveKeys != 2 || !cur.SafeToDisableAt.IsZero() {
			t.Errorf("current version: %s", showUsage(usage))
		}
		// Once the pinned environment leaves (an unlink: it is removed
		// from its policy), the old version is free 30 days after that.
		f.succeed(t, "unlink", func() (*keyhold.Operation, error) { return f.p.UnlinkPolicy(f.ctx, envs[2].ID, pinned.SystemID) })
		usage, err = f.p.KeyVersionUsage(f.ctx, pol.ID())
		if err != nil {
			t.Fatal(err)
		}
		if old := usage[0]; old.LiveKeys != 0 || !old.LastUsedAt.Equal(f.clock.Now()) || !old.SafeToDisableAt.Equal(f.clock.Now().Add(keyhold.KeyRetentionAfterRemoval)) {
			t.Errorf("old version after its last use: %s (now %v)", showUsage(usage), f.clock.Now())
		}
	})
}

// TestCMKOperationsAccess: operations and links are the caller's
// tenant's and an administrator's only.
func TestCMKOperationsAccess(t *testing.T) {
	f := newCMKFixture(t, storetest.OpenSQLite(t), true)
	v := f.newVault(t, "kv-access", true)
	f.newKey(t, v, "k")
	pol := f.newPolicy(t, "pol", v, "k", nil)
	f.grantKey(t, pol, v, "k")
	env := f.managedEnv(t, "e")
	op := f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
	user, _ := f.platformAdmin(t, "")
	_, err := f.p.GetOperation(user, op.ID)
	wantCode(t, err, keyhold.CodeForbidden)
	_, err = f.p.PolicyLinks(user)
	wantCode(t, err, keyhold.CodeForbidden)
	_, err = f.p.KeyVersionUsage(user, pol.ID())
	wantCode(t, err, keyhold.CodeForbidden)
	_, err = f.p.GetOperation(f.ctx, "nope")
	wantCode(t, err, keyhold.CodeNotFound)
	_, err = f.p.KeyVersionUsage(f.ctx, "/subscriptions/x")
	wantCode(t, err, keyhold.CodeBadRequest)
	_, err = f.p.KeyVersionUsage(f.ctx, strings.Replace(pol.ID(), "/pol", "/other", 1))
	wantCode(t, err, keyhold.CodeNotFound)
	// Another tenant's operation is not found.
	if err := f.store.Update(context.Background(), func(tx keyhold.Tx) error {
		now := time.Now().UTC()
		return tx.CreateOperation(context.Background(), &keyhold.Operation{ID: "op-other-tenant", TenantID: "another-tenant", Kind: keyhold.OpLink,
			Target: "elsewhere", State: keyhold.OperationSucceeded, CreatedBy: "x", CreatedAt: now, UpdatedAt: now, FinishedAt: now})
	}); err != nil {
		t.Fatal(err)
	}
	_, err = f.p.GetOperation(f.ctx, "op-other-tenant")
	wantCode(t, err, keyhold.CodeNotFound)

	// A platform without CMK support says so.
	plain := newFixture(t, storetest.OpenSQLite(t))
	_, err = plain.p.LinkPolicy(plain.ctx, env.ID, pol.SystemID)
	wantCode(t, err, keyhold.CodeServiceUnavailable)
}

// TestRotationWithoutAccessFails: a rotation whose policy identity lost
// its grant fails without touching a wrapped key, the pickup then leaves
// the policy alone for a while, and the data reads back once the grant is
// restored.
func TestRotationWithoutAccessFails(t *testing.T) {
	f := newCMKFixture(t, storetest.OpenSQLite(t), true)
	v := f.newVault(t, "kv-rotate-revoked", true)
	k1 := f.newKey(t, v, "k")
	pol := f.newPolicy(t, "pol", v, "k", nil)
	scope, grant := f.grantKey(t, pol, v, "k")
	env := f.managedEnv(t, "e")
	c := f.fill(t, env.ID, 3)
	f.succeed(t, "link", func() (*keyhold.Operation, error) { return f.p.LinkPolicy(f.ctx, env.ID, pol.SystemID) })
	if _, err := f.kv.RotateKey(f.ctx, v.Name, "k"); err != nil {
		t.Fatal(err)
	}
	f.revoke(t, scope, grant)
	f.p.DropKeys("")
	if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 1 {
		t.Fatalf("PickUpRotations = %d, %v", n, err)
	}
	op := f.wait(t, f.operations(t, pol.ID())[0])
	if op.State != keyhold.OperationFailed || op.ErrorCode != keyhold.CodeForbidden {
		t.Fatalf("rotation %s %s %q, want Failed Forbidden", op.State, op.ErrorCode, op.ErrorMsg)
	}
	if wks := f.wrapped(t, env.ID); len(wks) != 1 || wks[0].KeyID != stored(k1.KID) {
		t.Fatalf("wrapped keys after the failed rotation: %v", describeKeys(wks))
	}
	if n, err := f.p.PickUpRotations(context.Background()); err != nil || n != 0 {
		t.Fatalf("PickUpRotations right after a failed rotation = %d, %v; want 0", n, err)
	}
	f.grantKey(t, pol, v, "k")
	f.check(t, env.ID, c)
}
