package arm

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func TestResourceGroups(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	ctx := as(f.admin)
	g := &keyhold.ResourceGroup{SubscriptionID: f.sub, Name: "Prod-RG", Location: "West Europe", Tags: map[string]string{"env": "prod"}}
	created, err := f.s.PutResourceGroup(ctx, g)
	if err != nil || !created || g.Location != "westeurope" || g.CreatedAt.IsZero() {
		t.Fatalf("PutResourceGroup = %v, %v, %+v", created, err, g)
	}
	// Another case, new tags: an update of the same group.
	upd := &keyhold.ResourceGroup{SubscriptionID: f.sub, Name: "prod-rg", Location: "westeurope", Tags: map[string]string{"env": "test"}}
	created, err = f.s.PutResourceGroup(ctx, upd)
	if err != nil || created || upd.Name != "Prod-RG" || upd.Tags["env"] != "test" {
		t.Fatalf("PutResourceGroup(update) = %v, %v, %+v", created, err, upd)
	}

	contributorOfOther := f.principal(t, keyhold.PrincipalUser, "other group's contributor")
	f.group(t, "other")
	f.grant(t, f.rgScope("other"), keyhold.RoleContributor, contributorOfOther)
	for _, c := range []struct {
		name   string
		caller *keyhold.Identity
		g      keyhold.ResourceGroup
		code   string
		hint   string
	}{
		{"location can't change", f.admin, keyhold.ResourceGroup{Name: "prod-rg", Location: "eastus"}, keyhold.CodeConflict, "already exists in location 'westeurope'"},
		{"invalid name", f.admin, keyhold.ResourceGroup{Name: "bad/name.", Location: "eastus"}, keyhold.CodeInvalidName, "is invalid"},
		{"name ending in a period", f.admin, keyhold.ResourceGroup{Name: "rg.", Location: "eastus"}, keyhold.CodeInvalidName, "is invalid"},
		{"no location", f.admin, keyhold.ResourceGroup{Name: "rg2"}, keyhold.CodeBadRequest, "location"},
		{"bad location", f.admin, keyhold.ResourceGroup{Name: "rg2", Location: "west-europe!"}, keyhold.CodeInvalidLocation, "west-europe!"},
		{"contributor of another group", contributorOfOther, keyhold.ResourceGroup{Name: "rg2", Location: "eastus"}, keyhold.CodeAuthorizationFailed, ActionGroupWrite},
		{"unknown subscription", f.admin, keyhold.ResourceGroup{SubscriptionID: uuid.NewString(), Name: "rg2", Location: "eastus"}, keyhold.CodeAuthorizationFailed, ActionGroupWrite},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := c.g
			if g.SubscriptionID == "" {
				g.SubscriptionID = f.sub
			}
			_, err := f.s.PutResourceGroup(as(c.caller), &g)
			wantErr(t, err, c.code, c.hint)
			l, err := f.s.ListResourceGroups(ctx, f.sub)
			if err != nil || len(l) != 2 || l[0].Name != "other" || l[1].Name != "Prod-RG" || l[1].Location != "westeurope" || l[1].Tags["env"] != "test" {
				t.Fatalf("groups after the refusal: %v, %v", l, err)
			}
		})
	}

	// A principal sees only the groups it may read.
	l, err := f.s.ListResourceGroups(as(contributorOfOther), f.sub)
	if err != nil || len(l) != 1 || l[0].Name != "other" {
		t.Fatalf("ListResourceGroups as the other group's contributor = %v, %v", l, err)
	}
	_, err = f.s.ResourceGroup(as(contributorOfOther), f.sub, "Prod-RG")
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionGroupRead)
	_, err = f.s.ResourceGroup(ctx, f.sub, "missing")
	wantErr(t, err, keyhold.CodeResourceGroupNotFound, "'missing' could not be found")
	_, err = f.s.ListResourceGroups(ctx, uuid.NewString())
	wantErr(t, err, keyhold.CodeNotFound, "could not be found")
}

