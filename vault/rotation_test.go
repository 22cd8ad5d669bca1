package vault

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

func TestParseDuration(t *testing.T) {
	ref := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"P90D", ref.AddDate(0, 0, 90)},
		{"P7D", ref.AddDate(0, 0, 7)},
		{"P1Y", time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)},
		{"P1M", time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)}, // AddDate normalizes Feb 31
		{"P1Y10D", time.Date(2027, 2, 10, 12, 0, 0, 0, time.UTC)},
		{"P2W", ref.AddDate(0, 0, 14)},
		{"PT48H", ref.Add(48 * time.Hour)},
		{"P1DT12H30M15S", ref.Add(36*time.Hour + 30*time.Minute + 15*time.Second)},
		{"P0D", ref},
	} {
		d, err := ParseDuration(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := d.AddTo(ref); !got.Equal(tc.want) {
			t.Errorf("%s: ref + d = %s; want %s", tc.in, got, tc.want)
		}
		if got := d.SubtractFrom(d.AddTo(ref)); tc.in != "P1M" && !got.Equal(ref) {
			t.Errorf("%s: (ref + d) - d = %s", tc.in, got)
		}
		if d.String() != tc.in {
			t.Errorf("String() = %q", d.String())
		}
	}
	for _, bad := range []string{"", "P", "PT", "90D", "P90", "P-1D", "P1.5D", "P1D2Y", "P1H", "PT1D", "P1DT", "p90d", "P1DD", "P90D ", "P 90D", "P1W2W"} {
		if _, err := ParseDuration(bad); !codeIs(err, keyhold.CodeBadParameter) {
			t.Errorf("ParseDuration(%q) = %v; want BadParameter", bad, err)
		}
	}
}

func TestRotationPolicyValidation(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-policy", nil)
	f.createKey(v.Name, "cmk")
	// No policy: the default.
	if got := must[*keyhold.RotationPolicy](t)(f.svc.GetRotationPolicy(as(reader), v.Name, "cmk")); !reflect.DeepEqual(got, DefaultRotationPolicy()) {
		t.Fatalf("default policy: %+v", got)
	}
	valid := &keyhold.RotationPolicy{ExpiryTime: "P90D", LifetimeActions: []keyhold.LifetimeAction{
		{Action: "rotate", TimeAfterCreate: "P60D"}, {Action: "Notify", TimeBeforeExpiry: "P30D"}}}
	set := must[*keyhold.RotationPolicy](t)(f.svc.SetRotationPolicy(as(officer), v.Name, "cmk", valid))
	if set.LifetimeActions[0].Action != ActionRotate || !set.CreatedAt.Equal(start) || !set.UpdatedAt.Equal(start) {
		t.Fatalf("set: %+v", set)
	}
	stored := must[*keyhold.RotationPolicy](t)(f.svc.GetRotationPolicy(as(officer), v.Name, "cmk"))
	if !reflect.DeepEqual(stored, set) {
		t.Fatalf("get: %+v; want %+v", stored, set)
	}

	rot := func(tac, tbe string) keyhold.LifetimeAction {
		return keyhold.LifetimeAction{Action: ActionRotate, TimeAfterCreate: tac, TimeBeforeExpiry: tbe}
	}
	for _, tc := range []struct {
		name   string
		expiry string
		acts   []keyhold.LifetimeAction
		words  []string
	}{
		{"two rotate actions", "", []keyhold.LifetimeAction{rot("P30D", ""), rot("P60D", "")}, []string{"more than one Rotate"}},
		{"two notify actions", "P90D", []keyhold.LifetimeAction{{Action: "Notify", TimeBeforeExpiry: "P30D"}, {Action: "notify", TimeBeforeExpiry: "P10D"}}, []string{"more than one Notify"}},
		{"rotate after 6 days", "", []keyhold.LifetimeAction{rot("P6D", "")}, []string{"at least 7 days"}},
		{"rotate after 167 hours", "", []keyhold.LifetimeAction{rot("PT167H", "")}, []string{"at least 7 days"}},
		{"expiry 27 days", "P27D", []keyhold.LifetimeAction{rot("P7D", "")}, []string{"at least 28 days"}},
		{"both triggers", "P90D", []keyhold.LifetimeAction{rot("P30D", "P30D")}, []string{"exactly one"}},
		{"no trigger", "", []keyhold.LifetimeAction{rot("", "")}, []string{"exactly one"}},
		{"bad duration", "", []keyhold.LifetimeAction{rot("30 days", "")}, []string{"ISO 8601"}},
		{"bad expiry", "90D", nil, []string{"ISO 8601"}},
		{"unknown action", "", []keyhold.LifetimeAction{{Action: "Disable", TimeAfterCreate: "P30D"}}, []string{`"Disable"`}},
		{"rotate before expiry without expiry", "", []keyhold.LifetimeAction{rot("", "P30D")}, []string{"expiryTime"}},
		{"rotate before expiry 6 days", "P90D", []keyhold.LifetimeAction{rot("", "P6D")}, []string{"at least 7 days"}},
		{"rotate too close to creation", "P30D", []keyhold.LifetimeAction{rot("", "P25D")}, []string{"less than 7 days after creation"}},
		{"rotate too close to expiry", "P30D", []keyhold.LifetimeAction{rot("P25D", "")}, []string{"before expiry"}},
		{"notify after create", "P90D", []keyhold.LifetimeAction{{Action: "Notify", TimeAfterCreate: "P30D"}}, []string{"timeBeforeExpiry"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.SetRotationPolicy(as(officer), v.Name, "cmk", &keyhold.RotationPolicy{ExpiryTime: tc.expiry, LifetimeActions: tc.acts})
			wantCode(t, err, keyhold.CodeBadParameter, "", tc.words...)
			if got := must[*keyhold.RotationPolicy](t)(f.svc.GetRotationPolicy(as(officer), v.Name, "cmk")); !reflect.DeepEqual(got, set) {
				t.Fatalf("the policy changed: %+v", got)
			}
		})
	}
	// Edges that pass: exactly 7 and 28 days.
	edge := &keyhold.RotationPolicy{ExpiryTime: "P28D", LifetimeActions: []keyhold.LifetimeAction{rot("", "P7D")}}
	f.clock.Advance(day)
	got := must[*keyhold.RotationPolicy](t)(f.svc.SetRotationPolicy(as(officer), v.Name, "cmk", edge))
	if !got.CreatedAt.Equal(start) || !got.UpdatedAt.Equal(start.Add(day)) {
		t.Fatalf("an update keeps the creation date: %+v", got)
	}
	// Not allowed for a reader; an empty policy resets to the default.
	_, err := f.svc.SetRotationPolicy(as(reader), v.Name, "cmk", valid)
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac, "keyrotationpolicies/write")
	if got := must[*keyhold.RotationPolicy](t)(f.svc.SetRotationPolicy(as(officer), v.Name, "cmk", &keyhold.RotationPolicy{})); !reflect.DeepEqual(got, DefaultRotationPolicy()) {
		t.Fatalf("reset: %+v", got)
	}
	if got := must[*keyhold.RotationPolicy](t)(f.svc.GetRotationPolicy(as(officer), v.Name, "cmk")); !reflect.DeepEqual(got, DefaultRotationPolicy()) {
		t.Fatalf("after reset: %+v", got)
	}
}

