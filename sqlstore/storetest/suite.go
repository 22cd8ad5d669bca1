package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// Run checks a keyhold.Store against its contract. open must return a
// fresh, empty store each time it is called (each subtest opens its own,
// and they run in parallel) and close it when the test ends.
func Run(t *testing.T, open func(t *testing.T) keyhold.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s keyhold.Store)
	}{
		{"Tenants", testTenants},
		{"Subscriptions", testSubscriptions},
		{"Principals", testPrincipals},
		{"Credentials", testCredentials},
		{"RemoveCredentials", testRemoveCredentials},
		{"DirectoryRoles", testDirectoryRoles},
		{"SealedKeys", testSealedKeys},
		{"Environments", testEnvironments},
		{"UpdateEnvironment", testUpdateEnvironment},
		{"DeleteEnvironment", testDeleteEnvironment},
		{"WrappedKeys", testWrappedKeys},
		{"Rows", testRows},
		{"ConflictKeepsTransaction", testConflictKeepsTransaction},
		{"ListRows", testListRows},
		{"ListRowsLimits", testListRowsLimits},
		{"Files", testFiles},
		{"StaleUploads", testStaleUploads},
		{"Audit", testAudit},
		{"ResourceGroups", testResourceGroups},
		{"ProviderRegistrations", testProviderRegistrations},
		{"RoleAssignments", testRoleAssignments},
		{"UpdateResourceGroup", testUpdateResourceGroup}, {"UserAccounts", testUserAccounts}, {"EnvironmentMembers", testEnvironmentMembers}, {"DeletePrincipal", testDeletePrincipal},
		{"Vaults", testVaults},
		{"Keys", testKeys},
		{"KeyVersions", testKeyVersions},
		{"BYOKGenerations", testBYOKGenerations},
		{"CMKCustody", testCMKCustody},
		{"Policies", testPolicies}, {"UpdatePolicy", testUpdatePolicy}, {"PolicyUnwraps", testPolicyUnwraps}, {"Deployments", testDeployments},
		{"Times", testTimes},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"Context", testContext},
		{"RacingWrites", testRacingWrites},
		{"NoLostUpdates", testNoLostUpdates},
	}
	for _, tc := range append(append(append(append(append(append(append(append(tests, operationTests...), cmkStoreTests...), eventStoreTests...), backupStoreTests...), licenceStoreTests...), envHoldTests...), dataAccessTests...), flowStoreTests...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// base is a time with nanoseconds, in a zone other than UTC: the store must
// give it back as the same instant, in UTC.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("UTC+2", 2*3600))

func at(d time.Duration) time.Time { return base.Add(d) }

// update runs fn in an Update and fails the test on error.
func update(t *testing.T, s keyhold.Store, fn func(keyhold.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// view runs fn in a View and fails the test on error.
func view(t *testing.T, s keyhold.Store, fn func(keyhold.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// tryUpdate runs fn in an Update and returns its error.
func tryUpdate(s keyhold.Store, fn func(keyhold.Tx) error) error {
	return s.Update(context.Background(), fn)
}

// wantCode fails unless err is a *keyhold.Error with the given code whose
// message mentions every one of names.
func wantCode(t *testing.T, what string, err error, code string, names ...string) {
	t.Helper()
	var e *keyhold.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got error %v, want a *keyhold.Error with code %s", what, err, code)
	}
	if e.Code != code {
		t.Fatalf("%s: got code %s (%v), want %s", what, e.Code, err, code)
	}
	for _, n := range names {
		if !strings.Contains(e.Message, n) {
			t.Errorf("%s: message %q doesn't name %q", what, e.Message, n)
		}
	}
}

// noSecret fails if err's text holds secret.
func noSecret(t *testing.T, err error, secret []byte) {
	t.Helper()
	if err != nil && len(secret) > 0 && strings.Contains(err.Error(), string(secret)) {
		t.Errorf("error %q holds secret bytes", err)
	}
}

// equal compares two values after converting every time.Time in them to
// UTC, which is how the store returns times.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := utc(reflect.ValueOf(got)), utc(reflect.ValueOf(want))
	if reflect.DeepEqual(g.Interface(), w.Interface()) {
		return
	}
	if g.Kind() == reflect.Slice && w.Kind() == reflect.Slice {
		for i := 0; i < min(g.Len(), w.Len()); i++ {
			if !reflect.DeepEqual(g.Index(i).Interface(), w.Index(i).Interface()) {
				t.Fatalf("%s: %d items, want %d; first difference at [%d]:\n got %s\nwant %s\n got all %s\nwant all %s",
					what, g.Len(), w.Len(), i, show(g.Index(i).Interface()), show(w.Index(i).Interface()), show(got), show(want))
			}
		}
	}
	t.Fatalf("%s:\n got %s\nwant %s", what, show(got), show(want))
}

var timeType = reflect.TypeFor[time.Time]()

// utc returns a deep copy of v with its times in UTC (which also drops
// monotonic clock readings).
func utc(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(utc(v.Elem()))
		return c
	case reflect.Slice:
		if v.IsNil() || v.Type().Elem().Kind() == reflect.Uint8 {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			c.Index(i).Set(utc(v.Index(i)))
		}
		return c
	case reflect.Struct:
		if v.Type() == timeType {
			return reflect.ValueOf(v.Interface().(time.Time).UTC())
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if c.Field(i).CanSet() {
				c.Field(i).Set(utc(v.Field(i)))
			}
		}
		return c
	}
	return v
}

// show formats v compactly: byte slices quoted, times in UTC, slices of
// items by their keys when they are long.
func show(v any) string {
	var b strings.Builder
	showValue(&b, reflect.ValueOf(v))
	return b.String()
}

func showValue(b *strings.Builder, v reflect.Value) {
	switch {
	case !v.IsValid():
		b.WriteString("<nil>")
	case v.Type() == timeType:
		t := v.Interface().(time.Time)
		if t.IsZero() {
			b.WriteString("0")
		} else {
			b.WriteString(t.UTC().Format(time.RFC3339Nano))
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		fmt.Fprintf(b, "%q", v.Bytes())
	case v.Kind() == reflect.Slice:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		b.WriteString("[")
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			showValue(b, v.Index(i))
		}
		b.WriteString("]")
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		showValue(b, v.Elem())
	case v.Kind() == reflect.Struct:
		b.WriteString("{")
		for i := 0; i < v.NumField(); i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(v.Type().Field(i).Name + ":")
			if v.Type().Field(i).IsExported() {
				showValue(b, v.Field(i))
			}
		}
		b.WriteString("}")
	default:
		fmt.Fprintf(b, "%v", v.Interface())
	}
}

// Fixtures.

func tenant(id string) *keyhold.Tenant {
	return &keyhold.Tenant{ID: id, DisplayName: "Tenant " + id, CreatedAt: at(0)}
}

func env(id, tenantID string) *keyhold.Environment {
	return &keyhold.Environment{
		ID: id, TenantID: tenantID, DisplayName: "Env " + id, Location: "europe",
		SKU: keyhold.SKUSandbox, Managed: true, FinOps: false, State: keyhold.StateEnabled,
		KeyManagedBy: keyhold.KeyManagedByMicrosoft, Epoch: 1, CreatedBy: "user-" + id,
		CreatedAt: at(time.Minute), UpdatedAt: at(time.Minute),
	}
}

func row(envID, table, id string, version uint64, epoch uint32) *keyhold.RowRecord {
	return &keyhold.RowRecord{
		EnvID: envID, Table: table, ID: id, Epoch: epoch, Version: version,
		Ciphertext: fmt.Appendf(nil, "ct:%s/%s/%s@%d", envID, table, id, version),
		UpdatedAt:  at(time.Duration(version) * time.Second),
	}
}

// seedEnv creates tenant tn (if new) and environment id.
func seedEnv(t *testing.T, s keyhold.Store, tn, id string) {
	t.Helper()
	update(t, s, func(tx keyhold.Tx) error {
		ctx := context.Background()
		if _, err := tx.Tenant(ctx, tn); keyhold.ErrorCode(err) == keyhold.CodeNotFound {
			if err := tx.CreateTenant(ctx, tenant(tn)); err != nil {
				return err
			}
		}
		return tx.CreateEnvironment(ctx, env(id, tn))
	})
}

func testTenants(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	sys := &keyhold.Tenant{ID: "sys", DisplayName: "System", System: true, CreatedAt: at(0)}
	b, a := tenant("b"), tenant("a")
	update(t, s, func(tx keyhold.Tx) error {
		for _, tn := range []*keyhold.Tenant{sys, b, a} {
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Tenant(ctx, "sys")
		if err != nil {
			return err
		}
		equal(t, "Tenant(sys)", got, sys)
		all, err := tx.ListTenants(ctx)
		if err != nil {
			return err
		}
		equal(t, "ListTenants", all, []*keyhold.Tenant{a, b, sys})
		_, err = tx.Tenant(ctx, "nope")
		wantCode(t, "Tenant(nope)", err, keyhold.CodeNotFound, "nope")
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateTenant(ctx, tenant("a")) })
	wantCode(t, "CreateTenant(existing)", err, keyhold.CodeConflict, "a")
	sys2 := &keyhold.Tenant{ID: "sys2", DisplayName: "Second system", System: true, CreatedAt: at(0)}
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateTenant(ctx, sys2) })
	wantCode(t, "CreateTenant(second system tenant)", err, keyhold.CodeConflict, "sys2")
	view(t, s, func(tx keyhold.Tx) error {
		all, err := tx.ListTenants(ctx)
		if err == nil && len(all) != 3 {
			t.Errorf("after refused creations: %d tenants, want 3", len(all))
		}
		return err
	})
}