// deleterFunc adapts a function to ResourceDeleter.
type deleterFunc func(ctx context.Context, sub, rg string) error

func (d deleterFunc) DeleteResourcesIn(ctx context.Context, sub, rg string) error {
	return d(ctx, sub, rg)
}

// TestDeleteResourceGroup: the registered deleters run first, and the
// group goes with the role assignments in it; a deleter's failure keeps
// the group.
func TestDeleteResourceGroup(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	f.group(t, "rg1")
	f.group(t, "rg10")
	user := f.principal(t, keyhold.PrincipalUser, "user")
	inGroup := f.grant(t, f.vaultScope("rg1", "kv1"), keyhold.RoleKeyVaultReader, user)
	atGroup := f.grant(t, f.rgScope("RG1"), keyhold.RoleReader, user)
	elsewhere := f.grant(t, f.rgScope("rg10"), keyhold.RoleReader, user)

	var calls []string
	fail := errors.New("vault is busy")
	var failNext bool
	f.s.RegisterDeleter(deleterFunc(func(ctx context.Context, sub, rg string) error {
		if keyhold.IdentityFrom(ctx) == nil {
			t.Error("deleter called without the caller's identity")
		}
		calls = append(calls, sub+"/"+rg)
		if failNext {
			return fail
		}
		return nil
	}))

	err := f.s.DeleteResourceGroup(as(user), f.sub, "rg1")
	wantErr(t, err, keyhold.CodeAuthorizationFailed, ActionGroupDelete)
	if len(calls) != 0 {
		t.Fatalf("a refused delete called the deleters: %v", calls)
	}
	failNext = true
	if err := f.s.DeleteResourceGroup(as(f.admin), f.sub, "rg1"); !errors.Is(err, fail) {
		t.Fatalf("DeleteResourceGroup with a failing deleter = %v", err)
	}
	if _, err := f.s.ResourceGroup(as(f.admin), f.sub, "rg1"); err != nil {
		t.Fatalf("the group is gone after a failed deleter: %v", err)
	}
	failNext = false
	if err := f.s.DeleteResourceGroup(as(f.admin), f.sub, "RG1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{f.sub + "/rg1", f.sub + "/rg1"}; !slices.Equal(calls, want) {
		t.Fatalf("deleter calls %v, want %v", calls, want)
	}
	_, err = f.s.ResourceGroup(as(f.admin), f.sub, "rg1")
	wantErr(t, err, keyhold.CodeResourceGroupNotFound)
	var left []string
	for _, a := range f.assignments(t) {
		left = append(left, a.ID)
	}
	if slices.Contains(left, inGroup) || slices.Contains(left, atGroup) || !slices.Contains(left, elsewhere) || !slices.Contains(left, f.owner) {
		t.Fatalf("assignments left %v: want those in rg1 (%s, %s) gone and the others kept", left, inGroup, atGroup)
	}
	err = f.s.DeleteResourceGroup(as(f.admin), f.sub, "rg1")
	wantErr(t, err, keyhold.CodeResourceGroupNotFound)
}