func TestRunRotation(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		f := newFixture(t, open)
		v := f.rbacVault("kv-auto", nil)
		b := f.createKey(v.Name, "cmk")
		f.createKey(v.Name, "manual") // no policy: never rotated
		_, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
		must[*keyhold.RotationPolicy](t)(f.svc.SetRotationPolicy(as(officer), v.Name, "cmk", &keyhold.RotationPolicy{
			ExpiryTime: "P90D", LifetimeActions: []keyhold.LifetimeAction{{Action: ActionRotate, TimeAfterCreate: "P30D"}}}))
		run := func(want int) {
			t.Helper()
			n, err := f.svc.RunRotation(context.Background())
			if err != nil || n != want {
				t.Fatalf("RunRotation at day %v = %d, %v; want %d", f.clock.Now().Sub(start)/day, n, err, want)
			}
		}
		run(0)
		f.clock.Set(start.Add(30*day - time.Nanosecond))
		run(0)
		f.clock.Set(start.Add(30 * day))
		run(1)
		run(0) // not twice
		vs := f.versions(v.Name, "cmk")
		if len(vs) != 2 || vs[1].Version.Version == b.Version.Version || !vs[1].Version.CreatedAt.Equal(start.Add(30*day)) ||
			!vs[1].Version.Expires.Equal(start.Add(120*day)) || vs[1].Key.CurrentVersion != vs[1].Version.Version {
			t.Fatalf("after rotation: %+v", vs[1].Version)
		}
		if len(f.versions(v.Name, "manual")) != 1 {
			t.Fatal("a key without a policy was rotated")
		}
		// The old version still unwraps.
		if _, got := must2(t)(f.svc.UnwrapKey(as(encUser), v.Name, "cmk", b.Version.Version, crypt.AlgRSAOAEP256, ct)); string(got) != "ek" {
			t.Fatal("old version after rotation")
		}
		// The next rotation is 30 days after the new version.
		f.clock.Set(start.Add(60*day - time.Nanosecond))
		run(0)
		f.clock.Set(start.Add(60 * day))
		run(1)
		if len(f.versions(v.Name, "cmk")) != 3 {
			t.Fatal("third version missing")
		}
		// Rotation before expiry: due 10 days before the version expires.
		must[*keyhold.RotationPolicy](t)(f.svc.SetRotationPolicy(as(officer), v.Name, "cmk", &keyhold.RotationPolicy{
			ExpiryTime: "P90D", LifetimeActions: []keyhold.LifetimeAction{{Action: ActionRotate, TimeBeforeExpiry: "P10D"}}}))
		f.clock.Set(start.Add(60*day + 80*day - time.Nanosecond))
		run(0)
		f.clock.Set(start.Add(60*day + 80*day))
		run(1)
		// A deleted key, or one in a deleted vault, is left alone.
		must[*keyhold.KeyBundle](t)(f.svc.DeleteKey(as(officer), v.Name, "cmk"))
		f.clock.Advance(365 * day)
		run(0)

		// The rotations are audited as the system's.
		var rotations int
		for _, e := range f.audit() {
			if e.Action == "key.rotate" && e.ActorID == systemActor && e.Result == "Succeeded" && e.TenantID == testTenant {
				rotations++
			}
		}
		if rotations != 3 {
			t.Fatalf("%d rotation audit entries; want 3", rotations)
		}
	})
}

// audit returns the test tenant's audit log, newest first.
func (f *fixture) audit() []*keyhold.AuditEntry {
	f.t.Helper()
	var es []*keyhold.AuditEntry
	err := f.store.View(context.Background(), func(tx keyhold.Tx) error {
		var err error
		es, err = tx.ListAudit(context.Background(), keyhold.AuditFilter{TenantID: testTenant, Limit: 1000})
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}