func testSubscriptions(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	s1 := &keyhold.Subscription{ID: "s1", TenantID: "t1", DisplayName: "One", CreatedAt: at(time.Second)}
	s2 := &keyhold.Subscription{ID: "s2", TenantID: "t2", DisplayName: "Two", CreatedAt: at(2 * time.Second)}
	s0 := &keyhold.Subscription{ID: "s0", TenantID: "t1", DisplayName: "Zero", CreatedAt: at(3 * time.Second)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, tn := range []string{"t1", "t2"} {
			if err := tx.CreateTenant(ctx, tenant(tn)); err != nil {
				return err
			}
		}
		for _, sub := range []*keyhold.Subscription{s1, s2, s0} {
			if err := tx.CreateSubscription(ctx, sub); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Subscription(ctx, "s2")
		if err != nil {
			return err
		}
		equal(t, "Subscription(s2)", got, s2)
		l, err := tx.ListSubscriptions(ctx, "t1")
		if err != nil {
			return err
		}
		equal(t, "ListSubscriptions(t1)", l, []*keyhold.Subscription{s0, s1})
		l, err = tx.ListSubscriptions(ctx, "")
		if err != nil {
			return err
		}
		equal(t, "ListSubscriptions(all)", l, []*keyhold.Subscription{s0, s1, s2})
		l, err = tx.ListSubscriptions(ctx, "t3")
		if err != nil {
			return err
		}
		if l == nil || len(l) != 0 {
			t.Errorf("ListSubscriptions(unknown tenant) = %#v, want an empty, non-nil slice", l)
		}
		_, err = tx.Subscription(ctx, "missing")
		wantCode(t, "Subscription(missing)", err, keyhold.CodeNotFound, "missing")
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateSubscription(ctx, s1) })
	wantCode(t, "CreateSubscription(existing)", err, keyhold.CodeConflict, "s1")
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.CreateSubscription(ctx, &keyhold.Subscription{ID: "s9", TenantID: "t9", CreatedAt: at(0)})
	})
	wantCode(t, "CreateSubscription(unknown tenant)", err, keyhold.CodeNotFound, "t9")
}

func testPrincipals(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	user1 := &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Ada", CreatedAt: at(0)}
	user2 := &keyhold.Principal{ID: "u2", TenantID: "t1", Type: keyhold.PrincipalUser, DisplayName: "Bob", CreatedAt: at(1)}
	sp := &keyhold.Principal{ID: "p1", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal, DisplayName: "App", AppID: "app-1", CreatedAt: at(2)}
	// The same app in another tenant (a multi-tenant app) is another
	// principal with the same app id.
	sp2 := &keyhold.Principal{ID: "p2", TenantID: "t2", Type: keyhold.PrincipalManagedIdentity, DisplayName: "Policy", AppID: "app-1", CreatedAt: at(3)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, tn := range []string{"t1", "t2"} {
			if err := tx.CreateTenant(ctx, tenant(tn)); err != nil {
				return err
			}
		}
		for _, p := range []*keyhold.Principal{user2, sp, user1, sp2} {
			if err := tx.CreatePrincipal(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Principal(ctx, "p1")
		if err != nil {
			return err
		}
		equal(t, "Principal(p1)", got, sp)
		got, err = tx.Principal(ctx, "u1")
		if err != nil {
			return err
		}
		equal(t, "Principal(u1)", got, user1)
		got, err = tx.PrincipalByAppID(ctx, "t2", "app-1")
		if err != nil {
			return err
		}
		equal(t, "PrincipalByAppID(t2, app-1)", got, sp2)
		got, err = tx.PrincipalByAppID(ctx, "t1", "app-1")
		if err != nil {
			return err
		}
		equal(t, "PrincipalByAppID(t1, app-1)", got, sp)
		_, err = tx.PrincipalByAppID(ctx, "t3", "app-1")
		wantCode(t, "PrincipalByAppID(other tenant)", err, keyhold.CodeNotFound, "app-1")
		_, err = tx.PrincipalByAppID(ctx, "t1", "")
		wantCode(t, "PrincipalByAppID(empty app id)", err, keyhold.CodeNotFound)
		_, err = tx.Principal(ctx, "nobody")
		wantCode(t, "Principal(nobody)", err, keyhold.CodeNotFound, "nobody")
		l, err := tx.ListPrincipals(ctx, "t1")
		if err != nil {
			return err
		}
		equal(t, "ListPrincipals(t1)", l, []*keyhold.Principal{sp, user1, user2})
		l, err = tx.ListPrincipals(ctx, "")
		if err != nil {
			return err
		}
		equal(t, "ListPrincipals(all)", l, []*keyhold.Principal{sp, sp2, user1, user2})
		return nil
	})
	dupApp := &keyhold.Principal{ID: "p3", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal, AppID: "app-1", CreatedAt: at(0)}
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreatePrincipal(ctx, dupApp) })
	wantCode(t, "CreatePrincipal(app id taken)", err, keyhold.CodeConflict, "app-1")
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreatePrincipal(ctx, user1) })
	wantCode(t, "CreatePrincipal(existing)", err, keyhold.CodeConflict, "u1")
	orphan := &keyhold.Principal{ID: "p4", TenantID: "t9", Type: keyhold.PrincipalUser, CreatedAt: at(0)}
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreatePrincipal(ctx, orphan) })
	wantCode(t, "CreatePrincipal(unknown tenant)", err, keyhold.CodeNotFound, "t9")
}

