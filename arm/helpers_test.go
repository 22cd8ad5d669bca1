package arm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/clocktest"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// fixture is a Service over a fresh store holding one tenant with one
// subscription and an administrator: a service principal with the Global
// Administrator directory role and Owner of the subscription, as
// platform.BootstrapCustomer makes it.
type fixture struct {
	s      *Service
	store  keyhold.Store
	tenant string
	sub    string
	admin  *keyhold.Identity
	// owner is the name of the admin's Owner assignment.
	owner string
}

func newFixture(t testing.TB, store keyhold.Store) *fixture {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	f := &fixture{s: New(Config{Store: store, Clock: clock}), store: store, tenant: uuid.NewString(), sub: uuid.NewString()}
	update(t, store, func(tx keyhold.Tx) error {
		ctx := context.Background()
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: f.tenant, DisplayName: "Contoso", CreatedAt: clock.Now()}); err != nil {
			return err
		}
		return tx.CreateSubscription(ctx, &keyhold.Subscription{ID: f.sub, TenantID: f.tenant, DisplayName: "Contoso subscription", CreatedAt: clock.Now()})
	})
	f.admin = f.principal(t, keyhold.PrincipalServicePrincipal, "admin", keyhold.RoleGlobalAdministrator)
	f.owner = f.grant(t, f.subScope(), keyhold.RoleOwner, f.admin)
	return f
}

func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		fn(t, newFixture(t, open(t)))
	})
}

func update(t testing.TB, s keyhold.Store, fn func(keyhold.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func (f *fixture) subScope() string { return "/subscriptions/" + f.sub }

func (f *fixture) rgScope(rg string) string { return f.subScope() + "/resourceGroups/" + rg }

func (f *fixture) vaultScope(rg, name string) string {
	return f.rgScope(rg) + "/providers/Microsoft.KeyVault/vaults/" + name
}

// principal creates a principal of the tenant with the directory roles
// given and returns its identity.
func (f *fixture) principal(t testing.TB, typ keyhold.PrincipalType, name string, roles ...keyhold.DirectoryRole) *keyhold.Identity {
	t.Helper()
	p := &keyhold.Principal{ID: uuid.NewString(), TenantID: f.tenant, Type: typ, DisplayName: name, CreatedAt: time.Now()}
	if typ != keyhold.PrincipalUser {
		p.AppID = uuid.NewString()
	}
	update(t, f.store, func(tx keyhold.Tx) error {
		ctx := context.Background()
		if err := tx.CreatePrincipal(ctx, p); err != nil {
			return err
		}
		for _, r := range roles {
			if err := tx.AssignDirectoryRole(ctx, f.tenant, p.ID, r); err != nil {
				return err
			}
		}
		return nil
	})
	return &keyhold.Identity{TenantID: f.tenant, PrincipalID: p.ID, AppID: p.AppID, Type: typ, Audience: keyhold.AudienceManagement}
}

// grant gives id the built-in role at scope, straight in the store, and
// returns the assignment's name.
func (f *fixture) grant(t testing.TB, scope, role string, id *keyhold.Identity) string {
	t.Helper()
	r, ok := keyhold.FindRoleDefinition(role)
	if !ok {
		t.Fatalf("no built-in role %q", role)
	}
	name := uuid.NewString()
	update(t, f.store, func(tx keyhold.Tx) error {
		return tx.CreateRoleAssignment(context.Background(), &keyhold.RoleAssignment{ID: name, Scope: scope, RoleDefinitionID: r.ID,
			PrincipalID: id.PrincipalID, PrincipalType: ARMPrincipalType(id.Type), TenantID: f.tenant, CreatedBy: "test", CreatedAt: time.Now()})
	})
	return name
}

// group creates a resource group as the admin.
func (f *fixture) group(t testing.TB, name string) {
	t.Helper()
	if _, err := f.s.PutResourceGroup(as(f.admin), &keyhold.ResourceGroup{SubscriptionID: f.sub, Name: name, Location: "westeurope"}); err != nil {
		t.Fatalf("PutResourceGroup(%s): %v", name, err)
	}
}

// as returns a context carrying id.
func as(id *keyhold.Identity) context.Context {
	return keyhold.NewContext(context.Background(), id)
}

// assignments returns every role assignment of the tenant, for "nothing
// changed" checks.
func (f *fixture) assignments(t testing.TB) []*keyhold.RoleAssignment {
	t.Helper()
	var as []*keyhold.RoleAssignment
	err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		var err error
		as, err = tx.ListRoleAssignments(context.Background(), keyhold.RoleAssignmentFilter{TenantID: f.tenant})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// sameAssignments fails unless two listings hold the same assignments.
func sameAssignments(t testing.TB, what string, got, want []*keyhold.RoleAssignment) {
	t.Helper()
	ids := func(as []*keyhold.RoleAssignment) []string {
		var s []string
		for _, a := range as {
			s = append(s, a.ID+" "+a.Scope+" "+a.RoleDefinitionID+" "+a.PrincipalID)
		}
		slices.Sort(s)
		return s
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Fatalf("%s: role assignments\n%s\nwant\n%s", what, strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
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

// auditActions returns the actions of the tenant's audit log, oldest first.
func (f *fixture) auditActions(t testing.TB) []string {
	t.Helper()
	var out []string
	err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		es, err := tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: f.tenant, Limit: 1000})
		for i := len(es) - 1; i >= 0; i-- {
			out = append(out, es[i].Action)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
