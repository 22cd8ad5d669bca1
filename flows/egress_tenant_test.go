package flows_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/egress"
	"github.com/keyhold/keyhold/flows"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// TestTenantEgressAllowlist: with the tenant's Http allowlist set, an
// Http action reaches a listed host, and is refused for an unlisted one
// (which the operator's policy allows) with an error naming the tenant's
// setting; a host the tenant lists but the operator refuses stays
// refused, naming the operator's flag; clearing the list lifts the
// tenant's restriction.
func TestTenantEgressAllowlist(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.fl.Close()
		pol, err := egress.New(egress.Options{Allow: []string{"127.0.0.0/8"}})
		if err != nil {
			t.Fatal(err)
		}
		fl, err := flows.New(flows.Config{Store: w.store, Sealer: w.p.Sealer, Data: w.p, Clock: w.clock, Egress: pol, Owner: "engine-egress",
			LeaseTTL: 3 * time.Second, PollInterval: 50 * time.Millisecond,
			Sleep: func(ctx context.Context, d time.Duration) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		fl.Start()
		t.Cleanup(fl.Close)
		srv := newCounter(t)
		u, _ := url.Parse(srv.URL)
		// callTo runs a flow whose first Http action calls base/one and
		// returns that action.
		n := 0
		callTo := func(base string) *keyhold.FlowRunAction {
			t.Helper()
			n++
			id := "egress" + string(rune('a'+n))
			w.putFlow(t, fl, id, fiveActions(base, "/two"), "")
			run, err := fl.RunTrigger(w.ctx, w.env.ID, id, "manual", nil)
			if err != nil {
				t.Fatal(err)
			}
			w.wait(t, fl, id, run.ID)
			acts, _ := fl.RunActions(w.ctx, w.env.ID, id, run.ID)
			for _, a := range acts {
				if a.Path == "Call_one" {
					return a
				}
			}
			t.Fatalf("no Call_one in %+v", acts)
			return nil
		}
		if _, err := w.p.SetTenantEgress(w.ctx, []string{"127.0.0.1", "10.9.8.7"}); err != nil {
			t.Fatal(err)
		}
		if a := callTo(srv.URL); a.Status != "Succeeded" {
			t.Fatalf("a listed host: %+v", a)
		}
		unlisted := "http://127.0.0.2:" + u.Port()
		if a := callTo(unlisted); a.Error == nil || a.Error.Code != "EgressRefused" || !strings.Contains(a.Error.Message, keyhold.TenantEgressSetting) {
			t.Fatalf("an unlisted host: %+v", a.Error)
		}
		if a := callTo("http://10.9.8.7:" + u.Port()); a.Error == nil || a.Error.Code != "EgressRefused" || !strings.Contains(a.Error.Message, egress.DefaultFlag) {
			t.Fatalf("a host the operator refuses: %+v", a.Error)
		}
		if srv.count("/one?") != 1 {
			t.Fatalf("the server got %d calls, want the listed one's", srv.count("/one?"))
		}
		if _, err := w.p.SetTenantEgress(w.ctx, nil); err != nil {
			t.Fatal(err)
		}
		if a := callTo(unlisted); a.Error != nil && a.Error.Code == "EgressRefused" {
			t.Fatalf("after clearing the list, 127.0.0.2 is still refused: %+v", a.Error)
		}
	})
}