func testCredentials(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	c1 := &keyhold.Credential{PrincipalID: "p1", SecretHash: bytes.Repeat([]byte{0xa1}, 32), CreatedAt: at(2 * time.Hour), ExpiresAt: at(48 * time.Hour)}
	c2 := &keyhold.Credential{PrincipalID: "p1", SecretHash: bytes.Repeat([]byte{0x00}, 32), CreatedAt: at(time.Hour)} // never expires: zero time
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.CreateTenant(ctx, tenant("t1")); err != nil {
			return err
		}
		if err := tx.CreatePrincipal(ctx, &keyhold.Principal{ID: "p1", TenantID: "t1", Type: keyhold.PrincipalServicePrincipal, AppID: "a1", CreatedAt: at(0)}); err != nil {
			return err
		}
		if err := tx.AddCredential(ctx, c1); err != nil {
			return err
		}
		return tx.AddCredential(ctx, c2)
	})
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.Credentials(ctx, "p1")
		if err != nil {
			return err
		}
		equal(t, "Credentials(p1)", l, []*keyhold.Credential{c2, c1})
		if !l[0].ExpiresAt.IsZero() {
			t.Errorf("zero ExpiresAt came back as %v", l[0].ExpiresAt)
		}
		l, err = tx.Credentials(ctx, "p9")
		if err != nil {
			return err
		}
		if l == nil || len(l) != 0 {
			t.Errorf("Credentials(unknown) = %#v, want an empty, non-nil slice", l)
		}
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.AddCredential(ctx, c1) })
	wantCode(t, "AddCredential(same hash)", err, keyhold.CodeConflict, "p1")
	noSecret(t, err, c1.SecretHash)
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.AddCredential(ctx, &keyhold.Credential{PrincipalID: "p9", SecretHash: []byte("h"), CreatedAt: at(0)})
	})
	wantCode(t, "AddCredential(unknown principal)", err, keyhold.CodeNotFound, "p9")
}

func testDirectoryRoles(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		for _, tn := range []string{"t1", "t2"} {
			if err := tx.CreateTenant(ctx, tenant(tn)); err != nil {
				return err
			}
		}
		if err := tx.CreatePrincipal(ctx, &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser, CreatedAt: at(0)}); err != nil {
			return err
		}
		// Assigning a role twice is idempotent.
		for _, r := range []keyhold.DirectoryRole{keyhold.RolePowerPlatformAdministrator, keyhold.RoleGlobalAdministrator, keyhold.RolePowerPlatformAdministrator} {
			if err := tx.AssignDirectoryRole(ctx, "t1", "u1", r); err != nil {
				return err
			}
		}
		// A role in another tenant (a guest) is separate.
		return tx.AssignDirectoryRole(ctx, "t2", "u1", keyhold.RoleDynamics365Administrator)
	})
	view(t, s, func(tx keyhold.Tx) error {
		rs, err := tx.DirectoryRoles(ctx, "t1", "u1")
		if err != nil {
			return err
		}
		equal(t, "DirectoryRoles(t1, u1)", rs, []keyhold.DirectoryRole{keyhold.RoleGlobalAdministrator, keyhold.RolePowerPlatformAdministrator})
		rs, err = tx.DirectoryRoles(ctx, "t2", "u1")
		if err != nil {
			return err
		}
		equal(t, "DirectoryRoles(t2, u1)", rs, []keyhold.DirectoryRole{keyhold.RoleDynamics365Administrator})
		rs, err = tx.DirectoryRoles(ctx, "t1", "u9")
		if err != nil {
			return err
		}
		if rs == nil || len(rs) != 0 {
			t.Errorf("DirectoryRoles(unknown) = %#v, want an empty, non-nil slice", rs)
		}
		return nil
	})
	update(t, s, func(tx keyhold.Tx) error {
		return tx.RemoveDirectoryRole(ctx, "t1", "u1", keyhold.RoleGlobalAdministrator)
	})
	view(t, s, func(tx keyhold.Tx) error {
		rs, err := tx.DirectoryRoles(ctx, "t1", "u1")
		if err != nil {
			return err
		}
		equal(t, "DirectoryRoles after remove", rs, []keyhold.DirectoryRole{keyhold.RolePowerPlatformAdministrator})
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.RemoveDirectoryRole(ctx, "t1", "u1", keyhold.RoleGlobalAdministrator)
	})
	wantCode(t, "RemoveDirectoryRole(not held)", err, keyhold.CodeNotFound, "u1")
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.AssignDirectoryRole(ctx, "t1", "u9", keyhold.RoleGlobalAdministrator)
	})
	wantCode(t, "AssignDirectoryRole(unknown principal)", err, keyhold.CodeNotFound, "u9")
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.AssignDirectoryRole(ctx, "t9", "u1", keyhold.RoleGlobalAdministrator)
	})
	wantCode(t, "AssignDirectoryRole(unknown tenant)", err, keyhold.CodeNotFound, "t9")
}

func testSealedKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	k := &keyhold.SealedKey{ID: "mmk", Sealed: []byte("sealed-bytes-1"), CreatedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error { return tx.PutSealedKey(ctx, k) })
	other := &keyhold.SealedKey{ID: "mmk", Sealed: []byte("sealed-bytes-2"), CreatedAt: at(time.Hour)}
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutSealedKey(ctx, other) })
	wantCode(t, "PutSealedKey(replace)", err, keyhold.CodeConflict, "mmk")
	noSecret(t, err, other.Sealed)
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.SealedKey(ctx, "mmk")
		if err != nil {
			return err
		}
		equal(t, "SealedKey(mmk) after a refused replace", got, k)
		_, err = tx.SealedKey(ctx, "token")
		wantCode(t, "SealedKey(missing)", err, keyhold.CodeNotFound, "token")
		return nil
	})
}

func testEnvironments(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	e1, e2, e3 := env("e1", "t1"), env("e2", "t2"), env("e3", "t1")
	e2.CreatedAt, e3.CreatedAt = at(time.Hour), at(-time.Hour)
	e3.Managed, e3.FinOps, e3.SKU, e3.State = false, true, keyhold.SKUProduction, keyhold.StateAdminMode
	e3.PowerPlatformIntegration = true
	e3.KeyManagedBy, e3.Epoch = keyhold.KeyManagedByCustomer, 7
	update(t, s, func(tx keyhold.Tx) error {
		for _, tn := range []string{"t1", "t2"} {
			if err := tx.CreateTenant(ctx, tenant(tn)); err != nil {
				return err
			}
		}
		for _, e := range []*keyhold.Environment{e1, e2, e3} {
			if err := tx.CreateEnvironment(ctx, e); err != nil {
				return err
			}
			if e.Version != 1 {
				t.Errorf("CreateEnvironment set Version %d, want 1", e.Version)
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Environment(ctx, "e3")
		if err != nil {
			return err
		}
		equal(t, "Environment(e3)", got, e3)
		g, err := tx.EnvironmentGate(ctx, "e3")
		if err != nil {
			return err
		}
		equal(t, "EnvironmentGate(e3)", g, keyhold.EnvironmentGate{ID: "e3", TenantID: "t1", State: keyhold.StateAdminMode, KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 7})
		l, err := tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: "t1"})
		if err != nil {
			return err
		}
		equal(t, "ListEnvironments(t1), oldest first", l, []*keyhold.Environment{e3, e1})
		l, err = tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{})
		if err != nil {
			return err
		}
		equal(t, "ListEnvironments(all)", l, []*keyhold.Environment{e3, e1, e2})
		l, err = tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{ID: "e2"})
		if err != nil {
			return err
		}
		equal(t, "ListEnvironments(id e2)", l, []*keyhold.Environment{e2})
		l, err = tx.ListEnvironments(ctx, keyhold.EnvironmentFilter{TenantID: "t1", ID: "e2"})
		if err != nil {
			return err
		}
		if l == nil || len(l) != 0 {
			t.Errorf("ListEnvironments(t1, e2) = %s, want an empty, non-nil slice", show(l))
		}
		_, err = tx.Environment(ctx, "e9")
		wantCode(t, "Environment(missing)", err, keyhold.CodeEnvironmentNotFound, "e9")
		_, err = tx.EnvironmentGate(ctx, "e9")
		wantCode(t, "EnvironmentGate(missing)", err, keyhold.CodeEnvironmentNotFound, "e9")
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateEnvironment(ctx, env("e1", "t1")) })
	wantCode(t, "CreateEnvironment(existing)", err, keyhold.CodeConflict, "e1")
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.CreateEnvironment(ctx, env("e4", "t9")) })
	wantCode(t, "CreateEnvironment(unknown tenant)", err, keyhold.CodeNotFound, "t9")
}