// TestProviders: registration, and the MissingSubscriptionRegistration
// check resource providers make.
func TestProviders(t *testing.T) {
	f := newFixture(t, storetest.OpenSQLite(t))
	reader := f.principal(t, keyhold.PrincipalUser, "reader")
	f.grant(t, f.subScope(), keyhold.RoleReader, reader)
	check := func(ns string) error {
		return f.store.View(context.Background(), func(tx keyhold.Tx) error { return RequireRegistered(context.Background(), tx, f.sub, ns) })
	}

	err := check("microsoft.keyvault")
	wantErr(t, err, keyhold.CodeMissingSubscriptionRegistration,
		"The subscription '"+f.sub+"' is not registered to use namespace 'Microsoft.KeyVault'. See https://aka.ms/rps-not-found for how to register subscriptions.")
	for _, ns := range []string{keyhold.NamespaceAuthorization, "microsoft.resources"} {
		if err := check(ns); err != nil {
			t.Fatalf("RequireRegistered(%s) = %v, want always registered", ns, err)
		}
	}
	p, err := f.s.Provider(as(reader), f.sub, keyhold.NamespacePowerPlatform)
	if err != nil || p.State != keyhold.ProviderNotRegistered {
		t.Fatalf("Provider before registration = %+v, %v", p, err)
	}

	_, err = f.s.RegisterProvider(as(reader), f.sub, keyhold.NamespaceKeyVault)
	wantErr(t, err, keyhold.CodeAuthorizationFailed, "Microsoft.KeyVault/register/action")
	_, err = f.s.RegisterProvider(as(f.admin), f.sub, "Microsoft.Web")
	wantErr(t, err, keyhold.CodeNotFound, "'Microsoft.Web' is invalid", keyhold.NamespaceKeyVault, keyhold.NamespacePowerPlatform)
	_, err = f.s.RegisterProvider(as(f.admin), uuid.NewString(), keyhold.NamespaceKeyVault)
	wantErr(t, err, keyhold.CodeAuthorizationFailed)
	if err := check(keyhold.NamespaceKeyVault); keyhold.ErrorCode(err) != keyhold.CodeMissingSubscriptionRegistration {
		t.Fatalf("a refused registration registered: %v", err)
	}

	for range 2 { // again: no change, no error
		p, err = f.s.RegisterProvider(as(f.admin), f.sub, "MICROSOFT.KEYVAULT")
		if err != nil || p.State != keyhold.ProviderRegistered || p.Namespace != keyhold.NamespaceKeyVault {
			t.Fatalf("RegisterProvider = %+v, %v", p, err)
		}
	}
	if err := check(keyhold.NamespaceKeyVault); err != nil {
		t.Fatalf("RequireRegistered after registration: %v", err)
	}
	l, err := f.s.ListProviders(as(reader), f.sub)
	if err != nil || len(l) != 4 {
		t.Fatalf("ListProviders = %v, %v", l, err)
	}
	states := map[string]string{}
	for _, p := range l {
		states[p.Namespace] = p.State
	}
	want := map[string]string{keyhold.NamespaceAuthorization: "Registered", keyhold.NamespaceKeyVault: "Registered",
		keyhold.NamespacePowerPlatform: "NotRegistered", keyhold.NamespaceResources: "Registered"}
	for ns, st := range want {
		if states[ns] != st {
			t.Fatalf("ListProviders states %v, want %v", states, want)
		}
	}
	if got := f.auditActions(t); !slices.Equal(got, []string{"provider.register"}) {
		t.Fatalf("audit = %v, want one provider.register", got)
	}
}

// TestEmptyPrincipalRefused: an identity that names no principal is not
// authenticated, whatever its tenant: the resource manager refuses it as
// Unauthorized and creates nothing.
func TestEmptyPrincipalRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		anon := *f.admin
		anon.PrincipalID = ""
		before := f.assignments(t)
		_, err := f.s.PutResourceGroup(as(&anon), &keyhold.ResourceGroup{SubscriptionID: f.sub, Name: "rg-anon", Location: "westeurope"})
		if keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
			t.Fatalf("PutResourceGroup as an empty principal: %v, want %s", err, keyhold.CodeUnauthorized)
		}
		if _, err := f.s.ResourceGroup(as(f.admin), f.sub, "rg-anon"); !keyhold.IsNotFound(err) {
			t.Fatalf("the refused resource group exists: %v", err)
		}
		sameAssignments(t, "after the refusal", f.assignments(t), before)
		if _, err := f.s.ListResourceGroups(as(&anon), f.sub); keyhold.ErrorCode(err) != keyhold.CodeUnauthorized {
			t.Fatalf("ListResourceGroups as an empty principal: %v, want %s", err, keyhold.CodeUnauthorized)
		}
	})
}
