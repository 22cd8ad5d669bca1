package policy

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// fixture is a Service over a fresh store holding one tenant with one
// subscription, an administrator (Owner of the subscription),
// Microsoft.PowerPlatform registered (unless unregistered), resource
// groups "rg" and "keys", and in "keys" a vault "contoso-kv" with purge
// protection and an RSA key "cmk" (one version), and a vault "plain-kv"
// without purge protection holding a key "cmk" too.
type fixture struct {
	s      *Service
	arm    *arm.Service
	store  keyhold.Store
	clock  *clocktest.Clock
	tenant string
	sub    string
	admin  *keyhold.Identity
	// version is the version of contoso-kv's key cmk.
	version string
}

type fixtureOption func(*fixtureOpts)

type fixtureOpts struct{ unregistered bool }

// unregistered leaves Microsoft.PowerPlatform unregistered.
func unregistered(o *fixtureOpts) { o.unregistered = true }

func newFixture(t testing.TB, store keyhold.Store, opts ...fixtureOption) *fixture {
	t.Helper()
	var o fixtureOpts
	for _, fn := range opts {
		fn(&o)
	}
	clock := clocktest.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	w := storetest.SeedPolicyWorld(t, store, clock.Now(), !o.unregistered)
	a := arm.New(arm.Config{Store: store, Clock: clock})
	f := &fixture{s: New(Config{Store: store, Clock: clock, ARM: a}), arm: a, store: store, clock: clock,
		tenant: w.TenantID, sub: w.SubscriptionID, version: w.KeyVersion}
	f.s.RegisterDeleter()
	f.admin = f.principal(t, "admin")
	f.grant(t, "/subscriptions/"+f.sub, keyhold.RoleOwner, f.admin)
	return f
}

func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newFixture(t, open(t)))
	})
}

func (f *fixture) update(t testing.TB, fn func(ctx context.Context, tx keyhold.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := f.store.Update(ctx, func(tx keyhold.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func (f *fixture) view(t testing.TB, fn func(ctx context.Context, tx keyhold.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := f.store.View(ctx, func(tx keyhold.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// principal creates a service principal of the tenant.
func (f *fixture) principal(t testing.TB, name string) *keyhold.Identity {
	t.Helper()
	return storetest.SeedPrincipal(t, f.store, f.tenant, name, f.clock.Now())
}

// grant gives id a built-in role at scope, straight in the store.
func (f *fixture) grant(t testing.TB, scope, role string, id *keyhold.Identity) {
	t.Helper()
	storetest.SeedGrant(t, f.store, scope, role, id, f.clock.Now())
}

// as returns a context carrying id.
func as(id *keyhold.Identity) context.Context { return keyhold.NewContext(context.Background(), id) }

func (f *fixture) vaultID(name string) string {
	return "/subscriptions/" + f.sub + "/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/" + name
}

// spec is a valid policy spec naming contoso-kv's key cmk.
func (f *fixture) spec() keyhold.PolicySpec {
	return keyhold.PolicySpec{Location: "europe", Kind: "Encryption", IdentityType: "SystemAssigned", KeyVaultID: f.vaultID("contoso-kv"), KeyName: "cmk"}
}

// put creates or updates a policy as the admin, failing on error.
func (f *fixture) put(t testing.TB, name string, spec keyhold.PolicySpec) *keyhold.EnterprisePolicy {
	t.Helper()
	p, _, err := f.s.Put(as(f.admin), f.sub, "rg", name, spec)
	if err != nil {
		t.Fatalf("Put(%s): %v", name, err)
	}
	return p
}

// linkEnv creates an environment linked to p, as the platform's link
// leaves it.
func (f *fixture) linkEnv(t testing.TB, id, name string, p *keyhold.EnterprisePolicy) {
	t.Helper()
	f.update(t, func(ctx context.Context, tx keyhold.Tx) error {
		return tx.CreateEnvironment(ctx, &keyhold.Environment{ID: id, TenantID: f.tenant, DisplayName: name, Location: p.Location,
			SKU: keyhold.SKUProduction, Managed: true, State: keyhold.StateEnabled, KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 1,
			PolicyID: p.ID(), LinkStatus: keyhold.LinkStatusLinked, CreatedBy: "test", CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()})
	})
}

// snapshot is what a refusal must leave unchanged.
type snapshot struct {
	policies   []string // id, key, version, tags, state
	identities []string // managed identities
	audit      int
	assigns    int
}

func (f *fixture) snapshot(t testing.TB) snapshot {
	t.Helper()
	var s snapshot
	f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
		ps, err := tx.ListPolicies(ctx, keyhold.PolicyFilter{})
		if err != nil {
			return err
		}
		for _, p := range ps {
			tags, _ := json.Marshal(p.Tags)
			ext, _ := json.Marshal(p.External)
			s.policies = append(s.policies, strings.Join([]string{p.ID(), p.Location, p.KeyVaultID, string(ext), p.KeyName, p.KeyVersion, string(tags), string(p.HealthStatus)}, " "))
		}
		prs, err := tx.ListPrincipals(ctx, f.tenant)
		if err != nil {
			return err
		}
		for _, p := range prs {
			if p.Type == keyhold.PrincipalManagedIdentity {
				s.identities = append(s.identities, p.ID)
			}
		}
		es, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: f.tenant, Limit: 1000})
		s.audit = len(es)
		if err != nil {
			return err
		}
		as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: f.tenant})
		s.assigns = len(as)
		return err
	})
	return s
}

// unchanged fails unless nothing changed since before.
func (f *fixture) unchanged(t testing.TB, what string, before snapshot) {
	t.Helper()
	after := f.snapshot(t)
	if !slices.Equal(before.policies, after.policies) || !slices.Equal(before.identities, after.identities) ||
		before.audit != after.audit || before.assigns != after.assigns {
		t.Fatalf("%s changed something:\nbefore %+v\nafter  %+v", what, before, after)
	}
}

// auditActions returns the actions of the tenant's audit log, oldest first.
func (f *fixture) auditActions(t testing.TB) []string {
	t.Helper()
	var out []string
	f.view(t, func(ctx context.Context, tx keyhold.Tx) error {
		es, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: f.tenant, Limit: 1000})
		for i := len(es) - 1; i >= 0; i-- {
			out = append(out, es[i].Action)
		}
		return err
	})
	return out
}

// wantErr fails unless err has code and its message holds each of hints.
func wantErr(t testing.TB, err error, code string, hints ...string) {
	t.Helper()
	var e *keyhold.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error = %v (code %q), want code %s", err, keyhold.ErrorCode(err), code)
	}
	for _, h := range hints {
		if !strings.Contains(e.Message, h) {
			t.Fatalf("message %q does not say %q", e.Message, h)
		}
	}
}