func testUpdateEnvironment(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	var read *keyhold.Environment
	view(t, s, func(tx keyhold.Tx) (err error) {
		read, err = tx.Environment(ctx, "e1")
		return err
	})
	stale := *read
	read.DisplayName, read.State, read.KeyManagedBy, read.Epoch = "Renamed", keyhold.StateLocked, keyhold.KeyManagedByCustomer, 2
	read.Managed, read.FinOps, read.PowerPlatformIntegration, read.UpdatedAt = false, true, true, at(time.Hour)
	// Fields that never change, even if the caller changes them.
	read.CreatedBy, read.CreatedAt = "someone-else", at(5*time.Hour)
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdateEnvironment(ctx, read) })
	if read.Version != 2 {
		t.Fatalf("UpdateEnvironment left Version %d, want 2", read.Version)
	}
	want := *read
	want.CreatedBy, want.CreatedAt = stale.CreatedBy, stale.CreatedAt
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Environment(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "Environment after update", got, &want)
		g, err := tx.EnvironmentGate(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "EnvironmentGate after update", g, keyhold.EnvironmentGate{ID: "e1", TenantID: "t1", State: keyhold.StateLocked, KeyManagedBy: keyhold.KeyManagedByCustomer, Epoch: 2})
		return nil
	})

	stale.DisplayName = "Lost update"
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateEnvironment(ctx, &stale) })
	wantCode(t, "UpdateEnvironment(stale version)", err, keyhold.CodeConflict, "e1")
	if stale.Version != 1 {
		t.Errorf("a refused UpdateEnvironment changed Version to %d", stale.Version)
	}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Environment(ctx, "e1")
		if err == nil && (got.DisplayName != "Renamed" || got.Version != 2) {
			t.Errorf("after a stale update: %q version %d, want %q version 2", got.DisplayName, got.Version, "Renamed")
		}
		return err
	})
	// The next update, from the current version, works.
	update(t, s, func(tx keyhold.Tx) error { return tx.UpdateEnvironment(ctx, read) })
	if read.Version != 3 {
		t.Errorf("second UpdateEnvironment left Version %d, want 3", read.Version)
	}
	ghost := env("e9", "t1")
	ghost.Version = 1
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.UpdateEnvironment(ctx, ghost) })
	wantCode(t, "UpdateEnvironment(missing)", err, keyhold.CodeEnvironmentNotFound, "e9")
}

// fillEnv gives environment id a row, a file with chunks, an upload in
// progress, wrapped keys and an audit entry.
func fillEnv(t *testing.T, s keyhold.Store, id string) {
	t.Helper()
	ctx := context.Background()
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutRow(ctx, row(id, "accounts", "r1", 1, 1)); err != nil {
			return err
		}
		for _, root := range []keyhold.RootKind{keyhold.RootMMK, keyhold.RootCMK} {
			if err := tx.PutWrappedKey(ctx, &keyhold.WrappedKey{EnvID: id, Epoch: 1, Root: root, KeyID: "kid-" + string(root), Ciphertext: []byte("wrapped-" + id), CreatedAt: at(0)}); err != nil {
				return err
			}
		}
		for _, gen := range []string{"g1", "g2"} {
			if err := tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: id, Generation: gen, StartedAt: at(0)}); err != nil {
				return err
			}
			for seq := range 2 {
				if err := tx.PutFileChunk(ctx, id, gen, seq, []byte("chunk-"+id+"-"+gen)); err != nil {
					return err
				}
			}
		}
		// g1 becomes the file; g2 stays an upload in progress.
		if _, err := tx.PutFile(ctx, &keyhold.FileRecord{EnvID: id, Name: "doc.pdf", Generation: "g1", Epoch: 1, Version: 1, Size: 10, Chunks: 2, UpdatedAt: at(0)}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &keyhold.AuditEntry{At: at(0), TenantID: "t1", ActorID: "u1", Action: "CreateEnvironment", Target: id, EnvID: id, Result: "Succeeded"})
	})
}

func testDeleteEnvironment(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	fillEnv(t, s, "e1")
	fillEnv(t, s, "e2")
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.DeleteEnvironment(ctx, "e1"); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &keyhold.AuditEntry{At: at(time.Hour), TenantID: "t1", ActorID: "u1", Action: "DeleteEnvironment", Target: "e1", EnvID: "e1", Result: "Succeeded"})
	})
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Environment(ctx, "e1")
		wantCode(t, "Environment(deleted)", err, keyhold.CodeEnvironmentNotFound, "e1")
		_, err = tx.Row(ctx, "e1", "accounts", "r1")
		wantCode(t, "Row of deleted environment", err, keyhold.CodeRowNotFound)
		if rows, err := tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1"}); err != nil || len(rows) != 0 {
			t.Errorf("ListRows(deleted environment) = %d rows, %v; want none", len(rows), err)
		}
		_, err = tx.File(ctx, "e1", "doc.pdf")
		wantCode(t, "File of deleted environment", err, keyhold.CodeFileNotFound)
		if files, err := tx.ListFiles(ctx, "e1"); err != nil || len(files) != 0 {
			t.Errorf("ListFiles(deleted environment) = %d files, %v; want none", len(files), err)
		}
		for _, gen := range []string{"g1", "g2"} {
			_, err = tx.FileChunk(ctx, "e1", gen, 0)
			wantCode(t, "FileChunk of deleted environment", err, keyhold.CodeNotFound)
		}
		if keys, err := tx.WrappedKeys(ctx, "e1"); err != nil || len(keys) != 0 {
			t.Errorf("WrappedKeys(deleted environment) = %d keys, %v; want none", len(keys), err)
		}
		ups, err := tx.StaleUploads(ctx, at(24*time.Hour))
		if err != nil {
			return err
		}
		for _, u := range ups {
			if u.EnvID == "e1" {
				t.Errorf("upload %+v of the deleted environment remains", u)
			}
		}
		if len(ups) != 1 {
			t.Errorf("StaleUploads = %s, want e2's one", show(ups))
		}
		// The audit log keeps the entries of the deleted environment.
		entries, err := tx.ListAudit(ctx, keyhold.AuditFilter{EnvID: "e1"})
		if err != nil {
			return err
		}
		if len(entries) != 2 || entries[0].Action != "DeleteEnvironment" || entries[1].Action != "CreateEnvironment" {
			t.Errorf("audit of the deleted environment = %s, want its two entries", show(entries))
		}

		// The other environment is untouched.
		if _, err := tx.Environment(ctx, "e2"); err != nil {
			t.Errorf("Environment(e2): %v", err)
		}
		if _, err := tx.Row(ctx, "e2", "accounts", "r1"); err != nil {
			t.Errorf("Row of e2: %v", err)
		}
		if c, err := tx.FileChunk(ctx, "e2", "g1", 1); err != nil || string(c) != "chunk-e2-g1" {
			t.Errorf("FileChunk of e2 = %q, %v", c, err)
		}
		if keys, err := tx.WrappedKeys(ctx, "e2"); err != nil || len(keys) != 2 {
			t.Errorf("WrappedKeys(e2) = %d keys, %v; want 2", len(keys), err)
		}
		return nil
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeleteEnvironment(ctx, "e1") })
	wantCode(t, "DeleteEnvironment(again)", err, keyhold.CodeEnvironmentNotFound, "e1")
	// The id can be used again, and starts empty.
	seedEnv(t, s, "t1", "e1")
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.FileChunk(ctx, "e1", "g1", 0)
		wantCode(t, "FileChunk of re-created environment", err, keyhold.CodeNotFound)
		return nil
	})
}

func testWrappedKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	mmk1 := &keyhold.WrappedKey{EnvID: "e1", Epoch: 1, Root: keyhold.RootMMK, KeyID: "https://v/keys/mmk/1", Ciphertext: []byte{1, 2, 3}, CreatedAt: at(0)}
	cmk1 := &keyhold.WrappedKey{EnvID: "e1", Epoch: 1, Root: keyhold.RootCMK, KeyID: "https://v/keys/cmk/a", Ciphertext: []byte{4, 5}, CreatedAt: at(time.Second)}
	cmk2 := &keyhold.WrappedKey{EnvID: "e1", Epoch: 2, Root: keyhold.RootCMK, KeyID: "https://v/keys/cmk/a", Ciphertext: []byte{6}, CreatedAt: at(2 * time.Second)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, k := range []*keyhold.WrappedKey{cmk2, mmk1, cmk1} {
			if err := tx.PutWrappedKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.WrappedKeys(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "WrappedKeys", l, []*keyhold.WrappedKey{cmk1, mmk1, cmk2})
		return nil
	})
	// Rotation: a new key version re-wraps epoch 1 under the CMK, and
	// applying CMK deletes the MMK copy in the same transaction.
	cmk1b := &keyhold.WrappedKey{EnvID: "e1", Epoch: 1, Root: keyhold.RootCMK, KeyID: "https://v/keys/cmk/b", Ciphertext: []byte{7, 7, 7}, CreatedAt: at(time.Hour)}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.PutWrappedKey(ctx, cmk1b); err != nil {
			return err
		}
		return tx.DeleteWrappedKey(ctx, "e1", 1, keyhold.RootMMK)
	})
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.WrappedKeys(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "WrappedKeys after re-wrap", l, []*keyhold.WrappedKey{cmk1b, cmk2})
		l, err = tx.WrappedKeys(ctx, "e9")
		if err == nil && (l == nil || len(l) != 0) {
			t.Errorf("WrappedKeys(unknown) = %#v, want an empty, non-nil slice", l)
		}
		return err
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeleteWrappedKey(ctx, "e1", 1, keyhold.RootMMK) })
	wantCode(t, "DeleteWrappedKey(missing)", err, keyhold.CodeNotFound, "e1")
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.PutWrappedKey(ctx, &keyhold.WrappedKey{EnvID: "e9", Epoch: 1, Root: keyhold.RootMMK, KeyID: "k", Ciphertext: []byte("secret-wrap"), CreatedAt: at(0)})
	})
	wantCode(t, "PutWrappedKey(unknown environment)", err, keyhold.CodeEnvironmentNotFound, "e9")
	noSecret(t, err, []byte("secret-wrap"))
}

func testRows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	v1 := row("e1", "accounts", "r1", 1, 1)
	update(t, s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, v1) })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Row(ctx, "e1", "accounts", "r1")
		if err != nil {
			return err
		}
		equal(t, "Row after insert", got, v1)
		return nil
	})

	// Version 1 again: the row exists.
	again := row("e1", "accounts", "r1", 1, 1)
	again.Ciphertext = []byte("second-insert-ciphertext")
	err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, again) })
	wantCode(t, "PutRow(version 1 of an existing row)", err, keyhold.CodeConflict, "r1")
	noSecret(t, err, again.Ciphertext)

	v2 := row("e1", "accounts", "r1", 2, 2)
	update(t, s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, v2) })
	// Another writer that also read version 1 loses.
	lost := row("e1", "accounts", "r1", 2, 2)
	lost.Ciphertext = []byte("lost-update-ciphertext")
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, lost) })
	wantCode(t, "PutRow(stale version)", err, keyhold.CodeConflict, "r1")
	noSecret(t, err, lost.Ciphertext)
	// Skipping a version is a conflict too.
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "accounts", "r1", 4, 2)) })
	wantCode(t, "PutRow(skipped version)", err, keyhold.CodeConflict, "r1")
	// So is updating a row that doesn't exist.
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "accounts", "r2", 2, 1)) })
	wantCode(t, "PutRow(version 2 of a missing row)", err, keyhold.CodeConflict, "r2")
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.Row(ctx, "e1", "accounts", "r1")
		if err != nil {
			return err
		}
		equal(t, "Row after refused writes", got, v2)
		// Same id in another table is another row.
		_, err = tx.Row(ctx, "e1", "contacts", "r1")
		wantCode(t, "Row(other table)", err, keyhold.CodeRowNotFound, "r1", "contacts")
		return nil
	})

	if err := tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "accounts", "r3", 0, 1)) }); err == nil {
		t.Errorf("PutRow(version 0) succeeded")
	}
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e9", "accounts", "r1", 1, 1)) })
	wantCode(t, "PutRow(unknown environment)", err, keyhold.CodeEnvironmentNotFound, "e9")

	update(t, s, func(tx keyhold.Tx) error { return tx.DeleteRow(ctx, "e1", "accounts", "r1") })
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Row(ctx, "e1", "accounts", "r1")
		wantCode(t, "Row(deleted)", err, keyhold.CodeRowNotFound, "r1", "accounts", "e1")
		return nil
	})
	err = tryUpdate(s, func(tx keyhold.Tx) error { return tx.DeleteRow(ctx, "e1", "accounts", "r1") })
	wantCode(t, "DeleteRow(missing)", err, keyhold.CodeRowNotFound, "r1")
	// After a delete the row starts again at version 1.
	update(t, s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "accounts", "r1", 1, 2)) })
}

// testConflictKeepsTransaction checks that conflicts and not-found answers
// leave the transaction usable (PostgreSQL aborts a transaction on any
// failed statement, so the store must not let one fail).
func testConflictKeepsTransaction(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "a", "r1", 1, 1)) })
	update(t, s, func(tx keyhold.Tx) error {
		wantCode(t, "PutRow(existing)", tx.PutRow(ctx, row("e1", "a", "r1", 1, 1)), keyhold.CodeConflict)
		wantCode(t, "PutRow(stale)", tx.PutRow(ctx, row("e1", "a", "r1", 3, 1)), keyhold.CodeConflict)
		wantCode(t, "CreateTenant(existing)", tx.CreateTenant(ctx, tenant("t1")), keyhold.CodeConflict)
		wantCode(t, "CreateEnvironment(existing)", tx.CreateEnvironment(ctx, env("e1", "t1")), keyhold.CodeConflict)
		e, err := tx.Environment(ctx, "e1")
		if err != nil {
			return err
		}
		e.Version = 99
		wantCode(t, "UpdateEnvironment(stale)", tx.UpdateEnvironment(ctx, e), keyhold.CodeConflict)
		_, err = tx.Row(ctx, "e1", "a", "r9")
		wantCode(t, "Row(missing)", err, keyhold.CodeRowNotFound)
		wantCode(t, "DeleteRow(missing)", tx.DeleteRow(ctx, "e1", "a", "r9"), keyhold.CodeRowNotFound)
		wantCode(t, "PutSealedKey twice", errors.Join(tx.PutSealedKey(ctx, &keyhold.SealedKey{ID: "k", Sealed: []byte("s")}),
			tx.PutSealedKey(ctx, &keyhold.SealedKey{ID: "k", Sealed: []byte("s")})), keyhold.CodeConflict)
		// The transaction still works and commits.
		return tx.PutRow(ctx, row("e1", "a", "r1", 2, 1))
	})
	view(t, s, func(tx keyhold.Tx) error {
		r, err := tx.Row(ctx, "e1", "a", "r1")
		if err == nil && r.Version != 2 {
			t.Errorf("row version %d after the transaction, want 2", r.Version)
		}
		return err
	})
}

