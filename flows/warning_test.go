package flows_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/sqlstore/storetest"
)

// plantPlatformFlow stores a flow sealed under the platform key's
// partition (epoch 0), as a link leaves a flow it can't move.
func (w *world) plantPlatformFlow(t *testing.T, id string) {
	t.Helper()
	pt, _ := json.Marshal(map[string]json.RawMessage{"definition": json.RawMessage(reqDef("Http", ""))})
	sealed, err := w.p.Sealer.SealPlatform(context.Background(), w.env.ID, keyhold.StoreFlows, keyhold.FlowItemID(id), 1, pt)
	if err != nil {
		t.Fatal(err)
	}
	now := w.clock.Now().UTC()
	rec := &keyhold.FlowRecord{EnvID: w.env.ID, ID: id, DisplayName: "Flow " + id, State: keyhold.FlowStarted, TriggerName: "manual", TriggerType: "Request", TriggerKind: "Http",
		CreatedBy: "someone", Epoch: keyhold.PlatformEpoch, Version: 1, Sealed: sealed, CreatedAt: now, UpdatedAt: now}
	if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error { return tx.PutFlow(context.Background(), rec) }); err != nil {
		t.Fatal(err)
	}
}

// warnings reads the warning's count where the platform answers it: the
// environment, the tenant's list, and the environment's row of the
// environments with policies (-1 when it has no row).
func (w *world) warnings(t *testing.T) (env, list, link int) {
	t.Helper()
	e, err := w.p.FindEnvironment(w.ctx, w.env.ID)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := w.p.ListEnvironments(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	list = -1
	for _, x := range envs {
		if x.ID == w.env.ID {
			list = x.PlatformKeyFlows
		}
	}
	links, err := w.p.PolicyLinks(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	link = -1
	for _, l := range links {
		if l.Environment != nil && l.Environment.ID == w.env.ID {
			link = l.Environment.PlatformKeyFlows
		}
	}
	return e.PlatformKeyFlows, list, link
}

// TestFlowWarning: spec 004's warning counts, from the store, the flows of
// a customer-key environment sealed under the platform key's partition,
// on the environment, in the list and on its environments-with-policies
// row. An environment without a policy has none even with such flows; a
// linked one has none while all its flows are under its key; Save as and
// deleting the original clear it.
func TestFlowWarning(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, open func(t *testing.T) keyhold.Store) {
		w := newWorld(t, open(t))
		w.putFlow(t, w.fl, "moved", reqDef("Button", ""), "")
		w.plantPlatformFlow(t, "legacy-1")
		if e, l, _ := w.warnings(t); e != 0 || l != 0 {
			t.Fatalf("no policy: warning counts %d, %d", e, l)
		}
		w.markLinked(t)
		if err := w.store.Update(context.Background(), func(tx keyhold.Tx) error {
			e, err := tx.Environment(context.Background(), w.env.ID)
			if err != nil {
				return err
			}
			e.PolicySystemID, e.LinkStatus = "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/00000000-0000-0000-0000-000000000001", "Linked"
			return tx.UpdateEnvironment(context.Background(), e)
		}); err != nil {
			t.Fatal(err)
		}
		w.plantPlatformFlow(t, "legacy-2")
		if e, l, k := w.warnings(t); e != 2 || l != 2 || k != 2 {
			t.Fatalf("two flows on the platform key: warning counts %d, %d, %d; want 2", e, l, k)
		}
		for i, id := range []string{"legacy-1", "legacy-2"} {
			if _, err := w.fl.SaveFlowAs(w.ctx, w.env.ID, id, &keyhold.FlowSaveAs{DisplayName: id + " (CMK)"}); err != nil {
				t.Fatal(err)
			}
			if err := w.fl.DeleteFlow(w.ctx, w.env.ID, id); err != nil {
				t.Fatal(err)
			}
			want := 1 - i
			if e, l, k := w.warnings(t); e != want || l != want || k != want {
				t.Fatalf("after fixing %s: warning counts %d, %d, %d; want %d", id, e, l, k, want)
			}
		}
		fs, _ := w.fl.ListFlows(w.ctx, w.env.ID)
		if len(fs) != 3 {
			t.Fatalf("%d flows, want the moved one and the two copies", len(fs))
		}
	})
}