func testListRows(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	// Names sort bytewise on every backend: upper case before lower case,
	// '-' < '.' < digits < '_'.
	var all []*keyhold.RowRecord
	tables := []string{"Zeta", "alpha", "alpha_2"}
	ids := []string{"B", "a", "a-1", "a.1", "a1", "a_1", "b"}
	update(t, s, func(tx keyhold.Tx) error {
		for ti, table := range tables {
			for ii, id := range ids {
				r := row("e1", table, id, 1, uint32(1+(ti+ii)%2))
				if err := tx.PutRow(ctx, r); err != nil {
					return err
				}
				all = append(all, r)
			}
		}
		// Rows of another environment never show.
		return tx.PutRow(ctx, row("e2", "alpha", "a", 1, 1))
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1"})
		if err != nil {
			return err
		}
		equal(t, "ListRows(e1)", got, all)

		// Walk in pages of 4, resuming after the last row of each.
		var walked []*keyhold.RowRecord
		f := keyhold.RowFilter{EnvID: "e1", Limit: 4}
		for pages := 0; ; pages++ {
			if pages > len(all) {
				t.Fatalf("the walk doesn't end")
			}
			page, err := tx.ListRows(ctx, f)
			if err != nil {
				return err
			}
			if len(page) > 4 {
				t.Fatalf("page of %d rows, limit 4", len(page))
			}
			if len(page) == 0 {
				break
			}
			walked = append(walked, page...)
			last := page[len(page)-1]
			f.AfterTable, f.AfterID = last.Table, last.ID
		}
		equal(t, "rows walked in pages", walked, all)

		// After is exclusive.
		got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", AfterTable: "alpha", AfterID: "a1", Limit: 3})
		if err != nil {
			return err
		}
		equal(t, "ListRows(after alpha/a1)", got, all[len(ids)+5:len(ids)+8])
		// An After table with no id starts at that table.
		got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", AfterTable: "alpha_2"})
		if err != nil {
			return err
		}
		equal(t, "ListRows(after table alpha_2)", got, all[2*len(ids):])
		// A table filter keeps to one table, with After paging in it.
		got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", Table: "alpha"})
		if err != nil {
			return err
		}
		equal(t, "ListRows(table alpha)", got, all[len(ids):2*len(ids)])
		got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", Table: "alpha", AfterTable: "alpha", AfterID: "a_1", Limit: 5})
		if err != nil {
			return err
		}
		equal(t, "ListRows(table alpha after a_1)", got, all[2*len(ids)-1:2*len(ids)])

		// Epoch filter, combined with paging.
		var epoch2 []*keyhold.RowRecord
		for _, r := range all {
			if r.Epoch == 2 {
				epoch2 = append(epoch2, r)
			}
		}
		got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", Epoch: 2})
		if err != nil {
			return err
		}
		equal(t, "ListRows(epoch 2)", got, epoch2)
		got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", Epoch: 2, AfterTable: epoch2[2].Table, AfterID: epoch2[2].ID, Limit: 2})
		if err != nil {
			return err
		}
		equal(t, "ListRows(epoch 2, after the third)", got, epoch2[3:5])
		got, err = tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", Epoch: 9})
		if err == nil && (got == nil || len(got) != 0) {
			t.Errorf("ListRows(unused epoch) = %s, want an empty, non-nil slice", show(got))
		}
		return err
	})
}

func testListRowsLimits(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	const n = 10001
	update(t, s, func(tx keyhold.Tx) error {
		for i := range n {
			r := &keyhold.RowRecord{EnvID: "e1", Table: "t", ID: fmt.Sprintf("r%05d", i), Epoch: 1, Version: 1, Ciphertext: []byte{byte(i)}, UpdatedAt: at(0)}
			if err := tx.PutRow(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		for _, tc := range []struct {
			name  string
			limit int
			want  int
		}{
			{"default", 0, 1000},
			{"negative means default", -5, 1000},
			{"given", 7, 7},
			{"maximum", 10000, 10000},
			{"above maximum", 50000, 10000},
		} {
			got, err := tx.ListRows(ctx, keyhold.RowFilter{EnvID: "e1", Limit: tc.limit})
			if err != nil {
				return err
			}
			if len(got) != tc.want {
				t.Errorf("ListRows(limit %d, %s) = %d rows, want %d", tc.limit, tc.name, len(got), tc.want)
			}
			if len(got) > 0 && (got[0].ID != "r00000" || got[len(got)-1].ID != fmt.Sprintf("r%05d", len(got)-1)) {
				t.Errorf("ListRows(limit %d) = %s … %s, want the first rows in order", tc.limit, got[0].ID, got[len(got)-1].ID)
			}
		}
		return nil
	})
}

func testFiles(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	gen1 := &keyhold.FileRecord{EnvID: "e1", Name: "report.pdf", Generation: "g1", Epoch: 1, Version: 1, Size: 70000, Chunks: 2, UpdatedAt: at(time.Minute)}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: "e1", Generation: "g1", StartedAt: at(0)}); err != nil {
			return err
		}
		if err := tx.PutFileChunk(ctx, "e1", "g1", 0, []byte("first-chunk")); err != nil {
			return err
		}
		// Rewriting a chunk (a retried step) replaces it.
		if err := tx.PutFileChunk(ctx, "e1", "g1", 1, []byte("stale")); err != nil {
			return err
		}
		return tx.PutFileChunk(ctx, "e1", "g1", 1, []byte("second-chunk"))
	})
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: "e1", Generation: "g1", StartedAt: at(0)})
	})
	wantCode(t, "BeginFileUpload(same generation)", err, keyhold.CodeConflict, "g1")
	view(t, s, func(tx keyhold.Tx) error {
		// Not a file until PutFile.
		_, err := tx.File(ctx, "e1", "report.pdf")
		wantCode(t, "File before PutFile", err, keyhold.CodeFileNotFound, "report.pdf", "e1")
		c, err := tx.FileChunk(ctx, "e1", "g1", 1)
		if err != nil {
			return err
		}
		if string(c) != "second-chunk" {
			t.Errorf("FileChunk(g1, 1) = %q, want %q", c, "second-chunk")
		}
		_, err = tx.FileChunk(ctx, "e1", "g1", 2)
		wantCode(t, "FileChunk(past the end)", err, keyhold.CodeNotFound)
		return nil
	})
	update(t, s, func(tx keyhold.Tx) error {
		replaced, err := tx.PutFile(ctx, gen1)
		if err != nil {
			return err
		}
		if replaced != nil {
			t.Errorf("PutFile(new file) replaced %+v, want nil", replaced)
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.File(ctx, "e1", "report.pdf")
		if err != nil {
			return err
		}
		equal(t, "File after PutFile", got, gen1)
		ups, err := tx.StaleUploads(ctx, at(time.Hour))
		if err == nil && len(ups) != 0 {
			t.Errorf("PutFile left the upload mark: %s", show(ups))
		}
		return err
	})

	// Replace it with generation g2: PutFile returns g1's record, whose
	// chunks the caller deletes in the same transaction.
	gen2 := &keyhold.FileRecord{EnvID: "e1", Name: "report.pdf", Generation: "g2", Epoch: 2, Version: 2, Size: 5, Chunks: 1, UpdatedAt: at(time.Hour)}
	update(t, s, func(tx keyhold.Tx) error {
		if err := tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: "e1", Generation: "g2", StartedAt: at(time.Hour)}); err != nil {
			return err
		}
		if err := tx.PutFileChunk(ctx, "e1", "g2", 0, []byte("new")); err != nil {
			return err
		}
		replaced, err := tx.PutFile(ctx, gen2)
		if err != nil {
			return err
		}
		equal(t, "PutFile(g2) replaced", replaced, gen1)
		return tx.DeleteFileChunks(ctx, "e1", replaced.Generation)
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.File(ctx, "e1", "report.pdf")
		if err != nil {
			return err
		}
		equal(t, "File after replace", got, gen2)
		for seq := range 2 {
			_, err = tx.FileChunk(ctx, "e1", "g1", seq)
			wantCode(t, "FileChunk of the replaced generation", err, keyhold.CodeNotFound)
		}
		c, err := tx.FileChunk(ctx, "e1", "g2", 0)
		if err == nil && string(c) != "new" {
			t.Errorf("FileChunk(g2, 0) = %q", c)
		}
		return err
	})
	// PutFile of the generation the file already has replaces nothing
	// (so a caller can't delete the live chunks by mistake).
	update(t, s, func(tx keyhold.Tx) error {
		replaced, err := tx.PutFile(ctx, gen2)
		if err == nil && replaced != nil {
			t.Errorf("PutFile(same generation) replaced %+v, want nil", replaced)
		}
		return err
	})

	small := &keyhold.FileRecord{EnvID: "e1", Name: "a.txt", Generation: "g3", Epoch: 2, Version: 1, Size: 0, Chunks: 0, UpdatedAt: at(2 * time.Hour)}
	update(t, s, func(tx keyhold.Tx) error {
		_, err := tx.PutFile(ctx, small)
		return err
	})
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListFiles(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "ListFiles", l, []*keyhold.FileRecord{small, gen2})
		l, err = tx.ListFiles(ctx, "e9")
		if err == nil && (l == nil || len(l) != 0) {
			t.Errorf("ListFiles(unknown) = %#v, want an empty, non-nil slice", l)
		}
		return err
	})

	// DeleteFile returns the record and removes its chunks.
	update(t, s, func(tx keyhold.Tx) error {
		old, err := tx.DeleteFile(ctx, "e1", "report.pdf")
		if err != nil {
			return err
		}
		equal(t, "DeleteFile returned", old, gen2)
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.File(ctx, "e1", "report.pdf")
		wantCode(t, "File(deleted)", err, keyhold.CodeFileNotFound, "report.pdf")
		_, err = tx.FileChunk(ctx, "e1", "g2", 0)
		wantCode(t, "FileChunk of a deleted file", err, keyhold.CodeNotFound)
		return nil
	})
	_, err = deleteFile(s, "e1", "report.pdf")
	wantCode(t, "DeleteFile(again)", err, keyhold.CodeFileNotFound, "report.pdf")

	for name, fn := range map[string]func(tx keyhold.Tx) error{
		"BeginFileUpload": func(tx keyhold.Tx) error {
			return tx.BeginFileUpload(ctx, &keyhold.FileUpload{EnvID: "e9", Generation: "g", StartedAt: at(0)})
		},
		"PutFileChunk": func(tx keyhold.Tx) error { return tx.PutFileChunk(ctx, "e9", "g", 0, []byte("x")) },
		"PutFile": func(tx keyhold.Tx) error {
			_, err := tx.PutFile(ctx, &keyhold.FileRecord{EnvID: "e9", Name: "f", Generation: "g", Version: 1})
			return err
		},
	} {
		wantCode(t, name+"(unknown environment)", tryUpdate(s, fn), keyhold.CodeEnvironmentNotFound, "e9")
	}
}

func deleteFile(s keyhold.Store, envID, name string) (f *keyhold.FileRecord, err error) {
	err = tryUpdate(s, func(tx keyhold.Tx) error {
		f, err = tx.DeleteFile(context.Background(), envID, name)
		return err
	})
	return f, err
}

func testStaleUploads(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	seedEnv(t, s, "t1", "e2")
	u1 := &keyhold.FileUpload{EnvID: "e2", Generation: "old", StartedAt: at(-2 * time.Hour)}
	u2 := &keyhold.FileUpload{EnvID: "e1", Generation: "older", StartedAt: at(-3 * time.Hour)}
	u3 := &keyhold.FileUpload{EnvID: "e1", Generation: "fresh", StartedAt: at(0)}
	update(t, s, func(tx keyhold.Tx) error {
		for _, u := range []*keyhold.FileUpload{u1, u2, u3} {
			if err := tx.BeginFileUpload(ctx, u); err != nil {
				return err
			}
		}
		return tx.PutFileChunk(ctx, "e2", "old", 0, []byte("abandoned"))
	})
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.StaleUploads(ctx, at(-time.Hour))
		if err != nil {
			return err
		}
		equal(t, "StaleUploads(an hour before)", got, []*keyhold.FileUpload{u2, u1})
		// "before" is exclusive.
		got, err = tx.StaleUploads(ctx, u2.StartedAt)
		if err == nil && len(got) != 0 {
			t.Errorf("StaleUploads(at the oldest start) = %s, want none", show(got))
		}
		return err
	})
	// Cleaning up an abandoned upload: its chunks, then its mark; both
	// may be repeated.
	for range 2 {
		update(t, s, func(tx keyhold.Tx) error {
			if err := tx.DeleteFileChunks(ctx, "e2", "old"); err != nil {
				return err
			}
			return tx.DeleteFileUpload(ctx, "e2", "old")
		})
	}
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.StaleUploads(ctx, at(time.Hour))
		if err != nil {
			return err
		}
		equal(t, "StaleUploads after cleanup", got, []*keyhold.FileUpload{u2, u3})
		_, err = tx.FileChunk(ctx, "e2", "old", 0)
		wantCode(t, "FileChunk of a cleaned-up upload", err, keyhold.CodeNotFound)
		return nil
	})
}

func testAudit(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var entries []*keyhold.AuditEntry // in append order
	update(t, s, func(tx keyhold.Tx) error {
		for i := range 12 {
			e := &keyhold.AuditEntry{
				At: at(time.Duration(i) * time.Second), TenantID: []string{"t1", "t2"}[i%2],
				ActorID: fmt.Sprintf("u%d", i), Action: "PutRow", Target: fmt.Sprintf("rows/r%d", i),
				EnvID: []string{"e1", "e2", ""}[i%3], Result: "Succeeded",
			}
			if i == 5 {
				e.Result, e.Detail = "Failed", "KeyVaultUnavailable"
			}
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
			if e.ID <= 0 || (i > 0 && e.ID <= entries[i-1].ID) {
				t.Fatalf("AppendAudit set ID %d after %v, want a growing positive id", e.ID, entries)
			}
			entries = append(entries, e)
		}
		return nil
	})
	newest := func(keep func(e *keyhold.AuditEntry) bool) []*keyhold.AuditEntry {
		var out []*keyhold.AuditEntry
		for i := len(entries) - 1; i >= 0; i-- {
			if keep(entries[i]) {
				out = append(out, entries[i])
			}
		}
		return out
	}
	all := newest(func(*keyhold.AuditEntry) bool { return true })
	view(t, s, func(tx keyhold.Tx) error {
		got, err := tx.ListAudit(ctx, keyhold.AuditFilter{})
		if err != nil {
			return err
		}
		equal(t, "ListAudit(all), newest first", got, all)
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: "t2"})
		if err != nil {
			return err
		}
		equal(t, "ListAudit(t2)", got, newest(func(e *keyhold.AuditEntry) bool { return e.TenantID == "t2" }))
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{EnvID: "e1"})
		if err != nil {
			return err
		}
		equal(t, "ListAudit(e1)", got, newest(func(e *keyhold.AuditEntry) bool { return e.EnvID == "e1" }))
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: "t1", EnvID: "e2"})
		if err != nil {
			return err
		}
		equal(t, "ListAudit(t1, e2)", got, newest(func(e *keyhold.AuditEntry) bool { return e.TenantID == "t1" && e.EnvID == "e2" }))

		// Page through t1's entries, 2 at a time.
		want := newest(func(e *keyhold.AuditEntry) bool { return e.TenantID == "t1" })
		var paged []*keyhold.AuditEntry
		f := keyhold.AuditFilter{TenantID: "t1", Limit: 2}
		for range len(want) + 1 {
			page, err := tx.ListAudit(ctx, f)
			if err != nil {
				return err
			}
			if len(page) > 2 {
				t.Fatalf("page of %d entries, limit 2", len(page))
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			f.BeforeID = page[len(page)-1].ID
		}
		equal(t, "ListAudit(t1) in pages", paged, want)
		got, err = tx.ListAudit(ctx, keyhold.AuditFilter{BeforeID: entries[3].ID})
		if err != nil {
			return err
		}
		equal(t, "ListAudit(before the fourth)", got, []*keyhold.AuditEntry{entries[2], entries[1], entries[0]})
		return nil
	})

	// Default limit 100, maximum 1000.
	update(t, s, func(tx keyhold.Tx) error {
		for i := range 1001 {
			if err := tx.AppendAudit(ctx, &keyhold.AuditEntry{At: at(0), TenantID: "t3", ActorID: "u", Action: "A", Target: fmt.Sprint(i), Result: "Succeeded"}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx keyhold.Tx) error {
		for _, tc := range []struct {
			name        string
			limit, want int
		}{{"default", 0, 100}, {"given", 5, 5}, {"above maximum", 5000, 1000}} {
			got, err := tx.ListAudit(ctx, keyhold.AuditFilter{TenantID: "t3", Limit: tc.limit})
			if err != nil {
				return err
			}
			if len(got) != tc.want {
				t.Errorf("ListAudit(limit %d, %s) = %d entries, want %d", tc.limit, tc.name, len(got), tc.want)
			} else if got[0].Target != "1000" {
				t.Errorf("ListAudit(limit %d) starts at %q, want the newest", tc.limit, got[0].Target)
			}
		}
		return nil
	})
}

func testTimes(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	times := map[string]time.Time{
		"nanoseconds, not UTC": base,
		"zero":                 {},
		"before 1970":          time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC),
		"far future":           time.Date(2261, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"with monotonic clock": time.Now(),
	}
	for name, tm := range times {
		k := &keyhold.SealedKey{ID: name, Sealed: []byte("x"), CreatedAt: tm}
		update(t, s, func(tx keyhold.Tx) error { return tx.PutSealedKey(ctx, k) })
		view(t, s, func(tx keyhold.Tx) error {
			got, err := tx.SealedKey(ctx, name)
			if err != nil {
				return err
			}
			if !got.CreatedAt.Equal(tm) || got.CreatedAt.IsZero() != tm.IsZero() {
				t.Errorf("%s: stored %v, got back %v", name, tm, got.CreatedAt)
			}
			if !tm.IsZero() && got.CreatedAt.Location() != time.UTC {
				t.Errorf("%s: got back a time in %v, want UTC", name, got.CreatedAt.Location())
			}
			return nil
		})
	}
	// A time the store can't represent is refused, not wrapped around.
	err := tryUpdate(s, func(tx keyhold.Tx) error {
		return tx.PutSealedKey(ctx, &keyhold.SealedKey{ID: "y9999", Sealed: []byte("x"), CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)})
	})
	if err == nil {
		t.Errorf("storing year 9999 succeeded; want an error")
	}
}

var errRollback = errors.New("roll back, please")

func testUpdateRollsBack(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	calls := 0
	err := s.Update(ctx, func(tx keyhold.Tx) error {
		calls++
		if err := tx.CreateTenant(ctx, tenant("t2")); err != nil {
			return err
		}
		if err := tx.PutRow(ctx, row("e1", "a", "r1", 1, 1)); err != nil {
			return err
		}
		if err := tx.DeleteEnvironment(ctx, "e1"); err != nil {
			return err
		}
		return fmt.Errorf("fn failed: %w", errRollback)
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if calls != 1 {
		t.Errorf("fn ran %d times for an error of its own, want 1", calls)
	}
	view(t, s, func(tx keyhold.Tx) error {
		_, err := tx.Tenant(ctx, "t2")
		wantCode(t, "Tenant written by a rolled-back Update", err, keyhold.CodeNotFound)
		_, err = tx.Row(ctx, "e1", "a", "r1")
		wantCode(t, "Row written by a rolled-back Update", err, keyhold.CodeRowNotFound)
		_, err = tx.Environment(ctx, "e1")
		return err // deleted only in the rolled-back transaction
	})
	// A keyhold error from fn comes back as is.
	err = s.Update(ctx, func(tx keyhold.Tx) error { return keyhold.Errorf(keyhold.CodeForbidden, "no") })
	wantCode(t, "Update returning a keyhold error", err, keyhold.CodeForbidden)
}

func testViewIsReadOnly(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	err := s.View(ctx, func(tx keyhold.Tx) error { return tx.CreateTenant(ctx, tenant("t1")) })
	if err == nil {
		t.Errorf("a write in View succeeded")
	}
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListTenants(ctx)
		if err == nil && len(l) != 0 {
			t.Errorf("View wrote %s", show(l))
		}
		return err
	})
	// View returns fn's error.
	if err := s.View(ctx, func(tx keyhold.Tx) error { return errRollback }); !errors.Is(err, errRollback) {
		t.Errorf("View returned %v, want fn's error", err)
	}
}

func testContext(t *testing.T, s keyhold.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := s.Update(ctx, func(tx keyhold.Tx) error {
		ran = true
		return tx.CreateTenant(ctx, tenant("t1"))
	})
	if err == nil {
		t.Fatalf("Update with a cancelled context succeeded (fn ran: %v)", ran)
	}
	view(t, s, func(tx keyhold.Tx) error {
		l, err := tx.ListTenants(context.Background())
		if err == nil && len(l) != 0 {
			t.Errorf("an Update with a cancelled context wrote %s", show(l))
		}
		return err
	})
}

// testRacingWrites starts writers of the same next version at once:
// exactly one must win and the others get CodeConflict.
func testRacingWrites(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "a", "r", 1, 1)) })
	const writers = 4
	for round := range 5 {
		version := uint64(round + 2)
		// A writer that reads first holds its transaction open while
		// the others write, the classic lost-update interleaving.
		var start sync.WaitGroup
		start.Add(1)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				errs[w] = s.Update(ctx, func(tx keyhold.Tx) error {
					cur, err := tx.Row(ctx, "e1", "a", "r")
					if err != nil {
						return err
					}
					if cur.Version != version-1 {
						return keyhold.Errorf(keyhold.CodeConflict, "read version %d", cur.Version)
					}
					r := row("e1", "a", "r", version, 1)
					r.Ciphertext = fmt.Appendf(nil, "writer %d", w)
					return tx.PutRow(ctx, r)
				})
			}()
		}
		start.Done()
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch keyhold.ErrorCode(err) {
			case "":
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both wrote version %d", round, winner, w, version)
				}
				winner = w
			case keyhold.CodeConflict:
			default:
				t.Fatalf("round %d: writer %d: %v, want success or CodeConflict", round, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer won: %v", round, errs)
		}
		view(t, s, func(tx keyhold.Tx) error {
			r, err := tx.Row(ctx, "e1", "a", "r")
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("writer %d", winner); r.Version != version || string(r.Ciphertext) != want {
				t.Fatalf("round %d: row is version %d %q, want version %d %q", round, r.Version, r.Ciphertext, version, want)
			}
			return nil
		})
	}
}

// testNoLostUpdates runs read-modify-write loops from several goroutines
// that retry on CodeConflict; every increment must land exactly once.
func testNoLostUpdates(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	seedEnv(t, s, "t1", "e1")
	update(t, s, func(tx keyhold.Tx) error { return tx.PutRow(ctx, row("e1", "a", "counter", 1, 1)) })
	const workers, increments = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < increments; {
				err := s.Update(ctx, func(tx keyhold.Tx) error {
					r, err := tx.Row(ctx, "e1", "a", "counter")
					if err != nil {
						return err
					}
					r.Version++
					return tx.PutRow(ctx, r)
				})
				switch keyhold.ErrorCode(err) {
				case "":
					i++
				case keyhold.CodeConflict:
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
	view(t, s, func(tx keyhold.Tx) error {
		r, err := tx.Row(ctx, "e1", "a", "counter")
		if err == nil && r.Version != 1+workers*increments {
			t.Errorf("counter at version %d, want %d", r.Version, 1+workers*increments)
		}
		return err
	})
}
